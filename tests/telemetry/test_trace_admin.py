"""The trace list and waterfall in a real headless Chromium against a live server, and
the critical path of a hand-built span tree."""

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone as django_timezone
from selenium.webdriver.common.by import By

from telemetry.admin.traces import span_values
from telemetry.models import LogEntry, QueryPlan, Span, Trace
from telemetry.tracing.waterfall import MAX_SPANS, critical_path, layout
from tests.live import admin_login, follow

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
MS = 1_000_000
SLOW_TRACE = "5a0e1f2d3c4b5a69788796a5b4c3d2e1"
FAST_TRACE = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
STATEMENT = 'SELECT "apps_builder_app"."id" FROM "apps_builder_app" WHERE "apps_builder_app"."slug" = %s'
#: (span id, parent, name, start ms, end ms, status, attributes) of the slow trace.
SLOW_SPANS = (
    ("a000000000000001", "", "GET /api/apps/<slug>/view", 0, 1200, "error",
     {"http.route": "/api/apps/<slug>/view", "http.response.status_code": 500, "organization.id": "7"}),
    ("a000000000000002", "a000000000000001", "postgresql.query", 2, 10, "unset",
     {"db.system": "postgresql", "db.operation.name": "SELECT", "db.statement": STATEMENT}),
    ("a000000000000003", "a000000000000001", "cache.get", 30, 40, "unset", {}),
    ("a000000000000004", "a000000000000001", "plugin.run postgresql", 12, 900, "error", {"plugin.kind": "postgresql"}),
    ("a000000000000005", "a000000000000004", "plugin.connect", 12, 20, "unset", {}),
    ("a000000000000006", "a000000000000004", "plugin.execute", 20, 880, "unset", {}),
    ("a000000000000007", "a000000000000001", "postgresql.query", 901, 1150, "unset",
     {"db.system": "postgresql", "db.operation.name": "SELECT",
      "db.statement": 'SELECT "x" FROM "apps_builder_dataquery"', "db.query.is_slow": True}),
)
CRITICAL = {"a000000000000001", "a000000000000002", "a000000000000004", "a000000000000005", "a000000000000006",
            "a000000000000007"}


def store_trace(trace_id, organization_id, spans, route="/api/apps/<slug>/view", logs=(), minutes_ago=2):
    """Stores a trace summary, its spans ``(id, parent, name, start ms, end ms, status, attributes)``
    and its logs ``(span id, level, number, message)`` as the tracing pipeline would."""
    base_ns = int((django_timezone.now().timestamp() - minutes_ago * 60) * 1e9)
    root = spans[0]
    failed = any(span[5] == "error" for span in spans)
    Trace.objects.create(
        trace_id=trace_id, root_name=root[2], service="tooljet-web", route=route, method="GET",
        status_code=500 if failed else 200, status="error" if failed else "ok", organization_id=organization_id,
        start=datetime.fromtimestamp(base_ns / 1e9, tz=timezone.utc), duration_ms=float(root[4] - root[3]),
        span_count=len(spans), is_slow=root[4] - root[3] >= 1000, kept_because="error" if failed else "sampled")
    Span.objects.bulk_create([
        Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, kind="internal",
             start_ns=base_ns + start * MS, end_ns=base_ns + end * MS, duration_ms=float(end - start), status=status,
             status_message="ConnectionError" if status == "error" else "", attributes=attributes,
             events=[{"name": "exception", "time_ns": base_ns + end * MS,
                      "attributes": {"exception.type": "ConnectionError"}}] if status == "error" else [])
        for span_id, parent, name, start, end, status, attributes in spans
    ])
    LogEntry.objects.bulk_create([
        LogEntry(time=django_timezone.now(), level=level, level_number=number, logger="plugins", message=message,
                 trace_id=trace_id, span_id=span_id)
        for span_id, level, number, message in logs
    ])


