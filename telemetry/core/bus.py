"""The internal event bus: how telemetry's own modules (``/health``, the throttles, the
Celery receivers and beat scheduler, the auth signals, the release comparison) report a
metric update. It is not the host's surface: hosts and plugins call ``telemetry.api``.

One event appended to the recorder per call; applied by the flusher thread in batches.
"""

from telemetry import conf
from telemetry.core import guard, recorder
from telemetry.core.events import MetricUpdate


def emit(operation, family_path, label_values, value):
    """``operation`` is a :class:`~telemetry.core.recorder.Batch` method (``inc``,
    ``observe``, ``set``, ``add``); ``family_path`` is ``(group, name)`` in
    ``telemetry.metrics.families()``. Never raises."""
    if not conf.get("METRICS_ENABLED"):
        return
    try:
        recorder.record(MetricUpdate(operation, family_path, label_values, value))
    except Exception as exc:  # noqa: BLE001
        guard.report("bus", exc)
