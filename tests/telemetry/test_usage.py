"""Hourly usage rollups per organization: real requests and plugin runs through the
platform API become exact rows per organization and hour (independent of trace
sampling), storage comes from the provider, several processes add up exactly, the
in-process tables are bounded, retention deletes old rows only, and the admin dashboard
shows the numbers in headless Chromium."""

import os
import subprocess
import sys
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone
from prometheus_client import REGISTRY
from selenium.webdriver.common.by import By

import plugins
from apps_builder import views
from apps_builder.models import DataQuery
from apps_builder.telemetry_hooks import storage_usage
from telemetry import api, testing
from telemetry.models import OrganizationDatasourceUsage, OrganizationUsage, ReleaseRouteStats
from telemetry.tasks import purge_usage, sample_storage_usage
from telemetry.usage import rollups as usage
from tests.apps_builder.conftest import world  # noqa: F401 - fixture
from tests.live import ROOT, admin_login, follow

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DATABASES = ["default", "telemetry"]
COUNT_FIELDS = ("requests", "errors", "app_loads", "query_runs", "query_failures", "active_users")


@pytest.fixture(autouse=True)
def fresh_usage(settings):
    """Every trace dropped by sampling (usage must not depend on it); nothing an earlier
    test left pending in this process."""
    settings.TELEMETRY = {**settings.TELEMETRY, "TRACE_SAMPLE_RATE": 0.0}
    api.flush(sample=True)
    testing.reset()
    plugins.connection_cache.clear()
    yield
    plugins.connection_cache.clear()


def current_hour():
    return timezone.now().replace(minute=0, second=0, microsecond=0)


def stored(organization):
    """organization -> [(hour, counts...)], and its datasource rows."""
    organization_id = str(organization.pk)
    rows = [(row.hour, *(getattr(row, name) for name in COUNT_FIELDS))
            for row in OrganizationUsage.objects.filter(organization_id=organization_id).order_by("hour")]
    kinds = {(row.hour, row.kind): (row.runs, row.failures)
             for row in OrganizationDatasourceUsage.objects.filter(organization_id=organization_id)}
    return rows, kinds


def drive_traffic(world, api_client_for, make_member, monkeypatch):
    """Organization A: two viewer loads (each runs two on-load queries that fail: one
    lacks its ``city`` parameter, one is broken), an editor page, a query run, a REST API
    run that fails with a 502 and a request that fails with a 500; B: one viewer load.
    Listings name no organization and count for nobody."""
    own, other = world["own"], world["other"]
    viewer = api_client_for(world["users"]["viewer"])
    other_viewer = api_client_for(make_member(other["org"], "viewer"))
    for _ in range(2):
        assert viewer.get(f"/api/apps/{own['app'].slug}/view").status_code == 200
    assert viewer.get(f"/api/apps/{own['app'].slug}/").status_code == 200
    assert viewer.post(f"/api/data-queries/{own['query'].pk}/run", {"parameters": {"city": "Oslo"}},
                       format="json").status_code == 200
    rest = DataQuery.objects.create(app=own["app"], data_source=own["spare"], name="rest",
                                    options={"method": "GET", "path": "/customers"})
    assert viewer.post(f"/api/data-queries/{rest.pk}/run", {}, format="json").status_code == 502
    assert viewer.get("/api/apps/").status_code == 200

    def failing(self, request, *args, **kwargs):
        self.get_object()  # names the organization, as every detail action does
        raise RuntimeError("boom")

    monkeypatch.setattr(views.AppViewSet, "retrieve", failing)
    viewer.raise_request_exception = False
    assert viewer.get(f"/api/apps/{own['app'].slug}/").status_code == 500
    monkeypatch.undo()
    assert other_viewer.get(f"/api/apps/{other['app'].slug}/view").status_code == 200


@pytest.mark.django_db(databases=DATABASES)
def test_requests_and_query_runs_roll_up_exactly_per_organization_and_hour(world, api_client_for, make_member,
                                                                          monkeypatch):
    drive_traffic(world, api_client_for, make_member, monkeypatch)
    assert OrganizationUsage.objects.count() == 0  # nothing is written on the request path
    before = current_hour()
    api.flush(sample=True)  # one drain: every event of it counts in the drain's hour
    hour = OrganizationUsage.objects.values_list("hour", flat=True).first()
    assert hour in (before, current_hour())
    # A: 6 requests (2 loads, editor page, 2 runs, the 500), 2 of them 5xx (502, 500);
    # runs: 2 x 2 on load (all failing) and 2 through the API (the REST one failing).
    own_rows, own_kinds = stored(world["own"]["org"])
    assert own_rows == [(hour, 6, 2, 2, 6, 5, 1)]
    assert own_kinds == {(hour, "sqlite"): (5, 4), (hour, "restapi"): (1, 1)}
    other_rows, other_kinds = stored(world["other"]["org"])
    assert other_rows == [(hour, 1, 0, 1, 2, 2, 1)]
    assert other_kinds == {(hour, "sqlite"): (2, 2)}
    # The next sample adds to the same rows; peak active users stays a maximum.
    viewer = api_client_for(world["users"]["viewer"])
    assert viewer.get(f"/api/apps/{world['own']['app'].slug}/view").status_code == 200
    api.flush(sample=True)
    assert stored(world["own"]["org"])[0] == [(hour, 7, 2, 3, 8, 7, 1)]
    assert stored(world["other"]["org"])[0] == other_rows


