"""Shared bucket constants and constructors for metric families.

Families are created once per process, on first use, in prometheus-client's default
registry (multiprocess-aware when ``PROMETHEUS_MULTIPROC_DIR`` is set before start).
"""

from collections.abc import Sequence
from typing import Any, Literal

from prometheus_client import Counter, Gauge, Histogram

from telemetry import conf
from telemetry.adapters import prometheus
from telemetry.metrics import internal

# Every bucket is one more line per series in each scrape (and one more series in
# Prometheus), so each family gets the resolution its question needs, no more:
#: Request-level latency (HTTP, app and datasource queries, tasks): 5 ms .. 10 s, the
#: range where a user notices a difference; slower lands in +Inf, a timeout anyway.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Statement latency: OpenTelemetry's advisory buckets for ``db.client.operation.duration``.
DB_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
#: Families that cut a latency the families above already resolve finely (per part of a
#: request, per release, per phase of a plugin run, waits): they answer "which part got
#: slower", for which a factor of ~5 between bounds is enough.
COARSE_DURATION_BUCKETS = (0.01, 0.05, 0.25, 1.0, 5.0)
#: Bytes: 256 B .. 16 MiB, a factor of 16 apart (sizes spread over orders of magnitude).
SIZE_BUCKETS = (256, 4096, 65536, 1048576, 16777216)
#: Rows returned by a statement.
ROW_BUCKETS = (0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10000)
#: Session lengths: 1 min .. 1 day.
SESSION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400)

#: How a gauge combines its processes' values (prometheus-client's ``multiprocess_mode``).
MultiprocessMode = Literal["all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent",
                           "livemostrecent"]


class Family:
    """A prometheus-client metric plus a cache of its children by label tuple, with a
    series budget: once the family holds ``MAX_SERIES_PER_FAMILY`` series, or all families
    together ``MAX_SERIES_TOTAL``, a new label set is folded into one series whose every
    label is ``other`` (its values still count there) and the fold is counted in
    ``telemetry_series_folded_total{family}``. Per-label caps (``MAX_APPS``, ...) bound
    each label; this bounds their product."""

    __slots__ = ("metric", "kind", "upper_bounds", "name", "_children", "_series")

    #: Series held by all families of this process.
    total_series = 0

    def __init__(self, metric, kind, upper_bounds=None):
        self.metric = metric
        self.kind = kind
        self.upper_bounds = upper_bounds
        self.name = metric.describe()[0].name
        self._children = {}
        self._series = 0

    def child(self, label_values: tuple[str, ...]) -> Any:
        child = self._children.get(label_values)
        if child is None:
            child = self._children[label_values] = self._new_child(label_values)
        return child

    def counted_as(self, label_values: tuple[str, ...]) -> tuple[str, ...]:
        """The label values a label set is counted under: its own, or all ``other`` once folded."""
        child = self.child(label_values)
        folded = ("other",) * len(label_values)
        return folded if label_values != folded and self._children.get(folded) is child else label_values

    def _new_child(self, label_values):
        settings = conf.get_settings()
        if self._series >= settings["MAX_SERIES_PER_FAMILY"] or Family.total_series >= settings["MAX_SERIES_TOTAL"]:
            folded = ("other",) * len(label_values)
            if label_values != folded:
                internal.series_folded().labels(self.name).inc()
                return self.child(folded)
        self._series += 1
        Family.total_series += 1
        return self.metric.labels(*label_values)


def counter(name: str, documentation: str, labels: Sequence[str]) -> Family:
    return Family(Counter(name, documentation, labels), "counter")


def histogram(name: str, documentation: str, labels: Sequence[str],
              buckets: Sequence[float] = DURATION_BUCKETS) -> Family:
    metric = Histogram(name, documentation, labels, buckets=buckets)
    return Family(metric, "histogram", prometheus.upper_bounds(metric))


def gauge(name: str, documentation: str, labels: Sequence[str],
          multiprocess_mode: MultiprocessMode = "livesum") -> Family:
    return Family(Gauge(name, documentation, labels, multiprocess_mode=multiprocess_mode), "gauge")
