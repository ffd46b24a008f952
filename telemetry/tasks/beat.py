"""A beat scheduler that counts missed runs: an entry that becomes due later than its
interval allows (beat was down, or blocked), and a run that could not be sent (the
broker was down), are counted in ``<namespace>_beat_missed_runs_total{entry}``. Use with
``CELERY_BEAT_SCHEDULER = "telemetry.tasks.beat:TelemetryScheduler"``."""

from datetime import datetime, timedelta
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry

from telemetry.core import guard, recorder
from telemetry.core.bus import emit

#: Lateness tolerated before a run counts as missed, as a share of the interval.
TOLERANCE = 0.5


def missed_runs(entry: ScheduleEntry, now: datetime) -> int:
    """How many runs of ``entry`` were skipped, judged when it is applied at ``now``."""
    if entry.last_run_at is None:
        return 0
    run_every = getattr(entry.schedule, "run_every", None)
    if not run_every or run_every <= timedelta(0):
        return 0
    due_at = entry.last_run_at + run_every
    lateness = now - due_at
    if lateness <= run_every * TOLERANCE:
        return 0
    return max(1, int(lateness / run_every))


class TelemetryScheduler(PersistentScheduler):
    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        with guard.guarded("beat"):
            missed = missed_runs(entry, self.app.now())
            # Also when zero: every entry has a series (0 scrapes, absent does not alert).
            emit("inc", ("jobs", "beat_missed"), (entry.name,), missed)
            if missed:
                recorder.flush()
        return super().apply_entry(entry, producer=producer)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        try:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        except Exception:
            # Beat logs the failure and moves on to the next interval: a run missed.
            with guard.guarded("beat"):
                emit("inc", ("jobs", "beat_missed"), (entry.name,), 1)
                recorder.flush()
            raise
