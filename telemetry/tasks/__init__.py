"""Celery wiring of telemetry, in one place: the periodic tasks (``samples``: storage,
queue depth, expired sessions, release comparison; ``reports``: slow-query and
optimization reports; ``retention``: purges), the receivers of Celery's signals that make
the task metrics (``receivers``) and the beat scheduler that counts missed runs (``beat``).

Importing this package (Django's app loading does when Celery is installed, and so does
Celery's ``autodiscover_tasks()``) registers every task, and adds the beat entries of
``schedule.BEAT_SCHEDULE`` to the current Celery app: the host copies nothing.
May import every other telemetry package; nothing but ``apps`` imports it.
"""

from celery import current_app

from telemetry.tasks.reports import build_optimization_report, build_slow_query_report
from telemetry.tasks.retention import purge_stored, purge_traces, purge_usage
from telemetry.tasks.samples import (
    compare_releases,
    record_expired_sessions,
    sample_queue_depth,
    sample_storage_usage,
)
from telemetry.tasks.schedule import BEAT_SCHEDULE, add_to

add_to(current_app)

__all__ = [
    "BEAT_SCHEDULE", "build_optimization_report", "build_slow_query_report", "compare_releases", "purge_stored",
    "purge_traces", "purge_usage", "record_expired_sessions", "sample_queue_depth", "sample_storage_usage",
]
