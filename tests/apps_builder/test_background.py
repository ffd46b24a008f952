"""Background work through the API: app export and import, scheduled query runs, task
status. The work runs on a real Celery worker over Redis (a queue of its own, the test
databases), and its spans join the trace of the request that enqueued it."""

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps_builder import bundles, tasks
from apps_builder.models import App, AppVersion, BackgroundTask, DataQuery, QuerySchedule, ScheduledRun
from telemetry.models import Span, Trace
from telemetry.tracing import processor
from tests.live import database_url, embedded_env, free_port, wait_until
from tests.telemetry.trace_fixtures import TRACE_DATABASES, flush, otlp_receiver, trace_settings  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
#: A loaded machine starts a worker slowly; a task then takes well under a second.
WORKER_TIMEOUT = 150


@pytest.fixture(scope="module")
def module_otlp_receiver():
    """A local OTLP/HTTP receiver for the module: (endpoint, received exports)."""
    with otlp_receiver() as endpoint_and_received:
        yield endpoint_and_received


@pytest.fixture(scope="module")
def background_worker(django_db_setup, django_db_blocker, redis_url, tmp_path_factory, module_otlp_receiver):
    """A worker on a queue of its own (other test runs share the Redis database), on the
    test databases, keeping every trace; this process's Celery app publishes to it. Once it
    stopped, the test databases are emptied: what it wrote after the last test (spans, query
    statistics at exit) must not reach later tests."""
    from celery import current_app

    queue = f"background-{uuid.uuid4().hex[:8]}"
    var_dir = tmp_path_factory.mktemp("background-worker")
    env = {key: value for key, value in os.environ.items() if key != "TEST_DB_SUFFIX"}
    env.update(CELERY_BROKER_URL=redis_url, CELERY_RESULT_BACKEND=redis_url, VAR_DIR=str(var_dir),
               DATABASE_URL=database_url("default"), TELEMETRY_DATABASE_URL=database_url("telemetry"),
               TELEMETRY_TRACE_SAMPLE_RATE="1.0", PLUGIN_SQLITE_DIRECTORY=str(tmp_path_factory.getbasetemp()),
               OTEL_EXPORTER_OTLP_ENDPOINT=module_otlp_receiver[0], OTEL_BSP_SCHEDULE_DELAY="200")
    log = open(var_dir / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--concurrency=1", "-Q", queue,
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    conf = current_app.conf
    previous = conf.broker_url, conf.broker_transport, conf.broker_transport_options, conf.task_default_queue
    _point_app(current_app, redis_url, None, {}, queue)
    yield {"process": worker, "log": var_dir / "worker.log", "otlp": module_otlp_receiver}
    _point_app(current_app, *previous)
    worker.terminate()
    worker.wait(timeout=30)
    log.close()
    with django_db_blocker.unblock():
        for alias in TRACE_DATABASES:
            call_command("flush", database=alias, interactive=False, verbosity=0)


def _point_app(app, broker_url, transport, transport_options, queue):
    """Publishes of ``app`` go to ``broker_url`` and ``queue`` from now on: the app forgets
    the connection pool and routes it built for the previous broker, as Celery's own
    after-fork cleanup does (the pool itself is kombu's, shared with other clients of that
    broker: never closed here)."""
    app.conf.update(broker_url=broker_url, broker_transport=transport, broker_transport_options=transport_options,
                    task_default_queue=queue)
    app._pool = None
    app.__dict__.pop("amqp", None)


def _worker_alive(worker):
    assert worker["process"].poll() is None, worker["log"].read_text()[-3000:]


def finished_task(client, worker, task_id):
    """The task as ``GET /api/tasks/<id>`` answers once it succeeded or failed."""

    def finished():
        _worker_alive(worker)
        response = client.get(f"/api/tasks/{task_id}")
        assert response.status_code == 200, response.content
        return response.data if response.data["status"] in ("succeeded", "failed") else None

    return wait_until(finished, timeout=WORKER_TIMEOUT, interval=0.3, message="the task never finished")


def stored_span(worker, **filters):
    flush()

    def stored():
        _worker_alive(worker)
        return Span.objects.filter(**filters).first()

    return wait_until(stored, timeout=WORKER_TIMEOUT, interval=0.3, message=f"no stored span {filters}")


@pytest.mark.django_db(databases=TRACE_DATABASES, transaction=True)
def test_an_export_request_and_its_task_on_the_worker_make_one_trace(background_worker, trace_settings, world,
                                                                     api_client_for):
    client = api_client_for(world["users"]["builder"])
    response = client.post(f"/api/apps/{world['own']['app'].slug}/export")
    assert response.status_code == 202, response.content
    assert response.data["status"] == "pending" and response.data["kind"] == "export"
    assert finished_task(client, background_worker, response.data["id"])["status"] == "succeeded"

    flush()
    server = Span.objects.get(kind="server", name="POST /api/apps/<slug>/export/")
    publish = Span.objects.get(trace_id=server.trace_id, name="apply_async/apps_builder.export_app")
    assert publish.parent_span_id == server.span_id
    task_span = stored_span(background_worker, trace_id=server.trace_id, name="run/apps_builder.export_app")
    assert task_span.parent_span_id == publish.span_id and task_span.kind == "consumer"
    # The worker's statements (claim the task, read the app, its versions and queries, store
    # the bundle) are DB spans under its task span, in the same trace. The worker builds them
    # off its task's thread: they may reach the store a flush after the task span.

    def statements():
        found = [span.attributes.get("db.statement", "") for span in Span.objects.filter(
            trace_id=server.trace_id, parent_span_id=task_span.span_id, name="postgresql.query")]
        wanted = ("apps_builder_appversion", "apps_builder_dataquery", 'UPDATE "apps_builder_backgroundtask"')
        return found if all(any(table in statement for statement in found) for table in wanted) else None

    assert len(wait_until(statements, timeout=WORKER_TIMEOUT, interval=0.3, message="the task's DB spans")) >= 4
    assert Trace.objects.filter(trace_id=server.trace_id).count() == 1


@pytest.mark.django_db(databases=TRACE_DATABASES, transaction=True)
def test_an_otlp_receiver_gets_the_same_joined_trace_from_web_and_worker(background_worker, trace_settings, world,
                                                                          api_client_for, monkeypatch):
    endpoint, received = background_worker["otlp"]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    processor.reset_export()
    try:
        client = api_client_for(world["users"]["builder"])
        response = client.post(f"/api/apps/{world['own']['app'].slug}/export")
        assert finished_task(client, background_worker, response.data["id"])["status"] == "succeeded"
        flush()
        trace_id = Span.objects.get(kind="server", name="POST /api/apps/<slug>/export/").trace_id
        processor.export_processor().force_flush(10_000)

        def joined():
            _worker_alive(background_worker)
            names = {span.name for _, _, message in list(received) for resource_spans in message.resource_spans
                     for scope_spans in resource_spans.scope_spans for span in scope_spans.spans
                     if span.trace_id.hex() == trace_id}
            wanted = {"POST /api/apps/<slug>/export/", "apply_async/apps_builder.export_app",
                      "run/apps_builder.export_app"}
            return names if wanted <= names and "postgresql.query" in names else None

        wait_until(joined, timeout=WORKER_TIMEOUT, interval=0.3, message="the joined trace never reached the receiver")
    finally:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
        processor.reset_export()


@pytest.mark.django_db(databases=TRACE_DATABASES, transaction=True)
def test_an_exported_bundle_imports_as_a_new_app_of_the_same_organization(background_worker, trace_settings, world,
                                                                          api_client_for):
    own = world["own"]
    client = api_client_for(world["users"]["builder"])
    AppVersion.objects.create(app=own["app"], name="v2-draft", definition={"pages": [{"name": "draft"}]})
    exported = finished_task(client, background_worker, client.post(f"/api/apps/{own['app'].slug}/export").data["id"])
    bundle = exported["result"]
    assert exported["app"] == own["app"].slug
    assert "s3cr3t-value" not in str(bundle) and "password" not in str(bundle)
    assert [query["name"] for query in bundle["data_queries"]] == ["broken", "customers"]
    assert bundle["data_queries"][0]["data_source"] == {"name": "Sample", "kind": "sqlite"}

    response = client.post("/api/apps/import", {"organization": own["org"].pk, "bundle": bundle,
                                                "name": "Imported app"}, format="json")
    assert response.status_code == 202, response.content
    imported = finished_task(client, background_worker, response.data["id"])
    assert imported["status"] == "succeeded", imported
    new_app = App.objects.get(slug=imported["result"]["app"])
    assert imported["app"] == new_app.slug != own["app"].slug
    assert new_app.organization_id == own["org"].pk and new_app.name == "Imported app"
    assert new_app.definition == own["app"].definition
    versions = [(version.name, version.definition) for version in new_app.versions.order_by("created_at", "id")]
    assert versions == [(version.name, version.definition)
                        for version in own["app"].versions.order_by("created_at", "id")]
    assert new_app.released_version.name == "v1"
    queries = {query.name: query for query in DataQuery.objects.filter(app=new_app)}
    assert set(queries) == {"customers", "broken"}
    assert queries["customers"].options == own["query"].options
    assert {query.data_source_id for query in queries.values()} == {own["source"].pk}
    assert BackgroundTask.objects.get(pk=response.data["id"]).payload == {}  # the bundle is not kept

    # The new app is an app like any other: its viewer load runs the imported queries, as the original's does.
    viewer = api_client_for(world["users"]["viewer"])
    loads = [viewer.get(f"/api/apps/{slug}/view").data for slug in (new_app.slug, own["app"].slug)]
    assert loads[0]["definition"] == loads[1]["definition"] and loads[0]["queries"] == loads[1]["queries"]
    assert set(loads[0]["queries"]) == {"customers", "broken"}


@pytest.mark.django_db(databases=TRACE_DATABASES, transaction=True)
def test_an_import_lands_in_the_callers_organization_only(background_worker, trace_settings, world, api_client_for):
    own, other = world["own"], world["other"]
    client = api_client_for(world["users"]["builder"])
    other["source"].name = "Globex only"
    other["source"].save()
    other_bundle = bundles.build(other["app"])
    other_apps = list(App.objects.filter(organization=other["org"]).values_list("pk", "name", "updated_at"))
    other_queries = list(DataQuery.objects.filter(app__organization=other["org"]).values_list("pk", "options"))

    # Into another organization: the answer of an organization that does not exist.
    for organization_id in (other["org"].pk, 10**9):
        response = client.post("/api/apps/import", {"organization": organization_id, "bundle": other_bundle},
                               format="json")
        assert response.status_code == 400 and response.data == {"organization": ["Unknown organization."]}

    # Another organization's bundle (its slug, its data source's name) lands in ours, on our data source.
    response = client.post("/api/apps/import", {"organization": own["org"].pk, "bundle": other_bundle},
                           format="json")
    imported = finished_task(client, background_worker, response.data["id"])
    new_app = App.objects.get(slug=imported["result"]["app"])
    assert new_app.organization_id == own["org"].pk and new_app.slug != other["app"].slug
    assert set(new_app.queries.values_list("data_source_id", flat=True)) == {own["source"].pk}
    assert list(App.objects.filter(organization=other["org"]).values_list("pk", "name", "updated_at")) == other_apps
    assert list(DataQuery.objects.filter(app__organization=other["org"]).values_list("pk", "options")) == other_queries

    # A kind the organization has no data source of: the task fails and says why.
    other_bundle["data_queries"][0]["data_source"]["kind"] = "mysql"
    response = client.post("/api/apps/import", {"organization": own["org"].pk, "bundle": other_bundle},
                           format="json")
    failed = finished_task(client, background_worker, response.data["id"])
    assert failed["status"] == "failed" and failed["error"] == "The organization has no data source of kind 'mysql'."
    assert failed["result"] is None and failed["app"] is None

    # Another organization's task is a 404, like one that never existed; so is a malformed id.
    other_task = BackgroundTask.objects.create(organization=other["org"], kind="export", app=other["app"])
    for task_id in (other_task.pk, uuid.uuid4(), "not-a-task-id"):
        assert client.get(f"/api/tasks/{task_id}").status_code == 404


def _bundle():
    return {"format": "tooljet-app-bundle", "format_version": 1,
            "app": {"name": "Bundled", "definition": {"pages": []}},
            "versions": [{"name": "v1", "definition": {"pages": []}, "released": True}],
            "data_queries": [{"name": "q", "options": {"query": "SELECT 1"},
                              "data_source": {"name": "Sample", "kind": "sqlite"}}]}


def _with(path, value):
    bundle = _bundle()
    *parents, last = path
    target = bundle
    for key in parents:
        target = target[key]
    target[last] = value
    return bundle


MALFORMED_BUNDLES = {
    "not an object": ["a", "list"],
    "another format": _with(["format"], "zip"),
    "a newer format version": _with(["format_version"], 2),
    "no app": {key: value for key, value in _bundle().items() if key != "app"},
    "pages not a list": _with(["app", "definition"], {"pages": "home"}),
    "versions not a list": _with(["versions"], {"name": "v1"}),
    "two released versions": _with(["versions"], [{"name": "a", "definition": {}, "released": True},
                                                  {"name": "b", "definition": {}, "released": True}]),
    "duplicate version names": _with(["versions"], [{"name": "a", "definition": {}}, {"name": "a", "definition": {}}]),
    "too many versions": _with(["versions"], [{"name": f"v{n}", "definition": {}} for n in range(101)]),
    "query options not an object": _with(["data_queries", 0, "options"], "SELECT 1"),
    "query without a data source": _with(["data_queries", 0, "data_source"], None),
    "a name too long": _with(["app", "name"], "x" * 201),
}


@pytest.mark.django_db
def test_malformed_imports_are_refused_with_a_4xx_and_enqueue_nothing(world, api_client_for):
    own = world["own"]
    client = api_client_for(world["users"]["builder"])
    for case, bundle in MALFORMED_BUNDLES.items():
        response = client.post("/api/apps/import", {"organization": own["org"].pk, "bundle": bundle}, format="json")
        assert response.status_code == 400, (case, response.content)
        assert "bundle" in response.data, (case, response.data)
    huge = _with(["app", "definition"], {"pages": [{"name": "x" * 1000}] * 1100})
    response = client.post("/api/apps/import", {"organization": own["org"].pk, "bundle": huge}, format="json")
    assert response.status_code == 413 and "1,000,000 bytes" in response.data["detail"]
    for body in ({"organization": own["org"].pk}, {"bundle": _bundle()}, {"organization": "acme", "bundle": _bundle()},
                 {"organization": own["org"].pk, "bundle": _bundle(), "slug": "not a slug!"},
                 {"organization": own["org"].pk, "bundle": _bundle(), "slug": own["app"].slug}):
        response = client.post("/api/apps/import", body, format="json")
        assert response.status_code == 400, (body, response.content)
    viewer = api_client_for(world["users"]["viewer"])
    assert viewer.post("/api/apps/import", {"organization": own["org"].pk, "bundle": _bundle()},
                       format="json").status_code == 403
    assert viewer.post(f"/api/apps/{own['app'].slug}/export").status_code == 403
    assert client.post(f"/api/apps/{world['other']['app'].slug}/export").status_code == 404
    assert BackgroundTask.objects.count() == 0


@pytest.mark.django_db
def test_schedules_are_organization_scoped_and_need_a_builder(world, api_client_for, make_member):
    own, other = world["own"], world["other"]
    builder, viewer = (api_client_for(world["users"][role]) for role in ("builder", "viewer"))
    outsider = api_client_for(make_member(other["org"], "admin"))

    assert builder.post("/api/schedules/", {"data_query": own["query"].pk, "interval_seconds": 59},
                        format="json").status_code == 400
    for query_id in (other["query"].pk, 10**9):
        response = builder.post("/api/schedules/", {"data_query": query_id, "interval_seconds": 60}, format="json")
        assert response.status_code == 400 and "data_query" in response.data
    assert viewer.post("/api/schedules/", {"data_query": own["query"].pk, "interval_seconds": 60},
                       format="json").status_code == 403
    response = builder.post("/api/schedules/", {"data_query": own["query"].pk, "interval_seconds": 300,
                                                "parameters": {"city": "Oslo"}}, format="json")
    assert response.status_code == 201, response.content
    schedule_id = response.data["id"]
    assert response.data["organization"] == own["org"].pk

    assert [item["id"] for item in viewer.get("/api/schedules/").data["results"]] == [schedule_id]
    assert viewer.get(f"/api/schedules/{schedule_id}/runs").data == []
    assert outsider.get("/api/schedules/").data["results"] == []
    for request in (outsider.get, outsider.delete):
        assert request(f"/api/schedules/{schedule_id}").status_code == 404
    assert outsider.get(f"/api/schedules/{schedule_id}/runs").status_code == 404
    assert viewer.delete(f"/api/schedules/{schedule_id}").status_code == 403
    assert QuerySchedule.objects.filter(pk=schedule_id).exists()
    assert builder.delete(f"/api/schedules/{schedule_id}").status_code == 204
    assert not QuerySchedule.objects.filter(pk=schedule_id).exists()


@pytest.mark.django_db(databases=TRACE_DATABASES, transaction=True)
def test_a_due_schedule_runs_on_the_worker_through_its_plugin(background_worker, trace_settings, world,
                                                              api_client_for):
    own = world["own"]
    client = api_client_for(world["users"]["builder"])
    ok = client.post("/api/schedules/", {"data_query": own["query"].pk, "interval_seconds": 60,
                                         "parameters": {"city": "Paris"}}, format="json").data["id"]
    broken = client.post("/api/schedules/", {"data_query": own["broken"].pk, "interval_seconds": 60},
                         format="json").data["id"]
    QuerySchedule.objects.update(next_run_at=timezone.now() - timedelta(seconds=1))

    assert tasks.run_due_schedules() == 2  # what beat's dispatcher runs in the worker
    assert tasks.run_due_schedules() == 0  # claimed: moved to their next time
    assert QuerySchedule.objects.get(pk=ok).next_run_at > timezone.now() + timedelta(seconds=50)

    def runs_of(schedule_id):
        _worker_alive(background_worker)
        return client.get(f"/api/schedules/{schedule_id}/runs").data

    ok_run = wait_until(lambda: runs_of(ok), timeout=WORKER_TIMEOUT, interval=0.3)[0]
    broken_run = wait_until(lambda: runs_of(broken), timeout=WORKER_TIMEOUT, interval=0.3)[0]
    assert ok_run["status"] == "ok" and ok_run["row_count"] == 5 and ok_run["error_code"] == ""
    assert broken_run["status"] == "error" and broken_run["error_code"] == "query_failed"
    assert "no_such_table" in broken_run["error_message"]
    assert ok_run["trace_id"] != broken_run["trace_id"]  # each run is a trace of its own

    # The run's trace: the worker's task span, the query run and the plugin's phases under it.
    task_span = stored_span(background_worker, trace_id=ok_run["trace_id"],
                            name="run/apps_builder.run_scheduled_query")
    spans = {span.name: span for span in Span.objects.filter(trace_id=ok_run["trace_id"])}
    assert spans["app_query.run"].parent_span_id == task_span.span_id
    for phase in ("plugin.connect", "plugin.execute", "plugin.serialize"):
        assert spans[phase].parent_span_id == spans["app_query.run"].span_id, sorted(spans)
    assert spans["plugin.execute"].attributes["plugin.kind"] == "sqlite"


@pytest.mark.django_db(databases=TRACE_DATABASES)
def test_a_schedule_keeps_its_latest_runs_only(world, trace_settings):
    schedule = QuerySchedule.objects.create(organization=world["own"]["org"], data_query=world["own"]["query"],
                                            interval_seconds=60, parameters={"city": "Oslo"})
    for _ in range(ScheduledRun.MAX_PER_SCHEDULE + 3):
        assert tasks.run_scheduled_query(schedule.pk) == "ok"
    assert schedule.runs.count() == ScheduledRun.MAX_PER_SCHEDULE
    assert tasks.run_scheduled_query(10**9) is None  # deleted since it was dispatched


@pytest.mark.django_db
def test_finished_tasks_are_deleted_after_a_day_by_the_dispatcher(world):
    now = timezone.now()
    kept, pending, old = (BackgroundTask.objects.create(organization=world["own"]["org"], kind="export",
                                                        status=status, finished_at=finished_at)
                          for status, finished_at in (("succeeded", now - timedelta(hours=23)), ("pending", None),
                                                      ("failed", now - timedelta(hours=25))))
    assert tasks.run_due_schedules() == 0
    assert set(BackgroundTask.objects.values_list("pk", flat=True)) == {kept.pk, pending.pk}


def test_beat_sends_the_schedule_dispatcher_registered_by_the_platform(tmp_path):
    """Beat on the embedded broker picks up the entry ``apps_builder.tasks`` adds (the
    project's ``CELERY_BEAT_SCHEDULE`` does not name it) and sends it."""
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO"],
        cwd=ROOT, env=embedded_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 120
        while not any("Sending due task apps_builder-run-due-schedules" in line for line in lines):
            assert time.monotonic() < deadline and beat.poll() is None, "".join(lines[-50:])
            lines.append(beat.stdout.readline())
    finally:
        beat.terminate()
        beat.wait(timeout=20)


@pytest.mark.django_db(databases=TRACE_DATABASES, transaction=True)  # publishes happen on commit, as in production
def test_an_export_the_broker_refuses_is_a_503_and_a_failed_task(world, api_client_for, trace_settings):
    from celery import current_app

    conf = current_app.conf
    previous = conf.broker_url, conf.broker_transport, conf.broker_transport_options, conf.task_default_queue
    _point_app(current_app, f"redis://127.0.0.1:{free_port()}/0", None, {}, "nobody-listens")
    try:
        response = api_client_for(world["users"]["builder"]).post(f"/api/apps/{world['own']['app'].slug}/export")
    finally:
        _point_app(current_app, *previous)
    assert response.status_code == 503, response.content
    assert response.data["status"] == "failed" and response.data["error"] == tasks.QUEUE_UNAVAILABLE
    assert BackgroundTask.objects.get(pk=response.data["id"]).status == "failed"
