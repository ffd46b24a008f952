"""Index advice that becomes a migration, on a real PostgreSQL with HypoPG: slow statements
on a model's table (``tests.advise_app``, 100,000 orders) go through the real capture path
(execute wrapper -> flush -> EXPLAIN -> HypoPG proof), ``telemetry_advise`` writes the
migration into a temporary copy of the app's migrations, ``migrate`` applies it, the
planner uses the index and a second ``--check`` is clean. Unused indexes wait for the
observation window and never touch an index behind a constraint."""

import importlib
import io
import shutil
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from telemetry import api, testing
from telemetry.core.context import suppressed
from telemetry.models import QueryPlan
from telemetry.queries import advise, reports

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"], transaction=True)

APP_MIGRATIONS = Path(__file__).resolve().parents[1] / "advise_app" / "migrations"
BY_CUSTOMER = 'SELECT "id", "note" FROM "advise_app_order" WHERE "customer_id" = %s'
BY_CUSTOMER_AND_STATUS = 'SELECT "id" FROM "advise_app_order" WHERE "customer_id" = %s AND "status" = %s'
WRITE = 'UPDATE "advise_app_order" SET "note" = %s WHERE "id" = %s'


@pytest.fixture
def orders(settings):
    """100,000 orders: ``customer_id`` selective (100 rows each) and not indexed, ``status``
    'new' on 10 % of the rows (not rare enough for a partial index: a composite index is
    what serves both statements); PostgreSQL's statistics reset now (the observation window
    of unused indexes starts here). The indexes a test adds by SQL are dropped after it."""
    settings.TELEMETRY = {**settings.TELEMETRY, "SLOW_QUERY_MS": 0, "EXPLAIN_PER_MINUTE": 1000}
    with suppressed(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO advise_app_order (customer_id, status, email, reference, note, created_at) "
            "SELECT g % 1000, CASE WHEN g % 10 = 0 THEN 'new' ELSE 'done' END, 'user' || g || '@example.com', "
            "'r' || g, 'n', now() - g * interval '1 minute' FROM generate_series(1, 100000) g")
        cursor.execute("ANALYZE advise_app_order")
        cursor.execute("SELECT pg_stat_reset()")
    QueryPlan.objects.using("telemetry").all().delete()
    api.flush(sample=True)
    testing.reset()
    yield
    with suppressed(), connection.cursor() as cursor:  # the indexes tests add by hand
        cursor.execute("ALTER TABLE advise_app_order DROP CONSTRAINT IF EXISTS advise_order_pair")
        cursor.execute("DROP INDEX IF EXISTS advise_order_email_idx, advise_order_unique_idx")


