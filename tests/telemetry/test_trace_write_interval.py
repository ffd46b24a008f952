"""The trace store writer's periodic tick on real PostgreSQL: it decides every tick but
writes every ``TRACE_WRITE_INTERVAL_SECONDS`` (counted in ticks of ``FLUSH_INTERVAL_SECONDS``),
sooner when ``WRITE_EARLY_ROWS`` rows wait or a failed batch is due for its retry; an
explicit flush writes at once; whatever the ticks, every span submitted is stored once."""

import logging
from datetime import datetime, timezone

import pytest
from django.db.models import Sum

from telemetry import api
from telemetry.models import LogEntry, Span, Trace
from telemetry.tracing import processor
from tests.telemetry.test_store_breaker import store_down
from tests.telemetry.test_tracing import _span

from .trace_fixtures import TRACE_DATABASES, trace_settings  # noqa: F401

pytestmark = pytest.mark.django_db(databases=TRACE_DATABASES)


def _tick(times=1):
    for _ in range(times):
        processor.trace_store.tick()


def _submit_trace(trace_id, spans=2):
    """A kept trace (every trace is kept in these tests): its children, then its root."""
    for span_id in range(2, spans + 1):
        processor.submit(_span(trace_id, span_id, 1))
    processor.submit(_span(trace_id, 1, name=f"GET /{trace_id:x}"))


def _log_row(message):
    return {"time": datetime.now(timezone.utc), "level": "WARNING", "level_number": logging.WARNING,
            "logger": "tests.write_interval", "message": message, "trace_id": "", "span_id": "", "attributes": {}}


@pytest.mark.parametrize(("write_interval", "flush_interval", "ticks"), [
    (5.0, 1.0, 5),        # the defaults
    (2.5, 1.0, 3),        # rounded up to whole ticks
    (0.9, 0.3, 3),        # not 4: a float quotient a hair over 3
    (0, 1.0, 1),          # every tick, as before the setting
    ("2", 1.0, 5),        # not a number of seconds: the default
    (-1, 1.0, 5),
])
def test_ticks_before_the_interval_do_not_write_and_the_tick_at_it_does(
        trace_settings, write_interval, flush_interval, ticks):
    trace_settings(TRACE_WRITE_INTERVAL_SECONDS=write_interval, FLUSH_INTERVAL_SECONDS=flush_interval)
    _submit_trace(0xD1)
    processor.submit_log(_log_row("before the interval"))
    _tick(ticks - 1)
    assert (Span.objects.count(), Trace.objects.count(), LogEntry.objects.count()) == (0, 0, 0)
    _tick()
    assert Trace.objects.get(trace_id=f"{0xD1:032x}").span_count == 2
    assert LogEntry.objects.filter(message="before the interval").count() == 1

    _submit_trace(0xD2)  # the count starts again from the write
    _tick(ticks - 1)
    assert not Trace.objects.filter(trace_id=f"{0xD2:032x}").exists()
    _tick()
    assert Trace.objects.get(trace_id=f"{0xD2:032x}").span_count == 2


def test_rows_reaching_the_threshold_are_written_at_the_next_tick(trace_settings):
    trace_settings(TRACE_WRITE_INTERVAL_SECONDS=3600)
    early = processor.WRITE_EARLY_ROWS
    for trace_id in range(1, early):  # one row short: spans of one-span traces
        processor.submit(_span(trace_id, 1))
    _tick()
    assert Span.objects.count() == 0
    processor.submit_log(_log_row("the row that reaches the threshold"))
    _tick()
    assert (Span.objects.count(), Trace.objects.count(), LogEntry.objects.count()) == (early - 1, early - 1, 1)


def test_an_explicit_flush_writes_at_once_with_what_earlier_ticks_kept(trace_settings):
    trace_settings(TRACE_WRITE_INTERVAL_SECONDS=3600)
    _submit_trace(0xE1)
    _tick()
    _submit_trace(0xE2, spans=3)
    api.flush()
    assert dict(Trace.objects.values_list("trace_id", "span_count")) == {f"{0xE1:032x}": 2, f"{0xE2:032x}": 3}

    _submit_trace(0xE3)
    processor.flush()
    assert Trace.objects.get(trace_id=f"{0xE3:032x}").span_count == 2


def test_a_failed_write_is_retried_at_the_next_tick_not_the_next_interval(trace_settings):
    trace_settings(TRACE_STORE_BREAKER_FAILURES=10)
    _submit_trace(0xF1)
    with store_down():
        _tick(5)
        assert processor.failed_batches() == 1
    _tick()
    assert processor.failed_batches() == 0
    assert Trace.objects.get(trace_id=f"{0xF1:032x}").span_count == 2


def test_nothing_is_lost_across_ticks(trace_settings):
    """Traces whose spans straddle ticks and writes, spans after their root's decision, a
    trace with two local roots decided in two ticks between writes (as a second process
    would: its decision forgotten), log rows: every span and row stored once, every
    trace's count the spans it has."""
    trace_settings(TRACE_WRITE_INTERVAL_SECONDS=3.0)
    submitted = 0
    logs = 0
    for round_number in range(1, 13):
        trace_id = 0x1000 + round_number
        processor.submit(_span(trace_id, 2, 1))
        processor.submit(_span(trace_id, 3, 2))
        _tick()  # the children wait for their root across a tick
        processor.submit(_span(trace_id, 1, name=f"GET /{round_number}"))
        submitted += 3
        if round_number > 1:
            processor.submit(_span(trace_id - 1, 9, 1))  # the previous trace's, after its decision
            submitted += 1
        processor.submit_log(_log_row(f"round {round_number}"))
        logs += 1
        _tick()
    merged = 0x2000
    processor.submit(_span(merged, 2, 1))
    processor.submit(_span(merged, 1, name="GET /web"))
    _tick()
    processor.forget_decisions()
    processor.submit(_span(merged, 4, 3, error=True))
    processor.submit(_span(merged, 3, 2, remote_parent=True, name="run/job"))
    _tick()
    submitted += 4
    assert not Trace.objects.filter(trace_id=f"{merged:032x}").exists()  # both roots wait for one write
    _tick(3)

    assert Span.objects.count() == submitted
    assert Trace.objects.aggregate(spans=Sum("span_count"))["spans"] == submitted
    assert LogEntry.objects.filter(logger="tests.write_interval").count() == logs
    trace = Trace.objects.get(trace_id=f"{merged:032x}")
    assert (trace.root_name, trace.span_count, trace.status) == ("GET /web", 4, "error")
    assert Trace.objects.get(trace_id=f"{0x1001:032x}").span_count == 4