def store_known_traces():
    store_trace(SLOW_TRACE, "7", SLOW_SPANS, logs=[
        ("a000000000000004", "ERROR", 40, "query run failed: connection refused by datasource"),
        ("a000000000000007", "WARNING", 30, "slow query on apps_builder_dataquery: 249 ms"),
    ])
    store_trace(FAST_TRACE, "8", (
        ("b000000000000001", "", "GET /api/apps/", 0, 20, "unset", {"organization.id": "8"}),
        ("b000000000000002", "b000000000000001", "postgresql.query", 2, 6, "unset", {"db.system": "postgresql"}),
    ), route="/api/apps/")


def spans_of(*specs):
    return [{"span_id": span_id, "parent_span_id": parent, "start_ns": start, "end_ns": end}
            for span_id, parent, start, end in specs]


def test_critical_path_follows_the_latest_ending_children_back_from_each_end():
    spans = spans_of(
        ("root", "", 0, 100),
        ("a", "root", 0, 30),        # sequential before b: waited for
        ("b", "root", 35, 90),       # ends last within root
        ("c", "root", 40, 60),       # runs beside b: not waited for
        ("b1", "b", 35, 50),
        ("b2", "b", 45, 88),         # ends last within b
        ("late", "root", 50, 150),   # ends after its parent (fire-and-forget)
        ("late1", "late", 60, 140),
    )
    assert critical_path(spans) == {"root", "b", "b2", "a"}


def test_critical_path_of_a_chain_and_of_nothing():
    assert critical_path([]) == set()
    chain = spans_of(("r", "", 0, 10), ("x", "r", 1, 9), ("y", "x", 2, 8), ("z", "y", 3, 7))
    assert critical_path(chain) == {"r", "x", "y", "z"}
    # An orphan whose parent was not stored is laid out as a root, never on the root's path.
    assert critical_path(chain + spans_of(("o", "missing", 2, 5))) == {"r", "x", "y", "z"}


def test_critical_path_and_layout_end_on_malformed_parents():
    cycle = spans_of(("a", "b", 0, 10), ("b", "a", 0, 10))
    assert critical_path(cycle) == {"a", "b"}
    assert critical_path(spans_of(("self", "self", 0, 10))) == {"self"}
    spans = [{**span, "duration_ms": 1.0, "status": "unset", "attributes": {}}
             for span in spans_of(("self", "self", 0, 10), ("child", "self", 1, 5))]
    assert [(row["span_id"], row["depth"]) for row in layout(spans)[0]] == [("self", 0), ("child", 1)]


def test_layout_nests_spans_and_places_bars_by_offset_and_width():
    spans = [{**span, "name": span["span_id"], "duration_ms": (span["end_ns"] - span["start_ns"]) / MS,
              "status": "unset", "attributes": {}} for span in spans_of(
        ("root", "", 0, 100 * MS), ("child", "root", 25 * MS, 75 * MS), ("leaf", "child", 50 * MS, 75 * MS))]
    rows, unmatched = layout(spans, [{"span_id": "leaf", "message": "m"}, {"span_id": "", "message": "x"}])
    assert [(row["span_id"], row["depth"]) for row in rows] == [("root", 0), ("child", 1), ("leaf", 2)]
    assert [(row["offset_percent"], row["width_percent"]) for row in rows] == [(0, 100), (25, 50), (50, 25)]
    assert [log["message"] for log in rows[2]["logs"]] == ["m"] and [log["message"] for log in unmatched] == ["x"]


@pytest.mark.django_db(databases=["default", "telemetry"])
def test_generated_traces_are_consistent_and_open_in_admin(admin_client):
    from django.core.management import call_command
    from django.db.models import Sum

    call_command("generate_spans", spans=400, seed=1, batch=150, stdout=open("/dev/null", "w"))
    traces = Trace.objects.exclude(service="")
    assert Span.objects.count() >= 400
    assert traces.aggregate(total=Sum("span_count"))["total"] == Span.objects.count()
    trace = traces.order_by("-span_count").first()
    root = Span.objects.get(trace_id=trace.trace_id, parent_span_id="")
    assert root.name == trace.root_name and abs(root.duration_ms - trace.duration_ms) < 0.001
    assert admin_client.get("/admin/telemetry/trace/", {"organization": trace.organization_id}).status_code == 200
    page = admin_client.get(f"/admin/telemetry/trace/{trace.trace_id}/change/").content.decode()
    assert page.count('class="wf-row wf-span') == trace.span_count and "wf-critical" in page


