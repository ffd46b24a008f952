"""Telemetry's background threads keep their PostgreSQL connections: the flusher's samples
and the trace store writer reuse one connection each (no new connection, hence no SCRAM
handshake, per sample or per write), and a backend the server terminates is replaced
before the next use, which succeeds (the replacement counted)."""

import queue
import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connections, transaction
from django.http import JsonResponse
from django.test.utils import CaptureQueriesContext
from django.urls import path

from telemetry.core import guard, recorder
from telemetry.core.context import suppress_in_this_thread
from telemetry.models import QueryStat, Span
from telemetry.tracing import processor

from .trace_fixtures import trace_settings  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "telemetry"]),
              pytest.mark.urls(__name__)]


def two_queries(request):
    return JsonResponse({"groups": Group.objects.count(), "named": Group.objects.filter(name="x").exists()})


urlpatterns = [path("two-queries", two_queries)]


class BackgroundThread:
    """One long-lived thread that runs what it is given, as the flusher or the trace store
    writer runs its ticks: its database connections are its own and outlive each call."""

    def __init__(self) -> None:
        self._asked: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        suppress_in_this_thread()
        while True:
            function = self._asked.get()
            try:
                self._done.put((function(), None))
            except BaseException as exc:  # noqa: BLE001 - handed back to the test
                self._done.put((None, exc))

    def run(self, function):
        self._asked.put(function)
        result, error = self._done.get(timeout=60)
        if error is not None:
            raise error
        return result

    def stop(self) -> None:
        self.run(connections.close_all)  # the test database is dropped at the end: no session may remain


def _backend_pid():
    """The server process of this thread's telemetry connection, or None when none is open."""
    raw = connections["telemetry"].connection
    return raw.info.backend_pid if raw is not None else None


def _terminate(pid):
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone()[0] is True


def _view_calls():
    """Calls of the view's statements in the stored statistics."""
    rows = QueryStat.objects.using("telemetry").filter(fingerprint__contains="auth_group")
    return sum(rows.values_list("calls", flat=True))


def _stale():
    return guard.internal_error_count("stale_connection")


def _sample():
    """The flusher's tick with a sample due, then the pid of the connection it wrote with."""
    recorder.event_buffer._tick()
    return _backend_pid()


@pytest.fixture
def flusher(settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "SAMPLE_INTERVAL_SECONDS": 0.0, "STORE_TIMEOUT_SECONDS": 1.0}
    thread = BackgroundThread()
    yield thread
    thread.stop()


def test_samples_reuse_one_connection_and_replace_a_terminated_one(client, flusher):
    pids = []
    stale = _stale()
    for _ in range(3):
        assert client.get("/two-queries").status_code == 200
        pids.append(flusher.run(_sample))
    assert pids[0] is not None and pids == [pids[0]] * 3  # one connection for every sample
    assert _stale() == stale
    calls = _view_calls()

    _terminate(pids[0])
    errors = guard.internal_error_count("sample:query_stats")
    assert client.get("/two-queries").status_code == 200
    replaced = flusher.run(_sample)
    assert replaced is not None and replaced != pids[0]
    assert _stale() - stale == 1
    assert guard.internal_error_count("sample:query_stats") == errors  # the sample after it succeeded
    assert _view_calls() == calls + 2  # the view's two statements, written by that sample
    assert flusher.run(_sample) == replaced  # and the new one is kept in turn


def test_the_trace_store_writer_reuses_its_connection_and_replaces_a_terminated_one(client, trace_settings):
    writer = BackgroundThread()
    try:
        def write():
            processor.flush()
            return _backend_pid()

        pids = []
        stale = _stale()
        for _ in range(3):
            assert client.get("/two-queries").status_code == 200
            recorder.flush()  # the request's spans, built and queued for the writer
            pids.append(writer.run(write))
        assert pids[0] is not None and pids == [pids[0]] * 3
        stored = Span.objects.using("telemetry").count()
        assert stored > 0

        _terminate(pids[0])
        assert client.get("/two-queries").status_code == 200
        recorder.flush()
        replaced = writer.run(write)
        assert replaced is not None and replaced != pids[0]
        assert _stale() - stale == 1
        assert Span.objects.using("telemetry").count() == stored + stored // 3  # written at once, none lost
        assert processor.failed_batches() == 0
    finally:
        writer.stop()


def test_a_store_that_hangs_mid_sample_fails_the_rest_of_its_writes_counted_and_the_next_sample_writes(
        client, flusher):
    """The sample's writes share one deadline: the write the store holds fails at it, those
    after it at once (its connection is shut down), each counted under its own step; the
    ones before it are stored, and the next sample replaces the connection and writes."""
    def errors():
        return {step: guard.internal_error_count(f"sample:{step}")
                for step in ("active_users", "releases", "routes", "query_stats")}

    assert client.get("/two-queries").status_code == 200
    flusher.run(_sample)  # the thread's connection is open and kept
    calls, before, timeouts = _view_calls(), errors(), guard.internal_error_count("store_timeout")
    assert client.get("/two-queries").status_code == 200
    # The route table locked by another session: the sample's write to it waits for the deadline.
    with transaction.atomic(using="telemetry"), connections["telemetry"].cursor() as cursor:
        cursor.execute("LOCK TABLE telemetry_routestat IN ACCESS EXCLUSIVE MODE")
        flusher.run(_sample)
    failed = {step: count - before[step] for step, count in errors().items()}
    assert failed == {"active_users": 0, "releases": 0, "routes": 1, "query_stats": 1}
    assert guard.internal_error_count("store_timeout") - timeouts == 1
    assert _view_calls() == calls  # the statistics' write came after the hung one: not stored

    assert client.get("/two-queries").status_code == 200
    flusher.run(_sample)
    assert errors() == {step: count + failed[step] for step, count in before.items()}
    assert _view_calls() == calls + 2  # the next sample wrote the view's statements (not those lost)


def test_with_the_stores_queries_logged_a_samples_statements_are_logged(client, flusher):
    """With ``DEBUG`` or ``CaptureQueriesContext`` on the store's alias, a sample's own
    statements are logged as any other."""
    def logged_sample():
        with CaptureQueriesContext(connections["telemetry"]) as queries:
            recorder.event_buffer._tick()
        return [query["sql"] for query in queries.captured_queries]

    assert client.get("/two-queries").status_code == 200
    calls = _view_calls()
    statements = flusher.run(logged_sample)
    assert any(sql.startswith('INSERT INTO "telemetry_routestat"') for sql in statements), statements
    assert any('FROM "telemetry_useractivity"' in sql for sql in statements), statements
    assert _view_calls() == calls + 2
