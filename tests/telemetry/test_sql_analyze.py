"""telemetry.queries.sql.analyze(): fingerprints, operation and tables, complexity, static
suggestion codes (positives and negatives for each), parameters, settings, unparseable
statements and the cache; and the codes reaching the metrics through the real pipeline."""

import sys
import threading
import weakref

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY

from telemetry.core import guard
from telemetry.queries import sql as telemetry_sql
from telemetry.queries.sql import QueryAnalysis, analyze, budget

PG, MY, LITE = "postgresql", "mysql", "sqlite"


def codes(statement, params=None, vendor=PG):
    return set(analyze(statement, params, vendor).suggestions)


def check(code, statement, expected, vendor=PG, params=None):
    found = code in codes(statement, params, vendor)
    assert found is expected, f"{code} {'missing' if expected else 'wrongly raised'} on [{vendor}] {statement}"


# --- fingerprints -------------------------------------------------------------------

DJANGO_SELECT = ('SELECT "apps_builder_app"."id", "apps_builder_app"."name" FROM "apps_builder_app" '
                 'WHERE ("apps_builder_app"."organization_id" = %s AND "apps_builder_app"."id" IN ({})) LIMIT 21')


def test_fingerprint_ignores_literal_values_and_in_list_length():
    one = analyze(DJANGO_SELECT.format("%s"), (1, 2), PG)
    three = analyze(DJANGO_SELECT.format("%s, %s, %s"), (1, 2, 3, 4), PG)
    literal = analyze(DJANGO_SELECT.replace("%s", "7").format("1, 2, 3, 4, 5"), None, PG)
    assert one.fingerprint == three.fingerprint == literal.fingerprint
    assert one.fingerprint_id == three.fingerprint_id == literal.fingerprint_id
    assert "IN (?)" in one.fingerprint and "%s" not in one.fingerprint


@pytest.mark.parametrize("first, second", [
    ("SELECT a FROM t WHERE b = 'x'", "select  a\n from t where b = 'yy' -- comment"),
    ("SELECT a FROM t WHERE b = 1", "/* hint */ SELECT a FROM t WHERE b = -42"),
    ('SELECT "t"."a" FROM "t" WHERE "t"."b" = %s', 'SELECT "t"."a" FROM "t" WHERE "t"."b" = $1'),
    ("SELECT `t`.`a` FROM `t` WHERE `t`.`b` = %s", "SELECT `t`.`a` FROM `t` WHERE `t`.`b` = 'x'"),
    ("INSERT INTO t (a, b) VALUES (%s, %s)", "INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s), (%s, %s)"),
    ("SELECT a FROM t LIMIT 21", "SELECT a FROM t LIMIT 100"),
    ('SAVEPOINT "s1402_x1"', 'SAVEPOINT "s9_x27"'),
])
def test_fingerprint_equivalences(first, second):
    assert analyze(first, None, PG).fingerprint_id == analyze(second, None, PG).fingerprint_id


@pytest.mark.parametrize("first, second", [
    ("SELECT a FROM t WHERE b = 1", "SELECT a FROM u WHERE b = 1"),
    ("SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE c = 1"),
    ("SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE b > 1"),
    ("SELECT a FROM t WHERE b = 1", "SELECT a, c FROM t WHERE b = 1"),
    ("SELECT a FROM t WHERE b IN (1, 2)", "SELECT a FROM t WHERE b NOT IN (1, 2)"),
    ("SELECT a FROM t ORDER BY a", "SELECT a FROM t ORDER BY a DESC"),
])
def test_fingerprint_distinctions(first, second):
    assert analyze(first, None, PG).fingerprint_id != analyze(second, None, PG).fingerprint_id


def test_fingerprint_drops_literals_and_is_a_stable_short_hex():
    result = analyze("SELECT id FROM users WHERE email = 'alice@example.com' AND secret = 'hunter2'", None, PG)
    assert "alice" not in result.fingerprint and "hunter2" not in result.fingerprint
    assert len(result.fingerprint_id) == 16 and int(result.fingerprint_id, 16) >= 0


# --- operation, tables, pattern -----------------------------------------------------

@pytest.mark.parametrize("vendor, statement, operation, tables", [
    (PG, DJANGO_SELECT.format("%s"), "select", ("apps_builder_app",)),
    (PG, 'INSERT INTO "auth_group" ("name") VALUES (%s) ON CONFLICT ("name") DO UPDATE SET "name" = EXCLUDED."name" '
         'RETURNING "auth_group"."id"', "insert", ("auth_group",)),
    (PG, 'UPDATE "public"."Orders" SET total = 0 FROM users WHERE users.id = "Orders".user_id', "update",
     ("orders", "users")),
    (MY, "DELETE FROM `sessions` WHERE expires < NOW()", "delete", ("sessions",)),
    (PG, "WITH recent AS (SELECT id FROM orders) SELECT u.id FROM users u JOIN recent r ON r.id = u.id", "select",
     ("users", "orders")),
    (PG, "SELECT (SELECT COUNT(*) FROM orders) FROM users", "select", ("users", "orders")),
    (PG, 'SAVEPOINT "s1"', "savepoint", ()),
    (PG, 'RELEASE SAVEPOINT "s1"', "release_savepoint", ()),
    (PG, 'ROLLBACK TO SAVEPOINT "s1"', "rollback", ()),
    (PG, "BEGIN", "begin", ()),
    (PG, "SET TIME ZONE 'UTC'", "set", ()),
    (PG, "TRUNCATE apps_builder_app", "truncate", ("apps_builder_app",)),
    (LITE, "SELECT a FROM t UNION SELECT a FROM u", "select", ("t", "u")),
])
def test_operation_and_tables(vendor, statement, operation, tables):
    result = analyze(statement, None, vendor)
    assert (result.operation, result.tables) == (operation, tables)


