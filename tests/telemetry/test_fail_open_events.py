"""Telemetry keeps its books straight when parts of it fail: a broken organization
resolver, a full event buffer, detections that are advice, plugin connection waits."""

import sqlite3

import pytest
from django.http import JsonResponse
from django.test import override_settings
from django.urls import path

import plugins
from telemetry import testing
from telemetry.core import guard, recorder
from telemetry.core.events import QueryExecuted


def ok(request, thing_id):
    request.organization_id = 9
    return JsonResponse({"ok": True})


def broken_resolver(request):
    raise RuntimeError("resolver down")


urlpatterns = [path("things/<int:thing_id>", ok)]
pytestmark = [pytest.mark.django_db(databases=["default", "telemetry"]), pytest.mark.urls(__name__)]
ACTIVE = {"http_request_method": "GET", "http_route": "/things/<thing_id>", "url_scheme": "http"}


@override_settings(TELEMETRY={"ORGANIZATION_RESOLVER": f"{__name__}.broken_resolver"})
def test_a_broken_organization_resolver_costs_the_label_not_the_request(client, samples):
    requests = samples.snapshot("http_server_request_duration_seconds_count", {
        "http_request_method": "GET", "http_route": "/things/<thing_id>", "http_response_status_code": "200",
        "organization_id": ""})
    errors_before = guard.internal_error_count("organization_resolver")
    assert client.get("/things/1").status_code == 200
    assert client.get("/things/2").status_code == 200
    assert requests() == 2
    assert samples.value("http_server_active_requests", ACTIVE) == 0
    assert guard.internal_error_count("organization_resolver") - errors_before == 2


def test_a_full_buffer_never_leaves_the_in_flight_gauge_up(client, samples):
    samples.value("http_server_active_requests", ACTIVE)  # drains what earlier tests left
    dropped_before = recorder.dropped_events()
    with override_settings(TELEMETRY={"BUFFER_MAX_EVENTS": 3}):
        for thing_id in range(8):
            assert client.get(f"/things/{thing_id}").status_code == 200
    assert recorder.dropped_events() > dropped_before
    assert samples.value("http_server_active_requests", ACTIVE) == 0


def test_runtime_detections_count_as_optimization_suggestions(samples):
    from telemetry.queries import stats as querystats
    from telemetry.queries.sql import analyze

    suggestions = samples.snapshot("tooljet_db_query_optimization_suggestions_total",
                                   {"tooljet_optimization_suggestion": "n_plus_one"})
    sql = 'SELECT "auth_group"."name" FROM "auth_group" WHERE "auth_group"."id" = %s'
    analysis = analyze(sql, [1], "postgresql")
    events = [QueryExecuted(alias="default", vendor="postgresql", sql=sql, params=[group_id], many=False, started=0.0,
                            duration=0.001, rowcount=1, error=None, call_site="views.py:3 in f", span_context=None)
              for group_id in range(6)]
    querystats.detect([(event, analysis) for event in events])
    querystats.detect([(event, analysis) for event in events])
    testing.reset()
    assert suggestions() == 2


def test_plugin_connection_checkout_is_the_pool_wait_time(tmp_path, samples):
    database = tmp_path / "sample.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY)")
    waits = samples.snapshot("db_client_connection_wait_time_seconds_count", {"db_system": "sqlite"})
    try:
        for _ in range(3):
            plugins.run_query(data_source_id=9901, kind="sqlite", options={"path": str(database)},
                              query={"query": "SELECT count(*) FROM items"}, parameters={}, organization_id=1)
    finally:
        plugins.connection_cache.clear()
    assert waits() == 3