@pytest.mark.django_db(databases=DATABASES)
def test_storage_is_the_providers_latest_sample_of_the_hour(world):
    expected = {}
    for _, organization_id, size in storage_usage():
        expected[str(organization_id)] = expected.get(str(organization_id), 0) + size
    sample_storage_usage()
    own, other = str(world["own"]["org"].pk), str(world["other"]["org"].pk)
    stored_bytes = dict(OrganizationUsage.objects.filter(organization_id__in=[own, other])
                        .values_list("organization_id", "storage_bytes"))
    assert stored_bytes == {own: expected[own], other: expected[other]} and expected[own] > 0
    app = world["own"]["app"]
    app.definition = {"pages": ["x" * 5000]}
    app.save()
    sample_storage_usage()
    row = OrganizationUsage.objects.get(organization_id=own)
    assert row.storage_bytes > expected[own] + 4000  # replaced by the new sample, not added
    assert (row.requests, row.query_runs) == (0, 0)
    assert OrganizationUsage.objects.get(organization_id=other).storage_bytes == expected[other]


WRITER = """
import django, sys
from datetime import datetime, timezone
django.setup()
from telemetry.usage import rollups as usage

class Batch:
    hour = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)

batch = Batch()
for step in range(int(sys.argv[1])):
    for organization in ("71", "72"):
        usage.request(batch, organization, 500 if step % 4 == 0 else 200, "app_view")
        usage.query_run(batch, organization, "sqlite", "error" if step % 2 else "success")
    if step % 10 == 9:
        usage.write_pending()
usage.write_pending()
"""