def test_pattern_is_operation_and_up_to_three_tables():
    result = analyze('SELECT 1 FROM "Public"."A" JOIN b ON a.id = b.id JOIN c ON c.id = b.id JOIN d ON d.id = c.id',
                     None, PG)
    assert result.pattern == "select_a_b_c"
    assert analyze("SELECT 1", None, PG).pattern == "select"


def test_result_offers_the_attributes_metrics_and_statistics_read():
    result = analyze(DJANGO_SELECT.format("%s"), (1, 2), PG)
    assert isinstance(result, QueryAnalysis)
    for name in ("operation", "tables", "complexity_score", "complexity", "pattern", "suggestions", "fingerprint",
                 "fingerprint_id"):
        getattr(result, name)
    assert isinstance(result.tables, tuple) and isinstance(result.suggestions, tuple)
    assert isinstance(result.complexity_score, float)


# --- complexity ---------------------------------------------------------------------

GROWING = [
    "SELECT id FROM users WHERE id = 1",
    "SELECT u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.active ORDER BY o.total",
    "SELECT u.id, COUNT(o.id), SUM(o.total) FROM users u JOIN orders o ON o.user_id = u.id "
    "JOIN items i ON i.order_id = o.id WHERE u.active AND o.total > 10 GROUP BY u.id HAVING COUNT(o.id) > 2 "
    "ORDER BY 2 DESC",
    "SELECT u.id, COUNT(o.id), RANK() OVER (ORDER BY SUM(o.total)) FROM users u JOIN orders o ON o.user_id = u.id "
    "JOIN items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id JOIN shops s ON s.id = p.shop_id "
    "WHERE u.id IN (SELECT user_id FROM vips WHERE level > (SELECT AVG(level) FROM vips)) GROUP BY u.id "
    "UNION SELECT id, 0, 0 FROM admins",
]


def test_complexity_grows_with_structure():
    scores = [analyze(statement, None, PG).complexity_score for statement in GROWING]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    assert [analyze(statement, None, PG).complexity for statement in GROWING] == ["low", "low", "medium", "high"]


# --- suggestion codes: positives and negatives --------------------------------------

