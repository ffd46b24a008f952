"""Retention of everything telemetry stores, by age and by count, run by Celery beat:
traces with their spans and logs (``purge_traces``), and query statistics, findings,
plans, reports, release statistics and user activity (``purge_stored``), and the usage
rollups (``purge_usage``). Deletes run in batches over indexed columns, so no table is
locked for long."""

from datetime import timedelta
from typing import Any

from celery import shared_task
from django.utils import timezone

from telemetry import conf
from telemetry.core.context import suppressed
from telemetry.core.routers import telemetry_alias
from telemetry.models import (
    LogEntry,
    OrganizationDatasourceUsage,
    OrganizationUsage,
    QueryFinding,
    QueryPlan,
    QueryReport,
    QueryStat,
    ReleaseRouteStats,
    RouteStat,
    Span,
    Trace,
    UserActivity,
)
from telemetry.tasks.base import OwnTask

__all__ = ["purge_stored", "purge_traces", "purge_usage"]

#: (model, time field, setting of the age limit in days, setting of the row limit).
STORED = (
    (QueryStat, "hour", "QUERY_STATS_RETENTION_DAYS", "QUERY_STATS_MAX_ROWS"),
    (QueryFinding, "created_at", "QUERY_FINDINGS_RETENTION_DAYS", "QUERY_FINDINGS_MAX_ROWS"),
    (QueryPlan, "captured_at", "QUERY_PLANS_RETENTION_DAYS", "QUERY_PLANS_MAX_ROWS"),
    (QueryReport, "period_end", "QUERY_REPORTS_RETENTION_DAYS", "QUERY_REPORTS_MAX_ROWS"),
    (ReleaseRouteStats, "hour", "RELEASE_STATS_RETENTION_DAYS", "RELEASE_STATS_MAX_ROWS"),
    (RouteStat, "hour", "ROUTE_STATS_RETENTION_DAYS", "ROUTE_STATS_MAX_ROWS"),
    (UserActivity, "last_seen", "USER_ACTIVITY_RETENTION_DAYS", None),
)


def _delete_traces(alias, trace_ids):
    Span.objects.using(alias).filter(trace_id__in=trace_ids).delete()
    LogEntry.objects.using(alias).filter(trace_id__in=trace_ids).delete()
    return Trace.objects.using(alias).filter(trace_id__in=trace_ids).delete()[0]


def _delete_in_batches(rows, batch_size):
    while True:
        batch = list(rows.values_list("pk", flat=True)[:batch_size])
        if not batch:
            return
        rows.model.objects.using(rows.db).filter(pk__in=batch).delete()


@shared_task(base=OwnTask, name="telemetry.purge_traces", time_limit=600, soft_time_limit=540, ignore_result=True)
def purge_traces(batch_size: int = 500) -> int:
    """Deletes traces (with their spans and logs) older than ``TRACE_RETENTION_DAYS``, then
    the oldest traces while more than ``TRACE_RETENTION_MAX_SPANS`` spans are stored, and
    log records older than the age limit; in batches over indexed columns, so the table is
    never locked for long. Returns the number of traces deleted."""
    alias = telemetry_alias()
    traces = Trace.objects.using(alias)
    cutoff = timezone.now() - timedelta(days=conf.get("TRACE_RETENTION_DAYS"))
    deleted = 0
    with suppressed():
        while True:
            batch = list(traces.filter(start__lt=cutoff).order_by("start").values_list("trace_id", flat=True)
                         [:batch_size])
            if not batch:
                break
            deleted += _delete_traces(alias, batch)
        cutoff_ns = int(cutoff.timestamp() * 1e9)
        # Spans whose trace row is gone or was never written (a late span of a batch that
        # failed): by their own time.
        _delete_in_batches(Span.objects.using(alias).filter(start_ns__lt=cutoff_ns), batch_size)
        _delete_in_batches(LogEntry.objects.using(alias).filter(time__lt=cutoff), batch_size)
        _trim(LogEntry.objects.using(alias), "time", None, conf.get("LOG_RETENTION_MAX_ROWS"), batch_size)
        excess = Span.objects.using(alias).count() - conf.get("TRACE_RETENTION_MAX_SPANS")
        while excess > 0:
            oldest = list(traces.order_by("start").values_list("trace_id", "span_count")[:batch_size])
            if not oldest:
                break
            chosen = []
            for trace_id, span_count in oldest:
                chosen.append(trace_id)
                excess -= max(span_count, 1)
                if excess <= 0:
                    break
            deleted += _delete_traces(alias, chosen)
    return deleted


def _trim(rows, field, days, max_rows, batch_size):
    """Deletes ``rows`` older than ``days``, then the oldest beyond ``max_rows``; returns
    how many were deleted."""
    deleted = 0
    before = rows.count
    if days is not None:
        older = rows.filter(**{f"{field}__lt": timezone.now() - timedelta(days=days)})
        count = older.count()
        if count:
            _delete_in_batches(older, batch_size)
            deleted += count
    if max_rows is not None:
        boundary = list(rows.order_by(f"-{field}").values_list(field, flat=True)[max_rows:max_rows + 1])
        if boundary:
            total = before()
            _delete_in_batches(rows.filter(**{f"{field}__lte": boundary[0]}).order_by(field), batch_size)
            deleted += total - before()
    return deleted


@shared_task(base=OwnTask, name="telemetry.purge_stored", time_limit=600, soft_time_limit=540, ignore_result=True)
def purge_stored(batch_size: int = 1000) -> dict[str, int]:
    """Applies the age and row limits of every table in :data:`STORED`; returns the rows
    deleted per table. Reports take their suggestions with them."""
    settings = conf.get_settings()
    alias = telemetry_alias()
    deleted: dict[Any, int] = {}  # by model name (``str | None`` in the stubs, always set for a model)
    with suppressed():
        for model, field, days_setting, rows_setting in STORED:
            deleted[model._meta.model_name] = _trim(
                model.objects.using(alias), field, settings[days_setting],
                settings[rows_setting] if rows_setting else None, batch_size,
            )
    return deleted


@shared_task(base=OwnTask, name="telemetry.purge_usage", time_limit=300, soft_time_limit=280, ignore_result=True)
def purge_usage(batch_size: int = 1000) -> int:
    """Deletes hourly usage rollups older than ``USAGE_RETENTION_DAYS``; returns the rows deleted."""
    days = conf.get("USAGE_RETENTION_DAYS")
    alias = telemetry_alias()
    with suppressed():
        return sum(_trim(model.objects.using(alias), "hour", days, None, batch_size)
                   for model in (OrganizationUsage, OrganizationDatasourceUsage))
