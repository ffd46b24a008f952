"""Hot-path events, buffered and applied in batches off the request thread.

A request, a query or a plugin run appends one event (a ``NamedTuple`` of
:mod:`telemetry.core.events`) to a deque (tens of nanoseconds). A
:class:`~telemetry.core.background.BackgroundWorker` thread per process drains it every
``FLUSH_INTERVAL_SECONDS`` and hands each event to the handlers registered for its
type (metrics, query statistics, ...), which aggregate into a :class:`Batch` that
touches prometheus-client once per series instead of once per event. ``/metrics``
drains its own process before rendering, and workers drain at exit, so counts are
exact. The buffer is bounded; events beyond it are dropped and counted.
"""

import math
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from functools import partial
from operator import sub
from typing import Any

from django.utils import timezone

from telemetry import conf
from telemetry.adapters import prometheus
from telemetry.core import guard
from telemetry.core.background import BackgroundWorker, BoundedQueue, reuse_connections
from telemetry.core.events import KIND_NAMES, Event, RequestFinished
from telemetry.metrics import exemplars, internal, multiprocess


class Recorder:
    """The event buffer of this process and its flusher (a :class:`BackgroundWorker`)."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Callable[[Batch, Any], None]]] = {}
        self._periodic: list[Callable[[Batch], None]] = []
        #: The bound is ``BUFFER_MAX_EVENTS``, read by :meth:`read_settings`.
        self.queue = BoundedQueue(100_000)
        self.worker = BackgroundWorker("telemetry-flush", self._tick, internal.DropCounter(internal.dropped_events),
                                       at_exit=self._flush_at_exit, after_fork=self._after_fork)
        self._last_sample = 0.0

    def register(self, event_type: type, handler: Callable[["Batch", Any], None]) -> None:
        """Calls ``handler(batch, event)`` for every event of ``event_type`` (a type of
        :mod:`telemetry.core.events`)."""
        handlers = self._handlers.setdefault(event_type, [])
        if handler not in handlers:
            handlers.append(handler)

    def register_periodic(self, callback: Callable[["Batch"], None]) -> None:
        """Calls ``callback(batch)`` every ``SAMPLE_INTERVAL_SECONDS`` (and on ``flush(sample=True)``)."""
        if callback not in self._periodic:
            self._periodic.append(callback)

    def record(self, event: Event) -> bool:
        """Appends an event (one of :mod:`telemetry.core.events`); never blocks, never
        raises. Returns whether the event was kept. A request's end is kept up to twice
        the bound, so that every request whose start was kept is also finished (at most
        one end per kept start)."""
        items = self.queue.items
        if len(items) < self.queue.limit and self.worker.started:
            # The common case, in this frame: a queue under its bound, the flusher running.
            items.append(event)
            return True
        return self.worker.submit(self.queue, event, 2 if type(event) is RequestFinished else 1)

    def dropped_events(self) -> int:
        """Events this process dropped so far because the buffer was full."""
        return self.worker.dropped.total()

    def flush(self, sample: bool = False, wait: float | None = None) -> bool:
        """Drains the buffer now and applies it; with ``sample``, then runs the periodic
        callbacks (which see what was just drained). Safe from any thread. ``wait`` bounds
        how long to wait for a drain in progress in another thread (the flusher, stuck on
        a hung store): past it nothing is applied and False is returned."""
        if not self.worker.lock.acquire(timeout=-1 if wait is None else wait):
            return False
        try:
            self._drain(sample)
        finally:
            self.worker.lock.release()
        return True

    def _drain(self, sample: bool) -> None:
        batch = Batch()
        handlers = self._handlers
        popleft = self.queue.items.popleft
        while True:
            try:
                event = popleft()
            except IndexError:
                break
            for handler in handlers.get(type(event), ()):
                try:
                    handler(batch, event)
                except Exception as exc:  # noqa: BLE001
                    guard.report(f"handler:{KIND_NAMES.get(type(event), type(event).__name__)}", exc)
        batch.settle()
        if sample:
            for callback in self._periodic:
                try:
                    callback(batch)
                except Exception as exc:  # noqa: BLE001
                    guard.report("periodic", exc)
        batch.apply()
        self.worker.dropped.report()

    def run_in_foreground(self) -> None:
        """No flusher thread in this process: events wait for an explicit :meth:`flush`.
        For test processes, where a background writer would race the test database."""
        self.worker.run_in_foreground()

    def read_settings(self) -> None:
        self.queue.limit = conf.get("BUFFER_MAX_EVENTS")

    def reset(self) -> None:
        """Forgets buffered events without applying them (tests)."""
        self.queue.clear()

    def _tick(self) -> None:
        """The flusher thread's work every ``FLUSH_INTERVAL_SECONDS``: a drain, with a
        sample every ``SAMPLE_INTERVAL_SECONDS``."""
        sample = time.monotonic() - self._last_sample >= conf.get("SAMPLE_INTERVAL_SECONDS")
        if sample:
            # The thread's connections persist from sample to sample (a new PostgreSQL
            # connection per sample cost 25x the sample's own work): checked, not reopened.
            with guard.guarded("flush_connections"):
                reuse_connections()
        with guard.guarded("flush"):
            if sample:
                self._last_sample = time.monotonic()
            self.flush(sample=sample)

    def _after_fork(self) -> None:
        self._last_sample = 0.0  # the child's flusher samples on its first drain, as the parent's did

    def _flush_at_exit(self) -> None:
        with guard.guarded("flush_at_exit"):
            self.flush(sample=self.worker.has_thread())


#: This process's recorder; the module-level names below are its methods.
event_buffer = Recorder()
register = event_buffer.register
register_periodic = event_buffer.register_periodic
record = event_buffer.record
flush = event_buffer.flush
dropped_events = event_buffer.dropped_events
run_in_foreground = event_buffer.run_in_foreground
read_settings = event_buffer.read_settings
reset = event_buffer.reset


def bucket_counts(bounds: Sequence[float], values: Sequence[float], buckets: int) -> list[int]:
    """``buckets`` per-bucket counts of ``values`` (numbers, not NaN) for ascending upper
    ``bounds``: the count at index ``i`` is of the values whose ``bisect_left`` is ``i``,
    as in :meth:`Batch.observe` (``len(bounds)`` buckets when the last bound is +Inf, one
    more for an overflow bucket)."""
    ordered = sorted(values)
    if len(ordered) <= 3 * len(bounds):
        # A few values per bound (a drain's runs of one shape, most often): one walk up the
        # bounds along the sorted values, +Inf the bound of an overflow bucket.
        counts = [0] * buckets
        walked = bounds if buckets == len(bounds) else [*bounds, math.inf]
        index = 0
        for value in ordered:
            while value > walked[index]:
                index += 1
            counts[index] += 1
        return counts
    # Many: each bound bisected into the sorted values (in C), the buckets the differences
    # of the numbers of values at or below each bound.
    at_or_below = list(map(partial(bisect_right, ordered), bounds))
    if buckets > len(at_or_below):
        at_or_below.append(len(ordered))
    return list(map(sub, at_or_below, [0, *at_or_below]))


class Batch:
    """Aggregates one drain's worth of updates, then applies them once per series. Updates
    of a family this process does not export (its domain is off) are skipped."""

    __slots__ = ("counters", "histograms", "gauges", "gauge_deltas", "exemplars", "shapes", "settings", "_now",
                 "_hour")

    def __init__(self):
        self.counters = {}
        self.histograms = {}
        self.gauges = {}
        self.gauge_deltas = {}
        self.exemplars = {}
        #: Shapes of ``telemetry.pipeline.shapes`` used in this drain: each applies its own
        #: accumulated series.
        self.shapes = []
        #: The settings and clock of this drain, read once rather than per event.
        self.settings = conf.get_settings()
        self._now = None
        self._hour = None

    @property
    def now(self):
        if self._now is None:
            self._now = timezone.now()
        return self._now

    @property
    def hour(self):
        if self._hour is None:
            self._hour = self.now.replace(minute=0, second=0, microsecond=0)
        return self._hour

    def inc(self, family, label_values, amount=1.0):
        if not family.exported:
            return
        key = (family, label_values)
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def observe(self, family, label_values, value, exemplar=None):
        if not family.exported:
            return
        key = (family, label_values)
        entry = self.histograms.get(key)
        if entry is None:
            entry = self.histograms[key] = [[0] * len(family.upper_bounds), 0.0]
        index = bisect_left(family.upper_bounds, value)
        entry[0][index] += 1
        entry[1] += value
        if exemplar:
            self.exemplars[(key, index)] = (exemplar, value)

    def exemplar(self, family, label_values, value, exemplar):
        """Shows ``exemplar`` on the bucket of ``value`` of a series (observed elsewhere)."""
        if family.exported:
            index = bisect_left(family.upper_bounds, value)
            self.exemplars[((family, label_values), index)] = (exemplar, value)

    def set(self, family, label_values, value):
        if not family.exported:
            return
        self.gauges[(family, label_values)] = value

    def add(self, family, label_values, delta):
        if not family.exported:
            return
        key = (family, label_values)
        self.gauge_deltas[key] = self.gauge_deltas.get(key, 0.0) + delta

    def settle(self):
        """Applies the shapes used in this drain (``telemetry.pipeline.shapes``): their
        series, and their rows of the in-process tables, which the sample then writes."""
        shapes, self.shapes = self.shapes, []
        for shape in shapes:
            shape.batch = None  # a shape unused from now on does not keep this batch alive
            try:
                shape.apply(self)
            except Exception as exc:  # noqa: BLE001 - one shape's failure costs its own updates only
                guard.report("handler:shape", exc)

    def apply(self):
        if self.shapes:  # used by a periodic callback, after the drain's own settle
            self.settle()
        for (family, label_values), amount in self.counters.items():
            family.child(label_values).inc(amount)
        for (family, label_values), (bucket_counts, total) in self.histograms.items():
            prometheus.add_observations(family.child(label_values), bucket_counts, total)
        if self.exemplars:
            self._apply_exemplars()
        for (family, label_values), value in self.gauges.items():
            family.child(label_values).set(value)
        for (family, label_values), delta in self.gauge_deltas.items():
            family.child(label_values).inc(delta)

    def _apply_exemplars(self):
        """On the bucket itself in one process; in multiprocess mode (where prometheus-client
        keeps none) in this process's exemplar file, which a scrape merges."""
        directory = multiprocess.directory()
        for ((family, label_values), index), (exemplar, value) in self.exemplars.items():
            if directory is None:
                prometheus.set_bucket_exemplar(family.child(label_values), index, exemplar, value)
            else:
                exemplars.process_exemplars.record(
                    family.name, prometheus.label_names(family.metric), family.counted_as(label_values),
                    family.upper_bounds[index], exemplar, value)
        if directory is not None:
            exemplars.process_exemplars.write(directory)
