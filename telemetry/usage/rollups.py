"""Usage per organization and hour: requests, 5xx errors, app loads, datasource query
runs (per kind), peak active users and storage, for the admin usage dashboard.

The request and plugin handlers (flusher thread) add to two in-process
:class:`~telemetry.core.upsert.IncrementTable` s, dict updates only; the periodic sampler
writes them with one increment-upsert per table, so counts are exact with any number of
processes and do not depend on trace sampling. Active users come from the count
``activity`` sets in the same sample, storage from the ``STORAGE_USAGE_PROVIDER`` rows the
storage task reads. The tables are bounded: a new key beyond ``MAX_PENDING`` is dropped
and counted in ``telemetry_usage_dropped_total``.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from telemetry.core import guard
from telemetry.core.recorder import Batch
from telemetry.core.upsert import IncrementTable, Row, increment
from telemetry.metrics import internal
from telemetry.models import OrganizationDatasourceUsage, OrganizationUsage
from telemetry.usage import activity

#: Distinct (organization, hour[, kind]) keys held per table between two writes.
MAX_PENDING = 10_000


@dataclass(slots=True)
class UsageRow(Row):
    """An organization's hour (``OrganizationUsage``)."""

    requests: int = 0
    errors: int = 0
    app_loads: int = 0
    query_runs: int = 0
    query_failures: int = 0
    active_users: int = 0


@dataclass(slots=True)
class DatasourceUsageRow(Row):
    """An organization's hour of one datasource kind (``OrganizationDatasourceUsage``)."""

    runs: int = 0
    failures: int = 0


def _organization(organization_id):
    return "" if organization_id is None else str(organization_id)[:64]


class UsageTables:
    """The usage tables of this process; both count their drops in one counter."""

    def __init__(self, max_keys: int = MAX_PENDING) -> None:
        self.drops = internal.DropCounter(internal.usage_dropped)
        self.organizations: IncrementTable[UsageRow] = IncrementTable(
            OrganizationUsage, UsageRow, key_fields=("organization_id", "hour"),
            sum_fields=("requests", "errors", "app_loads", "query_runs", "query_failures"),
            max_fields=("active_users",), max_keys=max_keys, drops=self.drops)
        self.datasources: IncrementTable[DatasourceUsageRow] = IncrementTable(
            OrganizationDatasourceUsage, DatasourceUsageRow, key_fields=("organization_id", "hour", "kind"),
            sum_fields=("runs", "failures"), max_keys=max_keys, drops=self.drops)

    def request(self, batch: Batch, organization_id: object, status: int | str, app_operation: str | None,
                count: int = 1) -> None:
        """``count`` finished requests alike (flusher thread); requests that name no
        organization are not usage."""
        organization = _organization(organization_id)
        if not organization:
            return
        row = self.organizations.row((organization, batch.hour), weight=count)
        if row is None:
            return
        status = int(status)
        row.requests += count
        if status >= 500:
            row.errors += count
        if app_operation == "app_view" and status < 400:
            row.app_loads += count

    def query_run(self, batch: Batch, organization_id: object, kind: str, status: str) -> None:
        """A datasource query run (plugin handler), in a request or not."""
        organization = _organization(organization_id)
        if not organization:
            return
        failed = status != "success"
        row = self.organizations.row((organization, batch.hour))
        if row is not None:
            row.query_runs += 1
            row.query_failures += failed
        kind_row = self.datasources.row((organization, batch.hour, str(kind)[:64]))
        if kind_row is not None:
            kind_row.runs += 1
            kind_row.failures += failed

    def dropped(self) -> int:
        """Events not counted in this process because a table was full."""
        return self.drops.total()

    def write_pending(self, batch: Batch | None = None) -> None:
        """The sampler's step: one increment-upsert per table, with the active users
        ``activity`` counted in the same sample."""
        rows = self.organizations.take()
        if batch is not None:
            with guard.guarded("usage:active_users"):
                for organization, count in activity.counts_of(batch).items():
                    rows.setdefault((organization, batch.hour), UsageRow()).active_users = count
        self.organizations.write(rows)
        self.datasources.write()

    def reset(self) -> None:
        """Forgets what is pending (``telemetry.testing.reset``)."""
        self.organizations.reset()
        self.datasources.reset()


#: This process's usage tables; the handlers and the sampler call the functions below.
usage_tables = UsageTables()
request = usage_tables.request
query_run = usage_tables.query_run
dropped = usage_tables.dropped
write_pending = usage_tables.write_pending


def write_storage(rows: Iterable[tuple[str, object, int | None]], now: datetime | None = None) -> int:
    """``rows``: what ``STORAGE_USAGE_PROVIDER`` returned, ``[(type, organization, bytes)]``;
    the sum per organization becomes the hour's ``storage_bytes`` (latest sample wins)."""
    hour = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    totals: dict[str, int] = {}
    for _, organization_id, size_bytes in rows:
        organization = _organization(organization_id)
        if organization:
            totals[organization] = totals.get(organization, 0) + int(size_bytes or 0)
    increment(OrganizationUsage,
              [{"organization_id": organization, "hour": hour, "storage_bytes": size}
               for organization, size in totals.items()],
              key_fields=("organization_id", "hour"), sum_fields=(), set_fields=("storage_bytes",))
    return len(totals)