CASES = {
    "select_star": (
        [(PG, "SELECT * FROM users"), (PG, 'SELECT "u".* FROM "users" "u"'),
         (PG, "SELECT COUNT(*) FROM (SELECT * FROM t) AS sub"), (PG, "SELECT id FROM t WHERE id IN (SELECT * FROM u)"),
         (PG, "INSERT INTO archive SELECT * FROM orders"), (PG, "WITH x AS (SELECT * FROM t) SELECT id FROM x"),
         (MY, "SELECT t.*, u.name FROM t JOIN u ON u.id = t.u_id"), (LITE, "SELECT * FROM t LIMIT 10")],
        [(PG, "SELECT COUNT(*) FROM users"), (PG, "SELECT id FROM t WHERE EXISTS (SELECT * FROM u WHERE u.t = t.id)"),
         (PG, "SELECT id FROM t WHERE NOT EXISTS (SELECT * FROM u WHERE u.t = t.id)"),
         (PG, "SELECT a * b FROM t"), (MY, "SELECT COUNT(*) FROM `t`"), (LITE, "SELECT id, name FROM t"),
         (PG, DJANGO_SELECT.format("%s")), (PG, "SELECT id FROM t WHERE x = 2 * y")],
    ),
    "missing_where": (
        [(PG, "DELETE FROM t"), (PG, 'UPDATE "t" SET "a" = %s'), (MY, "DELETE FROM `t`"),
         (LITE, "UPDATE t SET a = 1"), (PG, "UPDATE t SET a = u.a FROM u"),
         (PG, "WITH gone AS (DELETE FROM t RETURNING id) SELECT COUNT(*) FROM gone"),
         (MY, "DELETE FROM t ORDER BY id LIMIT 10"), (PG, "DELETE FROM t USING u")],
        [(PG, "TRUNCATE t"), (PG, 'DELETE FROM "t" WHERE "t"."id" IN (%s, %s)'),
         (PG, "UPDATE t SET a = 1 WHERE id = 2"),
         (MY, "DELETE FROM `t` WHERE id = 1"), (LITE, "DELETE FROM t WHERE a IS NULL"), (PG, "SELECT * FROM t"),
         (PG, "INSERT INTO t (a) VALUES (1)"), (PG, "UPDATE t SET a = 1 FROM u WHERE u.id = t.u_id")],
    ),
    "leading_wildcard_like": (
        [(PG, "SELECT id FROM t WHERE name LIKE '%son'"), (PG, "SELECT id FROM t WHERE name NOT LIKE '%x'"),
         (PG, "SELECT id FROM t WHERE name ILIKE '_abc'"), (MY, "SELECT id FROM t WHERE name LIKE '%x%'"),
         (LITE, "SELECT id FROM t WHERE name LIKE '%x' ESCAPE '\\'"),
         (PG, "SELECT id FROM t WHERE UPPER(name) LIKE UPPER('%x')"),
         (PG, "SELECT id FROM t WHERE name LIKE '%' || 'x'"), (PG, "SELECT id FROM t WHERE NOT (name ILIKE '%x')")],
        [(PG, "SELECT id FROM t WHERE name LIKE 'abc%'"), (PG, "SELECT id FROM t WHERE name = '%x'"),
         (PG, "SELECT id FROM t WHERE name ILIKE 'a_c%'"), (MY, "SELECT id FROM t WHERE name LIKE 'x%'"),
         (LITE, "SELECT id FROM t WHERE name LIKE 'x%' ESCAPE '\\'"), (PG, "SELECT '%x' FROM t"),
         (PG, "SELECT id FROM t WHERE name LIKE %s"), (PG, "SELECT id FROM t WHERE name LIKE 'x' || '%'")],
    ),
    "function_on_filter_column": (
        [(PG, "SELECT id FROM users WHERE UPPER(email) = 'A@B.C'"),
         (PG, "SELECT id FROM t WHERE DATE(created_at) = '2024-01-01'"),
         (PG, "SELECT id FROM t WHERE id::text = '5'"), (PG, "SELECT id FROM t WHERE col + 1 = 5"),
         (PG, "SELECT id FROM t WHERE CAST(id AS TEXT) = '5'"), (PG, "SELECT id FROM t WHERE lower(email) LIKE 'a%'"),
         (PG, "SELECT id FROM t WHERE LOWER(code) IN (SELECT code FROM u)"),
         (MY, "SELECT a.id FROM a JOIN b ON DATE(a.created_at) = b.day"),
         (LITE, "SELECT id FROM t WHERE substr(name, 1, 1) = 'a'"),
         (PG, "SELECT id FROM t WHERE COALESCE(deleted_at, now()) BETWEEN '2024-01-01' AND '2025-01-01'")],
        [(PG, "SELECT id FROM t WHERE created_at >= NOW() - INTERVAL '1 day'"),
         (PG, "SELECT id FROM t WHERE email = UPPER('a@b.c')"), (PG, "SELECT a.id FROM a JOIN b ON a.id = b.a_id"),
         (PG, "SELECT UPPER(name) FROM t WHERE id = 1"), (PG, "SELECT id FROM t ORDER BY LOWER(name)"),
         (MY, "SELECT id FROM t WHERE created_at > DATE_SUB(NOW(), INTERVAL 1 DAY)"),
         (LITE, "SELECT id FROM t WHERE id IN (1, 2, 3)"), (PG, "SELECT id FROM t WHERE (id) = 5"),
         (PG, "SELECT id FROM t GROUP BY id HAVING COUNT(*) > 1")],
    ),
    "or_across_columns": (
        [(PG, "SELECT id FROM a WHERE a.x = 1 OR a.y = 2"),
         (PG, "SELECT a.id FROM a JOIN b ON b.a_id = a.id WHERE a.x = 1 OR b.y = 2"),
         (PG, "SELECT id FROM a WHERE status = 'open' AND (owner_id = 1 OR assignee_id = 1)"),
         (PG, 'SELECT "t"."id" FROM "t" WHERE ("t"."name" = %s OR "t"."slug" = %s)'),
         (MY, "SELECT id FROM t WHERE a = 1 OR b = 2 OR a = 3"),
         (LITE, "SELECT id FROM t WHERE (a = 1 AND b = 2) OR c = 3"),
         (PG, "SELECT id FROM t WHERE id IN (SELECT t_id FROM u WHERE u.x = 1 OR u.y = 2)"),
         (PG, "SELECT id FROM t WHERE x = 1 OR (x = 2 AND y = 3)")],
        [(PG, "SELECT id FROM a WHERE a.x = 1 OR a.x = 2"), (PG, "SELECT id FROM a WHERE x = 1 OR a.x = 2"),
         (PG, "SELECT id FROM a WHERE x IS NULL OR x = 3"), (PG, "SELECT id FROM a WHERE a.x = 1 AND a.y = 2"),
         (PG, "SELECT CASE WHEN a = 1 OR b = 2 THEN 1 END FROM t"),
         (PG, "SELECT id FROM a JOIN b ON a.id = b.a_id OR a.id = b.b_id"),
         (MY, "SELECT id FROM t WHERE (status = 'a' OR status = 'b') AND owner = 1"),
         (LITE, "SELECT id FROM t WHERE (a = 1 AND b = 2) OR (a = 3 AND b = 4)")],
    ),
    "large_in_list": (
        [(PG, "SELECT id FROM t WHERE id IN (" + ", ".join(["%s"] * 101) + ")"),
         (MY, "SELECT id FROM t WHERE id IN (" + ", ".join(str(i) for i in range(150)) + ")"),
         (LITE, "SELECT id FROM t WHERE id NOT IN (" + ", ".join(["?"] * 200) + ")"),
         (PG, "DELETE FROM t WHERE id IN (" + ", ".join(str(i) for i in range(101)) + ")")],
        [(PG, "SELECT id FROM t WHERE id IN (" + ", ".join(["%s"] * 100) + ")"),
         (PG, "SELECT id FROM t WHERE id IN (1, 2, 3)"), (PG, "SELECT id FROM t WHERE id IN (SELECT id FROM u)"),
         (MY, "SELECT id FROM t WHERE id = 1")],
    ),
    "offset_pagination": (
        [(PG, "SELECT id FROM t ORDER BY id LIMIT 10 OFFSET 1001"), (MY, "SELECT id FROM t LIMIT 5000, 10"),
         (LITE, "SELECT id FROM t LIMIT 10 OFFSET 20000"), (PG, "SELECT id FROM t OFFSET 99999"),
         (PG, "SELECT id FROM (SELECT id FROM t OFFSET 5000) s")],
        [(PG, "SELECT id FROM t ORDER BY id LIMIT 10 OFFSET 1000"), (MY, "SELECT id FROM t LIMIT 10, 5000"),
         (LITE, "SELECT id FROM t LIMIT 5000"), (PG, "SELECT id FROM t LIMIT 21"),
         (PG, "SELECT id FROM t WHERE id > 5000 LIMIT 10")],
    ),
    "cartesian_join": (
        [(PG, "SELECT * FROM users, orders"), (PG, "SELECT u.id FROM users u CROSS JOIN orders o"),
         (PG, "SELECT u.id FROM users u JOIN orders o ON true"),
         (PG, "SELECT u.id FROM users u JOIN orders o ON 1 = 1"),
         (MY, "SELECT u.id FROM users u JOIN orders o"),
         (PG, "SELECT u.id FROM users u, orders o WHERE u.active AND o.total > 5"),
         (LITE, "SELECT a.id FROM a, b, c WHERE a.id = b.a_id"),
         (PG, "SELECT u.id FROM users u JOIN orders o ON o.total > 5")],
        [(PG, "SELECT u.id FROM users u, orders o WHERE u.id = o.user_id"),
         (PG, "SELECT u.id FROM users u JOIN orders o ON o.user_id = u.id"),
         (PG, "SELECT id FROM users NATURAL JOIN orders"), (PG, "SELECT id FROM users JOIN orders USING (id)"),
         (MY, "SELECT a.id FROM a, b, c WHERE a.id = b.a_id AND c.b_id = b.id"),
         (PG, "SELECT u.id FROM users u LEFT JOIN orders o ON o.user_id = u.id AND o.total > 5"),
         (PG, "SELECT t.id FROM t, LATERAL (SELECT * FROM u WHERE u.t_id = t.id LIMIT 1) l"),
         (LITE, "SELECT id FROM t")],
    ),
    "consider_join_optimization": (
        [(PG, "SELECT 1 FROM a JOIN b ON b.a = a.id JOIN c ON c.b = b.id JOIN d ON d.c = c.id JOIN e ON e.d = d.id"),
         (MY, "SELECT 1 FROM a LEFT JOIN b ON b.a = a.id LEFT JOIN c ON c.b = b.id INNER JOIN d ON d.c = c.id "
              "LEFT OUTER JOIN e ON e.d = d.id JOIN f ON f.e = e.id"),
         (PG, "SELECT id FROM t WHERE id IN (SELECT a.id FROM a JOIN b ON b.a = a.id JOIN c ON c.b = b.id "
              "JOIN d ON d.c = c.id JOIN e ON e.d = d.id)")],
        [(PG, "SELECT 1 FROM a JOIN b ON b.a = a.id JOIN c ON c.b = b.id JOIN d ON d.c = c.id"),
         (PG, "SELECT 1 FROM a JOIN b ON b.a = a.id JOIN c ON c.b = b.id WHERE a.id IN "
              "(SELECT d.id FROM d JOIN e ON e.d = d.id JOIN f ON f.e = e.id)"),
         (LITE, "SELECT 1 FROM a JOIN b ON b.a = a.id")],
    ),
    "correlated_subquery": (
        [(PG, "SELECT u.id, (SELECT COUNT(*) FROM orders o WHERE o.user_id = u.id) FROM users u"),
         (PG, "SELECT id FROM orders o WHERE total > (SELECT AVG(total) FROM orders o2 WHERE o2.user_id = o.user_id)"),
         (PG, 'SELECT "apps_builder_app"."id", COALESCE((SELECT MAX(U0."created_at") FROM "apps_builder_appversion" U0 '
              'WHERE U0."app_id" = ("apps_builder_app"."id")), NULL) AS "latest" FROM "apps_builder_app"'),
         (MY, "SELECT name, (SELECT MAX(total) FROM orders WHERE orders.user_id = users.id) AS top FROM users"),
         (PG, "SELECT id FROM users u WHERE 3 < (SELECT COUNT(*) FROM orders WHERE orders.user_id = u.id)"),
         (PG, 'SELECT "apps_builder_organization"."id", (SELECT COUNT(*) FROM "apps_builder_app" '
              'WHERE "apps_builder_app"."organization_id" = "apps_builder_organization"."id") FROM '
              '"apps_builder_organization"'),
         # an unqualified column only the outer table has (known from the project's models)
         (PG, 'SELECT "slug", (SELECT COUNT(*) FROM "apps_builder_membership" WHERE "role" = "slug") '
              'FROM "apps_builder_organization"')],
        [(PG, "SELECT u.id, (SELECT COUNT(*) FROM orders) FROM users u"),
         (PG, "SELECT id FROM orders WHERE total > (SELECT AVG(o2.total) FROM orders o2 WHERE o2.status = 'paid')"),
         (PG, "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)"),
         (PG, "SELECT id FROM users u WHERE u.id IN (SELECT o.user_id FROM orders o WHERE o.user_id = u.id)"),
         (PG, "SELECT u.id FROM users u JOIN (SELECT user_id FROM orders) o ON o.user_id = u.id"),
         # unqualified columns resolve to the subquery's own table first
         (PG, "SELECT id, (SELECT COUNT(*) FROM orders WHERE status = 'x') FROM users"),
         (PG, 'SELECT "id", (SELECT MAX("created_at") FROM "apps_builder_appversion" WHERE "id" > 5) '
              'FROM "apps_builder_app"'),
         (MY, "SELECT name FROM users WHERE id = (SELECT MAX(user_id) FROM orders)")],
    ),
    "not_in_subquery": (
        [(PG, "SELECT id FROM t WHERE id NOT IN (SELECT t_id FROM u)"),
         (MY, "SELECT id FROM t WHERE NOT id IN (SELECT t_id FROM u)"),
         (LITE, "SELECT id FROM t WHERE a = 1 AND id NOT IN (SELECT t_id FROM u WHERE u.x = 2)"),
         (PG, "DELETE FROM t WHERE id NOT IN (SELECT t_id FROM u)")],
        [(PG, "SELECT id FROM t WHERE id IN (SELECT t_id FROM u)"), (PG, "SELECT id FROM t WHERE id NOT IN (1, 2)"),
         (PG, "SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.t_id = t.id)"),
         (MY, "SELECT id FROM t WHERE id NOT IN (%s, %s)")],
    ),
    "order_by_random": (
        [(PG, "SELECT id FROM t ORDER BY RANDOM() LIMIT 1"), (PG, "SELECT id FROM t ORDER BY random()"),
         (MY, "SELECT id FROM t ORDER BY RAND() LIMIT 5"), (LITE, "SELECT id FROM t ORDER BY random() LIMIT 3"),
         (PG, "SELECT id FROM t ORDER BY name, RANDOM()")],
        [(PG, "SELECT random() FROM t"), (PG, "SELECT id FROM t ORDER BY id"), (MY, "SELECT RAND() FROM t"),
         (LITE, "SELECT id FROM t WHERE x > random()")],
    ),
}


