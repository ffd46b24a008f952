"""The slow-query and optimization reports, built by a real Celery worker over Redis
against the test databases, persisted, idempotent."""

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from telemetry.models import QueryFinding, QueryPlan, QueryReport, QueryStat

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(databases=["default", "telemetry"], transaction=True)


def _url(alias):
    params = connections[alias].settings_dict
    return (f"postgres://{params['USER']}:{params['PASSWORD']}@{params['HOST'] or '127.0.0.1'}:"
            f"{params['PORT'] or 5432}/{params['NAME']}")


@pytest.fixture
def worker(redis_url, tmp_path, transactional_db):
    """A worker on its own queue (other test runs may share the Redis database), reading
    and writing this run's test databases."""
    queue = f"query-reports-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url,
           "VAR_DIR": str(tmp_path), "DATABASE_URL": _url("default"), "TELEMETRY_DATABASE_URL": _url("telemetry")}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--concurrency=1", "-Q", queue,
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    from celery import Celery

    client = Celery("config", broker=redis_url, backend=redis_url)

    def run(name, **kwargs):
        return client.send_task(name, kwargs=kwargs, queue=queue).get(timeout=90)

    yield run
    process.terminate()
    process.wait(timeout=30)
    for name in [name for name in connections]:
        connections[name].close()


END = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def stat(fingerprint_id, hour, calls, total_ms, buckets, operation="select", tables="qi_items", suggestions=""):
    fields = {f"bucket_{index}": count for index, count in buckets.items()}
    return QueryStat(
        fingerprint_id=fingerprint_id, alias="default", hour=hour,
        fingerprint=f"SELECT * FROM {tables} /*{fingerprint_id}*/",
        operation=operation, tables=tables, complexity="low", suggestions=suggestions, calls=calls,
        total_ms=total_ms, min_ms=1.0, max_ms=total_ms, rows=calls, first_seen=hour, last_seen=hour, **fields,
    )


@pytest.fixture
def statistics():
    current, previous = END - timedelta(hours=1), END - timedelta(hours=3)
    QueryStat.objects.using("telemetry").bulk_create([
        # "busy": many fast calls, twice the time of the previous period.
        stat("busy", current, 1000, 1000.0, {0: 1000}, suggestions="select_star"),
        stat("busy", previous, 500, 500.0, {0: 500}),
        # "rare": few calls, all between 1 and 2 s: the top p95.
        stat("rare", current, 10, 15000.0, {10: 10}, operation="update", tables="qi_unused"),
        # Outside both periods: ignored.
        stat("busy", END, 99999, 99999.0, {0: 99999}),
    ])


def test_slow_query_report_by_a_real_worker(worker, statistics):
    result = worker("telemetry.build_slow_query_report", hours=2, end=END.isoformat())
    report = QueryReport.objects.using("telemetry").get(pk=result["report_id"])
    assert (report.kind, report.period_start, report.period_end) == ("slow_queries", END - timedelta(hours=2), END)
    data = report.data
    assert [row["fingerprint_id"] for row in data["by_total_time"]] == ["rare", "busy"]
    assert [row["fingerprint_id"] for row in data["by_p95"]] == ["rare", "busy"]
    busy = data["by_total_time"][1]
    assert (busy["calls"], busy["total_ms"], busy["mean_ms"]) == (1000, 1000.0, 1.0)
    assert busy["previous"]["total_ms"] == 500.0 and busy["change_total_ms"] == 1.0
    rare = data["by_p95"][0]
    assert 1000 < rare["p95_ms"] <= 2000 and rare["previous"] is None
    assert data["totals"]["calls"] == 1010 and data["change"]["calls"] == pytest.approx(1.02)

    again = worker("telemetry.build_slow_query_report", hours=2, end=END.isoformat())
    assert again["report_id"] == report.pk
    assert QueryReport.objects.using("telemetry").filter(kind="slow_queries").count() == 1


@pytest.fixture
def unused_table():
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TABLE qi_unused (id bigserial PRIMARY KEY, label text, kind integer)")
        cursor.execute("INSERT INTO qi_unused (label) SELECT 'l' || g FROM generate_series(1, 20000) g")
        cursor.execute("CREATE INDEX qi_unused_label_idx ON qi_unused (label)")
        cursor.execute("ANALYZE qi_unused")
        # The observation window of unused indexes starts now (tests/telemetry/test_advise.py).
        cursor.execute("SELECT pg_stat_reset()")
    yield
    with connections["default"].cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS qi_unused")


def test_optimization_report_ranks_by_share_of_db_time(worker, statistics, unused_table):
    created = END - timedelta(minutes=30)
    QueryFinding.objects.using("telemetry").create(
        code="n_plus_one", fingerprint_id="busy", fingerprint="SELECT * FROM qi_items", alias="default",
        call_site="apps/views.py:12 in list_items", repetitions=8, trace_id="ab" * 16, created_at=created,
    )
    QueryPlan.objects.using("telemetry").create(
        fingerprint_id="rare", alias="default", fingerprint="UPDATE qi_unused SET label = ? WHERE kind = ?",
        plan=[{"Plan": {"Node Type": "Seq Scan", "Total Cost": 1000.0}}], total_cost=1000.0, captured_at=created,
        candidates=[{"schema": "public", "table": "qi_unused", "columns": ["kind"], "table_rows": 20000,
                     "create_statement": 'CREATE INDEX CONCURRENTLY "qi_unused_kind_idx" ON '
                                         '"public"."qi_unused" ("kind");',
                     "cost_before": 1000.0, "cost_after": 10.0, "gain": 0.99, "proven": True}],
    )
    result = worker("telemetry.build_optimization_report", hours=2, end=END.isoformat())
    report = QueryReport.objects.using("telemetry").get(pk=result["report_id"])
    suggestions = list(report.suggestions.all())
    codes = [(item.code, item.fingerprint_id) for item in suggestions]
    # "rare" holds 15000 of 16000 ms: its missing index comes first. The unused index its
    # UPDATE maintains is not advised: the statistics are minutes old, not days.
    assert codes[:1] == [("missing_index", "rare")]
    assert set(codes[1:]) == {("n_plus_one", "busy"), ("select_star", "busy")}
    missing = suggestions[0]
    assert missing.share_of_db_time == pytest.approx(15000 / 16000, abs=1e-3)
    assert missing.proven is True and missing.estimated_gain == 0.99
    assert missing.create_statement.startswith("CREATE INDEX CONCURRENTLY")
    n_plus_one = next(item for item in suggestions if item.code == "n_plus_one")
    assert n_plus_one.evidence["trace_id"] == "ab" * 16
    assert n_plus_one.evidence["call_site"] == "apps/views.py:12 in list_items"
    assert [item.rank for item in suggestions] == list(range(1, len(suggestions) + 1))

    again = worker("telemetry.build_optimization_report", hours=2, end=END.isoformat())
    assert again["report_id"] == report.pk
    assert report.suggestions.count() == len(suggestions)
