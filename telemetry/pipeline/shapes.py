"""The flusher's fast path: a request's and a statement's metric updates by shape.

Most requests a process serves share a few shapes: the same method, route, status and
organization, so the same label sets of the same dozen families. Working the labels out
and bucketing each value in Python for every request and statement was most of the
flusher's per-request cost. A :class:`RequestShape` (and a :class:`StatementShape` per
analysed statement, alias and organization) resolves its series once, to
prometheus-client children, and is kept for the life of the process. An event of a known
shape appends its few values to its shape (one look-up and one ``append``); when the
drain ends, each shape used bucket-counts its values at C speed
(:func:`~telemetry.core.recorder.bucket_counts`), adds them to each series once, and
adds its rows to the release, route traffic, usage and query statistics tables, before
the sample that writes those (:meth:`~telemetry.core.recorder.Batch.settle`).

The caches are bounded (:data:`MAX_SHAPES` each; beyond it they start over) and emptied
when what a shape resolved may change: the label caps reset, the settings change, or an
optional metric domain is switched on. A shape dropped from its cache still applies what
it holds with the batch that used it. Only the flusher's drain (which holds the
recorder's lock) adds to shapes.
"""

from itertools import repeat
from operator import sub
from typing import Any

from telemetry import conf
from telemetry.adapters import prometheus
from telemetry.core import labels
from telemetry.core.events import RequestStarted
from telemetry.core.recorder import bucket_counts
from telemetry.metrics import families
from telemetry.metrics.base import Family, domains
from telemetry.queries import stats as querystats
from telemetry.usage import releases, traffic
from telemetry.usage import rollups as usage

#: Shapes held per cache; a process past it (every request its own organization, say)
#: starts the cache over, at worst one shape built per request as before.
MAX_SHAPES = 4096


class Series:
    """A histogram series of a shape; its prometheus-client child is made on the first
    observation (a series never observed, such as the request-body size of GETs, is not
    rendered)."""

    __slots__ = ("family", "label_values", "child")

    def __init__(self, family: Family, label_values: tuple[str, ...]) -> None:
        self.family, self.label_values, self.child = family, label_values, None

    def observe(self, values: list[float]) -> None:
        if values:
            if self.child is None:
                self.child = self.family.child(self.label_values)
            _observe((self.child,), self.family.upper_bounds, values)


def _series(family: Family, label_values: tuple[str, ...]) -> Series | None:
    """A histogram series, or None when its family is not exported."""
    return Series(family, label_values) if family.exported else None


def _observe(children: tuple[Any, ...], bounds: list[float], values: list[float]) -> None:
    """Observes ``values`` in each of ``children`` (histograms with ``bounds``)."""
    counts, total = bucket_counts(bounds, values, len(bounds)), sum(values)
    for child in children:
        prometheus.add_observations(child, counts, total)


def _observe_in(series: Series | None, values: list[float]) -> None:
    if series is not None:
        series.observe(values)


class Shape:
    """The series of one shape and what it ran in the current batch."""

    __slots__ = ("batch",)

    def __init__(self) -> None:
        self.batch: Any = None

    def use(self, batch: Any) -> None:
        """Enlists the shape in ``batch``, which applies it once."""
        if self.batch is not batch:
            self.batch = batch
            batch.shapes.append(self)

    def apply(self, batch: Any) -> None:
        raise NotImplementedError


class RequestShape(Shape):
    """The HTTP, business and analytics series of one kind of request, and the release,
    route traffic and usage rows it adds to. ``requests`` holds ``(duration, response
    size, request size, database time, external time)`` per request of the batch."""

    __slots__ = ("route", "status", "organization_id", "app_operation", "organization", "duration_labels",
                 "by_duration", "response_size", "request_size", "breakdown", "counted", "requests")

    def __init__(self, method: str, route: str, status: int, organization_id: Any, app_operation: str | None,
                 query_count: str | None, api: bool) -> None:
        super().__init__()
        metrics = families()
        http, analytics, business = metrics.http, metrics.analytics, metrics.business
        method = labels.method(method)
        status_label = str(status)
        self.route, self.status = route, status
        self.organization_id, self.app_operation = organization_id, app_operation
        self.organization = labels.organization(organization_id)
        self.duration_labels = (method, route, status_label, self.organization)
        self.response_size = _series(http.response_body_size, (method, route, status_label))
        self.request_size = _series(http.request_body_size, (method, route))
        #: database, external and application time.
        self.breakdown = tuple(_series(analytics.api_breakdown, (route, part))
                               for part in ("database", "external", "application"))
        by_duration = [(http.request_duration, self.duration_labels),
                       (analytics.benchmark_duration,
                        (releases.current_release(), route, "app_builder_viewer" if app_operation else "api"))]
        #: The ``inc`` of each counter series (:func:`~telemetry.adapters.prometheus.increment`).
        self.counted: tuple[Any, ...] = ()
        if api:
            by_duration.append((business.api_call_duration, (route, method)))
            if business.api_calls.exported:
                self.counted = (prometheus.increment(business.api_calls.child(
                    (route, method, status_label, labels.status_class(status_label)))),)
        if app_operation and query_count is not None:
            by_duration.append((analytics.app_builder_viewer, (route, app_operation, query_count)))
        groups: dict[tuple[float, ...], list[Any]] = {}
        for family, label_values in by_duration:
            if family.exported:
                groups.setdefault(tuple(family.upper_bounds), []).append(family.child(label_values))
        #: The series of the request's duration, by bucket bounds.
        self.by_duration = tuple((list(bounds), tuple(children)) for bounds, children in groups.items())
        self.requests: list[tuple[float, int, int, float, float]] = []

    def apply(self, batch: Any) -> None:
        requests, self.requests = self.requests, []
        if not requests:
            return
        durations, response_sizes, request_sizes, db_times, external_times = map(list, zip(*requests, strict=True))
        for bounds, children in self.by_duration:
            _observe(children, bounds, durations)
        _observe_in(self.response_size, response_sizes)
        _observe_in(self.request_size, [size for size in request_sizes if size])  # no body (most GETs): no zeros
        # The external time as recorded, the database time within what is left, the rest the
        # application's: each capped by the request's own duration.
        externals = list(map(min, external_times, durations))
        databases = list(map(min, db_times, map(sub, durations, externals)))
        applications = list(map(max, map(sub, map(sub, durations, databases), externals), repeat(0.0)))
        for series, values in zip(self.breakdown, (databases, externals, applications), strict=True):
            _observe_in(series, values)
        for inc in self.counted:
            inc(len(requests))
        releases.latency.add(batch, self.route, durations)
        traffic.traffic.add(batch, self.route, self.status, durations)
        usage.usage_tables.request(batch, self.organization_id, self.status, self.app_operation, len(requests))