def listed_root_names(browser):
    return [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list tbody th.field-root_name")]


def click_filter(browser, title, text):
    browser.find_element(By.CSS_SELECTOR, f'#changelist-filter details[data-filter-title="{title}"] summary')
    link = browser.find_element(By.XPATH, f'//details[@data-filter-title="{title}"]//a[normalize-space()="{text}"]')
    browser.get(link.get_attribute("href"))


@pytest.mark.django_db(transaction=True, databases=["default", "telemetry"])
def test_filter_to_a_slow_request_of_one_organization_and_read_its_waterfall(browser, live_server,
                                                                               django_user_model):
    store_known_traces()
    cache.clear()  # filter choices are cached for a minute
    ARTIFACTS.mkdir(exist_ok=True)
    admin_login(browser, live_server.url, django_user_model)

    browser.get(live_server.url + "/admin/telemetry/trace/")
    names = listed_root_names(browser)
    assert "GET /api/apps/<slug>/view" in names and "GET /api/apps/" in names

    click_filter(browser, "organization", "7")
    click_filter(browser, "minimum duration", "≥ 1 s")
    assert "organization=7" in browser.current_url and "min_ms=1000" in browser.current_url
    assert listed_root_names(browser) == ["GET /api/apps/<slug>/view"]
    browser.save_screenshot(str(ARTIFACTS / "trace_list.png"))

    follow(browser, browser.find_element(By.CSS_SELECTOR, "#result_list tbody th.field-root_name a"))
    waterfall = browser.find_element(By.ID, "waterfall")
    assert SLOW_TRACE in browser.find_element(By.CSS_SELECTOR, ".breadcrumbs").text
    rows = waterfall.find_elements(By.CSS_SELECTOR, ".wf-span")
    assert [row.get_attribute("data-span-id") for row in rows] == [
        "a000000000000001", "a000000000000002", "a000000000000004", "a000000000000005", "a000000000000006",
        "a000000000000003", "a000000000000007"]
    assert [row.get_attribute("data-depth") for row in rows] == ["0", "1", "1", "2", "2", "1", "1"]
    text = waterfall.text
    for expected in ("plugin.run postgresql", "plugin.execute", "cache.get", STATEMENT,
                     "query run failed: connection refused by datasource", "slow query on apps_builder_dataquery"):
        assert expected in text

    def marked(css_class):
        return {row.get_attribute("data-span-id") for row in waterfall.find_elements(By.CSS_SELECTOR, f".{css_class}")}

    assert marked("wf-critical") == CRITICAL
    assert marked("wf-error") == {"a000000000000001", "a000000000000004"}
    assert marked("wf-slow") == {"a000000000000001", "a000000000000007"}
    # The failed plugin run, opened: its attributes and exception event.
    browser.find_element(By.CSS_SELECTOR, "#span-a000000000000004 summary").click()
    details = browser.find_element(By.CSS_SELECTOR, "#span-a000000000000004 .wf-details").text
    assert "plugin.kind" in details and "exception.type=ConnectionError" in details
    style = browser.find_element(By.CSS_SELECTOR, "#span-a000000000000007 .wf-bar").get_attribute("style")
    assert [float(number) for number in re.findall(r"[\d.]+(?=%)", style)] == [75.083, 20.75]  # 901 ms, 249 ms of 1200
    browser.save_screenshot(str(ARTIFACTS / "trace_waterfall.png"))

    browser.get(live_server.url + f"/admin/telemetry/trace/?q={FAST_TRACE}")
    assert listed_root_names(browser) == ["GET /api/apps/"]
    browser.get(live_server.url + "/admin/telemetry/logentry/?level=error")
    assert "query run failed" in browser.find_element(By.ID, "result_list").text
    assert "slow query on" not in browser.find_element(By.ID, "result_list").text
    browser.get(live_server.url + f"/admin/telemetry/logentry/?q={SLOW_TRACE}")
    assert "slow query on" in browser.find_element(By.ID, "result_list").text
    follow(browser, browser.find_element(By.LINK_TEXT, SLOW_TRACE))
    assert browser.find_element(By.ID, "waterfall")


MANY_TRACE = "6d0e1f2d3c4b5a69788796a5b4c3d2e1"
MARKUP = '<img src=x onerror="alert(1)">'


@pytest.mark.django_db(transaction=True, databases=["default", "telemetry"])
def test_a_trace_over_the_span_cap_shows_every_span_it_keeps(browser, live_server, django_user_model):
    """Past ``MAX_SPANS`` the page keeps the first spans by start: each with its name, the
    failed one and the slow one marked, stored markup shown as text, logs in place."""
    spans = [("c" + f"{0:015x}", "", "GET /api/apps/<slug>/view", 0, MAX_SPANS + 60, "unset", {"organization.id": "9"})]
    spans += [(f"c{index:015x}", spans[0][0], f"step {index} {MARKUP}" if index == 7 else f"step {index}", index,
               index + 1, "error" if index == 1500 else "unset",
               {"db.system": "postgresql", "db.statement": STATEMENT, "db.query.is_slow": index == 900,
                "user.note": MARKUP})
              for index in range(1, MAX_SPANS + 50)]
    store_trace(MANY_TRACE, "9", spans, logs=[
        ("c" + f"{1500:015x}", "ERROR", 40, f"query failed {MARKUP}"), ("", "WARNING", 30, f"no span {MARKUP}")])
    admin_login(browser, live_server.url, django_user_model)
    browser.get(live_server.url + f"/admin/telemetry/trace/{MANY_TRACE}/change/")

    assert f"only the first {MAX_SPANS}" in browser.find_element(By.CSS_SELECTOR, ".errornote").text
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#waterfall .wf-span')].map(row => [row.dataset.spanId,"
        " row.querySelector('.wf-span-name').textContent, row.className,"
        " row.querySelector('.wf-attributes').textContent])")
    assert [name for _, name, _, _ in rows] == [span[2] for span in spans[:MAX_SPANS]]
    assert {span_id for span_id, _, classes, _ in rows if "wf-error" in classes} == {"c" + f"{1500:015x}"}
    assert {span_id for span_id, _, classes, _ in rows if "wf-slow" in classes} == {
        spans[0][0], "c" + f"{900:015x}"}  # the root lasts over TRACE_SLOW_MS
    assert all(f"user.note = {MARKUP}" in attributes for _, _, _, attributes in rows[1:])
    failed = browser.find_element(By.ID, "span-c" + f"{1500:015x}")
    assert failed.find_element(By.CSS_SELECTOR, ".wf-mark-error").text == "failed"
    assert failed.find_element(By.CSS_SELECTOR, ".wf-logs").text.endswith(f"ERROR plugins: query failed {MARKUP}")
    assert browser.find_element(By.ID, "trace-logs").text.endswith(f"WARNING plugins: no span {MARKUP}")
    assert not browser.find_elements(By.CSS_SELECTOR, "#waterfall img, #trace-logs img")