@pytest.fixture
def migrations_copy(settings, monkeypatch, tmp_path):
    """The app's migrations in a temporary package (what the command writes lands there,
    never in the tree); the app is migrated back to its first migration afterwards."""
    package = f"advise_migrations_{uuid.uuid4().hex[:8]}"
    directory = tmp_path / package
    shutil.copytree(APP_MIGRATIONS, directory, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.MIGRATION_MODULES = {"advise_app": package}
    yield directory
    importlib.invalidate_caches()
    call_command("migrate", "advise_app", "0001", verbosity=0)
    for name in [name for name in sys.modules if name.startswith(package)]:
        del sys.modules[name]


def run(sql, params, times=1):
    with connection.cursor() as cursor:
        for _ in range(times):
            cursor.execute(sql, params)
    api.flush(sample=True)


def advise_command(*arguments):
    """(exit status, output) of ``manage.py telemetry_advise``."""
    output = io.StringIO()
    try:
        call_command("telemetry_advise", *arguments, stdout=output, stderr=output)
    except SystemExit as exit_:
        return exit_.code, output.getvalue()
    return 0, output.getvalue()


def period_advice():
    start, end = reports.period(24)
    stats = {row["fingerprint_id"]: row for row in reports.aggregate(start, end)}
    return advise.proven_advice(start, end, stats), stats, end - start


def test_one_composite_index_serves_both_statements_with_its_evidence(orders, admin_client):
    run(BY_CUSTOMER, [4242], times=3)
    run(BY_CUSTOMER_AND_STATUS, [4242, "new"])
    run(WRITE, ["x", 7], times=6)
    advice_list, stats, length = period_advice()
    [advice] = [item for item in advice_list if item.table == "advise_app_order"]
    assert advice.columns == ["customer_id", "status"]
    assert advice.consolidates == ["(customer_id)"]
    assert advice.proven is True and advice.covered_by is None
    served = {item.fingerprint: item for item in advice.statements}
    assert len(served) == 2
    by_customer = next(item for text, item in served.items() if "status" not in text)
    assert by_customer.proven_with == "(customer_id)" and by_customer.calls == 3
    assert by_customer.cost_after < by_customer.cost_before / 2
    assert "test_advise.py" in by_customer.call_site
    total_ms = sum(row["total_ms"] for row in stats.values())
    assert advice.share_of_db_time == pytest.approx(
        sum(item.total_ms for item in advice.statements) / total_ms, abs=1e-3)
    assert advice.cost_after < advice.cost_before
    # The write cost of one more index: the six UPDATEs of the period, per hour.
    assert advice.write_cost.write_fingerprints == 1
    assert advice.write_cost.statements_per_hour == pytest.approx(6 / (length.total_seconds() / 3600), abs=0.01)

    report = reports.build_optimization_report(hours=24)
    [missing] = report.suggestions.filter(code="missing_index", table="advise_app_order")
    assert missing.columns == "customer_id, status"
    assert missing.evidence["fingerprints"] == 2 and missing.evidence["consolidates"] == ["(customer_id)"]
    assert missing.evidence["write_cost"]["write_fingerprints"] == 1
    page = admin_client.get(f"/admin/telemetry/queryreport/{report.pk}/change/").content.decode()
    card = page.split('data-code="missing_index"')[1].split('<div class="suggestion"')[0]
    serves = card.split('class="serves"')[1].split("</dd>")[0]
    assert serves.count("<li>") == 2 and "3 calls" in serves and "one index instead of (customer_id)" in serves
    assert "(HypoPG's estimate)" in card and "kept up to date by" in card


def test_written_migration_applies_and_the_planner_uses_the_index(orders, migrations_copy):
    run(BY_CUSTOMER, [4242], times=3)
    run(BY_CUSTOMER_AND_STATUS, [4242, "new"])
    status, output = advise_command("--check")
    assert status == 1, output
    assert "serves 2 statement(s)" in output and "-> " in output and "write cost" in output

    status, output = advise_command("--write-migrations")
    assert status == 0, output
    [written] = [path for path in migrations_copy.glob("0002_*.py")]
    text = written.read_text()
    assert "atomic = False" in text
    assert "django.contrib.postgres.operations.AddIndexConcurrently(" in text
    assert "('advise_app', '0001_initial')" in text
    assert "fields=['customer_id', 'status']" in text
    name = text.split("index=models.Index(")[1].split("name='")[1].split("'")[0]
    assert name.startswith("advise_app__custome_") and name.endswith("_idx") and len(name) <= 30
    assert written.name == f"0002_order_{name}.py"  # as makemigrations names it
    assert "model advise_app.Order: add to Meta.indexes" in output
    assert f"models.Index(fields=['customer_id', 'status'], name='{name}')" in output

    importlib.invalidate_caches()
    call_command("migrate", "advise_app", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + BY_CUSTOMER, [4242])
        plan = str(cursor.fetchone()[0])
    assert "Index Scan" in plan and name in plan
    status, output = advise_command("--check")
    assert status == 0, output
    assert f"already covered by the index {name}" in output
    report = reports.build_optimization_report(hours=24)
    assert not report.suggestions.filter(code="missing_index", table="advise_app_order").exists()


def plant(candidates, fingerprint_id="planted"):
    """A captured plan with candidates in the extended contract (the shapes the capture
    path proposes besides plain columns)."""
    QueryPlan.objects.using("telemetry").create(
        fingerprint_id=fingerprint_id, alias="default", fingerprint=f"SELECT ... /*{fingerprint_id}*/",
        plan=[], total_cost=1000.0, captured_at=timezone.now(), candidates=[
            {"schema": "public", "table": "advise_app_order", "table_rows": 100000, "cost_before": 1000.0,
             "cost_after": 10.0, "gain": 0.99, "proven": True, "index_bytes": 2_000_000,
             "create_statement": "CREATE INDEX CONCURRENTLY ...", **candidate}
            for candidate in candidates
        ])


def test_expression_partial_and_operator_class_indexes_become_django_indexes(orders, migrations_copy):
    plant([
        {"shape": "expression", "columns": ["email"],
         "keys": [{"column": "email", "function": "lower", "function_args": [], "opclass": None,
                   "descending": False}]},
        {"shape": "prefix_like", "columns": ["email"],
         "keys": [{"column": "email", "function": None, "function_args": [], "opclass": "varchar_pattern_ops",
                   "descending": False}]},
        {"shape": "partial", "columns": ["customer_id"], "condition": {"column": "status", "operator": "=",
                                                                       "value": "new"}},
        {"shape": "order_limit", "columns": ["customer_id", "created_at"],
         "keys": [{"column": "customer_id", "function": None, "function_args": [], "opclass": None,
                   "descending": False},
                  {"column": "created_at", "function": None, "function_args": [], "opclass": None,
                   "descending": True}]},
        {"shape": "expression", "columns": ["created_at"],
         "keys": [{"column": "created_at", "function": "date_trunc", "function_args": ["day"], "opclass": None,
                   "descending": False}]},
    ])
    status, output = advise_command("--write-migrations", "--check")
    assert status == 1
    [written] = migrations_copy.glob("0002_*.py")
    text = written.read_text()
    assert "django.db.models.functions.text.Lower(" in text
    assert "opclasses=['varchar_pattern_ops']" in text
    assert "condition=models.Q(('status', 'new'))" in text
    assert "fields=['customer_id', '-created_at']" in text
    assert "django.db.models.functions.datetime.Trunc(" in text

    importlib.invalidate_caches()
    call_command("migrate", "advise_app", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'advise_app_order'")
        definitions = " | ".join(row[0] for row in cursor.fetchall())
    assert "lower((email)::text)" in definitions
    assert "varchar_pattern_ops" in definitions
    assert "WHERE ((status)::text = 'new'::text)" in definitions
    assert "created_at DESC" in definitions
    assert "date_trunc('day'::text" in definitions
    # Each index found again in the live catalog, however PostgreSQL prints it.
    status, output = advise_command("--check")
    assert status == 0, output


def test_a_table_no_model_owns_gets_its_sql_and_no_migration(orders, migrations_copy):
    with suppressed(), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE advise_raw (id bigserial PRIMARY KEY, account integer NOT NULL)")
        cursor.execute("INSERT INTO advise_raw (account) SELECT g % 5000 FROM generate_series(1, 50000) g")
        cursor.execute("ANALYZE advise_raw")
    try:
        run("SELECT id FROM advise_raw WHERE account = %s", [77])
        status, output = advise_command("--write-migrations")
    finally:
        with suppressed(), connection.cursor() as cursor:
            cursor.execute("DROP TABLE advise_raw")
    assert "public.advise_raw (account)" in output
    assert "no migration: no Django model owns this table" in output
    assert 'SQL: CREATE INDEX CONCURRENTLY "advise_raw_account_idx"' in output
    assert list(migrations_copy.glob("0002_*.py")) == []


def unused_names(min_rows=10_000, **kwargs):
    return {row["index"] for row in advise.unused_indexes("default", min_rows, **kwargs).indexes}


def test_unused_indexes_wait_for_the_observation_window(orders, settings):
    with suppressed(), connection.cursor() as cursor:
        cursor.execute("CREATE INDEX advise_order_email_idx ON advise_app_order (email)")
        cursor.execute("CREATE UNIQUE INDEX advise_order_unique_idx ON advise_app_order (id, customer_id)")
        cursor.execute("ALTER TABLE advise_app_order ADD CONSTRAINT advise_order_pair UNIQUE (customer_id, email)")
    found = advise.unused_indexes("default", min_rows=10_000)
    assert found.indexes == [] and not found.window.long_enough
    assert found.window.days < 0.1 and found.window.min_days == 7

    settings.TELEMETRY = {**settings.TELEMETRY, "UNUSED_INDEX_MIN_OBSERVATION_DAYS": 0}
    names = unused_names()
    assert {"advise_order_email_idx", "advise_order_note_idx"} <= names
    # Never an index behind the primary key, a unique constraint or a unique index.
    assert not names & {"advise_app_order_pkey", "advise_app_order_reference_key", "advise_order_pair",
                        "advise_order_unique_idx"}
    assert unused_names(min_days=30) == set()
    assert unused_names(min_rows=10_000_000) == set()  # a table that small costs little

    report = reports.build_optimization_report(hours=24)
    unused = report.suggestions.get(code="unused_index", evidence__index="advise_order_email_idx")
    assert unused.create_statement == 'DROP INDEX CONCURRENTLY "public"."advise_order_email_idx";'
    assert unused.evidence["min_observation_days"] == 0 and unused.evidence["observed_days"] < 0.1
    assert unused.evidence["observed_since"][:10] == timezone.now().date().isoformat()


def test_the_report_card_shows_the_observation_window(orders, settings, admin_client):
    settings.TELEMETRY = {**settings.TELEMETRY, "UNUSED_INDEX_MIN_OBSERVATION_DAYS": 0}
    report = reports.build_optimization_report(hours=24)
    page = admin_client.get(f"/admin/telemetry/queryreport/{report.pk}/change/").content.decode()
    assert "never scanned in 0.0 days of statistics, since " in page
    assert "at least 0 days required" in page


def test_drops_become_a_migration_only_with_include_drops(orders, migrations_copy, settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "UNUSED_INDEX_MIN_OBSERVATION_DAYS": 0}
    with suppressed(), connection.cursor() as cursor:
        cursor.execute("CREATE INDEX advise_order_email_idx ON advise_app_order (email)")
    status, output = advise_command("--write-migrations")
    assert "unused index advise_order_note_idx" in output and "unused index advise_order_email_idx" in output
    assert "remove advise_order_note_idx from Meta.indexes" in output
    assert list(migrations_copy.glob("0002_*.py")) == []

    status, output = advise_command("--write-migrations", "--include-drops")
    [written] = migrations_copy.glob("0002_*.py")
    text = written.read_text()
    # Only the index the model declares: the other one has no migration to remove it.
    assert "RemoveIndexConcurrently(" in text and "name='advise_order_note_idx'" in text
    assert "advise_order_email_idx" not in text
    importlib.invalidate_caches()
    call_command("migrate", "advise_app", verbosity=0)
    assert "advise_order_note_idx" not in unused_names()


def test_a_declared_index_is_not_dropped_before_it_has_existed_for_the_window(orders, migrations_copy, settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "UNUSED_INDEX_MIN_OBSERVATION_DAYS": 0}
    # A test cannot age PostgreSQL's statistics; instead the migration that created the
    # index is recorded as applied after them (a day later): its window has not passed.
    with suppressed(), connection.cursor() as cursor:
        cursor.execute("UPDATE django_migrations SET applied = applied + interval '1 day' "
                       "WHERE app = 'advise_app' AND name = '0001_initial'")
    try:
        status, output = advise_command("--write-migrations", "--include-drops")
    finally:
        with suppressed(), connection.cursor() as cursor:
            cursor.execute("UPDATE django_migrations SET applied = applied - interval '1 day' "
                           "WHERE app = 'advise_app' AND name = '0001_initial'")
    assert "unused index advise_order_note_idx" in output
    assert "created by 0001_initial -" in output and "no drop before 0 days" in output
    assert list(migrations_copy.glob("0002_*.py")) == []
