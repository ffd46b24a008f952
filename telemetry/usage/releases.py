"""Latency per release and route, and release comparison.

Request handlers aggregate into an in-process table; the periodic sampler writes it with
one increment-upsert. Beyond ``MAX_PENDING`` keys a new one is dropped and counted in
``telemetry_table_dropped_total{table="releases"}``. :func:`compare` (a Celery beat task) reads the stored rows and
drives the five ``<namespace>_benchmark_*`` metrics: per-route duration, comparisons by
significance (Welch's t-test on the per-route means), regressions by class, an
Apdex-based performance score, and a trend coefficient over recent releases.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import mul
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Max, Sum
from django.urls import Resolver404, resolve

from telemetry.core import routes
from telemetry.core.bus import emit
from telemetry.core.recorder import Batch
from telemetry.core.routers import telemetry_alias
from telemetry.core.upsert import IncrementTable, Row
from telemetry.metrics import internal
from telemetry.models import ReleaseRouteStats

#: Distinct (release, route, hour) keys held between two writes.
MAX_PENDING = 10_000
#: |t| above this is a significant change (about 95 %).
SIGNIFICANCE_T = 1.96


def current_release() -> str:
    return getattr(settings, "RELEASE_VERSION", "") or "unknown"


@dataclass(slots=True)
class ReleaseRouteRow(Row):
    """A route's hour in one release (``ReleaseRouteStats``)."""

    count: int = 0
    total_seconds: float = 0.0
    total_squares: float = 0.0
    satisfied: int = 0
    tolerating: int = 0
    max_seconds: float = 0.0


class ReleaseLatency:
    """Request latency per release, route and hour in this process, written by the sampler."""

    def __init__(self, max_keys: int = MAX_PENDING) -> None:
        self.table: IncrementTable[ReleaseRouteRow] = IncrementTable(
            ReleaseRouteStats, ReleaseRouteRow, key_fields=("release", "route", "hour"),
            sum_fields=("count", "total_seconds", "total_squares", "satisfied", "tolerating"),
            max_fields=("max_seconds",), max_keys=max_keys,
            drops=internal.DropCounter(internal.table_dropped, labelled=True), drop_reason="releases")

    def add(self, batch: Batch, route: str, durations: Sequence[float]) -> None:
        """Requests of ``route`` that took ``durations`` (flusher thread)."""
        row = self.table.row((current_release(), route, batch.hour), weight=len(durations))
        if row is None:
            return
        target = batch.settings["APDEX_TARGET_SECONDS"]
        satisfied = sum(1 for seconds in durations if seconds <= target)
        row.count += len(durations)
        row.total_seconds += sum(durations)
        row.total_squares += sum(map(mul, durations, durations))
        row.satisfied += satisfied
        row.tolerating += sum(1 for seconds in durations if seconds <= 4 * target) - satisfied
        row.max_seconds = max(row.max_seconds, *durations)

    def write_pending(self, batch: Batch | None = None) -> None:
        """The sampler's step: one increment-upsert."""
        self.table.write()

    def reset(self) -> None:
        """Forgets what is pending (``telemetry.testing.reset``)."""
        self.table.reset()


#: This process's release latency table; the handlers and the sampler call the functions below.
latency = ReleaseLatency()
write_pending = latency.write_pending


def _route_stats(release):
    rows = (ReleaseRouteStats.objects.using(telemetry_alias()).filter(release=release).values("route")
            .annotate(count=Sum("count"), total=Sum("total_seconds"), squares=Sum("total_squares"),
                      satisfied=Sum("satisfied"), tolerating=Sum("tolerating")).order_by())
    return {row["route"]: row for row in rows}


def _mean_variance(row):
    count = row["count"]
    mean = row["total"] / count
    variance = max(row["squares"] / count - mean * mean, 0.0) * count / max(count - 1, 1)
    return mean, variance


