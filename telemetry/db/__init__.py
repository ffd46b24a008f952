"""Database hooks: the one ``execute_wrapper`` on every connection, connect timing, the
call site (application frame) of a statement, and management commands' statements left
unrecorded (``commands``).

May import the core, metrics and tracing (the current span of a statement).
"""