@pytest.mark.parametrize("code, vendor, statement, expected", [
    (code, vendor, statement, expected)
    for code, (positives, negatives) in CASES.items()
    for expected, cases in ((True, positives), (False, negatives))
    for vendor, statement in cases
])
def test_suggestion_code(code, vendor, statement, expected):
    check(code, statement, expected, vendor)


def test_django_statements_parse_with_no_codes():
    statements = [
        DJANGO_SELECT.format("%s, %s, %s"),
        'INSERT INTO "auth_group" ("name") VALUES (%s) RETURNING "auth_group"."id"',
        'UPDATE "auth_group" SET "name" = %s WHERE "auth_group"."id" = %s',
        'DELETE FROM "auth_group" WHERE "auth_group"."id" IN (%s)',
        'SELECT (1) AS "a" FROM "auth_group" WHERE "auth_group"."name" = %s LIMIT 1',
        'SAVEPOINT "s140_x1"', 'RELEASE SAVEPOINT "s140_x1"', "BEGIN", "COMMIT",
    ]
    for statement in statements:
        result = analyze(statement, None, PG)
        assert result.operation != "other" and result.suggestions == (), statement


# --- parameters -------------------------------------------------------------------

@pytest.mark.parametrize("vendor, statement, params", [
    (PG, 'SELECT "t"."id" FROM "t" WHERE "t"."name"::text LIKE %s', ("%son",)),
    (PG, 'SELECT "t"."id" FROM "t" WHERE UPPER("t"."name"::text) LIKE UPPER(%s)', ("%SON%",)),
    (PG, "SELECT id FROM t WHERE a = %(a)s AND name LIKE %(pattern)s", {"a": 1, "pattern": "_x"}),
    (PG, "SELECT id FROM t WHERE a = $1 AND name LIKE $2", (1, "%x")),
    (LITE, "SELECT id FROM t WHERE a = ? AND name LIKE ? ESCAPE '\\'", (1, "%x")),
    (LITE, "SELECT id FROM t WHERE a = :a AND name LIKE :pattern", {"a": 1, "pattern": "%x"}),
    (MY, "SELECT id FROM t WHERE name LIKE %s", ("%x",)),
])
def test_leading_wildcard_from_bound_parameter(vendor, statement, params):
    assert "leading_wildcard_like" in codes(statement, params, vendor)
    safe = type(params)(**{k: "x%" if isinstance(v, str) else v for k, v in params.items()}) \
        if isinstance(params, dict) else tuple("x%" if isinstance(v, str) else v for v in params)
    assert "leading_wildcard_like" not in codes(statement, safe, vendor)
    assert "leading_wildcard_like" not in codes(statement, None, vendor)


