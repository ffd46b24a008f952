"""Retention of stored traces and logs, run by Celery beat."""

from datetime import timedelta

from celery import shared_task

__all__ = ["purge_traces"]


def _delete_traces(alias, trace_ids):
    from telemetry.models import LogEntry, Span, Trace

    Span.objects.using(alias).filter(trace_id__in=trace_ids).delete()
    LogEntry.objects.using(alias).filter(trace_id__in=trace_ids).delete()
    return Trace.objects.using(alias).filter(trace_id__in=trace_ids).delete()[0]


def _delete_in_batches(rows, batch_size):
    while True:
        batch = list(rows.values_list("pk", flat=True)[:batch_size])
        if not batch:
            return
        rows.model.objects.using(rows.db).filter(pk__in=batch).delete()


@shared_task(name="telemetry.purge_traces", time_limit=600, soft_time_limit=540, ignore_result=True)
def purge_traces(batch_size=500):
    """Deletes traces (with their spans and logs) older than ``TRACE_RETENTION_DAYS``, then
    the oldest traces while more than ``TRACE_RETENTION_MAX_SPANS`` spans are stored, and
    log records older than the age limit; in batches over indexed columns, so the table is
    never locked for long. Returns the number of traces deleted."""
    from django.utils import timezone

    from telemetry import conf
    from telemetry.core.context import suppressed
    from telemetry.models import LogEntry, Span, Trace
    from telemetry.core.routers import telemetry_alias

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