def welch_t(previous: Mapping[str, Any], current: Mapping[str, Any]) -> float:
    """Welch's t of the current mean against the previous one (positive: slower); ±inf
    for a change between two spreads of zero, 0 for no change."""
    previous_mean, previous_variance = _mean_variance(previous)
    current_mean, current_variance = _mean_variance(current)
    error = math.sqrt(previous_variance / previous["count"] + current_variance / current["count"])
    if error == 0:
        return 0.0 if current_mean == previous_mean else math.copysign(math.inf, current_mean - previous_mean)
    return (current_mean - previous_mean) / error


def significance(previous: Mapping[str, Any], current: Mapping[str, Any], min_samples: int = 30) -> str:
    """``improvement``, ``regression`` or ``no_change`` by Welch's t on the means."""
    if previous["count"] < min_samples or current["count"] < min_samples:
        return "insufficient_data"
    t = welch_t(previous, current)
    if abs(t) < SIGNIFICANCE_T:
        return "no_change"
    return "regression" if t > 0 else "improvement"


def regression_type(previous: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    ratio = _mean_variance(current)[0] / max(_mean_variance(previous)[0], 1e-9) - 1
    return "severe" if ratio >= 0.5 else "moderate" if ratio >= 0.2 else "minor"


def performance_score(stats: Mapping[str, Mapping[str, Any]]) -> float | None:
    """Apdex x 100 over all routes: (satisfied + tolerating / 2) / count."""
    count = sum(row["count"] for row in stats.values())
    if not count:
        return None
    satisfied = sum(row["satisfied"] for row in stats.values())
    tolerating = sum(row["tolerating"] for row in stats.values())
    return 100.0 * (satisfied + tolerating / 2) / count


def trend_coefficient(means: Sequence[float]) -> float:
    """Least-squares slope of a route's mean latency over release order, relative to the
    average mean: +0.15 means 15 % slower per release."""
    if len(means) < 2:
        return 0.0
    xs = range(len(means))
    x_mean = sum(xs) / len(means)
    y_mean = sum(means) / len(means)
    denominator = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, means, strict=True)) / denominator
    return slope / y_mean if y_mean else 0.0


#: Releases in the order they were first seen, by a skip scan of the (release, hour) index:
#: one index probe per release, where GROUP BY release would read every hourly row (a year
#: of 60 routes: 525,600 rows, 51 ms). Recursive CTEs: PostgreSQL, SQLite, MySQL 8, MariaDB.
RELEASES_IN_ORDER = """
WITH RECURSIVE seen (name) AS (
    SELECT MIN(release) FROM {table}
    UNION ALL
    SELECT (SELECT MIN(release) FROM {table} WHERE release > seen.name) FROM seen WHERE seen.name IS NOT NULL
)
SELECT name FROM seen WHERE name IS NOT NULL
ORDER BY (SELECT MIN(hour) FROM {table} WHERE release = seen.name), name
"""


def releases_in_order() -> list[str]:
    connection = connections[telemetry_alias()]
    with connection.cursor() as cursor:
        cursor.execute(RELEASES_IN_ORDER.format(table=connection.ops.quote_name(ReleaseRouteStats._meta.db_table)))
        return [row[0] for row in cursor.fetchall()]


def compare(history: int = 5) -> dict[str, Any]:
    """Compares the current release with the previous one and updates the benchmark
    metrics. Returns a summary (also what the task returns)."""
    releases = releases_in_order()
    current = current_release() if current_release() in releases else (releases[-1] if releases else None)
    if current is None:
        return {"current": None}
    index = releases.index(current)
    current_stats = _route_stats(current)
    summary: dict[str, Any] = {"current": current, "previous": None, "routes": {}}
    score = performance_score(current_stats)
    if score is not None:
        emit("set", ("analytics", "benchmark_score"), (current,), score)
        summary["score"] = round(score, 2)
    recent = [_route_stats(release) for release in releases[max(0, index - history + 1):index + 1]]
    for route in current_stats:
        means = [stats[route]["total"] / stats[route]["count"] for stats in recent
                 if route in stats and stats[route]["count"]]
        emit("set", ("analytics", "benchmark_trend"), (current, route), trend_coefficient(means))
    if index == 0:
        return summary
    previous = releases[index - 1]
    summary["previous"] = previous
    previous_stats = _route_stats(previous)
    for route, row in current_stats.items():
        if route not in previous_stats:
            continue
        verdict = significance(previous_stats[route], row)
        summary["routes"][route] = verdict
        emit("inc", ("analytics", "benchmark_comparison"), (current, previous, verdict), 1)
        if verdict == "regression":
            regression = regression_type(previous_stats[route], row)
            emit("inc", ("analytics", "benchmark_regression"), (current, regression), 1)
    return summary


