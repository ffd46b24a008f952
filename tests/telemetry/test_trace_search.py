"""The trace list's search (route, status code, organization, durations, a span attribute,
an absolute time range) and its duration scatter: on PostgreSQL through the GIN index of
span attributes, on SQLite bounded and said so; bad input is a message, never a 500."""

import json
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from selenium.webdriver.common.by import By

from telemetry.admin import trace_search
from telemetry.models import Span, Trace
from tests.live import ROOT, admin_login, follow, horizontal_overflow
from tests.telemetry.test_trace_admin import ARTIFACTS, store_trace

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])

RECENT = "1" * 32
FAILED = "2" * 32
OLD = "3" * 32
SCATTER_DOT = re.compile(r'<a href="/admin/telemetry/trace/(\w{32})/change/" class="scatter-dot" '
                         r'data-trace-id="\w{32}"><circle class="scatter-(ok|error)"')


def store_three():
    """A fast 200 of organization 7 (user 42, a number), a failed 1.2 s request of
    organization 8 (user "43", a string; a REST plugin run) and a 404 of three days ago
    (user "42")."""
    store_trace(RECENT, "7", (
        ("a100000000000001", "", "GET /api/apps/", 0, 20, "unset", {"user.id": 42, "organization.id": "7"}),
        ("a100000000000002", "a100000000000001", "postgresql.query", 2, 6, "unset",
         {"db.system": "postgresql", "db.collection.name": "apps_builder_app"}),
    ), route="/api/apps/")
    store_trace(FAILED, "8", (
        ("a200000000000001", "", "POST /api/data-queries/<int:pk>/run", 0, 1200, "error", {"user.id": "43"}),
        ("a200000000000002", "a200000000000001", "plugin.run restapi", 5, 1100, "error",
         {"plugin.kind": "restapi", "http.url": "https://example.com/a=b"}),
    ), route="/api/data-queries/<int:pk>/run")
    store_trace(OLD, "7", (
        ("a300000000000001", "", "GET /api/apps/", 0, 300, "unset", {"user.id": "42"}),
    ), route="/api/apps/", minutes_ago=3 * 24 * 60)
    Trace.objects.filter(trace_id=OLD).update(status_code=404)


def listed(client, **params):
    """(trace ids in the scatter, page html): the scatter draws every listed trace here."""
    response = client.get("/admin/telemetry/trace/", params)
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    return {trace_id for trace_id, _ in SCATTER_DOT.findall(html)}, html


def test_each_criterion_narrows_the_list(admin_client):
    store_three()
    assert listed(admin_client)[0] == {RECENT, FAILED, OLD}
    assert listed(admin_client, route="/api/apps/")[0] == {RECENT, OLD}
    assert listed(admin_client, status_code="500")[0] == {FAILED}
    assert listed(admin_client, status_code="4xx")[0] == {OLD}
    assert listed(admin_client, organization="7")[0] == {RECENT, OLD}
    assert listed(admin_client, min_ms="100", max_ms="500")[0] == {OLD}
    assert listed(admin_client, max_ms="20")[0] == {RECENT}
    # A number and a string alike; a value with "=" in it; nested spans count.
    assert listed(admin_client, attr="user.id=42")[0] == {RECENT, OLD}
    assert listed(admin_client, attr="user.id=43")[0] == {FAILED}
    assert listed(admin_client, attr="plugin.kind=restapi")[0] == {FAILED}
    assert listed(admin_client, attr="http.url=https://example.com/a=b")[0] == {FAILED}
    assert listed(admin_client, attr="plugin.kind=mysql")[0] == set()
    assert listed(admin_client, attr="user.id=42", since="1d")[0] == {RECENT}
    assert listed(admin_client, attr="user.id=42", route="/api/apps/", status_code="404")[0] == {OLD}