def test_offset_from_bound_parameter():
    statement = "SELECT id FROM t ORDER BY id LIMIT %s OFFSET %s"
    assert "offset_pagination" in codes(statement, (10, 1001))
    assert "offset_pagination" not in codes(statement, (10, 1000))
    assert "offset_pagination" in codes("SELECT id FROM t LIMIT ?, ?", (5000, 10), MY)
    assert "offset_pagination" not in codes("SELECT id FROM t LIMIT ?, ?", (10, 5000), MY)


def test_placeholders_inside_literals_and_comments_are_not_parameters():
    statement = "SELECT id FROM t WHERE note = '?%s' /* %s */ AND name LIKE %s"
    assert "leading_wildcard_like" in codes(statement, ("%x",))
    assert "leading_wildcard_like" not in codes(statement, ("x%",))


# --- settings -------------------------------------------------------------------

def test_settings_change_thresholds_and_clear_the_cache():
    in_list = "SELECT id FROM t WHERE id IN (" + ", ".join(["%s"] * 20) + ")"
    offset = "SELECT id FROM t OFFSET 50"
    joins = "SELECT 1 FROM a JOIN b ON b.a = a.id JOIN c ON c.b = b.id"
    assert not {"large_in_list", "offset_pagination", "consider_join_optimization"} & (
        codes(in_list) | codes(offset) | codes(joins))
    with override_settings(TELEMETRY={"LARGE_IN_LIST_ITEMS": 10, "OFFSET_PAGINATION_ROWS": 10, "MAX_JOINS": 2}):
        assert "large_in_list" in codes(in_list)
        assert "offset_pagination" in codes(offset)
        assert "offset_pagination" in codes("SELECT id FROM t OFFSET %s", (11,))
        assert "consider_join_optimization" in codes(joins)
    assert "large_in_list" not in codes(in_list)
    assert "consider_join_optimization" not in codes(joins)


