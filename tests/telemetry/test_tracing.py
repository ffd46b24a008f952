"""A real request on PostgreSQL becomes one stored trace: the server span, one DB span per
Django query (children of the server span or of the business span around them), the
plugins' driver and HTTP spans under their phase spans; sampling keeps errors and slow
traces; no SQL literal is stored."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from telemetry.models import QueryFinding, Span, Trace
from tests.apps_builder.conftest import world  # noqa: F401 - fixture

from .trace_fixtures import TRACE_DATABASES, flush, stored_spans, trace_settings  # noqa: F401

pytestmark = pytest.mark.django_db(databases=TRACE_DATABASES, transaction=False)


def _only_trace():
    traces = list(Trace.objects.all())
    assert len(traces) == 1, [(t.root_name, t.kept_because) for t in traces]
    return traces[0]


def test_request_trace_on_postgresql_has_one_db_span_per_django_query(world, api_client_for, trace_settings):
    assert connection.vendor == "postgresql"
    user = world["users"]["viewer"]
    client = api_client_for(user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/api/apps/{world['own']['app'].slug}/")
    assert response.status_code == 200
    flush()

    trace = _only_trace()
    spans = stored_spans(trace.trace_id)
    server = [span for span in spans if span.kind == "server"]
    assert len(server) == 1
    server = server[0]
    assert server.name == f"GET {trace.route}" and trace.route.startswith("/api/apps/")
    assert server.attributes["http.route"] == trace.route
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["organization.id"] == str(world["own"]["org"].pk)
    assert server.attributes["user.id"] == str(user.pk)
    assert server.attributes["tooljet.app.operation"]
    db_spans = [span for span in spans if span.name == "postgresql.query"]
    # Exactly one DB span per Django query, never two (psycopg2 instrumentation is on).
    assert len(db_spans) == len(queries.captured_queries) == server.attributes["tooljet.db_query_count"]
    assert all(span.parent_span_id == server.span_id for span in db_spans)
    first = db_spans[0].attributes
    assert first["db.system"] == "postgresql" and first["db.operation.name"] == "select"
    assert first["db.collection.name"] and first["db.query.tables"]
    assert first["db.query.is_slow"] is False and "db.rows_affected" in first
    assert trace.span_count == len(spans)
    assert trace.kept_because == "sampled" and trace.status == "ok"


def test_no_sql_literal_value_in_stored_spans(world, api_client_for, trace_settings, postgres_plugin_url):
    client = api_client_for(world["users"]["admin"])
    secret_value = "Literal-Value-7781"
    with CaptureQueriesContext(connection) as queries:
        client.get(f"/api/apps/{world['own']['app'].slug}/view", {"environment": "production"})
        client.patch(f"/api/apps/{world['own']['app'].slug}/", {"name": secret_value}, format="json")
    assert any(secret_value in query["sql"] for query in queries.captured_queries)
    flush()
    dumped = json.dumps([[span.name, span.attributes, span.events, span.status_message]
                         for span in Span.objects.all()])
    assert "postgresql.query" in dumped
    assert secret_value not in dumped


def test_business_span_parents_its_queries(world, api_client_for, trace_settings):
    client = api_client_for(world["users"]["builder"])
    response = client.post("/api/apps/from-template", {"organization": world["own"]["org"].pk, "template": "crm",
                                                       "name": "Cloned"}, format="json")
    assert response.status_code == 201, response.content
    flush()
    trace = _only_trace()
    spans = {span.name: span for span in stored_spans(trace.trace_id)}
    create, insert, clone = spans["app_lifecycle.create"], spans["database.insert"], spans["template.clone"]
    server = next(span for span in spans.values() if span.kind == "server")
    assert create.parent_span_id == server.span_id
    assert insert.parent_span_id == create.span_id and clone.parent_span_id == create.span_id
    by_parent = {}
    for span in stored_spans(trace.trace_id):
        if span.name == "postgresql.query":
            by_parent.setdefault(span.parent_span_id, []).append(span.attributes["db.operation.name"])
    assert "insert" in by_parent[insert.span_id] and "insert" in by_parent[clone.span_id]


def test_incoming_traceparent_is_continued(world, api_client_for, trace_settings):
    client = api_client_for(world["users"]["viewer"])
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    client.get(f"/api/apps/{world['own']['app'].slug}/", HTTP_TRACEPARENT=f"00-{trace_id}-{parent_id}-01")
    flush()
    trace = _only_trace()
    assert trace.trace_id == trace_id
    server = next(span for span in stored_spans(trace_id) if span.kind == "server")
    assert server.parent_span_id == parent_id


def test_sampling_keeps_errors_and_slow_traces_and_drops_the_rest(world, api_client_for, trace_settings):
    trace_settings(TRACE_SAMPLE_RATE=0.0)
    client = api_client_for(world["users"]["viewer"])
    for _ in range(3):
        assert client.get(f"/api/apps/{world['own']['app'].slug}/").status_code == 200
    flush()
    assert Trace.objects.count() == 0 and Span.objects.count() == 0

    from apps_builder import views

    original = views.AppViewSet.list

    def failing(self, request, *args, **kwargs):
        raise RuntimeError("boom")

    views.AppViewSet.list = failing
    try:
        client.raise_request_exception = False
        assert client.get("/api/apps/").status_code == 500
    finally:
        views.AppViewSet.list = original
    flush()
    trace = _only_trace()
    assert trace.kept_because == "error" and trace.status == "error" and trace.status_code == 500

    trace_settings(TRACE_SAMPLE_RATE=0.0, TRACE_SLOW_MS=0)
    assert client.get(f"/api/apps/{world['own']['app'].slug}/").status_code == 200
    flush()
    assert set(Trace.objects.values_list("kept_because", flat=True)) == {"error", "slow"}
    assert Trace.objects.get(kept_because="slow").is_slow


def test_a_failed_child_keeps_an_ok_fast_trace_with_all_its_spans(world, api_client_for, trace_settings):
    """OK, fast, unsampled requests skip building their spans; a child span that failed
    (an on-load query of the app whose error the viewer shows in a 200) still keeps the trace."""
    trace_settings(TRACE_SAMPLE_RATE=0.0)
    client = api_client_for(world["users"]["viewer"])
    assert client.get(f"/api/apps/{world['own']['app'].slug}/view").status_code == 200
    flush()
    trace = _only_trace()
    assert trace.kept_because == "error" and trace.status_code == 200
    spans = Span.objects.filter(trace_id=trace.trace_id)
    assert spans.filter(name__startswith="plugin.", status="error").exists()
    assert {"postgresql.query"} <= set(spans.values_list("name", flat=True))
    assert spans.filter(kind="server", parent_span_id="").exists()


def test_sampling_is_deterministic_on_the_trace_id(world, api_client_for, trace_settings):
    trace_settings(TRACE_SAMPLE_RATE=0.5)
    client = api_client_for(world["users"]["viewer"])
    kept_ids = []
    for index in range(16):
        low = (index * 2 ** 60) & (2 ** 64 - 1)
        trace_id = f"{0xabc:016x}{low:016x}"
        client.get(f"/api/apps/{world['own']['app'].slug}/", HTTP_TRACEPARENT=f"00-{trace_id}-00f067aa0ba902b7-01")
        kept_ids.append(trace_id)
    flush()
    stored = set(Trace.objects.values_list("trace_id", flat=True))
    assert stored == {trace_id for trace_id in kept_ids if int(trace_id[16:], 16) < 2 ** 63}


def test_plugin_driver_and_http_spans_are_children_of_phase_spans(
        world, api_client_for, trace_settings, postgres_plugin_url, allow_egress):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from apps_builder.models import DataQuery, DataSource

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    allow_egress(f"127.0.0.1:{server.server_address[1]}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        org, app = world["own"]["org"], world["own"]["app"]
        pg = DataSource.objects.create(organization=org, kind="postgresql", name="PG",
                                       options={}, secrets={"url": postgres_plugin_url})
        rest = DataSource.objects.create(organization=org, kind="restapi", name="REST",
                                         options={"base_url": f"http://127.0.0.1:{server.server_address[1]}"})
        pg_query = DataQuery.objects.create(app=app, data_source=pg, name="pg",
                                            options={"query": "SELECT 'Secret-Literal-42' AS value, 7 AS n"})
        rest_query = DataQuery.objects.create(
            app=app, data_source=rest, name="rest",
            options={"method": "GET", "path": "/items", "params": {"token": "abc123"}})
        client = api_client_for(world["users"]["admin"])
        for query in (pg_query, rest_query):
            response = client.post(f"/api/data-queries/{query.pk}/run", {}, format="json")
            assert response.status_code == 200, response.content
    finally:
        server.shutdown()
        server.server_close()
    flush()
    spans = list(Span.objects.all())
    by_id = {span.span_id: span for span in spans}
    driver = [span for span in spans if span.attributes.get("db.system") == "postgresql"
              and span.name != "postgresql.query"]
    assert driver, [span.name for span in spans]
    assert by_id[driver[0].parent_span_id].name == "plugin.execute"
    assert "Secret-Literal-42" not in driver[0].attributes["db.statement"]
    http = [span for span in spans if span.kind == "client"
            and ("http.request.method" in span.attributes or "http.method" in span.attributes)]
    assert http, [span.name for span in spans]
    assert by_id[http[0].parent_span_id].name == "plugin.execute"
    assert "abc123" not in json.dumps(http[0].attributes)
    phases = {span.name for span in spans if span.name.startswith("plugin.")}
    assert phases == {"plugin.connect", "plugin.execute", "plugin.serialize"}


def test_exemplar_carries_the_trace_id(world, api_client_for, trace_settings, client):
    api_client_for(world["users"]["viewer"]).get(f"/api/apps/{world['own']['app'].slug}/")
    flush()
    trace_id = _only_trace().trace_id
    page = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0").content.decode()
    assert re.search(r'http_server_request_duration_seconds_bucket\{[^}]*\} \S+ # \{trace_id="[0-9a-f]{32}"\}', page)
    assert trace_id in page


def test_no_exemplar_points_to_a_trace_that_was_not_kept(world, api_client_for, trace_settings, client):
    """Exemplars link to the trace store: an OK, fast, unsampled request sets none (the
    buckets keep whatever exemplar an earlier, kept request left)."""
    trace_settings(TRACE_SAMPLE_RATE=0.0)
    route = "/api/organizations/<organization_pk>/members/"

    def exemplar_trace_ids():
        page = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0").content.decode()
        route_label = f'http_route="{route}"'
        buckets = [line for line in page.splitlines()
                   if line.startswith("http_server_request_duration_seconds_bucket{") and route_label in line]
        return buckets, set(re.findall(r'# \{trace_id="([0-9a-f]{32})"\}', "\n".join(buckets)))

    _, before = exemplar_trace_ids()
    api_client_for(world["users"]["admin"]).get(f"/api/organizations/{world['own']['org'].pk}/members/")
    flush()
    assert Trace.objects.count() == 0
    buckets, after = exemplar_trace_ids()
    assert buckets
    assert after <= before


def test_findings_carry_the_trace_id(world, api_client_for, trace_settings):
    trace_settings(SLOW_QUERY_MS=0)
    api_client_for(world["users"]["viewer"]).get(f"/api/apps/{world['own']['app'].slug}/")
    flush()
    from telemetry.queries import stats as querystats

    querystats.write_pending()
    trace_id = Trace.objects.get().trace_id
    assert QueryFinding.objects.filter(code="slow", trace_id=trace_id).exists()


def test_tracing_off_installs_nothing_on_the_request(world, api_client_for, trace_settings):
    trace_settings(TRACES_ENABLED=False)
    from telemetry.tracing import state

    assert state["on"] is False
    api_client_for(world["users"]["viewer"]).get(f"/api/apps/{world['own']['app'].slug}/")
    flush()
    assert Trace.objects.count() == 0 and Span.objects.count() == 0


def test_scrapes_and_health_checks_make_no_trace(trace_settings, client):
    client.get("/health")
    client.get("/metrics")
    flush()
    assert Trace.objects.count() == 0


def test_a_span_written_twice_is_stored_once(trace_settings):
    """A batch retried after its commit was lost meets its own rows: they are skipped."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, TraceFlags

    from telemetry.tracing import processor

    context = SpanContext(0xABC, 0xDEF, False, TraceFlags(TraceFlags.SAMPLED))
    span = ReadableSpan(name="job.step", context=context, parent=None, attributes={"db.statement": "SELECT ?"},
                        start_time=1_000_000_000, end_time=1_002_000_000)
    processor.write_batch([span], {}, [])
    processor.write_batch([span], {}, [])
    stored = Span.objects.get(trace_id=f"{0xABC:032x}")
    assert (stored.span_id, stored.duration_ms, stored.attributes) == (
        f"{0xDEF:016x}", 2.0, {"db.statement": "SELECT ?"})