def test_an_absolute_time_range_lists_what_started_in_it(admin_client):
    store_three()
    now = timezone.localtime()
    day_before = (now - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M")
    two_days_ago = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    assert listed(admin_client, **{"from": day_before, "to": two_days_ago})[0] == {OLD}
    assert listed(admin_client, **{"from": two_days_ago})[0] == {RECENT, FAILED}
    ids, html = listed(admin_client, **{"to": two_days_ago, "attr": "user.id=42"})
    assert ids == {OLD}
    assert f'name="to" value="{two_days_ago}"' in html  # the form keeps what was asked


@pytest.mark.parametrize(("params", "message"), [
    ({"status_code": "abc"}, "Status code “abc”: enter an HTTP status code such as 404, or a class such as 5xx."),
    ({"status_code": "700"}, "Status code “700”"),
    ({"min_ms": "fast"}, "Minimum duration “fast”: enter a number of milliseconds, such as 250."),
    ({"max_ms": "nan"}, "Maximum duration “nan”: enter a number of milliseconds"),
    ({"min_ms": "50", "max_ms": "10"}, "The minimum duration is above the maximum duration."),
    ({"attr": "user id=42"}, "Span attribute “user id=42”: write key=value"),
    ({"attr": "user.id"}, "Span attribute “user.id”: write key=value"),
    ({"attr": "=42"}, "Span attribute “=42”"),
    ({"from": "yesterday"}, "From “yesterday”: enter a date and time such as 2026-12-03T14:30"),
    ({"to": "2026-13-45T10:00"}, "To “2026-13-45T10:00”"),
    ({"from": "2026-12-03T10:00", "to": "2026-12-02T10:00"}, "The start of the time range is not before its end."),
])
def test_bad_input_is_a_message_and_an_empty_list(admin_client, params, message):
    store_three()
    ids, html = listed(admin_client, **params)
    errors = html.split('id="trace-search-errors">')[1].split("</ul>")[0]
    assert message in errors.replace("&amp;", "&")
    assert ids == set() and 'class="scatter-dot"' not in html


def test_empty_fields_of_a_submitted_search_leave_the_address(admin_client):
    response = admin_client.get("/admin/telemetry/trace/", {"route": "", "attr": "", "status": "error", "to": " "})
    assert response.status_code == 302 and response["Location"] == "/admin/telemetry/trace/?status=error"


def test_generated_spans_are_found_by_attribute_through_the_gin_index(admin_client):
    """The list equals a scan of every stored span in Python; PostgreSQL answers the
    attribute query from the GIN index (jsonb_path_ops)."""
    call_command("generate_spans", spans=3000, seed=7, organizations=5, days=1, stdout=open(os.devnull, "w"))
    by_attribute = {}
    for trace_id, attributes in Span.objects.values_list("trace_id", "attributes"):
        for key in ("plugin.kind", "db.collection.name", "organization.id", "http.response.status_code"):
            if key in attributes:
                by_attribute.setdefault((key, str(attributes[key])), set()).add(trace_id)
    for key, value in (("plugin.kind", "mysql"), ("db.collection.name", "apps_builder_dataquery"),
                       ("organization.id", "3"), ("http.response.status_code", "200")):
        expected = by_attribute[(key, value)]
        assert 0 < len(expected) <= trace_search.SCATTER_MAX
        ids, html = listed(admin_client, attr=f"{key}={value}")
        assert ids == expected, (key, value)
        assert "spans have no attribute index" not in html
    failed = {trace_id for trace_id, status in Trace.objects.values_list("trace_id", "status") if status == "error"}
    ids, html = listed(admin_client, status_code="5xx", organization="1")
    assert ids == failed & set(Trace.objects.filter(organization_id="1").values_list("trace_id", flat=True))
    errors = {trace_id for trace_id, kind in SCATTER_DOT.findall(html) if kind == "error"}
    assert errors == ids

    connection = connections["telemetry"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'telemetry_span_attributes'")
        assert "USING gin (attributes jsonb_path_ops)" in cursor.fetchone()[0]
        sql, params = trace_search.indexed_attribute_spans(
            trace_search.TraceSearch.parse({"attr": "plugin.kind=mysql"})).query.sql_with_params()
        # A few thousand spans fit in a few pages: without this the planner reads them all.
        cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")
    assert "Bitmap Index Scan on telemetry_span_attributes" in plan, plan


def test_the_attribute_search_reads_a_bounded_number_of_spans(admin_client, monkeypatch):
    store_three()
    monkeypatch.setattr(trace_search, "MAX_ATTRIBUTE_SPANS", 1)
    ids, html = listed(admin_client, attr="user.id=42")
    assert len(ids) == 1 and ids <= {RECENT, OLD}
    assert "More than 1 spans in this time range have user.id = 42" in html


def test_the_scatter_draws_each_listed_trace_linked_to_its_waterfall(admin_client):
    store_three()
    _, html = listed(admin_client)
    dots = SCATTER_DOT.findall(html)
    assert sorted(dots) == sorted([(RECENT, "ok"), (FAILED, "error"), (OLD, "ok")])
    assert "3 listed traces" in html
    assert admin_client.get(f"/admin/telemetry/trace/{FAILED}/change/").status_code == 200
    # The newest SCATTER_MAX of more listed traces.
    call_command("generate_spans", spans=trace_search.SCATTER_MAX * 5, seed=3, spans_per_trace=4,
                 stdout=open(os.devnull, "w"))
    _, html = listed(admin_client)
    assert len(SCATTER_DOT.findall(html)) == trace_search.SCATTER_MAX
    assert f"newest {trace_search.SCATTER_MAX} of the listed traces" in html


SQLITE_SEARCH = """
import json, django
django.setup()
from django.core.management import call_command
from django.test import Client
from django.contrib.auth.models import User
from telemetry.admin import trace_search
from telemetry.models import Span, Trace
call_command("migrate", database="telemetry", verbosity=0)
call_command("migrate", verbosity=0)
call_command("generate_spans", spans=1500, seed=5, days=1, stdout=open("/dev/null", "w"))
trace_search.MAX_ATTRIBUTE_TRACES = 40
User.objects.create_superuser("admin", "a@example.com", "pw")
client = Client()
client.login(username="admin", password="pw")
newest = list(Trace.objects.order_by("-start").values_list("trace_id", flat=True)[:40])
expected = sorted({trace_id for trace_id, attributes in Span.objects.filter(trace_id__in=newest)
                   .values_list("trace_id", "attributes") if attributes.get("plugin.kind") == "restapi"})
page = client.get("/admin/telemetry/trace/", {"attr": "plugin.kind=restapi"})
bad = client.get("/admin/telemetry/trace/", {"attr": "plugin kind"})
from django.db import connections
with connections["telemetry"].cursor() as cursor:
    cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'telemetry_span'")
    indexes = sorted(row[0] for row in cursor.fetchall())
print(json.dumps({"status": page.status_code, "html": page.content.decode(), "expected": expected,
                  "bad": [bad.status_code, bad.content.decode()], "indexes": indexes}))
"""


def test_on_sqlite_the_attribute_search_reads_the_newest_traces_and_says_so(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'platform.sqlite3'}",
           "TELEMETRY_DATABASE_URL": f"sqlite:///{tmp_path / 'telemetry.sqlite3'}"}
    result = subprocess.run([sys.executable, "-c", SQLITE_SEARCH], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["status"] == 200
    assert "telemetry_span_attributes" not in found["indexes"]  # migration 0010 skips it on SQLite
    assert sorted(trace_id for trace_id, _ in SCATTER_DOT.findall(found["html"])) == found["expected"]
    assert found["expected"]
    assert ("On sqlite spans have no attribute index: the attribute search reads the spans of the newest 40 traces"
            in found["html"])
    assert found["bad"][0] == 200 and "Span attribute “plugin kind”: write key=value" in found["bad"][1]


@pytest.mark.django_db(transaction=True, databases=["default", "telemetry"])
def test_the_list_with_its_search_and_scatter_fits_1280_and_1920_px(browser, live_server, django_user_model):
    call_command("generate_spans", spans=2000, seed=11, days=1, stdout=open(os.devnull, "w"))
    store_three()
    admin_login(browser, live_server.url, django_user_model)
    for width in (1280, 1920):
        browser.set_window_size(width, 1000)
        browser.get(live_server.url + "/admin/telemetry/trace/?status_code=5xx")
        assert browser.find_element(By.ID, "trace-scatter")
        overflow = horizontal_overflow(browser)
        assert overflow <= 0, f"{overflow} px of horizontal overflow at {width} px"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "trace_search.png"))
    search = browser.find_element(By.ID, "trace-search")
    attribute = search.find_element(By.NAME, "attr")
    attribute.send_keys("plugin.kind=restapi")
    follow(browser, search.find_element(By.CSS_SELECTOR, "input[type=submit]"))
    assert "attr=plugin.kind%3Drestapi" in browser.current_url and "status_code=5xx" in browser.current_url
    dots = browser.find_elements(By.CSS_SELECTOR, "#trace-scatter a.scatter-dot")
    assert FAILED in {dot.get_attribute("data-trace-id") for dot in dots}
    follow(browser, browser.find_element(By.CSS_SELECTOR, f'#trace-scatter a[data-trace-id="{FAILED}"]'))
    assert FAILED in browser.find_element(By.CSS_SELECTOR, ".breadcrumbs").text
    browser.get(live_server.url + "/admin/telemetry/trace/?min_ms=soon")
    assert "Minimum duration “soon”" in browser.find_element(By.ID, "trace-search-errors").text
