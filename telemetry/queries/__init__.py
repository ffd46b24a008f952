"""Query intelligence: per-fingerprint statistics and runtime detectors (``stats``),
plans of slow statements (``explain``), index advice (``advice``), the ORM remedies of N+1
and duplicate findings (``remedies``, models from ``schema``), the slow-query and
optimization reports (``reports``) and the SQL analyzer (``sql``).

May import the core and metrics; never tracing, usage or anything above them.
"""
