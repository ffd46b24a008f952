"""Database hooks: the one ``execute_wrapper`` on every connection, connect timing, and
the call site (application frame) of a statement.

May import the core, metrics and tracing (the current span of a statement).
"""
