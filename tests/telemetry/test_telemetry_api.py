"""The telemetry API: who sees which traces and logs, filters and their validation,
cursor pagination, and current metric values after real requests."""

import pytest
from django.db import connections
from rest_framework.test import APIClient

from tests.telemetry.test_trace_admin import FAST_TRACE, SLOW_SPANS, SLOW_TRACE, store_known_traces, store_trace

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])


@pytest.fixture
def staff(django_user_model, api_client_for):
    user = django_user_model.objects.create_user("telemetry-staff", password="pw-telemetry-staff", is_staff=True)
    return api_client_for(user)


@pytest.fixture
def org_clients(org, other_org, make_member, api_client_for):
    """Traces of ``org`` and ``other_org`` (the slow one and the fast one), and a token
    client for a viewer of each."""
    store_trace(SLOW_TRACE, str(org.id), SLOW_SPANS, logs=[
        ("a000000000000004", "ERROR", 40, "query run failed: connection refused by datasource"),
        ("a000000000000007", "WARNING", 30, "slow query on apps_builder_dataquery: 249 ms"),
    ])
    store_trace(FAST_TRACE, str(other_org.id), SLOW_SPANS[:2], route="/api/apps/", logs=[
        ("a000000000000002", "ERROR", 40, "other organization failure"),
    ])
    return api_client_for(make_member(org, "viewer")), api_client_for(make_member(other_org, "viewer"))


def trace_ids(response):
    assert response.status_code == 200, response.content
    return [row["trace_id"] for row in response.json()["results"]]


def test_staff_see_every_trace_and_members_only_their_organizations(staff, org_clients, org, other_org):
    own, other = org_clients
    assert {SLOW_TRACE, FAST_TRACE} <= set(trace_ids(staff.get("/telemetry/api/traces")))
    own_rows = own.get("/telemetry/api/traces").json()["results"]
    assert SLOW_TRACE in [row["trace_id"] for row in own_rows]
    assert {row["organization_id"] for row in own_rows} == {str(org.id)}
    assert trace_ids(other.get("/telemetry/api/traces")) == [FAST_TRACE]
    # Asking for another organization's traces by filter or by id finds nothing.
    assert trace_ids(own.get("/telemetry/api/traces", {"organization_id": other_org.id})) == []
    assert own.get(f"/telemetry/api/traces/{FAST_TRACE}").status_code == 404
    assert other.get(f"/telemetry/api/traces/{SLOW_TRACE}").status_code == 404
    assert staff.get("/telemetry/api/traces/" + "f" * 32).status_code == 404


def test_a_member_of_two_organizations_sees_the_traces_of_both(org_clients, org, other_org, make_member,
                                                                api_client_for):
    from apps_builder.models import Membership

    user = make_member(org, "viewer")
    Membership.objects.create(user=user, organization=other_org, role="builder")
    both = api_client_for(user)
    assert set(trace_ids(both.get("/telemetry/api/traces"))) == {SLOW_TRACE, FAST_TRACE}
    assert both.get(f"/telemetry/api/traces/{FAST_TRACE}").status_code == 200


def test_trace_detail_has_spans_as_on_the_waterfall_and_their_logs(org_clients):
    own, _ = org_clients
    body = own.get(f"/telemetry/api/traces/{SLOW_TRACE}").json()
    assert body["trace"]["trace_id"] == SLOW_TRACE and body["trace"]["status"] == "error"
    assert body["spans_truncated"] is False
    spans = {span["span_id"]: span for span in body["spans"]}
    assert len(spans) == len(SLOW_SPANS)
    assert {span_id for span_id, span in spans.items() if span["on_critical_path"]} == {
        "a000000000000001", "a000000000000002", "a000000000000004", "a000000000000005", "a000000000000006",
        "a000000000000007"}
    assert spans["a000000000000006"]["depth"] == 2 and spans["a000000000000007"]["is_slow"] is True
    assert spans["a000000000000002"]["attributes"]["db.statement"].endswith('"slug" = %s')
    assert [log["level"] for log in body["logs"]] == ["ERROR", "WARNING"]


def test_anonymous_callers_are_refused():
    client = APIClient()
    for path in ("/telemetry/api/traces", f"/telemetry/api/traces/{SLOW_TRACE}", "/telemetry/api/logs",
                 "/telemetry/api/metrics"):
        assert client.get(path).status_code == 401, path


def test_metrics_are_for_staff_only(org_clients):
    own, _ = org_clients
    assert own.get("/telemetry/api/metrics").status_code == 403


