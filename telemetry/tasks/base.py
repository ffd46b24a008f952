"""The base class of telemetry's own Celery tasks."""

from typing import Any

from celery import Task

from telemetry.core.context import suppressed


class OwnTask(Task):
    """Telemetry's own periodic work (reports, retention, samples): its statements are not
    recorded, so they never show in fingerprints, findings, reports or traces. Its name
    starts with ``telemetry.`` (``OWN_TASK_PREFIX``), by which the trace store drops its
    Celery spans. Celery runs a task through ``__call__`` when a class overrides it, in the
    worker and for ``apply()`` and direct calls alike."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with suppressed():
            return super().__call__(*args, **kwargs)
