"""The flusher's cached request and statement shapes (``telemetry.pipeline.shapes``) count
exactly what one update per request counted: across drains, across organizations sharing
series, past the cache's bound, and after a settings change."""

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path
from prometheus_client import REGISTRY

from telemetry import api
from telemetry.pipeline import shapes


def page(request, number):
    request.organization_id = request.GET.get("org")
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s", [number])
    return HttpResponse(b"x" * 10)


urlpatterns = [path("shaped/<int:number>", page)]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

ROUTE = "/shaped/<number>"


def _duration(organization):
    return {"http_request_method": "GET", "http_route": ROUTE, "http_response_status_code": "200",
            "organization_id": organization}


def test_a_shape_counts_every_request_across_drains(client, samples):
    requests = samples.snapshot("http_server_request_duration_seconds_count", _duration("7"))
    breakdown = samples.snapshot("tooljet_api_breakdown_duration_seconds_count",
                                 {"http_route": ROUTE, "tooljet_operation_type": "database"})
    statements = samples.snapshot("db_client_operation_duration_seconds_count", {
        "db_system": "postgresql", "db_operation_name": "select", "db_collection_name": "", "organization_id": "7"})
    response_bytes = samples.snapshot("http_server_response_body_size_bytes_sum", {
        "http_request_method": "GET", "http_route": ROUTE, "http_response_status_code": "200"})
    for _drain in range(3):
        for number in range(4):
            assert client.get(f"/shaped/{number}?org=7").status_code == 200
        api.flush()  # each drain applies what the shape held since the last one
    assert requests() == 12
    assert breakdown() == 12
    assert statements() == 12
    assert response_bytes() == 120


def test_organizations_keep_their_own_series_and_share_the_ones_without_the_label(client, samples):
    first, second = (samples.snapshot("http_server_request_duration_seconds_count", _duration(org))
                     for org in ("1", "2"))
    responses = samples.snapshot("http_server_response_body_size_bytes_count", {
        "http_request_method": "GET", "http_route": ROUTE, "http_response_status_code": "200"})
    for org in ("1", "2", "2"):
        client.get(f"/shaped/1?org={org}")
    assert (first(), second(), responses()) == (1, 2, 3)


def test_past_its_bound_the_cache_starts_over_and_nothing_is_lost(client, samples, monkeypatch):
    monkeypatch.setattr(shapes, "MAX_SHAPES", 2)
    deltas = {org: samples.snapshot("http_server_request_duration_seconds_count", _duration(org))
              for org in ("11", "12", "13", "14", "15")}
    for org in ("11", "12", "13", "14", "15", "11"):
        client.get(f"/shaped/1?org={org}")
    api.flush()
    assert len(shapes.cache.requests) <= 2
    assert {org: delta() for org, delta in deltas.items()} == {"11": 2, "12": 1, "13": 1, "14": 1, "15": 1}


def test_a_settings_change_rebuilds_the_shapes(client, samples, settings):
    calls = samples.snapshot("api_calls_total", {"endpoint": ROUTE, "method": "GET", "status_code": "200",
                                                 "status_class": "2xx"})
    client.get("/shaped/1")
    api.flush()
    assert calls() == 0  # not under API_PATH_PREFIXES
    with override_settings(TELEMETRY={**settings.TELEMETRY, "API_PATH_PREFIXES": ["/shaped/"]}):
        client.get("/shaped/2")
        client.get("/shaped/3")
        assert calls() == 2


def test_a_series_never_observed_is_not_rendered(client):
    """GETs carry no body: their request-size series would only be zeros on every scrape."""
    client.get("/shaped/1?org=7")
    client.post("/shaped/2?org=7", data=b"z" * 30, content_type="application/octet-stream")
    api.flush()
    size = "http_server_request_body_size_bytes_count"
    assert REGISTRY.get_sample_value(size, {"http_request_method": "GET", "http_route": ROUTE}) is None
    assert REGISTRY.get_sample_value(size, {"http_request_method": "POST", "http_route": ROUTE}) >= 1
