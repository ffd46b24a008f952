"""The plan page: a real PostgreSQL plan from the pipeline shown as a tree in which only the
nodes whose own cost matters are highlighted, the JSON behind an expand, and a banner with
the reason and the command when plans or HypoPG proofs are unavailable."""

import json
import os
import re
import subprocess
import sys
from html import unescape

import pytest
from django.db import connection
from django.utils import timezone
from selenium.webdriver.common.by import By

from telemetry import api, testing
from telemetry.admin.queries import hypopg_unavailable, plan_tree
from telemetry.core.context import suppressed
from telemetry.models import QueryPlan
from tests.live import ROOT, admin_login, horizontal_overflow
from tests.telemetry.test_trace_admin import ARTIFACTS

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])

#: A million-row scan under a hash join beside a 21-row one: only the first matters.
TWO_SCANS = [{"Plan": {
    "Node Type": "Hash Join", "Total Cost": 20000.0, "Plan Rows": 50, "Hash Cond": "(o.customer_id = c.id)",
    "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "shop_order", "Alias": "o", "Total Cost": 18000.0,
         "Plan Rows": 1000000, "Filter": "(status = ?)"},
        {"Node Type": "Hash", "Total Cost": 1.3, "Plan Rows": 21, "Plans": [
            {"Node Type": "Seq Scan", "Relation Name": "shop_customer", "Alias": "shop_customer", "Total Cost": 1.2,
             "Plan Rows": 21}]},
    ]}}]
NODE_ROW = re.compile(r'<tr class="plan-node( hot)?" data-depth="(\d)" data-node-type="([^"]+)">')


def store(plan, **fields):
    return QueryPlan.objects.create(
        fingerprint_id=fields.pop("fingerprint_id", "f" * 32), alias="default", plan=plan,
        fingerprint=fields.pop("fingerprint", 'SELECT "o"."id" FROM "shop_order" "o" JOIN "shop_customer" "c" '
                                             'ON ("o"."customer_id" = "c"."id") WHERE "o"."status" = ?'),
        total_cost=plan[0]["Plan"]["Total Cost"], captured_at=timezone.now(), duration_ms=310.0, **fields)


