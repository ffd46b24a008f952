"""JSON log lines carry trace_id/span_id; warnings and errors are kept with their trace."""

import io
import json
import logging

import pytest

from telemetry import tracing
from telemetry.models import LogEntry, Trace
from telemetry.tracing.logs import JsonFormatter
from tests.apps_builder.conftest import world  # noqa: F401 - fixture

from .trace_fixtures import TRACE_DATABASES, flush, trace_settings  # noqa: F401

pytestmark = pytest.mark.django_db(databases=TRACE_DATABASES)
logger = logging.getLogger("tests.telemetry.t1")


def test_json_lines_carry_trace_and_span_ids(trace_settings):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    try:
        logger.info("outside")
        with tracing.span("business.step") as span:
            logger.info("inside %s", "a span")
    finally:
        logger.removeHandler(handler)
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert outside["trace_id"] == "" and outside["span_id"] == "" and outside["message"] == "outside"
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}" and inside["span_id"] == f"{context.span_id:016x}"
    assert inside["level"] == "INFO" and inside["logger"] == logger.name and inside["message"] == "inside a span"


def test_warnings_are_stored_with_their_trace_and_info_is_not(trace_settings):
    with tracing.span("business.step") as span:
        logger.info("not kept")
        logger.warning("kept %d", 1)
    flush()
    entry = LogEntry.objects.get(logger=logger.name)
    assert entry.message == "kept 1" and entry.level == "WARNING" and entry.level_number == logging.WARNING
    assert entry.trace_id == f"{span.get_span_context().trace_id:032x}"


def test_a_failing_request_keeps_its_error_log_in_its_trace(world, api_client_for, trace_settings):
    from apps_builder import views

    original = views.AppViewSet.list

    def failing(self, request, *args, **kwargs):
        raise RuntimeError("boom")

    views.AppViewSet.list = failing
    client = api_client_for(world["users"]["viewer"])
    client.raise_request_exception = False
    try:
        assert client.get("/api/apps/").status_code == 500
    finally:
        views.AppViewSet.list = original
    flush()
    trace = Trace.objects.get()
    entry = LogEntry.objects.get(logger="django.request")
    assert entry.trace_id == trace.trace_id and entry.level == "ERROR"
    assert entry.attributes["exception.type"] == "RuntimeError"


def test_store_level_is_a_setting(trace_settings):
    trace_settings(LOG_STORE_LEVEL="ERROR")
    logger.warning("below the level")
    logger.error("at the level")
    flush()
    assert list(LogEntry.objects.filter(logger=logger.name).values_list("message", flat=True)) == ["at the level"]


def test_a_flood_of_bad_host_requests_stores_a_bounded_number_of_rows(client, trace_settings):
    from telemetry.tracing import processor

    trace_settings(LOG_RATE_LIMIT_PER_MINUTE=3)
    folded = processor.dropped("log_rate_limited")
    for _ in range(40):
        assert client.get("/api/apps/", HTTP_HOST="evil.example").status_code == 400
    flush()
    rows = LogEntry.objects.filter(logger="django.security.DisallowedHost")
    assert rows.count() == 3
    assert processor.dropped("log_rate_limited") - folded == 37
