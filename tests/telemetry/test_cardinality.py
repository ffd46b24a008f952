"""The series count stays bounded whatever paths and organizations clients send."""

import random

import pytest
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path
from prometheus_client import REGISTRY

from telemetry import api, testing


def org_view(request, org_id):
    request.organization_id = org_id
    return HttpResponse("ok")


urlpatterns = [path("orgs/<str:org_id>/ping", org_view)]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def series(metric_name):
    api.flush()
    return {
        tuple(sorted(sample.labels.items()))
        for metric in REGISTRY.collect() if metric.name == metric_name
        for sample in metric.samples if sample.name.endswith("_count")
    }


@override_settings(TELEMETRY={"METRICS_ENABLED": True, "MAX_ORGANIZATIONS": 20, "MAX_ROUTES": 50})
def test_ten_thousand_random_paths_and_organizations_leave_series_bounded(client):
    testing.reset()
    before = series("http_server_request_duration_seconds")
    generator = random.Random(7)
    for index in range(10_000):
        if index % 2:
            client.get(f"/random/{generator.getrandbits(64):x}/{index}")
        else:
            client.get(f"/orgs/org-{generator.getrandbits(32)}/ping")
    added = series("http_server_request_duration_seconds") - before
    org_values = {dict(key)["organization_id"] for key in added}
    routes = {dict(key)["http_route"] for key in added}
    # 20 admitted organizations + "other" on the org route; unknown paths share "unmatched".
    assert len(org_values - {""}) <= 21
    assert "other" in org_values
    assert routes <= {"unmatched", "/orgs/<org_id>/ping"}
    assert len(added) <= 23


def test_forty_apps_by_ten_query_names_stay_within_the_family_budget(settings, samples):
    """Each label is capped on its own (500 apps, 500 query names): their product is what
    the family budget bounds."""
    family = "app_query_execution_seconds"
    before = series(family)
    settings.TELEMETRY = {**settings.TELEMETRY, "MAX_SERIES_PER_FAMILY": len(before) + 25}
    folded = samples.snapshot("telemetry_series_folded_total", {"family": family})
    for app in range(40):
        for name in range(10):
            api.record_app_query(f"budget-app-{app}", f"query-{name}", "success", "postgresql", 0.01)
    after = series(family)
    others = {labels for labels in after if dict(labels)["app_id"] == "other"}
    assert len(after) <= len(before) + 25 + 1
    assert len(others) == 1 and dict(next(iter(others))) == {
        "app_id": "other", "query_name": "other", "status": "other", "datasource_type": "other"}
    assert folded() == 400 - 25
