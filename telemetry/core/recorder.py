"""Hot-path events, buffered and applied in batches off the request thread.

A request, a query or a plugin run appends one tuple to a deque (tens of
nanoseconds). A daemon thread per process drains the deque every
``FLUSH_INTERVAL_SECONDS`` and hands each event to the handlers registered for its
kind (metrics, query statistics, ...), which aggregate into a :class:`Batch` that
touches prometheus-client once per series instead of once per event. ``/metrics``
drains its own process before rendering, and workers drain at exit, so counts are
exact. The buffer is bounded; events beyond it are dropped and counted.
"""

import atexit
import bisect
import os
import threading
import time
from collections import deque

from telemetry import conf
from telemetry.core import guard
from telemetry.metrics import internal

_handlers = {}
_periodic = []
_events = deque()
_drain_lock = threading.Lock()
_state = {"pid": None, "thread": None, "wake": None}
#: Hot-path copies of settings and state, so ``record`` does no look-ups: the buffer
#: bound, and whether this process (reset after fork) has its flusher.
_hot = {"max_events": 100_000, "started": False}
_dropped = internal.DropCounter(internal.dropped_events)


def register(kind, handler):
    """Calls ``handler(batch, event)`` for every event whose first item is ``kind``."""
    _handlers.setdefault(kind, [])
    if handler not in _handlers[kind]:
        _handlers[kind].append(handler)


def register_periodic(callback):
    """Calls ``callback(batch)`` every ``SAMPLE_INTERVAL_SECONDS`` (and on ``flush(sample=True)``)."""
    if callback not in _periodic:
        _periodic.append(callback)


def record(event):
    """Appends an event tuple ``(kind, ...)``; never blocks, never raises. Returns whether
    the event was kept. A request's end is kept up to twice the bound, so that every
    request whose start was kept is also finished (at most one end per kept start)."""
    length = len(_events)
    if length >= _hot["max_events"] and (event[0] != "request" or length >= 2 * _hot["max_events"]):
        _dropped.count()
        return False
    _events.append(event)
    if not _hot["started"]:
        _start_thread()
    return True


def dropped_events():
    return _dropped.total()


def flush(sample=False):
    """Drains the buffer now and applies it; with ``sample``, then runs the periodic
    callbacks (which see what was just drained). Safe from any thread."""
    with _drain_lock:
        batch = Batch()
        popleft = _events.popleft
        while True:
            try:
                event = popleft()
            except IndexError:
                break
            for handler in _handlers.get(event[0], ()):
                try:
                    handler(batch, event)
                except Exception as exc:  # noqa: BLE001
                    guard.report(f"handler:{event[0]}", exc)
        if sample:
            for callback in _periodic:
                try:
                    callback(batch)
                except Exception as exc:  # noqa: BLE001
                    guard.report("periodic", exc)
        batch.apply()
        _dropped.report()


def _run(wake):
    from django.db import connections

    from telemetry.core.context import suppress_in_this_thread

    suppress_in_this_thread()
    last_sample = 0.0
    while True:
        wake.wait(conf.get("FLUSH_INTERVAL_SECONDS"))
        wake.clear()
        sample = time.monotonic() - last_sample >= conf.get("SAMPLE_INTERVAL_SECONDS")
        with guard.guarded("flush"):
            if sample:
                last_sample = time.monotonic()
            flush(sample=sample)
        if sample:
            # One short-lived connection per sample: nothing held open between samples,
            # and a database that went away is simply reconnected next time.
            with guard.guarded("flush_close"):
                connections.close_all()


def _start_thread():
    """Starts the flusher in this process (again after a fork: threads do not survive it)."""
    with _drain_lock:
        if _state["pid"] == os.getpid():
            return
        wake = threading.Event()
        thread = threading.Thread(target=_run, args=(wake,), name="telemetry-flush", daemon=True)
        _state.update(pid=os.getpid(), thread=thread, wake=wake)
        _hot["started"] = True
        thread.start()


def run_in_foreground():
    """No flusher thread in this process: events wait for an explicit :func:`flush`.
    For test processes, where a background writer would race the test database."""
    _state["pid"] = os.getpid()
    _hot["started"] = True


def _after_fork_in_child():
    global _drain_lock
    _drain_lock = threading.Lock()
    _state.update(pid=None, thread=None, wake=None)
    _hot["started"] = False


def _read_settings():
    _hot["max_events"] = conf.get("BUFFER_MAX_EVENTS")


def _flush_at_exit():
    with guard.guarded("flush_at_exit"):
        flush(sample=_state["thread"] is not None and _state["pid"] == os.getpid())


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_at_exit)


class Batch:
    """Aggregates one drain's worth of updates, then applies them once per series."""

    __slots__ = ("counters", "histograms", "gauges", "gauge_deltas", "exemplars", "settings", "_now", "_hour")

    def __init__(self):
        self.counters = {}
        self.histograms = {}
        self.gauges = {}
        self.gauge_deltas = {}
        self.exemplars = {}
        #: The settings and clock of this drain, read once rather than per event.
        self.settings = conf.get_settings()
        self._now = None
        self._hour = None

    @property
    def now(self):
        if self._now is None:
            from django.utils import timezone

            self._now = timezone.now()
        return self._now

    @property
    def hour(self):
        if self._hour is None:
            self._hour = self.now.replace(minute=0, second=0, microsecond=0)
        return self._hour

    def inc(self, family, label_values, amount=1.0):
        key = (family, label_values)
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def observe(self, family, label_values, value, exemplar=None):
        key = (family, label_values)
        entry = self.histograms.get(key)
        if entry is None:
            entry = self.histograms[key] = [[0] * len(family.upper_bounds), 0.0]
        index = bisect.bisect_left(family.upper_bounds, value)
        entry[0][index] += 1
        entry[1] += value
        if exemplar:
            self.exemplars[(key, index)] = (exemplar, value)

    def set(self, family, label_values, value):
        self.gauges[(family, label_values)] = value

    def add(self, family, label_values, delta):
        key = (family, label_values)
        self.gauge_deltas[key] = self.gauge_deltas.get(key, 0.0) + delta

    def apply(self):
        from prometheus_client.samples import Exemplar

        for (family, label_values), amount in self.counters.items():
            family.child(label_values).inc(amount)
        for (family, label_values), (bucket_counts, total) in self.histograms.items():
            child = family.child(label_values)
            # prometheus-client keeps per-bucket (non-cumulative) counts in ``_buckets``
            # and the sum in ``_sum``: adding aggregated counts equals observing each value.
            child._sum.inc(total)
            for index, count in enumerate(bucket_counts):
                if count:
                    child._buckets[index].inc(count)
        for ((family, label_values), index), (exemplar, value) in self.exemplars.items():
            family.child(label_values)._buckets[index].set_exemplar(Exemplar(exemplar, value, time.time()))
        for (family, label_values), value in self.gauges.items():
            family.child(label_values).set(value)
        for (family, label_values), delta in self.gauge_deltas.items():
            family.child(label_values).inc(delta)
