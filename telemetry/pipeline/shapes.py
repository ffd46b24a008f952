"""The flusher's fast path: metric updates cached per request shape and statement shape.

Most requests a process serves share a few shapes: the same method, route, status and
organization, so the same label sets of the same dozen families. Working the labels out
for every request (capping them, building a tuple per family, one dict look-up per series
in the batch) was most of the flusher's per-request cost. A :class:`RequestShape` (and a
:class:`StatementShape` per analysed statement, alias and organization) resolves its
series once, to prometheus-client children held by an :class:`Observed` or
:class:`Counted` accumulator, and keeps them for the life of the process: a request of a
known shape is then one look-up, one ``bisect`` per bucket layout and a few additions.
The batch a shape is first used in applies its accumulators once, with the batch's other
updates (:meth:`~telemetry.core.recorder.Batch.apply`).

The caches are bounded (:data:`MAX_SHAPES` each; beyond it they start over) and emptied
when what a shape resolved may change: the label caps reset, the settings change, or an
optional metric domain is switched on. A shape dropped from its cache still applies what
it holds with the batch that used it. Only the flusher's drain (which holds the
recorder's lock) adds to shapes.
"""

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from telemetry import conf
from telemetry.adapters import prometheus
from telemetry.core import labels
from telemetry.metrics import families
from telemetry.metrics.base import Family, domains
from telemetry.usage import releases

#: Shapes held per cache; a process past it (every request its own organization, say)
#: starts the cache over, at worst one shape built per request as before.
MAX_SHAPES = 4096


class Observed:
    """Observations of one histogram series since the last apply: per-bucket counts and
    their sum, as :func:`telemetry.adapters.prometheus.add_observations` takes them."""

    __slots__ = ("child", "bounds", "counts", "total")

    def __init__(self, family: Family, label_values: tuple[str, ...]) -> None:
        self.child = family.child(label_values)
        self.bounds = family.upper_bounds
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def apply(self) -> None:
        if any(self.counts):
            prometheus.add_observations(self.child, self.counts, self.total)
            self.counts = [0] * len(self.bounds)
            self.total = 0.0


class Counted:
    """Increments of one counter series since the last apply."""

    __slots__ = ("child", "amount")

    def __init__(self, family: Family, label_values: tuple[str, ...]) -> None:
        self.child = family.child(label_values)
        self.amount = 0.0

    def apply(self) -> None:
        if self.amount:
            self.child.inc(self.amount)
            self.amount = 0.0


#: One group of a shape's histograms: the series that observe the same value (its index
#: in the values the shape's ``add`` gets) with the same bucket bounds, so one ``bisect``
#: serves them all.
Group = tuple[Sequence[float], int, tuple[Observed, ...]]


def _grouped(observed: list[tuple[int, Observed]]) -> tuple[Group, ...]:
    groups: dict[tuple[int, tuple[float, ...]], list[Observed]] = {}
    for which, series in observed:
        groups.setdefault((which, tuple(series.bounds)), []).append(series)
    return tuple((series[0].bounds, which, tuple(series)) for (which, _), series in groups.items())


def _observed(entries: list[tuple[int, Family, tuple[str, ...]]]) -> list[tuple[int, Observed]]:
    """The exported families among ``(value index, family, label values)``, as accumulators."""
    return [(which, Observed(family, label_values)) for which, family, label_values in entries if family.exported]


class Shape:
    """Accumulators of one shape, applied by the batches that use them."""

    __slots__ = ("groups", "counted", "batch")

    def __init__(self, observed: list[tuple[int, Observed]], counted: list[Counted]) -> None:
        self.groups = _grouped(observed)
        self.counted = tuple(counted)
        self.batch: Any = None

    def use(self, batch: Any) -> bool:
        """Enlists the shape in ``batch`` (applied with it); True on its first use in it."""
        if self.batch is batch:
            return False
        self.batch = batch
        batch.shapes.append(self)
        return True

    def add(self, values: tuple[float | None, ...]) -> None:
        """One occurrence: each group observes its value (None: not observed), each counter
        goes one up."""
        for bounds, which, observed in self.groups:
            value = values[which]
            if value is None:
                continue
            index = bisect_left(bounds, value)
            for series in observed:
                series.counts[index] += 1
                series.total += value
        for counter in self.counted:
            counter.amount += 1

    def apply(self) -> None:
        for _, _, observed in self.groups:
            for series in observed:
                series.apply()
        for counter in self.counted:
            counter.apply()


