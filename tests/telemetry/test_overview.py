"""The admin overview: real requests (ok, failing) written by the sampler to the route
rollups, shown per route with rate, 5xx share and percentiles, linked to their traces;
failed traces, findings and the release; the page fits 1280 px in headless Chromium."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.http import HttpResponse
from django.test import Client
from django.urls import path
from django.utils import timezone
from selenium.webdriver.common.by import By

from telemetry import api
from telemetry.models import QueryReport, QuerySuggestion, RouteStat
from tests.live import admin_login, follow, horizontal_overflow
from tests.telemetry.test_usage import ARTIFACTS


def fine(request, number):
    return HttpResponse("fine")


def broken(request):
    raise RuntimeError("the overview's planted failure")


urlpatterns = [path("fine/<int:number>", fine), path("broken", broken), path("admin/", admin.site.urls)]

pytestmark = [pytest.mark.django_db(databases=["default", "telemetry"], transaction=True), pytest.mark.urls(__name__)]


def traffic():
    client = Client(raise_request_exception=False)
    for number in range(6):
        assert client.get(f"/fine/{number}").status_code == 200
    for _ in range(2):
        assert client.get("/broken").status_code == 500
    api.flush(sample=True)


def test_routes_are_rolled_up_exactly_and_shown_with_their_errors_and_links(admin_client):
    traffic()
    rows = {row.route: row for row in RouteStat.objects.all()}
    assert rows["/fine/<number>"].requests == 6 and rows["/fine/<number>"].server_errors == 0
    assert rows["/broken"].requests == 2 and rows["/broken"].server_errors == 2
    assert sum(getattr(rows["/broken"], f"bucket_{index}") for index in range(15)) == 2

    html = admin_client.get("/admin/telemetry/routestat/").content.decode()
    fine_row = html.split('data-route="/fine/&lt;number&gt;"')[1].split("</tr>")[0]
    assert '<td class="num requests">6</td>' in fine_row
    assert 'href="/admin/telemetry/trace/?route=%2Ffine%2F%3Cnumber%3E"' in fine_row
    broken_row = html.split('data-route="/broken"')[1].split("</tr>")[0]
    assert "100 % (2)" in broken_row and "status=error" in broken_row
    assert '<strong id="total-requests">8</strong>' in html.split('id="overview-routes"')[0]
    assert '<strong id="error-share">25 %</strong>' in html


def test_the_overview_fits_the_screen_at_1280_and_1920_px(browser, live_server, django_user_model):
    traffic()
    admin_login(browser, live_server.url, django_user_model)
    for width in (1280, 1920):
        browser.set_window_size(width, 1000)
        browser.get(live_server.url + "/admin/telemetry/routestat/")
        assert browser.find_element(By.ID, "overview-routes")
        overflow = horizontal_overflow(browser)
        assert overflow <= 0, f"{overflow} px of horizontal overflow at {width} px"
    browser.set_window_size(1400, 1000)
    browser.get(live_server.url + "/admin/telemetry/routestat/")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "overview.png"))
    row = browser.find_element(By.CSS_SELECTOR, '#overview-routes tr[data-route="/broken"]')
    follow(browser, row.find_element(By.LINK_TEXT, "100 % (2)"))
    assert "status=error" in browser.current_url and "route=%2Fbroken" in browser.current_url


def test_the_telemetry_index_opens_the_overview_and_lists_pages_in_workflow_order(admin_client):
    response = admin_client.get("/admin/telemetry/")
    assert response.status_code == 302 and response["Location"] == "/admin/telemetry/routestat/"
    html = admin_client.get("/admin/").content.decode()
    telemetry = html.split('class="app-telemetry')[1].split("</table>")[0]
    names = [name for name in ("Overview", "Traces", "Query insights", "Query findings", "Query plans",
                               "Query reports", "Usage", "Releases", "Logs") if f">{name}</a>" in telemetry]
    assert len(names) == 9
    assert sorted(names, key=telemetry.index) == names


def test_the_overview_shows_the_latest_reports_top_suggestions_linked_to_their_fingerprints(admin_client):
    html = admin_client.get("/admin/telemetry/routestat/").content.decode()
    assert "No optimization report yet" in html.split('id="overview-suggestions"')[1]
    report = QueryReport.objects.create(kind="optimization", period_start=timezone.now() - timedelta(hours=24),
                                        period_end=timezone.now(), built_at=timezone.now())
    for rank in range(1, 8):
        QuerySuggestion.objects.create(report=report, rank=rank, code="n_plus_one", source="runtime",
                                       fingerprint_id=f"f{rank}", table=f"table_{rank}", share_of_db_time=0.5 / rank)
    section = admin_client.get("/admin/telemetry/routestat/").content.decode().split('id="overview-suggestions"')[1]
    section = section.split("</table>")[0]
    assert section.count("<tr>") == 1 + 5 and "table_5" in section and "table_6" not in section
    assert 'href="/admin/telemetry/querystat/fingerprint/f1/"' in section and "50 %" in section
