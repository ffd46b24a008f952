"""The query-intelligence admin pages in a real headless Chromium against a live server."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By

from telemetry.admin.queries import compact
from telemetry.models import QueryFinding, QueryPlan, QueryStat
from telemetry.queries import reports
from tests.live import admin_login, follow, horizontal_overflow

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"], transaction=True)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def browser(browser):
    browser.set_window_size(1400, 1800)
    return browser


@pytest.fixture
def stored():
    """Three fingerprints this hour, a finding with a trace, a proven plan, and the
    optimization report the task builds from them."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    specs = [("orders", 'SELECT * FROM "shop_order" WHERE "customer_id" = ?', 20, 4000.0, {9: 20}),
             ("users", 'SELECT "id" FROM "auth_user" WHERE "id" = ?', 900, 450.0, {0: 900}),
             ("items", 'SELECT "id" FROM "shop_item" WHERE "order_id" = ?', 300, 900.0, {2: 300})]
    QueryStat.objects.bulk_create([
        QueryStat(fingerprint_id=key, alias="default", hour=hour, fingerprint=text, operation="select",
                  tables=text.split('"')[3], complexity="low", calls=calls, total_ms=total, min_ms=0.5,
                  max_ms=total / calls * 2, rows=calls, first_seen=hour, last_seen=hour,
                  **{f"bucket_{index}": count for index, count in buckets.items()})
        for key, text, calls, total, buckets in specs
    ])
    QueryFinding.objects.create(code="n_plus_one", fingerprint_id="items", fingerprint=specs[2][1], alias="default",
                                call_site="apps_builder/views.py:88 in load", repetitions=30, trace_id=TRACE_ID,
                                created_at=timezone.now() - timedelta(minutes=1))
    QueryPlan.objects.create(
        fingerprint_id="orders", alias="default", fingerprint=specs[0][1], total_cost=1693.0,
        captured_at=timezone.now(),
        plan=[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "shop_order", "Total Cost": 1693.0,
                        "Filter": "(customer_id = ?)"}}],
        seq_scans=[{"schema": "public", "table": "shop_order", "filter": "(customer_id = ?)", "cost": 1693.0}],
        candidates=[{"schema": "public", "table": "shop_order", "columns": ["customer_id"], "table_rows": 50000,
                     "create_statement": 'CREATE INDEX CONCURRENTLY "shop_order_customer_id_idx" ON '
                                         '"public"."shop_order" ("customer_id");',
                     "cost_before": 1693.0, "cost_after": 8.3, "gain": 0.9951, "proven": True}],
    )
    return reports.build_optimization_report(hours=24), reports.build_slow_query_report(hours=24)


def order(browser):
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.fingerprint-row")
    return [row.get_attribute("data-fingerprint") for row in rows]


