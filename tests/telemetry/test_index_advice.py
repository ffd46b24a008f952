"""Index advice by shape on a real PostgreSQL 15 with HypoPG: for each shape a statement
that must get a proven index with the right leading keys, and look-alikes that must get
none (a filter keeping most rows, a tiny table, an index already there, a leading
wildcard). Plans are real EXPLAINs of 100,000 generated rows; one case goes through the
production capture path (execute wrapper -> flush -> detectors -> EXPLAIN)."""

import json

import pytest
from django.db import connection

from telemetry import api, conf, testing
from telemetry.core.context import suppressed
from telemetry.models import QueryPlan
from telemetry.queries import advice

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])

TABLES = ("ia_orders", "ia_customers", "ia_small")
#: The tables of ``shop`` (``bench/advice.py`` times the advice on the same data).
SHOP_SQL = (
    f"DROP TABLE IF EXISTS {', '.join(TABLES)}",
    "CREATE TABLE ia_orders (id bigserial PRIMARY KEY, customer_id integer NOT NULL, region integer NOT NULL, "
    "status text NOT NULL, email text NOT NULL, code varchar(20) NOT NULL, ref text COLLATE \"C\" NOT NULL, "
    "created_at timestamp NOT NULL, amount integer NOT NULL, flagged boolean NOT NULL, note text NOT NULL)",
    "INSERT INTO ia_orders (customer_id, region, status, email, code, ref, created_at, amount, flagged, note) "
    "SELECT g % 5000, g % 50, "
    "CASE WHEN g > 99000 THEN 'new' WHEN g % 200 = 0 THEN 'cancelled' ELSE 'done' END, "
    "'user' || g || '@example.org', 'C' || (g % 20000), 'R' || g, "
    "timestamp '2026-01-01' + g * interval '5 minutes', (g * 7919) % 100000, g > 99500, repeat('x', 40) "
    "FROM generate_series(1, 100000) g",
    "CREATE TABLE ia_customers (id integer PRIMARY KEY, name text NOT NULL UNIQUE, country text NOT NULL)",
    "INSERT INTO ia_customers SELECT g, 'customer-' || g, 'c' || (g % 30) FROM generate_series(0, 4999) g",
    "CREATE TABLE ia_small AS SELECT * FROM ia_orders WHERE id <= 1000",
    *(f"ANALYZE {table}" for table in TABLES),
)


