"""OTLP http/protobuf export of kept traces to a local receiver; an unreachable
collector or an unavailable store never fails a request and is counted."""

import pytest
from django.db import connections

from telemetry.core import guard
from telemetry.http import views
from telemetry.models import Trace
from telemetry.tracing import processor
from tests.apps_builder.conftest import world  # noqa: F401 - fixture

from .trace_fixtures import TRACE_DATABASES, flush, otlp_receiver, trace_settings  # noqa: F401

pytestmark = pytest.mark.django_db(databases=TRACE_DATABASES)


@pytest.fixture
def receiver():
    with otlp_receiver() as endpoint_and_received:
        yield endpoint_and_received


@pytest.fixture
def otlp_env(monkeypatch):
    def point_at(endpoint):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        processor.reset_export()

    yield point_at
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    processor.reset_export()


def _view(world, api_client_for):
    return api_client_for(world["users"]["viewer"]).get(f"/api/apps/{world['own']['app'].slug}/")


def test_kept_traces_reach_an_otlp_receiver_as_protobuf(world, api_client_for, trace_settings, receiver, otlp_env):
    endpoint, received = receiver
    otlp_env(endpoint)
    assert _view(world, api_client_for).status_code == 200
    flush()
    assert processor.export_processor().force_flush(10_000)
    trace_id = Trace.objects.get().trace_id
    spans = [(resource_spans, span) for _, _, message in received for resource_spans in message.resource_spans
             for scope_spans in resource_spans.scope_spans for span in scope_spans.spans]
    assert received[0][0] == "/v1/traces" and received[0][1] == "application/x-protobuf"
    assert {span.trace_id.hex() for _, span in spans} == {trace_id}
    names = {span.name for _, span in spans}
    assert "postgresql.query" in names and any(name.startswith("GET /api/apps/") for name in names)
    service = {attribute.value.string_value for resource_spans, _ in spans
               for attribute in resource_spans.resource.attributes if attribute.key == "service.name"}
    assert service == {"tooljet"}
    health = processor.trace_store.export_health.report()
    assert health["status"] == "up" and health["seconds_since_success"] is not None


def test_dropped_traces_are_not_exported(world, api_client_for, trace_settings, receiver, otlp_env):
    endpoint, received = receiver
    otlp_env(endpoint)
    trace_settings(TRACE_SAMPLE_RATE=0.0)
    assert _view(world, api_client_for).status_code == 200
    flush()
    if processor.export_processor() is not None:
        processor.export_processor().force_flush(10_000)
    assert received == []


def test_unreachable_collector_never_fails_a_request_and_is_counted(world, api_client_for, client, trace_settings,
                                                                   otlp_env):
    otlp_env("http://127.0.0.1:9")
    before = processor.dropped("export_failed")
    assert _view(world, api_client_for).status_code == 200
    flush()
    processor.export_processor().force_flush(10_000)
    assert processor.dropped("export_failed") - before > 0
    assert Trace.objects.count() == 1  # the store still has it
    # Readiness shows the exporter failing, as degraded: never a reason to take the instance out.
    views.reset_health()
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "degraded"
    exporter = response.json()["telemetry"]["exporter"]
    assert exporter["status"] == "failing" and exporter["failures_in_a_row"] >= 1
    assert exporter["seconds_since_success"] is None


def test_unavailable_store_never_fails_a_request_retries_then_counts(world, api_client_for, trace_settings):
    """The span table is gone (renamed inside the test's transaction): every write fails."""
    before_dropped = processor.dropped("store_failed")
    before_errors = guard.internal_error_count("trace_store_write")
    with connections["telemetry"].cursor() as cursor:
        cursor.execute("ALTER TABLE telemetry_span RENAME TO telemetry_span_away")
    try:
        assert _view(world, api_client_for).status_code == 200
        for _ in range(processor.MAX_ATTEMPTS):
            flush()
    finally:
        with connections["telemetry"].cursor() as cursor:
            cursor.execute("ALTER TABLE telemetry_span_away RENAME TO telemetry_span")
    assert guard.internal_error_count("trace_store_write") - before_errors == processor.MAX_ATTEMPTS
    assert processor.dropped("store_failed") - before_dropped >= 2
    assert processor.failed_batches() == 0
    assert Trace.objects.count() == 0  # the batch's transaction rolled back whole


def test_a_full_export_queue_is_counted_and_the_sdk_warnings_are_not_stored(
        world, api_client_for, trace_settings, otlp_env, monkeypatch):
    from telemetry.models import LogEntry

    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "2")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")
    otlp_env("http://127.0.0.1:9")  # nothing listens: exports fail slowly and the queue fills
    before = processor.dropped("export_queue_full")
    for _ in range(5):
        assert _view(world, api_client_for).status_code == 200
    flush()
    assert processor.dropped("export_queue_full") - before > 0
    flush()
    assert not LogEntry.objects.filter(logger__startswith="opentelemetry").exists()
