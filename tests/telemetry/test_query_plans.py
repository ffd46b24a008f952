"""Plans of slow statements and index advice on a real PostgreSQL with HypoPG, through the
real pipeline: execute wrapper -> recorder -> flush -> detectors -> EXPLAIN."""

import json

import pytest
from django.db import connection

from telemetry import api, testing
from telemetry.core import guard
from telemetry.core.context import suppressed
from telemetry.models import QueryPlan
from telemetry.queries import advice, explain

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])


@pytest.fixture
def orders(settings):
    """50,000 orders: ``customer_id`` is selective and not indexed; ``status`` is 'done'
    on 95 % of the rows, so no index on it can help."""
    settings.TELEMETRY = {**settings.TELEMETRY, "SLOW_QUERY_MS": 0, "EXPLAIN_PER_MINUTE": 1000}
    with suppressed(), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE qi_orders (id bigserial PRIMARY KEY, customer_id integer NOT NULL, "
                       "status text NOT NULL, note text NOT NULL)")
        cursor.execute("INSERT INTO qi_orders (customer_id, status, note) SELECT g % 5000, "
                       "CASE WHEN g % 20 = 0 THEN 'new' ELSE 'done' END, 'n' FROM generate_series(1, 50000) g")
        cursor.execute("ANALYZE qi_orders")
        QueryPlan.objects.using("telemetry").all().delete()
    api.flush(sample=True)
    testing.reset()


def run(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    api.flush(sample=True)


def plan_for(fragment):
    return QueryPlan.objects.using("telemetry").get(fingerprint__icontains=fragment)


def test_a_selective_filter_without_index_gets_a_proven_missing_index(orders):
    run("SELECT id, note FROM qi_orders WHERE customer_id = %s", [4242])
    plan = plan_for("where customer_id")
    assert plan.alias == "default"
    assert [scan["table"] for scan in plan.seq_scans] == ["qi_orders"]
    [candidate] = plan.candidates
    assert candidate["columns"] == ["customer_id"]
    assert candidate["create_statement"].startswith("CREATE INDEX CONCURRENTLY ")
    assert '"qi_orders" ("customer_id")' in candidate["create_statement"]
    assert candidate["proven"] is True
    assert candidate["gain"] >= 0.5
    assert candidate["cost_after"] < candidate["cost_before"] / 2
    stored = json.dumps([plan.fingerprint, plan.plan, plan.seq_scans, plan.candidates])
    assert "4242" not in stored
    assert '"Node Type": "Seq Scan"' in stored


def test_a_filter_matching_most_rows_gets_no_suggestion(orders):
    run("SELECT id FROM qi_orders WHERE status = %s", ["done"])
    plan = plan_for("where status")
    assert [scan["table"] for scan in plan.seq_scans] == ["qi_orders"]
    assert plan.candidates == []
    assert "done" not in json.dumps(plan.plan)


def test_without_hypopg_the_candidate_is_kept_unproven_and_the_failure_counted(orders):
    before = guard.internal_error_count("hypopg")
    with suppressed(), connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS hypopg")
        cursor.execute("CREATE ROLE qi_plain NOLOGIN")
        cursor.execute("GRANT SELECT ON qi_orders TO qi_plain")
        cursor.execute("SET ROLE qi_plain")  # may not CREATE EXTENSION hypopg
    try:
        run("SELECT id FROM qi_orders WHERE customer_id = %s", [99])
    finally:
        with suppressed(), connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
        advice.reset()
    [candidate] = plan_for("where customer_id").candidates
    assert candidate["columns"] == ["customer_id"]
    assert (candidate["proven"], candidate["gain"]) == (None, None)
    assert guard.internal_error_count("hypopg") - before == 1


def test_explain_never_runs_the_statement(orders):
    run("UPDATE qi_orders SET note = note || %s WHERE customer_id = %s", ["!", 7])
    assert plan_for("update").plan[0]["Plan"]["Node Type"] == "ModifyTable"
    with connection.cursor() as cursor:
        cursor.execute("SELECT note, count(*) FROM qi_orders WHERE customer_id = 7 GROUP BY note")
        assert cursor.fetchall() == [("n!", 10)]


def test_each_fingerprint_is_explained_once_per_interval(orders):
    before = explain.stats["explained"]
    for value in (1, 2, 3):
        run("SELECT id FROM qi_orders WHERE customer_id = %s", [value])
    assert explain.stats["explained"] - before == 1


def test_statements_that_are_not_plain_dml_are_never_explained(orders):
    for sql in ("SET search_path TO public", "SAVEPOINT s1", "CREATE INDEX ON qi_orders (note)",
                "SELECT 1; SELECT 2", "VACUUM qi_orders"):
        assert not explain.explainable(sql)
    assert explain.explainable("WITH x AS (SELECT 1) SELECT * FROM x")
    assert explain.explainable("/* comment */ SELECT 1;")


def test_an_explain_that_fails_is_counted_not_raised(orders):
    before = guard.internal_error_count("explain")
    failed = explain.stats["failed"]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE qi_dropped (a integer)")
    sql = "SELECT a FROM qi_dropped WHERE a = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [1])
        # The table goes before the plan is taken: the queued EXPLAIN fails.
        cursor.execute("DROP TABLE qi_dropped")
    api.flush(sample=True)
    assert guard.internal_error_count("explain") - before == 1
    assert explain.stats["failed"] - failed == 1
    with connection.cursor() as cursor:  # the connection's transaction is intact
        cursor.execute("SELECT count(*) FROM qi_orders")
        assert cursor.fetchone() == (50000,)


def test_other_vendors_are_not_explained():
    class Analysis:
        fingerprint_id, fingerprint = "x", "select ?"

    assert explain.offer("default", "sqlite", "SELECT 1", [], False, Analysis) is False


def test_a_scrape_leaves_queued_explains_to_the_flusher(orders, client):
    """``/metrics`` applies its own process's events first; an EXPLAIN those events queue
    waits for the flusher's next sample, so a scrape never waits on a database."""
    before = explain.stats["explained"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM qi_orders WHERE customer_id = %s", [31])
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert explain.stats["explained"] == before
    api.flush(sample=True)
    assert explain.stats["explained"] - before == 1
    assert plan_for("where customer_id").alias == "default"