def _span(trace_id, span_id, parent=None, *, remote_parent=False, error=False, name="step", attributes=None):
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    sampled = TraceFlags(TraceFlags.SAMPLED)
    parent_context = SpanContext(trace_id, parent, remote_parent, sampled) if parent else None
    return ReadableSpan(
        name=name, context=SpanContext(trace_id, span_id, False, sampled), parent=parent_context,
        kind=SpanKind.SERVER if parent is None or remote_parent else SpanKind.INTERNAL,
        attributes=attributes or {"http.route": "/r", "http.response.status_code": 200},
        status=Status(StatusCode.ERROR if error else StatusCode.UNSET), start_time=1_000_000_000,
        end_time=1_004_000_000,
    )


def test_a_trace_with_two_local_roots_keeps_one_summary_with_every_span(trace_settings):
    """The web process and a Celery worker each end a local root of one trace; the second
    summary adds its spans to the first, keeps its fields, and an error in it marks the trace."""
    from telemetry.tracing import processor

    trace_id = 0xA1
    processor.submit(_span(trace_id, 2, 1))                      # a child of the web root
    processor.submit(_span(trace_id, 1, name="GET /web"))        # the web root
    flush()
    trace = Trace.objects.get(trace_id=f"{trace_id:032x}")
    assert (trace.root_name, trace.span_count, trace.status) == ("GET /web", 2, "ok")

    processor.forget_decisions()  # as in another process: the worker decides on its own
    processor.submit(_span(trace_id, 4, 3, error=True))          # the task's failed child
    processor.submit(_span(trace_id, 3, 2, remote_parent=True, name="run/job"))  # the task
    flush()
    trace.refresh_from_db()
    assert (trace.root_name, trace.span_count, trace.status) == ("GET /web", 4, "error")
    assert len(stored_spans(f"{trace_id:032x}")) == 4