@pytest.mark.django_db(databases=DATABASES, transaction=True)
def test_two_processes_writing_the_same_rows_stay_exact():
    settings_dict = connections["telemetry"].settings_dict
    url = (f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD']}@{settings_dict['HOST']}:"
           f"{settings_dict['PORT']}/{settings_dict['NAME']}")
    env = {**os.environ, "TELEMETRY_DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, "200"], cwd=ROOT, env=env) for _ in range(2)]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    hour = datetime(2026, 1, 1, 10, tzinfo=dt_timezone.utc)
    for organization in ("71", "72"):
        row = OrganizationUsage.objects.get(organization_id=organization, hour=hour)
        counts = (row.requests, row.errors, row.app_loads, row.query_runs, row.query_failures)
        assert counts == (400, 100, 300, 400, 200)
        kind = OrganizationDatasourceUsage.objects.get(organization_id=organization, hour=hour, kind="sqlite")
        assert (kind.runs, kind.failures) == (400, 200)


def test_the_pending_tables_are_bounded_and_drops_are_counted():
    class Batch:
        hour = datetime(2026, 1, 1, 10, tzinfo=dt_timezone.utc)

    tables = usage.UsageTables(max_keys=3)
    reported_before = REGISTRY.get_sample_value("telemetry_usage_dropped_total") or 0.0
    for organization in range(5):
        tables.request(Batch, organization + 1, 200, None)
        tables.request(Batch, organization + 1, 200, None)
        tables.query_run(Batch, organization + 1, "sqlite", "success")
    assert tables.dropped() == 2 * 2 + 2 + 2  # requests, then runs in both tables, of organizations 4 and 5
    pending = tables.organizations.take()
    assert sorted(organization for organization, _ in pending) == ["1", "2", "3"]
    assert [(row.requests, row.query_runs) for row in pending.values()] == [(2, 1)] * 3  # admitted keys keep counting
    assert len(tables.datasources) == 3
    tables.reset()
    assert len(tables.datasources) == 0
    tables.drops.report()
    assert REGISTRY.get_sample_value("telemetry_usage_dropped_total") - reported_before == 8


@pytest.mark.django_db(databases=DATABASES)
def test_retention_deletes_rollups_older_than_the_setting_and_nothing_else(settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "USAGE_RETENTION_DAYS": 30}
    now = current_hour()
    ages = {"old": timedelta(days=31), "older": timedelta(days=400), "recent": timedelta(days=29, hours=23)}
    for name, age in ages.items():
        OrganizationUsage.objects.create(organization_id=name, hour=now - age, requests=1)
        OrganizationDatasourceUsage.objects.create(organization_id=name, hour=now - age, kind="sqlite", runs=1)
    ReleaseRouteStats.objects.create(release="1", route="/r", hour=now - timedelta(days=400), count=1)
    assert purge_usage() == 4
    assert list(OrganizationUsage.objects.values_list("organization_id", flat=True)) == ["recent"]
    assert list(OrganizationDatasourceUsage.objects.values_list("organization_id", flat=True)) == ["recent"]
    assert ReleaseRouteStats.objects.count() == 1


@pytest.mark.django_db(databases=DATABASES)
def test_the_dashboard_is_for_staff_only(client, django_user_model):
    user = django_user_model.objects.create_user("plain", password="pw")
    client.force_login(user)
    for url in ("/admin/telemetry/organizationusage/", "/admin/telemetry/organizationusage/organization/1/"):
        assert client.get(url).status_code == 302


def failing_names(ids):
    raise RuntimeError("the host's name lookup is down")


@pytest.mark.django_db(databases=DATABASES)
def test_a_failing_name_resolver_shows_ids_and_is_counted(admin_client, settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "ORGANIZATION_NAME_RESOLVER": f"{__name__}.failing_names"}
    OrganizationUsage.objects.create(organization_id="41", hour=timezone.now(), requests=3)
    errors = {"component": "organization_names"}
    before = REGISTRY.get_sample_value("telemetry_internal_errors_total", errors) or 0.0
    html = admin_client.get("/admin/telemetry/organizationusage/").content.decode()
    assert '<a href="/admin/telemetry/organizationusage/organization/41/?hours=24">41</a>' in html
    page = admin_client.get("/admin/telemetry/organizationusage/organization/41/")
    assert page.status_code == 200 and "Usage of organization 41" in page.content.decode()
    assert REGISTRY.get_sample_value("telemetry_internal_errors_total", errors) == before + 2


@pytest.mark.django_db(databases=DATABASES, transaction=True)
def test_the_dashboard_shows_each_organizations_numbers_in_chromium(world, api_client_for, make_member,
                                                                    monkeypatch, browser, live_server,
                                                                    django_user_model):
    drive_traffic(world, api_client_for, make_member, monkeypatch)
    api.flush(sample=True)
    sample_storage_usage()
    own, other = str(world["own"]["org"].pk), str(world["other"]["org"].pk)
    storage = OrganizationUsage.objects.get(organization_id=own).storage_bytes
    assert 0 < storage < 1024
    ARTIFACTS.mkdir(exist_ok=True)
    admin_login(browser, live_server.url, django_user_model)

    browser.get(live_server.url + "/admin/")
    follow(browser, browser.find_element(By.LINK_TEXT, "Usage"))

    def cells(organization, names=("requests", "errors", "app-loads", "query-runs", "query-failures",
                                   "active-users", "storage")):
        row = browser.find_element(By.CSS_SELECTOR, f'#usage-organizations tr[data-organization="{organization}"]')
        return [row.find_element(By.CSS_SELECTOR, f"td.{name}").text
                for name in names]

    assert cells(own) == ["6", "2", "2", "6", "5", "1", f"{storage} B"]
    assert cells(other)[:6] == ["1", "0", "1", "2", "2", "1"]
    follow(browser, browser.find_element(By.LINK_TEXT, "last 7 days"))
    assert "hours=168" in browser.current_url and cells(own)[0] == "6"
    browser.save_screenshot(str(ARTIFACTS / "usage_dashboard.png"))

    # Names from the platform's ORGANIZATION_NAME_RESOLVER, with the id.
    follow(browser, browser.find_element(By.LINK_TEXT, f"{world['own']['org'].name} ({own})"))
    summary = browser.find_element(By.ID, "usage-summary").text
    for label, value in (("Requests", "6"), ("Errors (5xx)", "2"), ("App loads", "2"), ("Query runs", "6"),
                         ("Query failures", "5"), ("Peak active users", "1")):
        assert f"{label}\n{value}" in summary
    assert f"Storage\n{storage} B" in summary
    charts = {chart.get_attribute("id"): chart for chart in browser.find_elements(By.CSS_SELECTOR, ".usage-chart")}
    assert set(charts) == {"chart-requests", "chart-errors", "chart-query_runs", "chart-app_loads",
                           "chart-active_users", "chart-storage"}
    assert charts["chart-requests"].find_element(By.TAG_NAME, "svg").get_attribute("data-total") == "6"
    assert charts["chart-query_runs"].find_element(By.TAG_NAME, "svg").get_attribute("data-total") == "6"
    assert "sqlite" in charts["chart-query_runs"].text and "restapi" in charts["chart-query_runs"].text
    assert len(charts["chart-query_runs"].find_elements(By.TAG_NAME, "rect")) == 2  # one hour, two kinds
    assert len(charts["chart-storage"].find_elements(By.TAG_NAME, "circle")) == 1
    datasources = browser.find_element(By.ID, "usage-datasources")
    assert datasources.find_element(By.CSS_SELECTOR, 'tr[data-kind="sqlite"] td.runs').text == "5"
    assert datasources.find_element(By.CSS_SELECTOR, 'tr[data-kind="sqlite"] td.failures').text == "4"
    assert datasources.find_element(By.CSS_SELECTOR, 'tr[data-kind="restapi"] td.failures').text == "1"
    browser.save_screenshot(str(ARTIFACTS / "usage_organization.png"))
