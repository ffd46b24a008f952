"""The problems the demo plants for query intelligence to find, through the real pipeline
(request -> execute wrapper -> ``telemetry.api.flush()`` -> detectors -> EXPLAIN/HypoPG)
on PostgreSQL: the N+1 of the apps overview and the missing index of the activity feed."""

import pytest
from django.db import connection
from django.utils import timezone

from apps_builder.models import AuditEvent
from telemetry import api, testing
from telemetry.core.context import suppressed
from telemetry.models import QueryFinding, QueryPlan
from tests.apps_builder.conftest import apps_for_the_overview

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])


@pytest.fixture(autouse=True)
def fresh_detectors():
    """Findings are kept once a minute per fingerprint and process; plans once per interval."""
    api.flush(sample=True)
    testing.reset()
    QueryFinding.objects.using("telemetry").all().delete()
    QueryPlan.objects.using("telemetry").all().delete()


@pytest.fixture
def viewer(org, make_member):
    return make_member(org, "viewer")


def insert_audit_events(organizations, count):
    """``count`` events spread over ``organizations`` and 200 subjects ``app:0`` ... ``app:199``,
    at random times (as the demo seed does, in one statement)."""
    with suppressed(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO apps_builder_auditevent (organization_id, action, subject, created_at) "
            "SELECT (%s::bigint[])[1 + g %% %s], 'app.update', 'app:' || (g / %s %% 200), "
            "now() - random() * interval '30 days' FROM generate_series(0, %s - 1) g",
            [[organization.pk for organization in organizations], len(organizations), len(organizations), count],
        )
        cursor.execute("ANALYZE apps_builder_auditevent")


def test_activity_is_the_latest_events_of_one_subject_of_the_callers_organization(
        org, other_org, viewer, make_member, api_client_for):
    insert_audit_events([org, other_org], 4000)
    expected = list(AuditEvent.objects.filter(organization=org, subject="app:7")
                    .order_by("-created_at").values_list("id", flat=True)[:50])
    client = api_client_for(viewer)

    response = client.get(f"/api/organizations/{org.pk}/activity", {"subject": "app:7"})

    assert response.status_code == 200, response.content
    assert [event["id"] for event in response.json()] == expected
    assert len(expected) == 10  # 4000 rows / 2 organizations / 200 subjects
    assert {event["subject"] for event in response.json()} == {"app:7"}
    assert client.get(f"/api/organizations/{other_org.pk}/activity", {"subject": "app:7"}).status_code == 404
    assert client.get(f"/api/organizations/{org.pk}/activity").status_code == 400
    outsider = api_client_for(make_member(other_org, "admin"))
    assert outsider.get(f"/api/organizations/{org.pk}/activity", {"subject": "app:7"}).status_code == 404


def test_app_changes_are_written_to_the_activity_feed(org, make_member, api_client_for):
    builder = make_member(org, "builder")
    client = api_client_for(builder)
    created = client.post("/api/apps/", {"organization": org.pk, "name": "Audited", "slug": "audited"},
                          format="json")
    assert created.status_code == 201, created.content
    client.patch("/api/apps/audited/", {"name": "Audited twice"}, format="json")
    client.post("/api/apps/audited/versions/", {"name": "v1"}, format="json")
    client.post("/api/apps/audited/release", {"version": "v1"}, format="json")

    feed = client.get(f"/api/organizations/{org.pk}/activity", {"subject": "app:audited"}).json()

    assert [event["action"] for event in feed] == ["app.release", "app.update", "app.create"]
    assert {(event["app"], event["actor"]) for event in feed} == {("audited", builder.username)}


def test_the_apps_overview_is_reported_as_an_n_plus_one(org, viewer, api_client_for):
    apps_for_the_overview(org)

    response = api_client_for(viewer).get(f"/api/organizations/{org.pk}/apps-overview")

    assert response.status_code == 200
    assert [(row["slug"], row["query_count"], row["latest_version"]) for row in response.json()] == [
        (f"app-{number}", 1, "v1") for number in range(6)]
    api.flush(sample=True)
    found = QueryFinding.objects.using("telemetry").filter(code="n_plus_one")
    tables = sorted(table for table in ("apps_builder_dataquery", "apps_builder_appversion")
                    if any(table in finding.fingerprint for finding in found))
    assert tables == ["apps_builder_appversion", "apps_builder_dataquery"]
    for finding in found:
        assert finding.repetitions == 6
        assert "apps-overview" in finding.route
        assert finding.call_site.startswith("apps_builder/views.py:")
        assert finding.organization_id == str(org.pk)


def test_the_activity_statement_gets_a_plan_and_a_proven_index_on_subject(
        org, other_org, viewer, api_client_for, settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "SLOW_QUERY_MS": 0, "EXPLAIN_PER_MINUTE": 1000}
    insert_audit_events([org, other_org], 50_000)
    started = timezone.now()

    response = api_client_for(viewer).get(f"/api/organizations/{org.pk}/activity", {"subject": "app:42"})

    assert response.status_code == 200 and len(response.json()) == 50
    api.flush(sample=True)
    slow = QueryFinding.objects.using("telemetry").filter(
        code="slow", fingerprint__contains="apps_builder_auditevent", created_at__gte=started)
    assert slow.count() == 1 and "app:42" not in slow.get().fingerprint
    plan = QueryPlan.objects.using("telemetry").get(fingerprint__contains='"apps_builder_auditevent"."subject"')
    assert [scan["table"] for scan in plan.seq_scans] == ["apps_builder_auditevent"]
    [candidate] = plan.candidates
    assert candidate["table"] == "apps_builder_auditevent"
    assert "subject" in candidate["columns"]
    assert candidate["proven"] is True and candidate["gain"] >= 0.5
    assert "app:42" not in str([plan.plan, plan.seq_scans, plan.candidates])