def test_a_task_published_outside_any_trace_decides_its_own_trace_in_the_same_process(trace_settings):
    """A parentless publish (beat, a dispatcher task) is no trace; the task it published,
    run by the same process (a solo worker), keeps its trace when it fails."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

    from telemetry.tracing import processor

    trace_id = 0xB1
    publish = ReadableSpan(name="apply_async/job", context=SpanContext(trace_id, 1, False, TraceFlags(1)),
                           kind=SpanKind.PRODUCER, start_time=1_000_000_000, end_time=1_001_000_000)
    processor.submit(publish)
    flush()
    assert not Trace.objects.filter(trace_id=f"{trace_id:032x}").exists()
    processor.submit(_span(trace_id, 3, 2, error=True))
    processor.submit(_span(trace_id, 2, 1, remote_parent=True, name="run/job"))
    flush()
    trace = Trace.objects.get(trace_id=f"{trace_id:032x}")
    assert (trace.root_name, trace.span_count, trace.status) == ("run/job", 2, "error")


def test_spans_after_their_root_join_its_count_and_a_retried_batch_counts_once(trace_settings):
    from telemetry.tracing import processor

    trace_id = 0xB2
    processor.submit(_span(trace_id, 1))
    flush()
    processor.submit(_span(trace_id, 5, 1, error=True))  # ended after the root's decision
    flush()
    trace = Trace.objects.get(trace_id=f"{trace_id:032x}")
    assert (trace.span_count, trace.status) == (2, "error")

    late = _span(trace_id, 6, 1)
    processor.write_batch([late], {}, [])
    processor.write_batch([late], {}, [])  # its commit was lost: the writer tries again
    trace.refresh_from_db()
    assert trace.span_count == 3
    assert len(stored_spans(f"{trace_id:032x}")) == 3


SQLITE_STORE = """
import django, json, sys
django.setup()
from django.core.management import call_command
call_command("migrate", database="telemetry", verbosity=0)
from telemetry.tracing import processor
from telemetry.models import Span, Trace
from tests.telemetry.test_tracing import _span
processor.run_in_foreground()
processor.submit(_span(0xC3, 2, 1, attributes={"db.statement": "SELECT ?", "db.query.tables": ("a", "b")}))
processor.submit(_span(0xC3, 1, name="GET /c"))
processor.flush()
processor.forget_decisions()
processor.submit(_span(0xC3, 4, 3, error=True))
processor.submit(_span(0xC3, 3, 2, remote_parent=True, name="run/job"))
processor.flush()
trace = Trace.objects.using("telemetry").get()
spans = Span.objects.using("telemetry").order_by("span_id")
print(json.dumps({"trace": [trace.root_name, trace.span_count, trace.status],
                  "spans": [[s.span_id[-1], s.parent_span_id[-1:], s.attributes] for s in spans],
                  "failures": processor.dropped("store_failed")}))
"""


def test_the_default_sqlite_store_keeps_spans_and_summaries(tmp_path):
    """``make demo`` stores traces in SQLite: the same rows and counts as on PostgreSQL."""
    import os
    import subprocess
    import sys

    from tests.live import ROOT

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path),
           "TELEMETRY_DATABASE_URL": f"sqlite:///{tmp_path / 'telemetry.sqlite3'}"}
    result = subprocess.run([sys.executable, "-c", SQLITE_STORE], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    stored = json.loads(result.stdout.strip().splitlines()[-1])
    assert stored["trace"] == ["GET /c", 4, "error"]
    assert stored["spans"] == [
        ["1", "", {"http.route": "/r", "http.response.status_code": 200}],
        ["2", "1", {"db.statement": "SELECT ?", "db.query.tables": ["a", "b"]}],
        ["3", "2", {"http.route": "/r", "http.response.status_code": 200}],
        ["4", "3", {"http.route": "/r", "http.response.status_code": 200}],
    ]
    assert stored["failures"] == 0
