"""Query intelligence: per-fingerprint statistics and runtime detectors (``stats``),
plans of slow statements (``explain``), index proposals by shape (``indexes``) proven
with HypoPG (``advice``), the advice a team applies and the indexes safe to drop
(``advise``), the slow-query and optimization reports (``reports``) and the SQL analyzer
(``sql``).

The ORM remedies of N+1 and duplicate findings are in ``remedies`` (models and fields from
``schema``).

May import the core and metrics; never tracing, usage or anything above them.
"""
