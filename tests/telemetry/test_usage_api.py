"""The usage API: an organization's admins read their own hourly usage, written by real
requests; another organization's, or a viewer asking, is a 404; staff read any."""

import pytest

from telemetry import api
from tests.apps_builder.conftest import world  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])


@pytest.fixture
def used(world, api_client_for):
    """Three app loads by the own organization's viewer, written to the usage rollups."""
    viewer = api_client_for(world["users"]["viewer"])
    for _ in range(3):
        assert viewer.get(f"/api/apps/{world['own']['app'].slug}/view/").status_code == 200
    api.flush(sample=True)
    return world


def test_an_admin_reads_the_hourly_usage_of_their_organization(used, api_client_for):
    organization = used["own"]["org"]
    response = api_client_for(used["users"]["admin"]).get(f"/telemetry/api/usage/{organization.id}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["organization_id"] == str(organization.id)
    assert body["totals"]["requests"] >= 3 and body["totals"]["app_loads"] == 3
    assert len(body["hours"]) >= 1 and body["hours"][-1]["app_loads"] >= 1
    assert sum(hour["requests"] for hour in body["hours"]) == body["totals"]["requests"]


def test_another_organization_or_a_viewer_gets_404_and_staff_read_any(used, api_client_for, django_user_model):
    own, other = used["own"]["org"], used["other"]["org"]
    admin = api_client_for(used["users"]["admin"])
    assert admin.get(f"/telemetry/api/usage/{other.id}").status_code == 404
    assert admin.get("/telemetry/api/usage/no-such-organization").status_code == 404
    assert api_client_for(used["users"]["viewer"]).get(f"/telemetry/api/usage/{own.id}").status_code == 404
    assert api_client_for(used["users"]["builder"]).get(f"/telemetry/api/usage/{own.id}").status_code == 404
    staff = api_client_for(django_user_model.objects.create_user("usage-staff", password="pw-usage", is_staff=True))
    assert staff.get(f"/telemetry/api/usage/{own.id}").json()["totals"]["app_loads"] == 3
    assert staff.get(f"/telemetry/api/usage/{other.id}").json()["totals"]["app_loads"] == 0


def test_anonymous_callers_and_bad_ranges_are_refused(used, client, api_client_for):
    organization = used["own"]["org"]
    assert client.get(f"/telemetry/api/usage/{organization.id}").status_code == 401
    admin = api_client_for(used["users"]["admin"])
    url = f"/telemetry/api/usage/{organization.id}"
    assert "since" in admin.get(url, {"since": "yesterday"}).json()
    assert admin.get(url, {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}).status_code == 400
    too_long = admin.get(url, {"since": "2025-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"})
    assert too_long.status_code == 400 and "since" in too_long.json()
