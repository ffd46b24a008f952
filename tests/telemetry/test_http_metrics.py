"""HTTP server metrics, API calls and the time breakdown, driven by real requests."""

import pytest
from django.test import override_settings
from django.urls import path

from telemetry import api
from telemetry.core.context import current_request


def three_queries(request, thing_id):
    from django.contrib.auth.models import Group, Permission, User
    from django.http import JsonResponse

    request.organization_id = 42
    request.app_operation = "app_view"
    return JsonResponse({
        "users": User.objects.count(),
        "groups": Group.objects.count(),
        "permissions": Permission.objects.filter(codename__startswith="add_").count(),
    })


def external_call(request):
    from django.http import HttpResponse

    api.record_external_operation("webhook_call", "slack", 0.05)
    return HttpResponse(b"x" * 3000)


def failing(request):
    raise RuntimeError("boom")


async def async_view(request):
    from django.http import JsonResponse

    request.organization_id = 5
    return JsonResponse({"async": True})


urlpatterns = [
    path("async", async_view),
    path("api/things/<int:thing_id>/view", three_queries),
    path("external", external_call),
    path("fail", failing),
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def test_request_duration_counts_each_request_by_route_template_status_and_org(client, samples):
    labels = {"http_request_method": "GET", "http_route": "/api/things/<thing_id>/view",
              "http_response_status_code": "200", "organization_id": "42"}
    delta = samples.snapshot("http_server_request_duration_seconds_count", labels)
    for thing_id in (1, 2, 3):
        assert client.get(f"/api/things/{thing_id}/view").status_code == 200
    assert delta() == 3


def test_unknown_paths_share_one_route_label(client, samples):
    labels = {"http_request_method": "GET", "http_route": "unmatched",
              "http_response_status_code": "404", "organization_id": ""}
    delta = samples.snapshot("http_server_request_duration_seconds_count", labels)
    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    assert delta() == 2


def test_server_errors_are_counted_with_status_500(client, samples):
    client.raise_request_exception = False
    labels = {"http_request_method": "GET", "http_route": "/fail",
              "http_response_status_code": "500", "organization_id": ""}
    delta = samples.snapshot("http_server_request_duration_seconds_count", labels)
    assert client.get("/fail").status_code == 500
    assert delta() == 1


def test_body_sizes_are_observed(client, samples):
    request_sum = samples.snapshot("http_server_request_body_size_bytes_sum",
                                   {"http_request_method": "POST", "http_route": "/external"})
    response_sum = samples.snapshot(
        "http_server_response_body_size_bytes_sum",
        {"http_request_method": "POST", "http_route": "/external", "http_response_status_code": "200"})
    client.post("/external", data=b"y" * 1234, content_type="application/octet-stream")
    assert request_sum() == 1234
    assert response_sum() == 3000


def test_requests_without_a_body_add_no_request_size_series(client, samples):
    """A GET's request-body histogram would hold only zeros: one series fewer per route."""
    labels = {"http_request_method": "GET", "http_route": "/external"}
    count = samples.snapshot("http_server_request_body_size_bytes_count", labels)
    responses = samples.snapshot("http_server_response_body_size_bytes_count",
                                 {**labels, "http_response_status_code": "200"})
    client.get("/external")
    assert responses() == 1
    assert count() == 0


def test_active_requests_gauge_is_one_during_the_request_and_zero_after(client, samples):
    labels = {"http_request_method": "GET", "http_route": "/api/things/<thing_id>/view", "url_scheme": "http"}
    client.get("/api/things/1/view")
    assert samples.value("http_server_active_requests", labels) == 0


def test_api_calls_and_duration_by_endpoint(client, samples):
    calls = samples.snapshot("api_calls_total", {"endpoint": "/api/things/<thing_id>/view", "method": "GET",
                                                 "status_code": "200", "status_class": "2xx"})
    durations = samples.snapshot("api_call_duration_seconds_count",
                                 {"endpoint": "/api/things/<thing_id>/view", "method": "GET"})
    not_api = samples.snapshot("api_calls_total", {"endpoint": "/external", "method": "GET",
                                                   "status_code": "200", "status_class": "2xx"})
    client.get("/api/things/1/view")
    client.get("/api/things/2/view")
    client.get("/external")
    assert calls() == 2
    assert durations() == 2
    assert not_api() == 0


def test_breakdown_splits_database_external_and_application_time(client, samples):
    external = samples.snapshot("tooljet_api_breakdown_duration_seconds_sum",
                                {"http_route": "/external", "tooljet_operation_type": "external"})
    counts = {kind: samples.snapshot("tooljet_api_breakdown_duration_seconds_count",
                                     {"http_route": "/api/things/<thing_id>/view", "tooljet_operation_type": kind})
              for kind in ("database", "external", "application")}
    provider = samples.snapshot("tooljet_api_external_operation_duration_seconds_count",
                                {"tooljet_external_operation": "webhook_call", "tooljet_external_provider": "slack"})
    client.get("/external")
    client.get("/api/things/1/view")
    # The recorded external time (0.05 s) is capped by the request's own duration.
    assert 0 < external() <= 0.05
    assert provider() == 1
    assert all(delta() == 1 for delta in counts.values())


def test_app_operation_performance_carries_the_bucketed_query_count(client, samples):
    delta = samples.snapshot("tooljet_app_builder_viewer_performance_seconds_count", {
        "http_route": "/api/things/<thing_id>/view", "tooljet_app_operation": "app_view",
        "tooljet_app_db_query_count": "2-5"})
    client.get("/api/things/7/view")
    assert delta() == 1


def test_request_context_is_cleared_after_the_request(client):
    client.get("/api/things/1/view")
    assert current_request.get() is None


@override_settings(TELEMETRY={"METRICS_ENABLED": True, "API_PATH_PREFIXES": ["/external"]})
def test_api_prefixes_are_a_setting(client, samples):
    calls = samples.snapshot("api_calls_total", {"endpoint": "/external", "method": "GET",
                                                 "status_code": "200", "status_class": "2xx"})
    client.get("/external")
    assert calls() == 1


def test_async_requests_are_measured_through_the_async_path(samples):
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    labels = {"http_request_method": "GET", "http_route": "/async", "http_response_status_code": "200",
              "organization_id": "5"}
    delta = samples.snapshot("http_server_request_duration_seconds_count", labels)
    response = async_to_sync(AsyncClient().get)("/async")
    assert response.status_code == 200
    assert delta() == 1
