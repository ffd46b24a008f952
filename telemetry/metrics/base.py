"""Shared bucket constants and constructors for metric families, and the domains that
decide which families a process exports.

Families are created once per process, on first use, and registered in prometheus-client's
default registry (multiprocess-aware when ``PROMETHEUS_MULTIPROC_DIR`` is set before start)
by :data:`domains`.
"""

import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from telemetry import conf
from telemetry.adapters import prometheus
from telemetry.metrics import internal

# Every bucket is one more line per series in each scrape (and one more series in
# Prometheus), so each family gets the resolution its question needs, no more:
#: Request-level latency (HTTP, datasource runs, tasks): 5 ms .. 10 s, the range where a
#: user notices a difference; slower lands in +Inf, a timeout anyway. The HTTP family keeps
#: all 11: the SLO alert (p95 over 2 s per route), the dashboard's p95 and the API's p50
#: per route read them, and a fast route's p50 needs the 5 ms bound. 2 s, the alert's
#: threshold, is a bound: between 1 s and 2.5 s ``histogram_quantile`` interpolated a
#: route of steady 1.5 s requests to a p95 of 2.4 s and paged for it.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
#: Statement latency, by table and organization: which table or tenant got slower, and
#: the p95 per operation the dashboard draws. OpenTelemetry advises 9 bounds (1 ms .. 10 s)
#: for ``db.client.operation.duration``; this family is the largest of the scrape (a series
#: per table and organization), so it keeps 6 a factor of 4-5 apart over the same start:
#: most statements take under 5 ms, and one past 2.5 s is in the slow-query report anyway.
DB_DURATION_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 2.5)
#: Families that cut a latency the families above already resolve finely (per part of a
#: request, per release, per phase of a plugin run, waits): they answer "which part got
#: slower", for which a factor of ~5 between bounds is enough.
COARSE_DURATION_BUCKETS = (0.01, 0.05, 0.25, 1.0, 5.0)
#: Families that repeat a latency per route once more (the API breakdown's parts, per-release
#: benchmarks, API calls): a series per route each, read for their sums (the dashboard
#: stacks the breakdown's ``_sum``) and counts; three bounds a decade apart still say
#: which share of a route's requests spent over 10 ms, 100 ms or 1 s in that part.
PER_ROUTE_DURATION_BUCKETS = (0.01, 0.1, 1.0)
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

    __slots__ = ("metric", "kind", "upper_bounds", "name", "domain", "exported", "_children", "_series")

    #: Series held by all families of this process.
    total_series = 0

    def __init__(self, metric, kind, upper_bounds=None):
        self.metric = metric
        self.kind = kind
        self.upper_bounds = upper_bounds
        self.name = metric.describe()[0].name
        #: The optional domain the family belongs to (None: exported by every host), and
        #: whether this process exports it (registered; updates of a family not exported
        #: are skipped by the recorder's batch). Set by :data:`domains`.
        self.domain: str | None = None
        self.exported = False
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


class Domains:
    """Which families this process exports. A family of no domain (HTTP, database, jobs,
    users, query analytics: what every Django project drives) is registered when it is
    defined; a family of an optional domain (what only a platform like the demo drives:
    plugins, datasources, apps, benchmarks, storage) once its domain is switched on:
    listed in ``METRIC_DOMAINS``, or when the host first reports into it through
    ``telemetry.api``. Until then the family is not rendered and its updates are skipped.
    A domain once on stays on for the life of the process."""

    def __init__(self) -> None:
        self.on: set[str] = set()
        self._families: dict[str, list[Family]] = {}
        self._lock = threading.Lock()
        self._on_switch: list[Callable[[], None]] = []

    def on_switch(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs after a domain is switched on: for caches of exported series."""
        if callback not in self._on_switch:
            self._on_switch.append(callback)

    def add(self, family: Family, domain: str | None) -> None:
        """Puts a new family in ``domain`` and registers it if the domain is on."""
        with self._lock:
            family.domain = domain
            if domain is not None:
                self._families.setdefault(domain, []).append(family)
            if domain is None or domain in self.on:
                self._export(family)

    def switch_on(self, domain: str) -> None:
        """Idempotent, cheap once on (a set lookup): hosts' reports call it every time."""
        if domain in self.on:
            return
        with self._lock:
            if domain in self.on:
                return
            self.on.add(domain)
            for family in self._families.get(domain, ()):
                self._export(family)
        for callback in self._on_switch:
            callback()

    @staticmethod
    def _export(family: Family) -> None:
        if not family.exported:
            REGISTRY.register(family.metric)
            family.exported = True


#: This process's domains.
domains = Domains()


# The constructors leave the metric unregistered: :data:`domains` registers it.
def counter(name: str, documentation: str, labels: Sequence[str]) -> Family:
    return Family(Counter(name, documentation, labels, registry=None), "counter")


def histogram(name: str, documentation: str, labels: Sequence[str],
              buckets: Sequence[float] = DURATION_BUCKETS) -> Family:
    metric = Histogram(name, documentation, labels, buckets=buckets, registry=None)
    return Family(metric, "histogram", prometheus.upper_bounds(metric))


def gauge(name: str, documentation: str, labels: Sequence[str],
          multiprocess_mode: MultiprocessMode = "livesum") -> Family:
    return Family(Gauge(name, documentation, labels, multiprocess_mode=multiprocess_mode, registry=None), "gauge")