def test_fingerprint_table_report_and_evidence(browser, live_server, django_user_model, stored):
    optimization, slow = stored
    admin_login(browser, live_server.url, django_user_model)
    browser.get(live_server.url + "/admin/telemetry/querystat/")
    assert "shop_order" in browser.find_element(By.ID, "fingerprints").text
    for width in (1280, 1920):  # with the navigation sidebar open
        browser.set_window_size(width, 1000)
        assert horizontal_overflow(browser) <= 0, width
        heights = {row.size["height"] for row in browser.find_elements(By.CSS_SELECTOR, "tr.fingerprint-row")}
        assert max(heights) < 60, heights  # a statement never wraps: one line and its facts
    assert order(browser) == ["orders", "items", "users"]  # by total time
    follow(browser, browser.find_element(By.ID, "sort-calls"))
    assert order(browser) == ["users", "items", "orders"]
    follow(browser, browser.find_element(By.ID, "sort-calls"))
    assert order(browser) == ["orders", "items", "users"]  # ascending on the second click
    follow(browser, browser.find_element(By.LINK_TEXT, "n_plus_one"))  # suggestion filter
    assert order(browser) == ["items"]
    browser.get(live_server.url + "/admin/telemetry/querystat/?table=auth_user")
    assert order(browser) == ["users"]

    browser.get(live_server.url + "/admin/telemetry/querystat/")
    follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "Optimization"))
    missing = browser.find_element(By.CSS_SELECTOR, '.suggestion[data-code="missing_index"]')
    assert 'CREATE INDEX CONCURRENTLY "shop_order_customer_id_idx"' in missing.text
    assert "proven by HypoPG" in missing.text
    assert "100 % lower cost" in missing.find_element(By.CSS_SELECTOR, ".gain").text
    assert "Seq Scan" in missing.find_element(By.CSS_SELECTOR, "mark.seq-scan").text
    n_plus_one = browser.find_element(By.CSS_SELECTOR, '.suggestion[data-code="n_plus_one"]')
    assert "apps_builder/views.py:88 in load" in n_plus_one.text
    link = n_plus_one.find_element(By.CSS_SELECTOR, "a.trace-link")
    assert link.get_attribute("href") == f"{live_server.url}/admin/telemetry/trace/{TRACE_ID}/change/"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "query_admin.png"))

    browser.get(f"{live_server.url}/admin/telemetry/queryreport/{slow.pk}/change/")
    assert "Top by p95" in browser.page_source and "shop_order" in browser.page_source
    browser.get(live_server.url + "/admin/telemetry/querystat/fingerprint/orders/")
    assert "shop_order_customer_id_idx" in browser.page_source
    assert browser.find_elements(By.CSS_SELECTOR, "mark.seq-scan")


def test_detail_pages_are_read_only_and_rows_are_named(admin_client):
    finding = QueryFinding.objects.using("telemetry").create(
        code="n_plus_one", fingerprint_id="f" * 32, fingerprint="SELECT ... FROM app WHERE id = ?", alias="default",
        route="/api/apps/<slug>/", repetitions=6, duration_ms=12.345, created_at=timezone.now())
    assert str(finding) == "n plus one on /api/apps/<slug>/ (6x, 12.3 ms)"
    page = admin_client.get(f"/admin/telemetry/queryfinding/{finding.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "historylink" not in html and "deletelink" not in html and 'name="_save"' not in html
    assert admin_client.get(f"/admin/telemetry/queryfinding/{finding.pk}/delete/").status_code == 403
    assert "QueryFinding object" not in admin_client.get("/admin/telemetry/queryfinding/").content.decode()


def test_long_statements_keep_from_and_where_on_one_line():
    columns = ", ".join(f'"apps_builder_app"."column_{index}"' for index in range(40))
    statement = f'SELECT {columns}\n  FROM "apps_builder_app" WHERE "apps_builder_app"."slug" = ? LIMIT ?'
    shown = compact(statement)
    assert shown == 'SELECT … FROM "apps_builder_app" WHERE "apps_builder_app"."slug" = ? LIMIT ?'
    long_where = 'SELECT "id" FROM "t" WHERE ' + " AND ".join(f'"c{index}" = ?' for index in range(60))
    assert len(compact(long_where)) == 140 and compact(long_where).endswith("…")
    assert compact("SELECT 1") == "SELECT 1"


def test_empty_plan_and_report_pages_say_why(admin_client, settings):
    plans = admin_client.get("/admin/telemetry/queryplan/").content.decode()
    assert "No plan yet: a PostgreSQL statement slower than SLOW_QUERY_MS" in plans
    settings.TELEMETRY = {**settings.TELEMETRY, "EXPLAIN_ENABLED": False}
    assert "Plans are off" in admin_client.get("/admin/telemetry/queryplan/").content.decode()
    reports_page = admin_client.get("/admin/telemetry/queryreport/").content.decode()
    assert "No report yet: Celery beat builds them" in reports_page
    assert "reports.build_slow_query_report()" in reports_page

    reports.build_slow_query_report(hours=24)
    assert "No report yet" not in admin_client.get("/admin/telemetry/queryreport/").content.decode()
