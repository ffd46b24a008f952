"""Telemetry in Django admin: traces and logs (``traces.py``), query intelligence
(``queries.py``), usage per organization (``usage.py``). Pages read pre-aggregated
tables, never raw scans."""

from . import queries, traces, usage  # noqa: F401
