"""Retention deletes what is old (by age) and the oldest beyond the span budget (by
count), with their spans and logs, and nothing else."""

from datetime import timedelta

import pytest
from django.utils import timezone

from telemetry.models import LogEntry, Span, Trace
from telemetry.tasks import purge_traces

from .trace_fixtures import TRACE_DATABASES, trace_settings  # noqa: F401

pytestmark = pytest.mark.django_db(databases=TRACE_DATABASES)


def _trace(index, age, spans=2):
    start = timezone.now() - age
    trace_id = f"{index:032x}"
    Trace.objects.create(trace_id=trace_id, root_name="GET /x", start=start, duration_ms=1.0, span_count=spans)
    start_ns = int(start.timestamp() * 1e9)
    Span.objects.bulk_create([Span(trace_id=trace_id, span_id=f"{n + 1:016x}", name="s", start_ns=start_ns + n,
                                   end_ns=start_ns + n + 1, duration_ms=0.0) for n in range(spans)])
    LogEntry.objects.create(time=start, level="WARNING", level_number=30, logger="x", message="m", trace_id=trace_id)
    return trace_id


def test_retention_by_age(trace_settings):
    trace_settings(TRACE_RETENTION_DAYS=7)
    old = [_trace(index, timedelta(days=8 + index)) for index in range(3)]
    recent = [_trace(10 + index, timedelta(days=6, hours=23)) for index in range(2)]
    LogEntry.objects.create(time=timezone.now() - timedelta(days=9), level="ERROR", level_number=40, logger="y",
                            message="traceless")
    assert purge_traces(batch_size=2) == 3
    assert set(Trace.objects.values_list("trace_id", flat=True)) == set(recent)
    assert set(Span.objects.values_list("trace_id", flat=True)) == set(recent)
    assert set(LogEntry.objects.values_list("trace_id", flat=True)) == set(recent)
    assert not set(old) & set(Span.objects.values_list("trace_id", flat=True))


def test_retention_by_count_deletes_the_oldest_first(trace_settings):
    trace_settings(TRACE_RETENTION_DAYS=30, TRACE_RETENTION_MAX_SPANS=5)
    ids = [_trace(index, timedelta(hours=10 - index)) for index in range(5)]  # 10 spans, oldest first
    purge_traces(batch_size=2)
    assert list(Trace.objects.order_by("start").values_list("trace_id", flat=True)) == ids[3:]
    assert Span.objects.count() == 4