@pytest.mark.parametrize("params, field", [
    ({"min_duration_ms": "fast"}, "min_duration_ms"),
    ({"min_duration_ms": "-1"}, "min_duration_ms"),
    ({"status": "broken"}, "status"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1000"}, "limit"),
])
def test_bad_trace_filters_are_400_with_the_field(staff, params, field):
    response = staff.get("/telemetry/api/traces", params)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("params, field", [({"level": "loud"}, "level"), ({"trace_id": "xyz"}, "trace_id"),
                                           ({"text": "x" * 201}, "text")])
def test_bad_log_filters_are_400_with_the_field(staff, params, field):
    response = staff.get("/telemetry/api/logs", params)
    assert response.status_code == 400 and field in response.json()


def test_trace_filters_and_cursor_pagination(staff):
    store_known_traces()
    for index in range(5):
        root = (f"c{index:015d}", "", "GET /api/apps/", 0, 50 + index, "unset", {})
        store_trace(f"{index:032x}", "7", (root,), route="/api/apps/", minutes_ago=10 + index)
    assert trace_ids(staff.get("/telemetry/api/traces", {"organization_id": "7", "min_duration_ms": 1000})) == [
        SLOW_TRACE]
    assert trace_ids(staff.get("/telemetry/api/traces", {"status": "error", "organization_id": "7"})) == [SLOW_TRACE]
    assert set(trace_ids(staff.get("/telemetry/api/traces", {"route": "/api/apps/", "organization_id": "7"}))) == {
        f"{index:032x}" for index in range(5)}
    long_ago = {"organization_id": "7", "until": "2000-01-01T00:00:00Z"}
    assert trace_ids(staff.get("/telemetry/api/traces", long_ago)) == []

    seen, url, params = [], "/telemetry/api/traces", {"organization_id": "7", "limit": 2}
    while url:
        body = staff.get(url, params).json()
        assert len(body["results"]) <= 2
        seen += [row["trace_id"] for row in body["results"]]
        url, params = body["next"], None
    assert seen == [SLOW_TRACE] + [f"{index:032x}" for index in range(5)]  # newest first, each once


def test_log_filters_and_scoping(staff, org_clients):
    own, other = org_clients

    def messages(client, **params):
        response = client.get("/telemetry/api/logs", params)
        assert response.status_code == 200, response.content
        return [row["message"] for row in response.json()["results"]]

    everything = messages(staff)
    assert {"query run failed: connection refused by datasource", "other organization failure"} <= set(everything)
    assert set(messages(own)) == {"query run failed: connection refused by datasource",
                                  "slow query on apps_builder_dataquery: 249 ms"}
    assert messages(other) == ["other organization failure"]
    assert set(messages(own, level="error")) == {"query run failed: connection refused by datasource"}
    assert messages(staff, text="CONNECTION REFUSED") == ["query run failed: connection refused by datasource"]
    assert set(messages(staff, trace_id=FAST_TRACE)) == {"other organization failure"}
    assert messages(own, trace_id=FAST_TRACE) == []


def test_metrics_show_requests_per_route_after_real_requests(staff, org_clients):
    own, _ = org_clients

    def route_requests(body):
        return {row["route"]: row["requests"] for row in body["http"]["routes"]}

    before = staff.get("/telemetry/api/metrics").json()
    for _ in range(3):
        assert own.get("/api/organizations/").status_code == 200
    with connections["default"].cursor() as cursor:  # one statement over SLOW_QUERY_MS (200 ms)
        cursor.execute("SELECT pg_sleep(0.25)")
    after = staff.get("/telemetry/api/metrics").json()
    organizations_route = [route for route in route_requests(after) if "organizations" in route and "{" not in route
                           and "<" not in route]
    assert organizations_route, route_requests(after)
    route = organizations_route[0]
    assert route_requests(after)[route] - route_requests(before).get(route, 0) == 3
    row = next(row for row in after["http"]["routes"] if row["route"] == route)
    assert row["p50_ms"] is not None and 0 < row["p50_ms"] <= row["p95_ms"]
    assert after["http"]["requests"] - before["http"]["requests"] >= 4  # three, and the first metrics call
    assert after["db"]["operations"] > before["db"]["operations"]
    assert after["db"]["slow_queries"] - before["db"]["slow_queries"] == 1
    assert after["http"]["api_calls"] - before["http"]["api_calls"] >= 3


def test_endpoints_are_in_the_openapi_schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/telemetry/api/traces", "/telemetry/api/traces/{trace_id}", "/telemetry/api/logs",
                 "/telemetry/api/metrics"):
        assert path in paths
    assert {"min_duration_ms", "organization_id", "since", "cursor"} <= {
        parameter["name"] for parameter in paths["/telemetry/api/traces"]["get"]["parameters"]}
