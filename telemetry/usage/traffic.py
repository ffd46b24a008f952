"""Requests per route and hour (``RouteStat``): counts by status class and a latency
histogram, what the admin overview reads instead of spans.

The request handler adds to an in-process table in the flusher thread; the periodic
sampler writes it with one increment-upsert. Beyond ``MAX_PENDING`` keys a new one is
dropped and counted in ``telemetry_table_dropped_total{table="routes"}``.
"""

from collections.abc import Sequence
from operator import add
from typing import Any

from telemetry.core.recorder import Batch, bucket_counts
from telemetry.core.upsert import IncrementTable, Row
from telemetry.metrics import internal
from telemetry.models import RouteStat

#: Distinct (route, hour) keys held between two writes.
MAX_PENDING = 10_000
BUCKET_BOUNDS_MS = RouteStat.BUCKETS_MS
BUCKET_FIELDS = tuple(RouteStat.bucket_fields())


class RouteRow(Row):
    """A route's hour in this process."""

    __slots__ = ("requests", "client_errors", "server_errors", "total_ms", "max_ms", "buckets")

    def __init__(self) -> None:
        self.requests = 0
        self.client_errors = 0
        self.server_errors = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.buckets = [0] * len(BUCKET_FIELDS)

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__ if name != "buckets"}
        fields.update(zip(BUCKET_FIELDS, self.buckets, strict=True))
        return fields


class RouteTraffic:
    def __init__(self, max_keys: int = MAX_PENDING) -> None:
        self.table: IncrementTable[RouteRow] = IncrementTable(
            RouteStat, RouteRow, key_fields=("route", "hour"),
            sum_fields=("requests", "client_errors", "server_errors", "total_ms", *BUCKET_FIELDS),
            max_fields=("max_ms",), max_keys=max_keys,
            drops=internal.DropCounter(internal.table_dropped, labelled=True), drop_reason="routes")

    def add(self, batch: Batch, route: str, status: int, durations: Sequence[float]) -> None:
        """Requests of ``route`` answered with ``status`` that took ``durations`` (flusher thread)."""
        row = self.table.row((route, batch.hour), weight=len(durations))
        if row is None:
            return
        milliseconds = [seconds * 1000 for seconds in durations]
        row.requests += len(milliseconds)
        if status >= 500:
            row.server_errors += len(milliseconds)
        elif status >= 400:
            row.client_errors += len(milliseconds)
        row.total_ms += sum(milliseconds)
        row.max_ms = max(row.max_ms, *milliseconds)
        row.buckets = list(map(add, row.buckets, bucket_counts(BUCKET_BOUNDS_MS, milliseconds, len(BUCKET_FIELDS))))

    def write_pending(self, batch: Batch | None = None) -> None:
        """The sampler's step: one increment-upsert."""
        self.table.write()

    def reset(self) -> None:
        self.table.reset()


#: This process's table; the request handler and the sampler call the functions below.
traffic = RouteTraffic()
write_pending = traffic.write_pending
