"""No self-noise: what telemetry runs itself (its admin pages and views, its Celery tasks)
and what management commands run stay out of the fingerprints, findings and traces, while
the same statements run by the host's views and tasks are recorded; the setting
``QUERY_STATS_MANAGEMENT_COMMANDS`` records the commands' statements."""

import io
import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.db import connections
from django.db.models import Sum
from django.http import HttpResponse
from django.urls import include, path
from django.utils.module_loading import import_string

from telemetry import api, conf
from telemetry.core.context import suppressed
from telemetry.models import QueryFinding, QueryStat, Span, Trace
from telemetry.queries.sql import analyze
from telemetry.tasks import sample_storage_usage
from tests.live import ROOT, database_url

from .trace_fixtures import TRACE_DATABASES, trace_settings  # noqa: F401

pytestmark = [pytest.mark.urls(__name__)]

#: Telemetry's own pages a staff user browses: its admin pages and its URLconf's views.
OWN_PAGES = ["/admin/telemetry/", "/admin/telemetry/trace/", "/admin/telemetry/querystat/",
             "/admin/telemetry/queryfinding/", "/admin/telemetry/organizationusage/", "/admin/telemetry/routestat/",
             "/admin/telemetry/releaseroutestats/", "/health"]


def signed_in_page(request):
    """The host's own page: it loads the session and the user, as the admin pages do."""
    return HttpResponse(request.user.get_username())


def clear_expired_sessions(request):
    """What ``clearsessions`` runs, from a view."""
    SessionStore.clear_expired()
    return HttpResponse("cleared")


def storage_usage(request):
    """The statements of telemetry's storage sample, from a view."""
    return HttpResponse(str(len(list(import_string(conf.get("STORAGE_USAGE_PROVIDER"))()))))


urlpatterns = [
    path("host/page", signed_in_page),
    path("host/clear-sessions", clear_expired_sessions),
    path("host/storage", storage_usage),
    path("", include("config.urls")),
]


class Statements:
    """The statements run on every alias inside the block, as fingerprint ids and operations."""

    def __init__(self):
        self.fingerprint_ids = set()
        self.operations = set()
        self._stack = ExitStack()

    def _capture(self, execute, sql, params, many, context):
        analysis = analyze(sql, params, context["connection"].vendor)
        self.fingerprint_ids.add(analysis.fingerprint_id)
        self.operations.add(analysis.operation)
        return execute(sql, params, many, context)

    def __enter__(self):
        for alias in TRACE_DATABASES:
            self._stack.enter_context(connections[alias].execute_wrapper(self._capture))
        return self

    def __exit__(self, *exc_info):
        self._stack.close()


def recorded_calls(fingerprint_ids):
    """Calls stored per fingerprint (0 when absent), after this process wrote what it holds
    (the test's own reading unrecorded: the admin pages run some of the same statements)."""
    api.flush(sample=True)
    with suppressed():
        stats = (QueryStat.objects.using("telemetry").filter(fingerprint_id__in=fingerprint_ids)
                 .values("fingerprint_id").annotate(calls=Sum("calls")))
        stored = {row["fingerprint_id"]: row["calls"] for row in stats}
    return {fingerprint_id: stored.get(fingerprint_id, 0) for fingerprint_id in fingerprint_ids}


def stored_counts():
    api.flush(sample=True)
    with suppressed():
        return QueryFinding.objects.count(), Trace.objects.count(), Span.objects.count()


def browse_own_pages(client):
    with Statements() as own:
        for url in OWN_PAGES:
            assert client.get(url, follow=True).status_code == 200, url
    assert own.fingerprint_ids
    return own.fingerprint_ids


@pytest.mark.django_db(databases=TRACE_DATABASES)
def test_telemetry_pages_leave_no_fingerprint_finding_or_trace_and_the_host_page_does(admin_client,
                                                                                       trace_settings):
    own = browse_own_pages(admin_client)  # the statements they run (signing in ran some before)
    calls = recorded_calls(own)
    findings, traces, spans = stored_counts()
    assert browse_own_pages(admin_client) & own  # (cached lookups run once)
    assert recorded_calls(own) == calls
    assert stored_counts() == (findings, traces, spans)
    # The host's page loads the same session and user as the admin pages did.
    with Statements() as host:
        assert admin_client.get("/host/page").status_code == 200
    shared = host.fingerprint_ids & own
    assert shared
    assert recorded_calls(shared) == {key: calls[key] + 1 for key in shared}
