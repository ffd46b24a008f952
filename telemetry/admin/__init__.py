"""Telemetry in Django admin: traces and logs (``traces.py``), query intelligence
(``queries.py``). Pages read pre-aggregated tables, never raw scans."""

from . import queries, traces  # noqa: F401
