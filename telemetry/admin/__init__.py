"""Telemetry in Django admin: the overview (``overview.py``), traces and logs (``traces.py``), query intelligence
(``queries.py``), usage per organization (``usage.py``), release comparison (``releases.py``). Pages read pre-aggregated
tables, never raw scans."""

from telemetry.admin import overview, queries, releases, traces, usage  # noqa: F401