@pytest.fixture(scope="module")
def shop(django_db_setup, django_db_blocker):
    """100,000 orders and 5,000 customers, committed once for the module (each test's own
    indexes roll back with its transaction).

    ``ia_orders``: ``customer_id`` 5,000 values (20 rows each), ``region`` 50 values;
    ``status`` 'done' on 98.5 %, 'new' on the last 1 % (clustered, as recent rows are),
    'cancelled' on 0.5 %; ``email`` unique; ``code`` varchar, 20,000 values; ``ref`` text in
    the C collation; ``created_at`` a timestamp 5 minutes apart in row order; ``amount``
    scattered; ``flagged`` true on the last 0.5 %. ``ia_small``: the first 1,000 orders."""
    with django_db_blocker.unblock(), suppressed(), connection.cursor() as cursor:
        for statement in SHOP_SQL:
            cursor.execute(statement)
    yield
    with django_db_blocker.unblock(), suppressed(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")


def advise(sql, params=()):
    """The candidates for one statement, as capture computes them (real plan, real
    parameters, the settings' thresholds)."""
    settings = conf.get_settings()
    with suppressed(), connection.cursor() as cursor:
        plan = advice.explain(cursor, sql, params)
        return advice.index_candidates(
            connection, cursor, plan, sql, params, min_rows=settings["MISSING_INDEX_MIN_ROWS"],
            min_gain=settings["HYPOPG_MIN_GAIN"], max_selectivity=settings["MISSING_INDEX_MAX_SELECTIVITY"],
            use_hypopg=True)


def only(candidates, shape):
    [candidate] = candidates
    assert candidate["shape"] == shape
    assert candidate["proven"] is True and candidate["gain"] >= conf.get("HYPOPG_MIN_GAIN")
    assert candidate["cost_after"] < candidate["cost_before"]
    assert isinstance(candidate["index_bytes"], int) and candidate["index_bytes"] > 0
    assert candidate["create_statement"].startswith("CREATE INDEX CONCURRENTLY ")
    assert candidate["create_statement"].endswith(";")
    return candidate


def key(column, function=None, function_args=(), opclass=None, descending=False):
    return {"column": column, "function": function, "function_args": list(function_args), "opclass": opclass,
            "descending": descending}


def index(sql):
    with suppressed(), connection.cursor() as cursor:
        cursor.execute(sql)


# Equality, single and composite.

def test_a_selective_equality_gets_a_single_column_index(shop):
    candidate = only(advise("SELECT id, note FROM ia_orders WHERE customer_id = %s", [4242]), "equality")
    assert (candidate["schema"], candidate["table"], candidate["table_rows"]) == ("public", "ia_orders", 100_000)
    assert candidate["columns"] == ["customer_id"]
    assert candidate["keys"] == [key("customer_id")]
    assert candidate["condition"] is None
    assert '"public"."ia_orders" ("customer_id");' in candidate["create_statement"]


def test_an_equality_that_keeps_most_rows_gets_none(shop):
    assert advise("SELECT id FROM ia_orders WHERE status = %s", ["done"]) == []


def test_a_table_under_the_minimum_size_gets_none(shop):
    assert advise("SELECT id, note FROM ia_small WHERE customer_id = %s", [42]) == []


def test_a_composite_equality_puts_the_most_selective_column_first(shop):
    candidate = only(advise("SELECT id FROM ia_orders WHERE region = %s AND customer_id = %s", [7, 4207]),
                     "composite")
    assert candidate["columns"] == ["customer_id", "region"]
    assert '("customer_id", "region")' in candidate["create_statement"]


def test_an_existing_index_leading_with_the_column_gets_none(shop):
    index("CREATE INDEX ia_orders_customer_region ON ia_orders (customer_id, region)")
    assert advise("SELECT id FROM ia_orders WHERE region = %s AND customer_id = %s", [7, 4207]) == []
    assert advise("SELECT id FROM ia_orders WHERE customer_id = %s", [4207]) == []


# Equality + range.

def test_equality_and_range_put_the_range_column_last(shop):
    candidate = only(advise("SELECT id FROM ia_orders WHERE created_at >= %s AND customer_id = %s",
                            ["2026-06-01", 42]), "equality_range")
    assert candidate["columns"] == ["customer_id", "created_at"]


def test_a_range_that_keeps_most_rows_gets_none(shop):
    assert advise("SELECT id FROM ia_orders WHERE created_at >= %s", ["2026-01-05"]) == []


# ORDER BY + LIMIT.

def test_a_sort_under_a_limit_gets_the_equality_columns_then_the_sort_keys(shop):
    candidate = only(advise("SELECT id FROM ia_orders WHERE region = %s ORDER BY created_at DESC LIMIT 10", [7]),
                     "order_limit")
    assert candidate["keys"] == [key("region"), key("created_at", descending=True)]
    assert '("region", "created_at" DESC)' in candidate["create_statement"]


def test_a_sort_of_the_whole_table_under_a_limit_gets_its_sort_key(shop):
    candidate = only(advise("SELECT id FROM ia_orders ORDER BY amount DESC LIMIT 5"), "order_limit")
    assert candidate["keys"] == [key("amount", descending=True)]


def test_a_sort_without_limit_or_already_indexed_gets_none(shop):
    assert advise("SELECT id FROM ia_orders ORDER BY amount DESC") == []
    index("CREATE INDEX ia_orders_amount ON ia_orders (amount)")
    assert advise("SELECT id FROM ia_orders ORDER BY amount DESC LIMIT 5") == []


# Join keys.

def test_a_join_on_an_unindexed_column_gets_an_index_on_it(shop):
    candidate = only(advise("SELECT o.id FROM ia_customers c JOIN ia_orders o ON o.customer_id = c.id "
                            "WHERE c.name = %s", ["customer-42"]), "join_key")
    assert (candidate["table"], candidate["columns"]) == ("ia_orders", ["customer_id"])


def test_a_correlated_subquery_gets_an_index_on_its_correlation_key(shop):
    candidate = only(advise("SELECT c.id, (SELECT count(*) FROM ia_orders o WHERE o.customer_id = c.id) "
                            "FROM ia_customers c WHERE c.name = %s", ["customer-42"]), "join_key")
    assert (candidate["table"], candidate["columns"]) == ("ia_orders", ["customer_id"])


def test_a_join_of_all_rows_or_on_an_indexed_column_gets_none(shop):
    assert advise("SELECT count(*) FROM ia_customers c JOIN ia_orders o ON o.customer_id = c.id") == []
    index("CREATE INDEX ia_orders_customer ON ia_orders (customer_id)")
    assert advise("SELECT o.id FROM ia_customers c JOIN ia_orders o ON o.customer_id = c.id "
                  "WHERE c.name = %s", ["customer-42"]) == []


# Expressions.

@pytest.mark.parametrize(("where", "value", "expected"), [
    ("lower(email) = lower(%s)", "User4242@Example.org", key("email", "lower")),
    ("upper(code) = %s", "C4242", key("code", "upper")),
    ("date_trunc('day', created_at) = %s", "2026-03-01", key("created_at", "date_trunc", ["day"])),
])
def test_a_filter_on_an_expression_gets_an_expression_index(shop, where, value, expected):
    candidate = only(advise(f"SELECT id FROM ia_orders WHERE {where}", [value]), "expression")
    assert candidate["keys"] == [expected]
    assert candidate["columns"] == [expected["column"]]
    assert value not in json.dumps(candidate)


def test_an_expression_already_indexed_gets_none(shop):
    index("CREATE INDEX ia_orders_lower_email ON ia_orders (lower(email))")
    assert advise("SELECT id FROM ia_orders WHERE lower(email) = lower(%s)", ["User4242@Example.org"]) == []


# Partial indexes for rare values.

@pytest.mark.parametrize("value", ["new", "cancelled"])
def test_a_rare_value_of_a_low_cardinality_column_gets_a_partial_index(shop, value):
    candidate = only(advise("SELECT id FROM ia_orders WHERE status = %s", [value]), "partial")
    assert candidate["columns"] == ["status"]
    assert candidate["condition"] == {"column": "status", "operator": "=", "value": value}
    assert candidate["create_statement"].endswith(f'("status") WHERE "status" = \'{value}\';')


def test_a_rare_value_with_another_equality_keys_the_partial_index_on_it(shop):
    candidate = only(advise("SELECT id FROM ia_orders WHERE status = %s AND region = %s", ["new", 7]), "partial")
    assert candidate["columns"] == ["region"]
    assert candidate["condition"]["value"] == "new"


def test_a_rare_boolean_gets_a_partial_index_and_the_common_one_none(shop):
    candidate = only(advise("SELECT id FROM ia_orders WHERE flagged = %s", [True]), "partial")
    assert candidate["columns"] == ["flagged"]
    assert candidate["condition"] == {"column": "flagged", "operator": "=", "value": True}
    assert candidate["create_statement"].endswith('("flagged") WHERE "flagged";')
    assert advise("SELECT id FROM ia_orders WHERE NOT flagged") == []


# IN lists.

def test_an_in_list_is_an_equality(shop):
    candidate = only(advise("SELECT id FROM ia_orders WHERE customer_id IN (%s, %s, %s)", [1, 2, 3]), "in_list")
    assert candidate["columns"] == ["customer_id"]


def test_an_in_list_that_keeps_most_rows_gets_none(shop):
    assert advise("SELECT id FROM ia_orders WHERE status IN (%s, %s)", ["done", "new"]) == []


# Prefix LIKE.

def test_a_prefix_like_gets_a_pattern_operator_class(shop):
    # The database's collation is not C: a plain index does not serve LIKE, even when it exists.
    index("CREATE INDEX ia_orders_email ON ia_orders (email)")
    candidate = only(advise("SELECT id FROM ia_orders WHERE email LIKE %s", ["user4242%"]), "prefix_like")
    assert candidate["keys"] == [key("email", opclass="text_pattern_ops")]
    assert '("email" text_pattern_ops)' in candidate["create_statement"]


def test_a_prefix_like_on_a_c_collated_column_needs_no_operator_class(shop):
    candidate = only(advise("SELECT id FROM ia_orders WHERE ref LIKE %s", ["R4242%"]), "prefix_like")
    assert candidate["keys"] == [key("ref")]


def test_django_istartswith_gets_an_expression_index_with_a_pattern_operator_class(shop):
    candidate = only(advise('SELECT "ia_orders"."id" FROM "ia_orders" '
                            'WHERE UPPER("ia_orders"."email"::text) LIKE UPPER(%s)', ["user4242%"]), "expression")
    assert candidate["keys"] == [key("email", "upper", opclass="text_pattern_ops")]
    assert '(upper("email") text_pattern_ops)' in candidate["create_statement"]


def test_a_prefix_like_on_a_varchar_column_gets_its_operator_class(shop):
    candidate = only(advise("SELECT id FROM ia_orders WHERE code LIKE %s", ["C4242%"]), "prefix_like")
    assert candidate["keys"] == [key("code", opclass="varchar_pattern_ops")]


def test_a_leading_wildcard_like_gets_none(shop):
    assert advise("SELECT id FROM ia_orders WHERE email LIKE %s", ["%4242@example.org"]) == []


# The production path.

def test_capture_stores_the_candidate_contract_without_the_parameters(shop, settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "SLOW_QUERY_MS": 0, "EXPLAIN_PER_MINUTE": 1000}
    with suppressed():
        QueryPlan.objects.using("telemetry").all().delete()
    api.flush(sample=True)
    testing.reset()
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM ia_orders WHERE customer_id = %s ORDER BY created_at DESC LIMIT 10", [3917])
        cursor.execute("SELECT id FROM ia_orders WHERE status = %s", ["new"])
    api.flush(sample=True)

    plans = {plan.fingerprint: plan for plan in QueryPlan.objects.using("telemetry").all()}
    [ordered] = [plan for text, plan in plans.items() if "order by" in text.lower()]
    [candidate] = ordered.candidates
    assert set(candidate) == {"schema", "table", "columns", "table_rows", "create_statement", "cost_before",
                              "cost_after", "gain", "proven", "shape", "keys", "condition", "index_bytes"}
    assert candidate["shape"] == "order_limit" and candidate["proven"] is True
    assert candidate["columns"] == ["customer_id", "created_at"]
    assert "3917" not in json.dumps([ordered.plan, ordered.seq_scans, ordered.candidates])
    [rare] = [plan for text, plan in plans.items() if "status" in text]
    [candidate] = rare.candidates
    # The partial index's value is pg_stats' most common value, not the statement's.
    assert candidate["condition"] == {"column": "status", "operator": "=", "value": "new"}
