"""Celery wiring of telemetry, in one place: the periodic tasks (``samples``: storage,
queue depth, expired sessions, release comparison; ``reports``: slow-query and
optimization reports; ``retention``: purges), the receivers of Celery's signals that make
the task metrics (``receivers``) and the beat scheduler that counts missed runs (``beat``).

Celery's ``autodiscover_tasks()`` imports this package, which registers every task.
May import every other telemetry package; nothing but ``apps`` imports it.
"""

from telemetry.tasks.reports import build_optimization_report, build_slow_query_report
from telemetry.tasks.retention import purge_stored, purge_traces, purge_usage
from telemetry.tasks.samples import (
    compare_releases,
    record_expired_sessions,
    sample_queue_depth,
    sample_storage_usage,
)

__all__ = [
    "build_optimization_report", "build_slow_query_report", "compare_releases", "purge_stored", "purge_traces",
    "purge_usage",
    "record_expired_sessions", "sample_queue_depth", "sample_storage_usage",
]
