"""The trace store writer's circuit breaker on real PostgreSQL: a store that keeps failing
(its span table renamed inside the test's transaction) is not tried again while the breaker
is open, what is kept meanwhile is dropped and counted, and after the cool-down one batch is
tried: its success closes the breaker and traces are stored again, its failure opens it again."""

import logging
import time
from contextlib import contextmanager

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY

from telemetry.core import guard, recorder
from telemetry.http import views
from telemetry.models import Trace
from telemetry.tracing import processor
from tests.apps_builder.conftest import world  # noqa: F401 - fixture

from .trace_fixtures import TRACE_DATABASES, flush, trace_settings  # noqa: F401

pytestmark = pytest.mark.django_db(databases=TRACE_DATABASES)

#: How long a test waits for the cool-down to pass: a bound, never asserted.
DEADLINE_SECONDS = 30.0


@contextmanager
def store_down():
    """Every write of the trace store fails while inside (its span table is renamed)."""
    with connections["telemetry"].cursor() as cursor:
        cursor.execute("ALTER TABLE telemetry_span RENAME TO telemetry_span_away")
    try:
        yield
    finally:
        with connections["telemetry"].cursor() as cursor:
            cursor.execute("ALTER TABLE telemetry_span_away RENAME TO telemetry_span")


def _transitions(state):
    return REGISTRY.get_sample_value("telemetry_trace_store_breaker_transitions_total", {"state": state}) or 0.0


def _write_errors():
    return guard.internal_error_count("trace_store_write")


def _request(world, api_client_for):
    """One request kept as a trace (every trace is kept in these tests); its spans are built
    by the recorder's flush and wait for the trace store's."""
    response = api_client_for(world["users"]["viewer"]).get(f"/api/apps/{world['own']['app'].slug}/")
    assert response.status_code == 200
    recorder.flush()


def _store_flush():
    """The trace store's flush alone; returns the statements it sent to the telemetry alias."""
    with CaptureQueriesContext(connections["telemetry"]) as queries:
        processor.flush()
    return len(queries.captured_queries)


def test_after_n_failed_writes_the_breaker_opens_and_the_store_is_not_tried(world, api_client_for, trace_settings):
    trace_settings(TRACE_STORE_BREAKER_FAILURES=2, TRACE_STORE_BREAKER_SECONDS=3600)
    opened = _transitions("open")
    errors = _write_errors()
    with store_down():
        _request(world, api_client_for)
        assert _store_flush() > 0  # a write tried: its statements reach the telemetry alias
        assert processor.breaker_state() == "closed"
        assert _store_flush() > 0  # the batch retried: the second consecutive failure
        assert _write_errors() - errors == 2
        assert processor.breaker_state() == "open" and _transitions("open") - opened == 1
        waiting = processor.failed_batches()  # still retried once the store answers again
        assert waiting >= 1

        unavailable, logs_unavailable = processor.dropped("store_unavailable"), processor.dropped(
            "log_store_unavailable")
        for _ in range(3):
            _request(world, api_client_for)
            logging.getLogger("tests.store_breaker").warning("while the trace store is down")
            assert _store_flush() == 0
        assert _write_errors() - errors == 2
        assert processor.dropped("store_unavailable") - unavailable >= 3 * 2  # a server span and a DB span each
        assert processor.dropped("log_store_unavailable") - logs_unavailable >= 3
        assert processor.failed_batches() == waiting
        assert processor.breaker_state() == "open" and _transitions("open") - opened == 1
    assert Trace.objects.count() == 0


def test_after_the_cool_down_a_successful_write_closes_the_breaker(world, api_client_for, trace_settings):
    trace_settings(TRACE_STORE_BREAKER_FAILURES=1, TRACE_STORE_BREAKER_SECONDS=0.2)
    half_opened, closed = _transitions("half_open"), _transitions("closed")
    with store_down():
        _request(world, api_client_for)
        processor.flush()
        assert processor.breaker_state() == "open"
    # The store answers again; the breaker tries it once its cool-down has passed.
    deadline = time.monotonic() + DEADLINE_SECONDS
    while processor.breaker_state() == "open" and time.monotonic() < deadline:
        time.sleep(0.05)
        processor.flush()
    assert processor.breaker_state() == "closed"
    assert _transitions("half_open") - half_opened == 1 and _transitions("closed") - closed == 1
    assert processor.failed_batches() == 0
    assert Trace.objects.count() == 1  # the batch that failed, written by the probe

    _request(world, api_client_for)
    flush()
    assert Trace.objects.count() == 2  # new traces are stored again


def test_a_failed_probe_opens_the_breaker_again_and_tries_one_batch_only(world, api_client_for, trace_settings):
    trace_settings(TRACE_STORE_BREAKER_FAILURES=1, TRACE_STORE_BREAKER_SECONDS=0)
    opened, half_opened = _transitions("open"), _transitions("half_open")
    errors = _write_errors()
    with store_down():
        _request(world, api_client_for)
        processor.flush()
        assert processor.breaker_state() == "open" and _write_errors() - errors == 1
        _request(world, api_client_for)
        processor.flush()  # no cool-down: half-open, the older batch tried and failed
        assert _write_errors() - errors == 2
        assert processor.breaker_state() == "open"
        assert _transitions("half_open") - half_opened == 1 and _transitions("open") - opened == 2
        assert processor.failed_batches() == 2  # the newer batch waits untried
    processor.flush()
    assert processor.breaker_state() == "closed"
    assert processor.failed_batches() == 0
    assert Trace.objects.count() == 2


def test_readiness_reports_an_open_breaker_as_degraded_never_as_failing(world, api_client_for, client,
                                                                      trace_settings):
    trace_settings(TRACE_STORE_BREAKER_FAILURES=1, TRACE_STORE_BREAKER_SECONDS=3600)
    views.reset_health()
    with store_down():
        _request(world, api_client_for)
        processor.flush()
        assert processor.breaker_state() == "open"
    # The store answers its check again, but this process's writer does not try it yet.
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["telemetry"]["store"]["status"] == "up"
    assert body["telemetry"]["store"]["writer"] == {"breaker": "open", "batches_waiting": 1}
    assert body["telemetry"]["exporter"] == {"status": "off"}
