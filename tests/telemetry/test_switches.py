"""Each switch turns off everything under it, at once (``override_settings``), while the
others keep working: real requests whose view runs statements, a business span and a
warning log, on PostgreSQL, through the real pipeline (recorder, flusher, trace store,
EXPLAIN with HypoPG)."""

import logging

import pytest
from django.contrib.auth.models import Group
from django.db import connection, connections
from django.http import JsonResponse
from django.test.utils import CaptureQueriesContext
from django.urls import path
from opentelemetry import trace as trace_api
from prometheus_client import REGISTRY

from telemetry import api
from telemetry.core.context import suppressed
from telemetry.models import LogEntry, QueryFinding, QueryPlan, QueryReport, QueryStat, Span
from telemetry.queries import explain
from telemetry.tasks import build_optimization_report, build_slow_query_report

from .trace_fixtures import TRACE_DATABASES, trace_settings  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(databases=TRACE_DATABASES), pytest.mark.urls(__name__)]

logger = logging.getLogger("app.switches")


def work(request):
    with api.span("switches.work"):
        count = Group.objects.filter(name="g").count()
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM sw_items WHERE owner = %s", [17])
            rows = cursor.fetchall()
    logger.warning("switch warning %s", len(rows))
    with trace_api.get_tracer("tests.switches").start_as_current_span("third_party.call"):
        pass  # what an instrumented client library (requests, redis, Celery) makes
    return JsonResponse({"count": count, "rows": len(rows)})


urlpatterns = [path("switches/work", work)]


@pytest.fixture
def world(trace_settings):
    """Every statement is slow (so findings and EXPLAIN follow); ``sw_items`` is large enough
    for index advice, its ``owner`` filter unindexed, so HypoPG has a candidate to prove."""
    trace_settings(SLOW_QUERY_MS=0, EXPLAIN_PER_MINUTE=1000, MISSING_INDEX_MIN_ROWS=1000, HYPOPG_MIN_GAIN=0.0)
    with suppressed(), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE sw_items (id bigserial PRIMARY KEY, owner integer NOT NULL)")
        cursor.execute("INSERT INTO sw_items (owner) SELECT g % 500 FROM generate_series(1, 5000) g")
        cursor.execute("ANALYZE sw_items")
    api.flush(sample=True)
    explain.queue.reset()
    return trace_settings


def _sum(name):
    return sum(sample.value for family in REGISTRY.collect() for sample in family.samples if sample.name == name)


class Work:
    """What one run of the view left, as deltas: metric series, stored rows, HypoPG calls."""

    def __init__(self, client):
        requests = _sum("http_server_request_duration_seconds_count")
        statements = _sum("db_client_operation_count_total")
        counts = self._rows()
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/switches/work").status_code == 200
            api.flush(sample=True)  # metrics, statistics, findings, EXPLAIN, spans, logs
        self.requests = _sum("http_server_request_duration_seconds_count") - requests
        self.statements = _sum("db_client_operation_count_total") - statements
        self.rows = {name: count - counts[name] for name, count in self._rows().items()}
        self.hypopg_calls = sum("hypopg_create_index" in query["sql"] for query in captured.captured_queries)
        plan = QueryPlan.objects.using("telemetry").filter(fingerprint__icontains="sw_items").first()
        self.proven = [candidate["proven"] for candidate in plan.candidates] if plan else []

    @staticmethod
    def _rows():
        telemetry = "telemetry"
        return {
            "business_spans": Span.objects.using(telemetry).filter(name__in=["switches.work", "third_party.call"])
            .count(),
            "request_spans": Span.objects.using(telemetry).filter(name="GET /switches/work").count(),
            "db_spans": Span.objects.using(telemetry).filter(attributes__has_key="db.statement").count(),
            "logs": LogEntry.objects.using(telemetry).filter(logger="app.switches").count(),
            "statistics": sum(QueryStat.objects.using(telemetry).filter(fingerprint__icontains="sw_items")
                              .values_list("calls", flat=True)),
            "findings": QueryFinding.objects.using(telemetry).filter(fingerprint__icontains="sw_items").count(),
            "plans": QueryPlan.objects.using(telemetry).filter(fingerprint__icontains="sw_items").count(),
        }


def test_with_every_switch_on_every_kind_of_work_is_done(world, client):
    done = Work(client)
    assert (done.requests, done.statements >= 2) == (1, True)
    assert done.rows == {"business_spans": 2, "request_spans": 1, "db_spans": 2, "logs": 1, "statistics": 1,
                         "findings": 1, "plans": 1}
    assert done.hypopg_calls >= 1 and done.proven == [True]


def test_metrics_off(world, client):
    """No series; and no statement recorded (statistics, findings, plans and the request's
    server and DB spans are built from what the middleware and the execute wrapper record)."""
    world(METRICS_ENABLED=False)
    done = Work(client)
    assert (done.requests, done.statements) == (0, 0)
    assert done.rows == {"business_spans": 2, "request_spans": 0, "db_spans": 0, "logs": 1, "statistics": 0,
                         "findings": 0, "plans": 0}
    assert done.hypopg_calls == 0


def test_traces_off(world, client):
    world(TRACES_ENABLED=False)
    done = Work(client)
    assert (done.requests, done.statements >= 2) == (1, True)
    assert done.rows == {"business_spans": 0, "request_spans": 0, "db_spans": 0, "logs": 1, "statistics": 1,
                         "findings": 1, "plans": 1}


def test_logs_off(world, client):
    world(LOGS_ENABLED=False)
    done = Work(client)
    assert (done.requests, done.statements >= 2) == (1, True)
    assert done.rows == {"business_spans": 2, "request_spans": 1, "db_spans": 2, "logs": 0, "statistics": 1,
                         "findings": 1, "plans": 1}


def test_query_statistics_off(world, client):
    """Statistics, the runtime detectors and the EXPLAIN (and HypoPG) they queue."""
    world(QUERY_STATS_ENABLED=False)
    done = Work(client)
    assert (done.requests, done.statements >= 2) == (1, True)
    assert done.rows == {"business_spans": 2, "request_spans": 1, "db_spans": 2, "logs": 1, "statistics": 0,
                         "findings": 0, "plans": 0}
    assert done.hypopg_calls == 0
    # The report tasks of beat build nothing and ask no database anything either.
    with CaptureQueriesContext(connections["telemetry"]) as store, CaptureQueriesContext(connection) as host:
        assert build_slow_query_report() == {"skipped": "QUERY_STATS_ENABLED is off"}
        assert build_optimization_report() == {"skipped": "QUERY_STATS_ENABLED is off"}
    assert (len(store.captured_queries), len(host.captured_queries), QueryReport.objects.count()) == (0, 0, 0)


def test_explain_off(world, client):
    world(EXPLAIN_ENABLED=False)
    done = Work(client)
    assert done.rows == {"business_spans": 2, "request_spans": 1, "db_spans": 2, "logs": 1, "statistics": 1,
                         "findings": 1, "plans": 0}
    assert done.hypopg_calls == 0


def test_hypopg_off(world, client):
    """The plan is kept and its candidate listed, unproven: no hypothetical index is made."""
    world(HYPOPG_ENABLED=False)
    done = Work(client)
    assert done.rows == {"business_spans": 2, "request_spans": 1, "db_spans": 2, "logs": 1, "statistics": 1,
                         "findings": 1, "plans": 1}
    assert (done.hypopg_calls, done.proven) == (0, [None])