# --- unparseable, never raises --------------------------------------------------

def _unparsed(vendor):
    return REGISTRY.get_sample_value("telemetry_sql_unparsed_total", {"vendor": vendor}) or 0.0


@pytest.mark.parametrize("statement", ["SELEKT id FRUM t WHERE", "SELECT ((( FROM", "FROBNICATE the table 'x"])
def test_unparseable_statements_are_other_and_counted(statement):
    analyze("SELECT 1", None, PG)
    before = _unparsed(PG)
    result = analyze(statement + " -- unique q1", None, PG)
    assert (result.operation, result.complexity_score, result.suggestions) == ("other", None, ())
    assert result.fingerprint and len(result.fingerprint_id) == 16
    assert _unparsed(PG) - before == 1


def test_an_unparsed_statement_counts_on_every_run_under_its_vendor():
    """Cache hits count as well; a vendor without a dialect counts as ``other``."""
    before = _unparsed(PG), _unparsed("other")
    for _run in range(3):
        analyze("SELEKT id FRUM t WHERE -- unique q9", None, PG)
        analyze("SELEKT id FRUM t WHERE -- unique q9", None, "cockroach")
    assert (_unparsed(PG) - before[0], _unparsed("other") - before[1]) == (3, 3)


@pytest.mark.parametrize("statement, params", [
    (None, None), (b"SELECT 1", None), ("", None), ("SELECT id FROM t WHERE a = %s", object()),
    ("SELECT id FROM t WHERE name LIKE %s", {"unexpected": 1}), ("SELECT id FROM t OFFSET %s", ("not a number",)),
    ("SELECT 'unterminated", None), ("SELECT id FROM t WHERE name LIKE %(missing)s", (1,)),
])
def test_never_raises(statement, params):
    result = analyze(statement, params, PG)
    assert isinstance(result.operation, str) and isinstance(result.suggestions, tuple)


# --- cache ---------------------------------------------------------------------

def test_cache_hit_does_not_parse_again_and_rechecks_parameters(monkeypatch):
    statement = "SELECT id FROM t WHERE name LIKE %s OFFSET %s -- cache test q1"
    first = analyze(statement, ("x%", 10), PG)
    calls = []
    original = telemetry_sql._parse
    monkeypatch.setattr(telemetry_sql, "_parse", lambda *args: calls.append(args) or original(*args))
    hits = telemetry_sql.cache_info().hits
    assert analyze(statement, ("x%", 10), PG) is first
    assert analyze(statement, ("%x", 5000), PG).suggestions == ("leading_wildcard_like", "offset_pagination")
    assert analyze(statement, ("x%", 5000), PG).suggestions == ("offset_pagination",)
    assert calls == [] and telemetry_sql.cache_info().hits == hits + 3