NPLUS1_TRACE = "7e57f01d0000000000000000000000a1"


@pytest.mark.django_db(databases=["default", "telemetry"])
def test_an_n_plus_one_is_one_folded_row_linked_to_its_fingerprint(admin_client):
    """Eight runs of one statement under the request fold into their first span ("x8",
    N+1, their total); a DB span links to its fingerprint; self time shows on the parent."""
    item = {"db.system": "postgresql", "db.statement": STATEMENT, "db.query.fingerprint_id": "f" * 32}
    spans = [("b000000000000001", "", "GET /api/apps/<slug>/view", 0, 100, "unset", {"organization.id": "7"}),
             ("b000000000000002", "b000000000000001", "postgresql.query", 2, 12, "unset",
              {"db.system": "postgresql", "db.statement": 'SELECT "id" FROM "apps_builder_organization"',
               "db.query.fingerprint_id": "e" * 32})]
    spans += [(f"b0000000000001{index:02d}", "b000000000000001", "postgresql.query", 20 + index * 5,
               24 + index * 5, "unset", item) for index in range(8)]
    store_trace(NPLUS1_TRACE, "7", spans)
    rows, _ = layout([dict(span) for span in _stored_spans(NPLUS1_TRACE)])
    heads = [row for row in rows if row["repeat_count"] > 1]
    assert len(heads) == 1 and heads[0]["repeat_count"] == 8 and heads[0]["repeat_total_ms"] == pytest.approx(32)
    assert sum(bool(row["folded_into"]) for row in rows) == 7
    assert rows[0]["self_ms"] == pytest.approx(100 - 10 - 32)

    html = admin_client.get(f"/admin/telemetry/trace/{NPLUS1_TRACE}/change/").content.decode()
    visible = re.findall(r'<div class="wf-row wf-span(?![^"]*wf-folded)[^"]*" id="span-(\w+)"', html)
    assert len(visible) == 3  # the request, the other statement, the folded eight
    assert "&times;8" in html and ">N+1</a>" in html and "32.00 ms in all" in html
    assert html.count(f'href="/admin/telemetry/querystat/fingerprint/{"f" * 32}/"') == 9  # each run + N+1
    assert 'href="/admin/telemetry/querystat/fingerprint/' + "e" * 32 + '/"' in html
    assert "(self 58.00 ms)" in html and "wf-mark-critical\" title" not in html
    assert "7 repeated statements folded" in html
    unfolded = admin_client.get(f"/admin/telemetry/trace/{NPLUS1_TRACE}/change/", {"unfold": "1"}).content.decode()
    assert "wf-folded" not in unfolded.split('id="waterfall"')[1] and "fold repeated statements" in unfolded