def page(client, plan):
    response = client.get(f"/admin/telemetry/queryplan/{plan.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_only_the_nodes_whose_own_cost_matters_are_highlighted(admin_client):
    nodes = plan_tree(TWO_SCANS)
    assert [(node.depth, node.node_type, node.relation, node.estimated_rows) for node in nodes] == [
        (0, "Hash Join", "", 50), (1, "Seq Scan", "shop_order o", 1000000), (1, "Hash", "", 21),
        (2, "Seq Scan", "shop_customer", 21)]
    assert [round(node.share, 4) for node in nodes] == [1.0, 0.9, 0.0001, 0.0001]
    assert [round(node.own_share, 4) for node in nodes] == [0.0999, 0.9, 0.0, 0.0001]
    assert [node.highlighted for node in nodes] == [False, True, False, False]
    assert nodes[0].condition == "Hash Cond: (o.customer_id = c.id)"

    html = page(admin_client, store(TWO_SCANS))
    assert NODE_ROW.findall(html) == [("", "0", "Hash Join"), (" hot", "1", "Seq Scan"), ("", "1", "Hash"),
                                      ("", "2", "Seq Scan")]
    hot = html.split('<tr class="plan-node hot"')[1].split("</tr>")[0]
    assert "shop_order o" in hot and "1,000,000" in hot and "90 % (90 %)" in hot and 'style="width: 90%"' in hot
    details = html.split('id="plan-json"')[1].split("</details>")[0]
    assert json.loads(unescape(details.split("<pre>")[1].split("</pre>")[0])) == TWO_SCANS
    assert "historylink" not in html and "deletelink" not in html


def test_a_plan_from_the_pipeline_reads_as_a_tree_with_its_proven_index(admin_client, settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "SLOW_QUERY_MS": 0, "EXPLAIN_PER_MINUTE": 1000}
    with suppressed(), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE qp_orders (id bigserial PRIMARY KEY, customer_id integer NOT NULL, note text)")
        cursor.execute("CREATE TABLE qp_customers (id integer PRIMARY KEY, name text)")
        cursor.execute("INSERT INTO qp_orders (customer_id, note) "
                       "SELECT g % 5000, 'n' FROM generate_series(1, 60000) g")
        cursor.execute("INSERT INTO qp_customers SELECT g, 'c' FROM generate_series(1, 5000) g")
        cursor.execute("ANALYZE qp_orders")
        cursor.execute("ANALYZE qp_customers")
    api.flush(sample=True)
    testing.reset()
    with connection.cursor() as cursor:
        cursor.execute("SELECT o.id, c.name FROM qp_orders o JOIN qp_customers c ON c.id = o.customer_id "
                       "WHERE o.customer_id = %s", [4242])
    api.flush(sample=True)
    plan = QueryPlan.objects.get(fingerprint__icontains="qp_orders")
    html = page(admin_client, plan)
    rows = NODE_ROW.findall(html)
    assert [node_type for _, _, node_type in rows] == [node.node_type for node in plan_tree(plan.plan)]
    hot = [row for row in html.split('<tr class="plan-node')[1:] if row.startswith(" hot")]
    # The scan of the 60,000 orders is most of the cost; the primary-key lookup of a customer is not.
    assert len(hot) >= 1 and all("qp_customers" not in row.split("</tr>")[0] for row in hot)
    assert any("Seq Scan" in row and "qp_orders" in row.split("</tr>")[0] for row in hot)
    assert "proven by HypoPG" in html and "qp_orders_customer_id_idx" in html
    assert 'class="plan-banner"' not in html  # plans and proofs both work here


def test_banners_say_why_and_how_to_enable(admin_client, settings):
    plan = store(TWO_SCANS)
    settings.TELEMETRY = {**settings.TELEMETRY, "EXPLAIN_ENABLED": False}
    html = page(admin_client, plan)
    assert "Plans are off: EXPLAIN_ENABLED is False. To have slow statements explained:" in html
    assert "<code>TELEMETRY[&#x27;EXPLAIN_ENABLED&#x27;] = True</code>" in html
    settings.TELEMETRY = {**settings.TELEMETRY, "EXPLAIN_ENABLED": True, "QUERY_STATS_ENABLED": False}
    assert "Plans are off: QUERY_STATS_ENABLED is False." in page(admin_client, plan)
    settings.TELEMETRY = {**settings.TELEMETRY, "EXPLAIN_ENABLED": False}
    assert "Plans are off: QUERY_STATS_ENABLED and EXPLAIN_ENABLED are False." in page(admin_client, plan)
    settings.TELEMETRY = {**settings.TELEMETRY, "EXPLAIN_ENABLED": True}
    settings.TELEMETRY = {**settings.TELEMETRY, "QUERY_STATS_ENABLED": True, "HYPOPG_ENABLED": False}
    html = page(admin_client, plan)
    assert 'data-unavailable="proofs"' in html and "HypoPG proofs are off (HYPOPG_ENABLED is False)" in html
    assert "<code>TELEMETRY[&#x27;HYPOPG_ENABLED&#x27;] = True</code>" in html
    settings.TELEMETRY = {**settings.TELEMETRY, "HYPOPG_ENABLED": True}

    with suppressed(), connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS hypopg")  # rolled back with the test's transaction
    html = page(admin_client, plan)
    database = connection.settings_dict["NAME"]
    assert "HypoPG is installed but not created in the “default” database" in html
    assert f"<code>psql -d {database} -c &#x27;CREATE EXTENSION hypopg;&#x27;</code>" in html
    # A server without the package: the package of its major version, then the extension.
    missing = hypopg_unavailable("default", 150018, available=False, created=False)
    assert missing.reason.startswith("HypoPG is not installed on the PostgreSQL 15 server of the “default” database")
    assert missing.commands == ("apt install postgresql-15-hypopg", f"psql -d {database} -c 'CREATE EXTENSION hypopg;'")
    assert hypopg_unavailable("default", 160004, available=True, created=True) is None


SQLITE_PLAN_PAGE = """
import json, django
django.setup()
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from telemetry.models import QueryPlan
call_command("migrate", database="telemetry", verbosity=0)
call_command("migrate", verbosity=0)
plan = QueryPlan.objects.create(fingerprint_id="a" * 32, alias="default", fingerprint="SELECT 1",
                                captured_at=timezone.now(),
                                plan=[{"Plan": {"Node Type": "Result", "Total Cost": 0.01, "Plan Rows": 1}}])
User.objects.create_superuser("admin", "a@example.com", "pw")
client = Client()
client.login(username="admin", password="pw")
print(json.dumps(client.get(f"/admin/telemetry/queryplan/{plan.pk}/change/").content.decode()))
"""


def test_on_sqlite_the_banner_says_plans_need_postgresql(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'platform.sqlite3'}",
           "TELEMETRY_DATABASE_URL": f"sqlite:///{tmp_path / 'telemetry.sqlite3'}"}
    result = subprocess.run([sys.executable, "-c", SQLITE_PLAN_PAGE], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    html = json.loads(result.stdout.strip().splitlines()[-1])
    banner = html.split('<div class="plan-banner" data-unavailable="plans">')[1].split("</div>")[0]
    assert ("Plans need PostgreSQL: EXPLAIN runs on PostgreSQL databases only, and this project&#x27;s are sqlite"
            in banner)
    assert "<code>DATABASE_URL=postgres://user:password@host/db make demo</code>" in banner


@pytest.mark.django_db(transaction=True, databases=["default", "telemetry"])
def test_the_plan_page_fits_1280_and_1920_px(browser, live_server, django_user_model):
    long_filter = " AND ".join(f"(column_{index} = ?)" for index in range(60))
    plan = store([{"Plan": {**TWO_SCANS[0]["Plan"], "Plans": [
        {**TWO_SCANS[0]["Plan"]["Plans"][0], "Filter": long_filter}, TWO_SCANS[0]["Plan"]["Plans"][1]]}}],
        fingerprint="SELECT " + ", ".join(f'"shop_order"."column_{index}"' for index in range(80))
        + ' FROM "shop_order" WHERE ' + long_filter)
    admin_login(browser, live_server.url, django_user_model)
    for width in (1280, 1920):
        browser.set_window_size(width, 1000)
        browser.get(f"{live_server.url}/admin/telemetry/queryplan/{plan.pk}/change/")
        assert browser.find_element(By.ID, "plan-tree")
        overflow = horizontal_overflow(browser)
        assert overflow <= 0, f"{overflow} px of horizontal overflow at {width} px"
    hot = browser.find_elements(By.CSS_SELECTOR, "#plan-tree tr.hot")
    assert len(hot) == 1 and "shop_order o" in hot[0].text
    assert not browser.find_element(By.CSS_SELECTOR, "#plan-json pre").is_displayed()
    browser.find_element(By.CSS_SELECTOR, "#plan-json summary").click()
    assert browser.find_element(By.CSS_SELECTOR, "#plan-json pre").is_displayed()
    assert horizontal_overflow(browser) <= 0
    ARTIFACTS.mkdir(exist_ok=True)
    browser.set_window_size(1400, 1000)
    browser.save_screenshot(str(ARTIFACTS / "query_plan.png"))