@pytest.mark.django_db(databases=TRACE_DATABASES)
def test_a_telemetry_task_leaves_no_fingerprint_or_trace_and_the_same_statements_from_a_view_do(client,
                                                                                                trace_settings):
    findings, traces, spans = stored_counts()
    with Statements() as own:
        assert sample_storage_usage.apply().successful()
    assert own.fingerprint_ids
    assert recorded_calls(own.fingerprint_ids) == dict.fromkeys(own.fingerprint_ids, 0)
    assert stored_counts() == (findings, traces, spans)
    with Statements() as host:
        assert client.get("/host/storage").status_code == 200
    assert host.fingerprint_ids == own.fingerprint_ids
    assert recorded_calls(own.fingerprint_ids) == dict.fromkeys(own.fingerprint_ids, 1)


@pytest.mark.django_db(databases=TRACE_DATABASES)
def test_management_commands_are_recorded_only_when_the_setting_says_so(client, settings, trace_settings):
    with Statements() as command:
        call_command("clearsessions")
    assert command.fingerprint_ids
    assert conf.get("QUERY_STATS_MANAGEMENT_COMMANDS") is False  # the default
    assert recorded_calls(command.fingerprint_ids) == dict.fromkeys(command.fingerprint_ids, 0)
    # The same statement from a view is recorded.
    assert client.get("/host/clear-sessions").status_code == 200
    assert recorded_calls(command.fingerprint_ids) == dict.fromkeys(command.fingerprint_ids, 1)
    settings.TELEMETRY = {**settings.TELEMETRY, "QUERY_STATS_MANAGEMENT_COMMANDS": True}
    call_command("clearsessions")
    assert recorded_calls(command.fingerprint_ids) == dict.fromkeys(command.fingerprint_ids, 2)


@pytest.mark.django_db(databases=TRACE_DATABASES)
def test_the_demo_seed_leaves_no_fingerprint(settings, tmp_path):
    """``make demo`` seeds with a management command: its bulk inserts are not the demo's
    #1 optimization any more."""
    settings.VAR_DIR = tmp_path
    settings.PLUGINS = {**settings.PLUGINS, "SQLITE_DIRECTORY": str(tmp_path / "datasources")}
    with Statements() as seed:
        call_command("seed_demo", stdout=io.StringIO(), audit_events=500)
    assert "insert" in seed.operations
    assert recorded_calls(seed.fingerprint_ids) == dict.fromkeys(seed.fingerprint_ids, 0)


@pytest.fixture
def worker_queue(redis_url, tmp_path):
    """A worker on its own queue (other test runs may share the Redis database) that also
    runs the host task of ``noise_tasks``, keeping every trace and sampling each second."""
    queue = f"self-noise-{uuid.uuid4().hex[:8]}"
    env = {key: value for key, value in os.environ.items() if key != "TEST_DB_SUFFIX"}
    env.update(CELERY_BROKER_URL=redis_url, CELERY_RESULT_BACKEND=redis_url, VAR_DIR=str(tmp_path),
               DATABASE_URL=database_url("default"), TELEMETRY_DATABASE_URL=database_url("telemetry"),
               TELEMETRY_TRACE_SAMPLE_RATE="1.0")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--concurrency=1",
         "-Q", queue, "-I", "tests.telemetry.noise_tasks", "--without-heartbeat", "--without-gossip",
         "--without-mingle", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    yield worker, queue
    worker.terminate()
    worker.wait(timeout=20)


@pytest.mark.django_db(databases=TRACE_DATABASES, transaction=True)
def test_in_a_real_worker_a_telemetry_task_leaves_no_trace_or_fingerprint_and_a_host_task_does(
        worker_queue, redis_url):
    from celery import Celery

    worker, queue = worker_queue
    with suppressed(), Statements() as provider:  # what the provider runs, unrecorded here
        import_string(conf.get("STORAGE_USAGE_PROVIDER"))()
    broker = Celery("config", broker=redis_url, backend=redis_url)
    broker.send_task("telemetry.sample_storage_usage", queue=queue)
    # The solo worker runs its tasks in order: the host's task ends after telemetry's.
    assert broker.send_task("tests.noise.storage_usage", queue=queue).get(timeout=150) == 0
    deadline = time.monotonic() + 60
    stats = QueryStat.objects.using("telemetry").filter(fingerprint_id__in=provider.fingerprint_ids)
    host_spans = Span.objects.filter(trace_id__in=Span.objects.filter(name="run/tests.noise.storage_usage")
                                     .values("trace_id"))
    # The run span, the spans of its statements (built by the flusher) and their statistics.
    while not (host_spans.filter(kind="client").exists() and stats.aggregate(calls=Sum("calls"))["calls"]):
        assert worker.poll() is None, worker.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the worker never stored the host task's trace and statements"
        time.sleep(0.3)
    # One call per statement: the host task's, none of telemetry's run of the same provider.
    assert {row.fingerprint_id: row.calls for row in stats} == {key: 1 for key in provider.fingerprint_ids}
    assert not Span.objects.filter(name__endswith="/telemetry.sample_storage_usage").exists()
