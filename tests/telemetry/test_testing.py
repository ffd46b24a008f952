"""``telemetry.testing.reset()`` empties what it claims: real requests fill the usage,
release, active-user and statistics tables, the findings list and the EXPLAIN queue
through the flusher; after a reset the next sample writes none of it, and the label caps
and findings' rate limits start over."""

import pytest
from django.db import connection
from django.http import JsonResponse
from django.urls import path

from telemetry import api, testing
from telemetry.models import OrganizationUsage, QueryFinding, QueryPlan, QueryStat, ReleaseRouteStats, UserActivity
from telemetry.queries.sql import analyze

QUERIES = {
    "groups": 'SELECT "auth_group"."name" FROM "auth_group" WHERE "auth_group"."id" = %s',
    "permissions": 'SELECT "auth_permission"."id" FROM "auth_permission" WHERE "auth_permission"."codename" = %s',
}
ROUTE = "/reset/<org>/<query>"


def run_query(request, org, query):
    request.organization_id = org
    assert request.user.is_authenticated  # authentication ran: the request names its user
    with connection.cursor() as cursor:
        cursor.execute(QUERIES[query], [1 if query == "groups" else "x"])
    return JsonResponse({"ok": True})


urlpatterns = [path("reset/<str:org>/<str:query>", run_query)]
pytestmark = [pytest.mark.django_db(databases=["default", "telemetry"]), pytest.mark.urls(__name__)]


def fingerprint_of(query):
    return analyze(QUERIES[query], [1], "postgresql").fingerprint_id


def stored(query):
    """What the telemetry database holds of one statement: calls, slow findings, plans."""
    fingerprint_id = fingerprint_of(query)
    return (sum(QueryStat.objects.filter(fingerprint_id=fingerprint_id).values_list("calls", flat=True)),
            QueryFinding.objects.filter(code="slow", fingerprint_id=fingerprint_id).count(),
            QueryPlan.objects.filter(fingerprint_id=fingerprint_id).count())


def usage(organization):
    return list(OrganizationUsage.objects.filter(organization_id=organization).values_list("requests", flat=True))


def release_requests():
    return sum(ReleaseRouteStats.objects.filter(route=ROUTE).values_list("count", flat=True))


def active(user):
    return UserActivity.objects.filter(user_id=user.pk).exists()


def test_reset_empties_the_tables_queue_caps_and_rate_limits(client, django_user_model, settings, samples):
    settings.TELEMETRY = {**settings.TELEMETRY, "SLOW_QUERY_MS": 0, "MAX_ORGANIZATIONS": 1,
                          "EXPLAIN_PER_MINUTE": 1000, "TRACE_SAMPLE_RATE": 0.0}
    first, second, third = (django_user_model.objects.create_user(name) for name in ("first", "second", "third"))
    requests_of = {organization: samples.snapshot("http_server_request_duration_seconds_count", {
        "http_request_method": "GET", "http_route": ROUTE, "http_response_status_code": "200",
        "organization_id": organization}) for organization in ("r1", "r2", "other")}

    # Without a reset, a request is written by the next sample (the control).
    client.force_login(first)
    assert client.get("/reset/r1/groups").status_code == 200
    api.flush(sample=True)
    assert (usage("r1"), release_requests(), active(first), stored("groups")) == ([1], 1, True, (1, 1, 1))
    explained_at = QueryPlan.objects.get(fingerprint_id=fingerprint_of("groups")).captured_at

    # Applied by the flusher (tables filled, finding pending, EXPLAIN queued), then reset.
    client.force_login(second)
    assert client.get("/reset/r2/permissions").status_code == 200
    api.flush()
    assert requests_of["other"]() == 1  # r2 is beyond the cap of one organization
    testing.reset()

    # The cap admits r2 now; the first statement's finding is kept again at once.
    client.force_login(third)
    assert client.get("/reset/r2/groups").status_code == 200
    api.flush(sample=True)
    assert (requests_of["r1"](), requests_of["r2"](), requests_of["other"]()) == (1, 1, 1)
    assert stored("permissions") == (0, 0, 0)
    assert stored("groups") == (2, 2, 1)
    # Explained again at once (one plan per statement, replaced).
    assert QueryPlan.objects.get(fingerprint_id=fingerprint_of("groups")).captured_at > explained_at
    assert (usage("r2"), release_requests(), active(second), active(third)) == ([1], 2, False, True)