def test_placeholder_renaming():
    from telemetry.queries.sql.placeholders import rename

    assert rename("SELECT %s, %(a)s, $2, ?, :name, x::text, '%s', 100 %% 7", None) == (
        "SELECT :p0, :p1, :p2, :p3, :p4, x::text, '%s', 100 % 7", (0, "a", 1, 1, "name"))
    # SQLite's ESCAPE '\' does not swallow the rest; MySQL's backslash does escape a quote
    assert rename("a LIKE %s ESCAPE '\\' AND b = %s", LITE)[1] == (0, 1)
    assert rename("a = 'it\\'s %s' AND b = %s", MY)[1] == (0,)
    # Django's JSONField has_key on PostgreSQL: "?" is an operator beside %s placeholders
    assert rename('SELECT 1 FROM t WHERE ("t"."data" ? %s) AND "t"."data" ?| %s', PG) == (
        'SELECT 1 FROM t WHERE ("t"."data" ? :p0) AND "t"."data" ?| :p1', (0, 1))
    assert rename("SELECT 1 FROM t WHERE a = ?", PG)[1] == (0,)


# --- through the real pipeline ---------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_orm_query_feeds_pattern_and_suggestion_metrics(samples):
    from django.contrib.auth.models import Group

    pattern = samples.snapshot("tooljet_db_query_pattern_total", {
        "db_operation_name": "select", "tooljet_query_pattern": "select_auth_group"})
    wildcard = samples.snapshot("tooljet_db_query_optimization_suggestions_total", {
        "tooljet_optimization_suggestion": "leading_wildcard_like"})
    function = samples.snapshot("tooljet_db_query_optimization_suggestions_total", {
        "tooljet_optimization_suggestion": "function_on_filter_column"})
    Group.objects.create(name="alpha")
    list(Group.objects.filter(name__icontains="lph"))  # UPPER("name"::text) LIKE UPPER('%lph%')
    list(Group.objects.filter(name__startswith="alp"))  # "name"::text LIKE 'alp%'
    assert pattern() == 2
    assert wildcard() == 1
    assert function() == 2


def test_long_statements_are_cut_before_parsing_and_cached_by_digest():
    rows = ", ".join(["(%s, %s, %s)"] * 2000)
    bulk = f'INSERT INTO "auth_group" ("a", "b", "c") VALUES {rows}'
    result = analyze(bulk, None, PG)
    assert result.operation == "insert" and result.suggestions == ()
    assert result.fingerprint == 'INSERT INTO "auth_group" ("a", "b", "c") VALUES (?, ?, ?)'
    huge_in = "SELECT id FROM t WHERE id IN (" + ", ".join(["%s"] * 3000) + ") AND name LIKE %s"
    params = tuple(range(3000)) + ("%x",)
    assert codes(huge_in, params) == {"large_in_list", "leading_wildcard_like"}
    assert codes(huge_in, tuple(range(3000)) + ("x%",)) == {"large_in_list"}
    assert analyze(huge_in, None, PG).fingerprint.upper() == "SELECT ID FROM T WHERE ID IN (?) AND NAME LIKE ?"


def test_without_a_vendor_other_dialects_are_tried():
    result = analyze("SELECT * FROM `t` WHERE `a` LIKE '%x' LIMIT 5000, 10")
    assert result.operation == "select"
    assert set(result.suggestions) == {"select_star", "leading_wildcard_like", "offset_pagination"}
    assert analyze("SELECT id FROM t WHERE id::text = %s", ("5",)).suggestions == ("function_on_filter_column",)


def test_a_statement_too_long_to_parse_is_fingerprinted_without_parsing(samples):
    """A 1 MB chain of 40,000 ORs (its parse took minutes of a writer thread): operation
    from the first word, literals replaced, no score, counted as unparsed."""
    unparsed = samples.snapshot("telemetry_sql_unparsed_total", {"vendor": "postgresql"})
    sql = "SELECT * FROM items WHERE " + " OR ".join(f"(a = {i} AND b = 'secret-{i}')" for i in range(40_000))
    result = analyze(sql, None, "postgresql")
    assert result.operation == "select"
    assert result.complexity_score is None
    assert "secret" not in result.fingerprint and "39999" not in result.fingerprint
    assert result.fingerprint.startswith("SELECT * FROM items WHERE (a = ? AND b = ?) OR")
    assert unparsed() == 1


# --- bounds: size, tokens, time -----------------------------------------------------

