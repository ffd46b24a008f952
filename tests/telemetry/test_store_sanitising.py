"""The trace store writer on real PostgreSQL: every text it writes is cleaned of NUL
characters and lone surrogates (which PostgreSQL refuses, rejecting the whole batch), and
a batch the store still rejects is split until the rejected rows are alone: only they are
lost, and counted."""

from datetime import datetime, timezone

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from telemetry.models import LogEntry, Span, Trace
from telemetry.tracing import processor
from telemetry.tracing.sanitize import clean_json

from .test_tracing import _span
from .trace_fixtures import TRACE_DATABASES, flush, trace_settings  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(databases=TRACE_DATABASES)

GOOD = 200
FIRST_TRACE = 0x5A000


def _good_spans():
    return [_span(FIRST_TRACE + index, 1) for index in range(GOOD)]


def _lost():
    return {reason: processor.dropped(reason) for reason in
            ("store_failed", "store_rejected", "store_unavailable", "log_store_rejected", "log_store_failed")}


def _grown(before):
    return {reason: count - before[reason] for reason, count in _lost().items() if count != before[reason]}


def test_a_nul_and_a_lone_surrogate_among_good_spans_lose_nothing(trace_settings):
    before = _lost()
    nul_trace, surrogate_trace = FIRST_TRACE + GOOD, FIRST_TRACE + GOOD + 1
    for span in _good_spans():
        processor.submit(span)
    processor.submit(_span(nul_trace, 1, name="GET /a\x00b", attributes={
        "http.route": "/r", "http.response.status_code": 200, "user_agent.original": "curl\x00/8",
        "k\x00": ["x\x00y"]}))
    processor.submit(_span(surrogate_trace, 1, attributes={
        "http.route": "/r\ud800", "http.response.status_code": 200, "note": "half \udc00 a pair"}))
    processor.submit_log({
        "time": datetime.now(timezone.utc), "level": "WARNING", "level_number": 30, "logger": "app",
        "message": "bad\x00input \ud83d", "trace_id": f"{nul_trace:032x}", "span_id": "", "attributes": {"a": "\x00"},
    })
    flush()

    stored = Span.objects.filter(trace_id__in=[f"{FIRST_TRACE + index:032x}" for index in range(GOOD + 2)])
    assert stored.count() == GOOD + 2
    nul = stored.get(trace_id=f"{nul_trace:032x}")
    assert nul.name == "GET /a\ufffdb"
    assert nul.attributes["user_agent.original"] == "curl\ufffd/8" and nul.attributes["k\ufffd"] == ["x\ufffdy"]
    surrogate = stored.get(trace_id=f"{surrogate_trace:032x}")
    assert surrogate.attributes["http.route"] == "/r\ufffd" and surrogate.attributes["note"] == "half \ufffd a pair"
    assert Trace.objects.get(trace_id=f"{surrogate_trace:032x}").route == "/r\ufffd"
    log = LogEntry.objects.get(trace_id=f"{nul_trace:032x}")
    assert (log.message, log.attributes) == ("bad\ufffdinput \ufffd", {"a": "\ufffd"})
    assert _grown(before) == {}
    assert processor.failed_batches() == 0


def test_a_batch_the_store_rejects_is_split_and_only_the_bad_row_is_lost(trace_settings):
    """A span from a broken clock (a start beyond PostgreSQL's bigint) makes the store
    refuse its batch; the other 200 spans and the log row are stored."""
    before = _lost()
    broken_trace = FIRST_TRACE + GOOD
    broken = ReadableSpan(name="GET /r", context=SpanContext(broken_trace, 1, False, TraceFlags(TraceFlags.SAMPLED)),
                          kind=SpanKind.SERVER, attributes={"http.route": "/r"}, start_time=2**64,
                          end_time=2**64 + 4_000_000)
    spans = _good_spans()
    batch = processor.StoreBatch([*spans[:120], broken, *spans[120:]], {}, [{
        "time": datetime.now(timezone.utc), "level": "ERROR", "level_number": 40, "logger": "app",
        "message": "kept", "trace_id": "", "span_id": "", "attributes": {}}])
    for span in batch.spans:
        processor.submit(span)
    processor.submit_log(batch.logs[0])
    flush()

    good_ids = [f"{FIRST_TRACE + index:032x}" for index in range(GOOD)]
    assert Span.objects.filter(trace_id__in=good_ids).count() == GOOD
    assert Trace.objects.filter(trace_id__in=good_ids, span_count=1).count() == GOOD
    assert not Span.objects.filter(trace_id=f"{broken_trace:032x}").exists()
    assert LogEntry.objects.filter(message="kept").count() == 1
    assert _grown(before) == {"store_rejected": 1}
    assert processor.failed_batches() == 0 and processor.breaker_state() == "closed"


@pytest.mark.parametrize("text, cleaned", [
    ('{"a": "x\\u0000y"}', '{"a": "x\ufffdy"}'),
    ('{"a": "x\\\\u0000y"}', '{"a": "x\\\\u0000y"}'),  # an escaped backslash, then "u0000": kept
    ('{"a": "x\\\\\\u0000y"}', '{"a": "x\\\\\ufffdy"}'),
    ('{"a": "plain"}', '{"a": "plain"}'),
])
def test_escaped_nuls_in_json_text(text, cleaned):
    assert clean_json(text) == cleaned