class StatementShape(Shape):
    """The database and query-analytics series of one analysed statement on one alias, for
    one organization, and its query statistics row. ``runs`` holds ``(duration,
    rowcount)`` per run of the batch."""

    __slots__ = ("result", "alias", "duration", "rows", "counted", "slow_labels", "complexity", "runs")

    def __init__(self, result: Any, alias: str, system: str, operation: str, table: str, pattern: str,
                 organization: str) -> None:
        super().__init__()
        metrics = families()
        db, analytics = metrics.db, metrics.analytics
        #: Held so that the cache key's ``id(result)`` stays this result's.
        self.result, self.alias = result, alias
        self.duration = _series(db.operation_duration, (system, operation, table, organization))
        self.rows = _series(db.returned_rows, (system, operation))
        self.counted = tuple(prometheus.increment(family.child(label_values)) for family, label_values in (
            (db.operation_count, (system, operation, table)),
            (analytics.query_pattern, (operation, pattern)),
            *((analytics.optimization_suggestions, (code,)) for code in result.suggestions),
        ) if family.exported)
        self.slow_labels = (operation, result.complexity or "unknown")
        #: ``(batch gauge key, value)`` of the complexity gauge of the latest run.
        self.complexity = None if result.complexity_score is None or not analytics.query_complexity.exported else (
            (analytics.query_complexity, (operation, system)), result.complexity_score)
        self.runs: list[tuple[float, int]] = []

    def apply(self, batch: Any) -> None:
        runs, self.runs = self.runs, []
        if not runs:
            return
        durations, rowcounts = map(list, zip(*runs, strict=True))
        settings = batch.settings
        _observe_in(self.duration, durations)
        _observe_in(self.rows, [count for count in rowcounts if count >= 0])  # -1: failed, or not said
        for inc in self.counted:
            inc(len(runs))
        if self.complexity is not None:
            batch.gauges[self.complexity[0]] = self.complexity[1]
        slow_seconds = settings["SLOW_QUERY_MS"] / 1000.0
        slow = sum(1 for duration in durations if duration >= slow_seconds)
        if slow:
            batch.inc(families().analytics.query_slow, self.slow_labels, slow)
        if settings["QUERY_STATS_ENABLED"]:
            querystats.statistics.add(batch, self.result, self.alias, durations, rowcounts)


class ShapeCache:
    """Shapes by key, bounded, emptied when what they resolved may change."""

    def __init__(self) -> None:
        self.requests: dict[tuple, RequestShape] = {}
        self.statements: dict[tuple, StatementShape] = {}
        self.active: dict[RequestStarted, tuple[Family, tuple[str, str, str]] | None] = {}

    def clear(self) -> None:
        self.requests = {}
        self.statements = {}
        self.active = {}

    def add_active(self, started: RequestStarted) -> tuple[Family, tuple[str, str, str]] | None:
        """Caches and returns the batch key (``Batch.gauge_deltas``) of the in-flight gauge
        series of a request's start, None when the family is not exported; callers look up
        :attr:`active` first."""
        if len(self.active) >= MAX_SHAPES:
            self.active = {}
        family = families().http.active_requests
        key = (family, (labels.method(started.method), started.route, started.scheme)) if family.exported else None
        self.active[started] = key
        return key

    def add_request(self, key: tuple, shape: RequestShape) -> RequestShape:
        """Caches ``shape`` under ``key``; callers look up :attr:`requests` first (a dict
        lookup per event on the flusher, without a call)."""
        if len(self.requests) >= MAX_SHAPES:
            self.requests = {}
        self.requests[key] = shape
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