HOSTILE = {
    "70,000-OR chain": "SELECT * FROM items WHERE " + " OR ".join(
        f"(a = {70_000 + i} AND b = 'secret-{i}')" for i in range(70_000)),
    "90,000-column select": "SELECT " + ", ".join(f"c{i} + {70_000 + i}" for i in range(90_000)) + " FROM t",
    "40,000-branch CASE": "SELECT CASE " + " ".join(
        f"WHEN a = {70_000 + i} THEN 'secret-{i}'" for i in range(40_000)) + " END FROM t",
    "deeply nested parentheses": "SELECT " + "(" * 5000 + "'secret-1' || 70001" + ")" * 5000 + " FROM t",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_statements_get_a_literal_free_fingerprint_unanalysed_and_counted(name):
    """Each of these held a writer thread for seconds to minutes before analysis was bounded."""
    before = _unparsed(PG)
    result = analyze(HOSTILE[name], None, PG)
    assert result.analysed is False
    assert result.operation == "select" and result.complexity_score is None and result.suggestions == ()
    assert "secret" not in result.fingerprint and "7000" not in result.fingerprint
    assert result.fingerprint.startswith("SELECT") and len(result.fingerprint_id) == 16
    assert _unparsed(PG) - before == 1
    assert analyze(HOSTILE[name], None, PG) is result  # cached: a repeat costs a look-up


def test_a_statement_over_the_token_bound_is_not_parsed(monkeypatch):
    chain = "SELECT * FROM t WHERE " + " OR ".join(f"a = {i}" for i in range(300))  # ~1,200 tokens, 4 KB
    parsed = []
    original = telemetry_sql._parse
    monkeypatch.setattr(telemetry_sql, "_parse", lambda *args: parsed.append(args) or original(*args))
    before = _unparsed(PG)
    result = analyze(chain, None, PG)
    assert (result.analysed, result.operation, parsed) == (False, "select", [])
    assert result.fingerprint.startswith("SELECT * FROM t WHERE a = ? OR a = ? OR") and "299" not in result.fingerprint
    assert _unparsed(PG) - before == 1
    with override_settings(TELEMETRY={"SQL_MAX_TOKENS": 5000, "SQL_ANALYZE_BUDGET_MS": 60_000}):
        assert analyze(chain, None, PG).analysed is True and len(parsed) == 1


@pytest.fixture
def prompt_watchdog():
    """The watchdog thread gets the interpreter within 0.1 ms instead of the default 5 ms,
    so that a budget of microseconds strikes inside even a short parse."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    yield
    sys.setswitchinterval(interval)


def test_a_parse_over_its_time_budget_is_cut_short_and_counted(prompt_watchdog):
    statement = ("SELECT a.id FROM a JOIN b ON b.a_id = a.id WHERE a.name = 'secret' AND ("
                 + " OR ".join(f"b.n > {42 + i}" for i in range(60)) + ")")
    before, errors = _unparsed(PG), guard.internal_error_count("sql_analyze_budget")
    with override_settings(TELEMETRY={"SQL_ANALYZE_BUDGET_MS": 0.001}):
        result = analyze(statement, None, PG)
    assert (result.analysed, result.operation, result.tables) == (False, "select", ())
    assert result.fingerprint.startswith("SELECT a.id FROM a JOIN b ON b.a_id = a.id WHERE a.name = ? AND (b.n > ?")
    assert "secret" not in result.fingerprint and "42" not in result.fingerprint
    assert _unparsed(PG) - before == 1
    assert guard.internal_error_count("sql_analyze_budget") - errors == 1
    full = analyze(statement, None, PG)  # the settings changed back: cache cleared, parsed within the default
    assert (full.analysed, full.tables) == (True, ("a", "b"))


def test_the_budget_is_not_swallowed_by_a_broad_except_and_never_escapes():
    swallowed = []

    def stubborn():
        while True:  # what a parser's retry-on-any-error loop looks like
            try:
                sum(range(1000))
            except Exception as exc:  # noqa: BLE001
                swallowed.append(exc)

    with pytest.raises(budget.Exceeded):
        budget.run(0.01, stubborn)
    assert swallowed == []
    # Nothing is left pending for this thread: plenty of Python runs after it undisturbed.
    assert sum(sum(range(1000)) for _ in range(20_000)) == 499500 * 20_000
    assert budget.run(5.0, sum, range(10)) == 45

    results = []

    def in_another_thread():
        try:
            budget.run(0.01, stubborn)
        except budget.Exceeded:
            results.append("exceeded")

    threads = [threading.Thread(target=in_another_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == ["exceeded"] * 3


def test_the_budget_holds_when_its_exception_is_lost_in_a_callback():
    """The garbage collector can run a weakref callback in the middle of a parse; an
    exception delivered there is only printed ("Exception ignored"). The watchdog fires
    again, and the run still ends over its budget."""
    lost = []

    def swallowing_once():
        while True:
            try:
                sum(range(1000))
            except budget.BudgetSpent as exc:  # what the interpreter does to a callback's exception
                if lost:
                    raise
                lost.append(exc)

    with pytest.raises(budget.Exceeded):
        budget.run(0.01, swallowing_once)
    assert len(lost) == 1
    assert budget.run(5.0, sum, range(10)) == 45


def test_a_budget_exception_lost_in_a_callback_is_not_reported_and_others_still_are():
    reported = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: reported.append(unraisable.exc_type)

    def lose_in_a_weakref_callback(exception_type):
        class Thing:
            pass

        def callback(_reference):
            raise exception_type

        thing = Thing()
        reference = weakref.ref(thing, callback)  # noqa: F841 - alive until the callback ran
        del thing
        return "went on"

    try:
        assert budget.run(5.0, lose_in_a_weakref_callback, budget.BudgetSpent) == "went on"
        assert budget.run(5.0, lose_in_a_weakref_callback, ValueError) == "went on"
    finally:
        sys.unraisablehook = previous
    assert reported == [ValueError]


def test_analysed_statements_say_so():
    assert analyze("SELECT id FROM t WHERE a = %s", (1,), PG).analysed is True
    assert analyze("BEGIN", None, PG).analysed is True
    assert analyze("SELEKT id FRUM t -- analysed flag", None, PG).analysed is False
