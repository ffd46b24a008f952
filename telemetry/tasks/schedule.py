"""Telemetry's periodic work, registered with the host's Celery app: nothing to copy.

Importing :mod:`telemetry.tasks` (Django's app loading does, and so does Celery's
``autodiscover_tasks()``) adds :data:`BEAT_SCHEDULE` to the current Celery app's
``beat_schedule``, before ``celery beat`` builds its schedule. An entry of the host with
the same name wins: a host changes an interval by naming the entry in its
``CELERY_BEAT_SCHEDULE``.
"""

from typing import Any

from celery import Celery

#: Entry name -> Celery beat entry (seconds between runs).
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "telemetry-storage-usage": {"task": "telemetry.sample_storage_usage", "schedule": 60.0},
    "telemetry-queue-depth": {"task": "telemetry.sample_queue_depth", "schedule": 15.0},
    "telemetry-expired-sessions": {"task": "telemetry.record_expired_sessions", "schedule": 3600.0},
    "telemetry-compare-releases": {"task": "telemetry.compare_releases", "schedule": 30.0},
    "telemetry-purge-traces": {"task": "telemetry.purge_traces", "schedule": 3600.0},
    "telemetry-purge-usage": {"task": "telemetry.purge_usage", "schedule": 3600.0},
    "telemetry-purge-stored": {"task": "telemetry.purge_stored", "schedule": 3600.0},
    "telemetry-slow-query-report": {"task": "telemetry.build_slow_query_report", "schedule": 120.0},
    "telemetry-optimization-report": {"task": "telemetry.build_optimization_report", "schedule": 180.0},
}


def add_to(app: Celery) -> None:
    """Adds the entries of :data:`BEAT_SCHEDULE` that ``app`` does not name yet (idempotent)."""
    configured = dict(app.conf.beat_schedule or {})
    app.conf.beat_schedule = {**{name: dict(entry) for name, entry in BEAT_SCHEDULE.items()}, **configured}