# The values a request shape observes, by index.
DURATION, RESPONSE_SIZE, REQUEST_SIZE, DATABASE, EXTERNAL, APPLICATION = range(6)


class RequestShape(Shape):
    """The HTTP, business and analytics series of one kind of request. ``rows`` holds the
    release, route traffic and usage rows the shape adds to in its current batch
    (the tables are written, and their rows replaced, at each sample)."""

    __slots__ = ("method", "route", "organization", "duration_labels", "rows")

    def __init__(self, method: str, route: str, status: int, organization_id: Any, app_operation: str | None,
                 query_count: str | None, api: bool) -> None:
        metrics = families()
        http, analytics, business = metrics.http, metrics.analytics, metrics.business
        method = labels.method(method)
        status_label = str(status)
        organization = labels.organization(organization_id)
        self.method, self.route, self.organization = method, route, organization
        self.duration_labels = (method, route, status_label, organization)
        entries = [
            (DURATION, http.request_duration, self.duration_labels),
            (RESPONSE_SIZE, http.response_body_size, (method, route, status_label)),
            (REQUEST_SIZE, http.request_body_size, (method, route)),
            (DATABASE, analytics.api_breakdown, (route, "database")),
            (EXTERNAL, analytics.api_breakdown, (route, "external")),
            (APPLICATION, analytics.api_breakdown, (route, "application")),
            (DURATION, analytics.benchmark_duration,
             (releases.current_release(), route, "app_builder_viewer" if app_operation else "api")),
        ]
        counted = []
        if api:
            entries.append((DURATION, business.api_call_duration, (route, method)))
            if business.api_calls.exported:
                counted.append(Counted(business.api_calls, (route, method, status_label,
                                                            labels.status_class(status_label))))
        if app_operation and query_count is not None:
            entries.append((DURATION, analytics.app_builder_viewer, (route, app_operation, query_count)))
        super().__init__(_observed(entries), counted)
        self.rows: tuple[Any, Any, Any] = (None, None, None)


class StatementShape(Shape):
    """The database and query-analytics series of one analysed statement on one alias, for
    one organization; ``stat_row`` is its query statistics row in the current batch."""

    __slots__ = ("result", "slow_labels", "stat_row", "complexity")

    def __init__(self, result: Any, system: str, operation: str, table: str, pattern: str, organization: str) -> None:
        metrics = families()
        db, analytics = metrics.db, metrics.analytics
        entries = [(0, db.operation_duration, (system, operation, table, organization)),
                   (1, db.returned_rows, (system, operation))]
        counted = [Counted(family, label_values) for family, label_values in (
            (db.operation_count, (system, operation, table)),
            (analytics.query_pattern, (operation, pattern)),
            *((analytics.optimization_suggestions, (code,)) for code in result.suggestions),
        ) if family.exported]
        super().__init__(_observed(entries), counted)
        #: Held so that the cache key's ``id(result)`` stays this result's.
        self.result = result
        self.slow_labels = (operation, result.complexity or "unknown")
        #: ``(batch gauge key, value)`` of the complexity gauge, set by every run.
        self.complexity = None if result.complexity_score is None or not analytics.query_complexity.exported else (
            (analytics.query_complexity, (operation, system)), result.complexity_score)
        self.stat_row: Any = None


class ShapeCache:
    """Shapes by key, bounded, emptied when what they resolved may change."""

    def __init__(self) -> None:
        self.requests: dict[tuple, RequestShape] = {}
        self.statements: dict[tuple, StatementShape] = {}

    def clear(self) -> None:
        self.requests = {}
        self.statements = {}

    def request(self, key: tuple) -> RequestShape:
        shape = self.requests.get(key)
        if shape is None:
            if len(self.requests) >= MAX_SHAPES:
                self.requests = {}
            shape = self.requests[key] = RequestShape(*key)
        return shape

    def add_statement(self, key: tuple, shape: StatementShape) -> StatementShape:
        """Caches ``shape`` under ``key``; callers look up :attr:`statements` first."""
        if len(self.statements) >= MAX_SHAPES:
            self.statements = {}
        self.statements[key] = shape
        return shape


#: This process's shapes.
cache = ShapeCache()
labels.on_reset(cache.clear)
domains.on_switch(cache.clear)
conf.on_change(cache.clear)