#: Regression classes from the mildest; a check fails on its class and the worse ones.
REGRESSION_CLASSES = ("minor", "moderate", "severe")


@dataclass(slots=True)
class RouteComparison:
    """One route in two releases: counts, mean and worst latency (ms), Welch's t, the verdict
    and, for a regression, its class."""

    route: str
    previous_count: int
    current_count: int
    previous_mean_ms: float
    current_mean_ms: float
    current_max_ms: float
    change: float
    t: float
    verdict: str
    regression: str = ""

    @property
    def verdict_label(self) -> str:
        return self.verdict.replace("_", " ") + (f" ({self.regression})" if self.regression else "")


@dataclass(slots=True)
class ReleaseComparison:
    current: str | None
    previous: str | None
    releases: list[str]
    routes: list[RouteComparison]
    current_score: float | None = None
    previous_score: float | None = None

    def regressions(self, at_least: str = "minor") -> list[RouteComparison]:
        """Significant regressions of class ``at_least`` or worse."""
        worst = REGRESSION_CLASSES[REGRESSION_CLASSES.index(at_least):]
        return [row for row in self.routes if row.verdict == "regression" and row.regression in worst]


def route_comparison(current: str | None = None, previous: str | None = None) -> ReleaseComparison:
    """Each route the two releases share, the most significant change first: ``current``
    (default: the running release, or the newest stored) against ``previous`` (default:
    the release before it in order of first appearance). Reads the hourly rows only."""
    releases = releases_in_order()
    if current is None:
        current = current_release() if current_release() in releases else (releases[-1] if releases else None)
    if previous is None and current in releases and releases.index(current) > 0:
        previous = releases[releases.index(current) - 1]
    comparison = ReleaseComparison(current, previous, releases, [])
    if current is None or previous is None:
        return comparison
    current_stats, previous_stats = _route_stats(current), _route_stats(previous)
    comparison.current_score = performance_score(current_stats)
    comparison.previous_score = performance_score(previous_stats)
    maxima = dict(ReleaseRouteStats.objects.using(telemetry_alias()).filter(release=current).values("route")
                  .annotate(worst=Max("max_seconds")).values_list("route", "worst"))
    for route, row in current_stats.items():
        before = previous_stats.get(route)
        if before is None or not row["count"] or not before["count"]:
            continue
        previous_mean, current_mean = _mean_variance(before)[0], _mean_variance(row)[0]
        verdict = significance(before, row)
        comparison.routes.append(RouteComparison(
            route, before["count"], row["count"], previous_mean * 1000, current_mean * 1000,
            (maxima.get(route) or 0.0) * 1000, current_mean / max(previous_mean, 1e-9) - 1, welch_t(before, row),
            verdict, regression_type(before, row) if verdict == "regression" else ""))
    comparison.routes.sort(key=lambda row: (-abs(row.t) if math.isfinite(row.t) else -math.inf, row.route))
    return comparison


def record_baseline(release: str, path: str, hour: datetime, requests: int, mean_seconds: float,
                    variance_ratio: float = 1.04) -> bool:
    """Stores an earlier release's latency for the route ``path`` resolves to (see
    ``telemetry.api.record_release_baseline``); False when it resolves to no route."""
    try:
        route = routes.normalize(resolve(path).route)
    except Resolver404:
        return False
    ReleaseRouteStats.objects.using(telemetry_alias()).update_or_create(
        release=release, route=route, hour=hour.replace(minute=0, second=0, microsecond=0),
        defaults={"count": requests, "total_seconds": requests * mean_seconds,
                  "total_squares": requests * mean_seconds * mean_seconds * variance_ratio, "satisfied": requests,
                  "tolerating": 0, "max_seconds": mean_seconds * 3},
    )
    return True