def _stored_spans(trace_id):
    return span_values(trace_id)


SLOW_DB_TRACE = "7e57f01d0000000000000000000000b2"


@pytest.mark.django_db(databases=["default", "telemetry"])
def test_a_slow_db_span_links_to_its_fingerprint_and_shows_its_proven_index(admin_client):
    proven, unproven = "c" * 32, "d" * 32
    spans = [("c000000000000001", "", "GET /api/orders", 0, 400, "unset", {}),
             ("c000000000000002", "c000000000000001", "postgresql.query", 5, 390, "unset",
              {"db.system": "postgresql", "db.statement": 'SELECT "id" FROM "shop_order" WHERE "customer_id" = %s',
               "db.query.fingerprint_id": proven, "db.query.is_slow": True}),
             ("c000000000000003", "c000000000000001", "postgresql.query", 391, 399, "unset",
              {"db.system": "postgresql", "db.statement": 'SELECT "id" FROM "shop_item"',
               "db.query.fingerprint_id": unproven})]
    store_trace(SLOW_DB_TRACE, "7", spans)
    create = 'CREATE INDEX CONCURRENTLY "shop_order_customer_id_idx" ON "public"."shop_order" ("customer_id");'
    for fingerprint_id, candidate in ((proven, {"proven": True, "gain": 0.9712, "create_statement": create}),
                                      (unproven, {"proven": None, "gain": None, "create_statement": "CREATE INDEX x"})):
        QueryPlan.objects.create(fingerprint_id=fingerprint_id, alias="default", fingerprint="SELECT", plan=[],
                                 candidates=[candidate], captured_at=django_timezone.now())
    html = admin_client.get(f"/admin/telemetry/trace/{SLOW_DB_TRACE}/change/").content.decode()
    slow_row = html.split('id="span-c000000000000002"')[1].split('id="span-c000000000000003"')[0]
    assert f'href="/admin/telemetry/querystat/fingerprint/{proven}/"' in slow_row
    assert "proven index: <code>CREATE INDEX CONCURRENTLY &quot;shop_order_customer_id_idx&quot;" in slow_row
    assert "(97 % lower planner cost)" in slow_row
    assert html.count('class="wf-advice"') == 1  # an unproven candidate is not shown as advice
