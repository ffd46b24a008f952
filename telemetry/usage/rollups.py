"""Usage per organization and hour: requests, 5xx errors, app loads, datasource query
runs (per kind), peak active users and storage, for the admin usage dashboard.

The request and plugin handlers (flusher thread) add to in-process tables, dict updates
only; the periodic sampler writes them with one increment-upsert per table, so counts
are exact with any number of processes and do not depend on trace sampling. Active
users come from the count ``activity`` sets in the same sample, storage from the
``STORAGE_USAGE_PROVIDER`` rows the storage task reads. The tables are bounded: a new
key beyond ``MAX_PENDING`` is dropped and counted in ``telemetry_usage_dropped_total``.
"""

import threading
from datetime import timedelta

from telemetry.usage import activity
from telemetry.core import guard
from telemetry.metrics import internal

#: Distinct (organization, hour[, kind]) keys held per table between two writes.
MAX_PENDING = 10_000
#: (organization, hour) -> [requests, errors, app loads, query runs, query failures, active users]
_pending = {}
#: (organization, hour, kind) -> [runs, failures]
_pending_datasources = {}
_lock = threading.Lock()
_dropped = internal.DropCounter(internal.usage_dropped)


def _entry(table, key, size):
    entry = table.get(key)
    if entry is None:
        if len(table) >= MAX_PENDING:
            _dropped.count()
            return None
        entry = table[key] = [0] * size
    return entry


def _organization(organization_id):
    return "" if organization_id is None else str(organization_id)[:64]


def request(batch, organization_id, status, app_operation):
    """A finished request (request handler); requests that name no organization are not usage."""
    organization = _organization(organization_id)
    if not organization:
        return
    entry = _entry(_pending, (organization, batch.hour), 6)
    if entry is None:
        return
    status = int(status)
    entry[0] += 1
    if status >= 500:
        entry[1] += 1
    if app_operation == "app_view" and status < 400:
        entry[2] += 1


def query_run(batch, organization_id, kind, status):
    """A datasource query run (plugin handler), in a request or not."""
    organization = _organization(organization_id)
    if not organization:
        return
    failed = status != "success"
    entry = _entry(_pending, (organization, batch.hour), 6)
    if entry is not None:
        entry[3] += 1
        entry[4] += failed
    entry = _entry(_pending_datasources, (organization, batch.hour, str(kind)[:64]), 2)
    if entry is not None:
        entry[0] += 1
        entry[1] += failed


def dropped():
    """Events not counted in this process because a table was full."""
    return _dropped.total()


def write_pending(batch=None):
    """The sampler's step: one increment-upsert per table."""
    from telemetry.models import OrganizationDatasourceUsage, OrganizationUsage
    from telemetry.core.upsert import increment

    with _lock:
        pending = dict(_pending)
        _pending.clear()
        datasources = dict(_pending_datasources)
        _pending_datasources.clear()
    _dropped.report()
    if batch is not None:
        with guard.guarded("usage:active_users"):
            for organization, count in activity.counts_of(batch).items():
                pending.setdefault((organization, batch.hour), [0] * 6)[5] = count
    rows = [
        {"organization_id": organization, "hour": hour, "requests": entry[0], "errors": entry[1],
         "app_loads": entry[2], "query_runs": entry[3], "query_failures": entry[4],
         "active_users": entry[5]}
        for (organization, hour), entry in pending.items()
    ]
    increment(OrganizationUsage, rows, key_fields=("organization_id", "hour"),
              sum_fields=("requests", "errors", "app_loads", "query_runs", "query_failures"),
              max_fields=("active_users",))
    increment(OrganizationDatasourceUsage,
              [{"organization_id": organization, "hour": hour, "kind": kind, "runs": runs, "failures": failures}
               for (organization, hour, kind), (runs, failures) in datasources.items()],
              key_fields=("organization_id", "hour", "kind"), sum_fields=("runs", "failures"))


def write_storage(rows, now=None):
    """``rows``: what ``STORAGE_USAGE_PROVIDER`` returned, ``[(type, organization, bytes)]``;
    the sum per organization becomes the hour's ``storage_bytes`` (latest sample wins)."""
    from django.utils import timezone

    from telemetry.models import OrganizationUsage
    from telemetry.core.upsert import increment

    hour = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    totals = {}
    for _, organization_id, size_bytes in rows:
        organization = _organization(organization_id)
        if organization:
            totals[organization] = totals.get(organization, 0) + int(size_bytes or 0)
    increment(OrganizationUsage,
              [{"organization_id": organization, "hour": hour, "storage_bytes": size}
               for organization, size in totals.items()],
              key_fields=("organization_id", "hour"), sum_fields=(), set_fields=("storage_bytes",))
    return len(totals)


def purge(days=None):
    """Deletes rollups older than ``USAGE_RETENTION_DAYS`` (one indexed range per table);
    returns the number of rows deleted."""
    from django.utils import timezone

    from telemetry import conf
    from telemetry.core.context import suppressed
    from telemetry.models import OrganizationDatasourceUsage, OrganizationUsage
    from telemetry.core.routers import telemetry_alias

    days = conf.get("USAGE_RETENTION_DAYS") if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    alias = telemetry_alias()
    deleted = 0
    with suppressed():
        for model in (OrganizationUsage, OrganizationDatasourceUsage):
            deleted += model.objects.using(alias).filter(hour__lt=cutoff).delete()[0]
    return deleted
