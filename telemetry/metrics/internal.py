"""Telemetry's own health: the ``telemetry_*`` families (not under the configurable
namespace), and :class:`DropCounter`, the one way a bounded buffer counts what it drops.

Imports nothing of telemetry, so the lowest layers (the guard, the recorder) can use it.
Each family is created once per process, on first use.
"""

import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

_lock = threading.Lock()
_created: dict[str, Counter] = {}


def _counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
    counter = _created.get(name)
    if counter is None:
        with _lock:
            counter = _created.get(name)
            if counter is None:
                counter = _created[name] = Counter(name, documentation, list(labels))
    return counter


def internal_errors() -> Counter:
    return _counter("telemetry_internal_errors", "Errors inside telemetry, by component; never raised.",
                    ("component",))


def dropped_events() -> Counter:
    return _counter("telemetry_dropped_events", "Telemetry events dropped because the buffer was full.")


def usage_dropped() -> Counter:
    return _counter("telemetry_usage_dropped", "Usage events not counted because the in-process table was full.")


def table_dropped() -> Counter:
    return _counter("telemetry_table_dropped",
                    "Rows not aggregated because an in-process table was full, by table (query statistics, "
                    "findings, release latency).", ("table",))


def trace_spans_stored() -> Counter:
    return _counter("telemetry_trace_spans_stored", "Spans written to the embedded trace store.")


def trace_dropped() -> Counter:
    return _counter("telemetry_trace_dropped", "Spans and log records not stored, by reason.", ("reason",))


def trace_store_breaker_transitions() -> Counter:
    return _counter("telemetry_trace_store_breaker_transitions",
                    "Changes of the trace store writer's circuit breaker, by the state entered (closed, open, "
                    "half_open).", ("state",))


def sql_unparsed() -> Counter:
    return _counter("telemetry_sql_unparsed",
                    "Statements the SQL analyzer could not parse (operation 'other'), by vendor.", ("vendor",))


class DropCounter:
    """Drops counted on a hot path by a plain integer add (no lock, no metric call), moved
    to a prometheus-client counter by :meth:`report`, which runs off the hot path.

    ``family`` returns the counter; with ``labelled``, drops are counted per reason and
    reported as its one label.
    """

    __slots__ = ("_family", "_labelled", "_counts", "_reported")

    def __init__(self, family: Callable[[], Counter], labelled: bool = False) -> None:
        self._family = family
        self._labelled = labelled
        self._counts: dict[str, int] = {}
        self._reported: dict[str, int] = {}

    def count(self, reason: str = "", amount: int = 1) -> None:
        self._counts[reason] = self._counts.get(reason, 0) + amount

    def total(self, reason: str = "") -> int:
        """Drops in this process so far (for ``reason`` when labelled)."""
        return self._counts.get(reason, 0)

    def report(self) -> None:
        for reason, count in list(self._counts.items()):
            delta = count - self._reported.get(reason, 0)
            if delta > 0:
                family: Any = self._family()
                (family.labels(reason) if self._labelled else family).inc(delta)
                self._reported[reason] = count


def series_folded() -> Counter:
    return _counter("telemetry_series_folded",
                    "Label sets folded into a family's 'other' series because its series budget was spent.",
                    ("family",))


def define_all() -> list[Counter]:
    """Every ``telemetry_*`` family, created now (otherwise each waits for its first use)."""
    return [internal_errors(), dropped_events(), usage_dropped(), table_dropped(), trace_spans_stored(),
            trace_dropped(), trace_store_breaker_transitions(), sql_unparsed(), series_folded()]
