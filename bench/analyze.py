"""Cost of ``telemetry.queries.sql.analyze()`` per statement: cold (parse, rules, fingerprint)
and on a cache hit, without and with bound parameters, over ~30 realistic statements
(Django's own and hand-written ones, three dialects).

Interleaved rounds (cold, hit, cold+params, hit+params, ...); medians and min-max in
microseconds per call; never asserted.

    .venv/bin/python bench/analyze.py [--rounds 7 --hits 2000] [--instructions]

Then the hostile statements (``HOSTILE``: the size, token and time bounds at work), each
analysed cold several times: the worst single-statement time, wall clock and the
thread's CPU time (the CPU figure does not count time the machine gave to others).

``--instructions`` also counts instructions per cache hit under callgrind (shared
BENCHMARKING.md): two runs of N1 and N2 hits after the same warm-up, difference / (N2 - N1).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
from bench.harness import ROOT, callgrind  # noqa: E402 - run as a script

PG, MY, LITE = "postgresql", "mysql", "sqlite"
APP = '"apps_builder_app"'
STATEMENTS = [
    (PG, f'SELECT {APP}."id", {APP}."name", {APP}."slug" FROM {APP} WHERE {APP}."organization_id" = %s '
         f'ORDER BY {APP}."name" ASC LIMIT 21', (1,)),
    (PG, f'SELECT {APP}."id" FROM {APP} WHERE {APP}."id" IN (%s, %s, %s, %s, %s)', (1, 2, 3, 4, 5)),
    (PG, f'SELECT {APP}."id" FROM {APP} WHERE UPPER({APP}."name"::text) LIKE UPPER(%s) LIMIT 21', ("%crm%",)),
    (PG, f'SELECT {APP}."id" FROM {APP} WHERE {APP}."name"::text LIKE %s LIMIT 21', ("crm%",)),
    (PG, f'SELECT COUNT(*) AS "__count" FROM {APP} WHERE {APP}."organization_id" = %s', (1,)),
    (PG, f'INSERT INTO {APP} ("organization_id", "name", "slug", "created_at") VALUES (%s, %s, %s, %s) '
         f'RETURNING {APP}."id"', (1, "CRM", "crm", "2026-01-01")),
    (PG, f'UPDATE {APP} SET "name" = %s, "updated_at" = %s WHERE {APP}."id" = %s', ("x", "2026-01-01", 3)),
    (PG, f'DELETE FROM {APP} WHERE {APP}."id" IN (%s, %s)', (1, 2)),
    (PG, 'SAVEPOINT "s139872_x1"', None),
    (PG, 'RELEASE SAVEPOINT "s139872_x1"', None),
    (PG, 'INSERT INTO "auth_group" ("name") VALUES (%s) ON CONFLICT ("name") DO UPDATE SET "name" = EXCLUDED."name"',
     ("a",)),
    (PG, 'SELECT "apps_builder_organization"."id", COALESCE((SELECT COUNT(U0."id") FROM "apps_builder_app" U0 '
         'WHERE U0."organization_id" = ("apps_builder_organization"."id") GROUP BY U0."organization_id"), 0) AS "n" '
         'FROM "apps_builder_organization" ORDER BY "n" DESC LIMIT 10', None),
    (PG, 'SELECT "t"."id" FROM "apps_builder_dataquery" "t" INNER JOIN "apps_builder_appversion" v ON v."id" = '
         '"t"."app_version_id" INNER JOIN "apps_builder_app" a ON a."id" = v."app_id" WHERE a."organization_id" = %s '
         'AND ("t"."name" = %s OR "t"."kind" = %s)', (1, "q", "rest")),
    (PG, "SELECT * FROM users WHERE email ILIKE %s ORDER BY created_at DESC LIMIT 50 OFFSET %s", ("%@acme.com", 5000)),
    (PG, "SELECT u.id, o.total FROM users u, orders o WHERE u.id = o.user_id AND o.created_at >= NOW() - "
         "INTERVAL '7 days'", None),
    (PG, "SELECT id FROM orders WHERE customer_id NOT IN (SELECT id FROM customers WHERE blocked)", None),
    (PG, "SELECT id FROM products ORDER BY RANDOM() LIMIT 5", None),
    (PG, "WITH recent AS (SELECT user_id, SUM(total) AS spent FROM orders GROUP BY user_id) SELECT u.id, r.spent, "
         "RANK() OVER (ORDER BY r.spent DESC) FROM users u JOIN recent r ON r.user_id = u.id", None),
    (PG, "SELECT a.id FROM a JOIN b ON b.a_id = a.id JOIN c ON c.b_id = b.id JOIN d ON d.c_id = c.id "
         "JOIN e ON e.d_id = d.id WHERE DATE(a.created_at) = %s", ("2026-01-01",)),
    (PG, "UPDATE accounts SET balance = 0", None),
    (PG, "SELECT id FROM events WHERE id IN (" + ", ".join(["%s"] * 150) + ")", tuple(range(150))),
    (MY, "SELECT `t`.`id`, `t`.`name` FROM `plugin_rows` `t` WHERE `t`.`name` LIKE %s LIMIT 5000, 20", ("%x",)),
    (MY, "SELECT id FROM items ORDER BY RAND() LIMIT 3", None),
    (MY, "INSERT INTO `audit` (`who`, `what`) VALUES (%s, %s), (%s, %s)", ("a", "b", "c", "d")),
    (MY, "SELECT o.id, c.name FROM orders o CROSS JOIN currencies c", None),
    (LITE, 'SELECT "t"."id" FROM "telemetry_querystat" "t" WHERE "t"."hour" >= %s AND "t"."fingerprint" LIKE %s '
           "ESCAPE '\\' LIMIT 100", ("2026-01-01", "%SELECT%")),
    (LITE, "SELECT name, (SELECT MAX(v) FROM readings r WHERE r.sensor_id = s.id) FROM sensors s", None),
    (LITE, "DELETE FROM sessions", None),
    (LITE, "SELECT id FROM t WHERE a = ? OR b = ? LIMIT ? OFFSET ?", (1, 2, 10, 20)),
    (PG, "BEGIN", None),
]


#: Statements that took seconds to minutes of a thread before analysis was bounded.
HOSTILE = {
    "70,000-OR chain": "SELECT * FROM t WHERE " + " OR ".join(f"(a = {i} AND b = 'v{i}')" for i in range(70_000)),
    "90,000-column select": "SELECT " + ", ".join(f"c{i}" for i in range(90_000)) + " FROM t",
    "40,000-branch CASE": "SELECT CASE " + " ".join(f"WHEN a = {i} THEN 'v{i}'" for i in range(40_000)) + " END FROM t",
    "5,000 nested parentheses": "SELECT " + "(" * 5000 + "1" + ")" * 5000,
    "300 nested parentheses": "SELECT " + "(" * 300 + "1" + ")" * 300,
    "1,500-OR chain (16 KB)": "SELECT * FROM t WHERE " + " OR ".join(f"a = {i}" for i in range(1500)),
    "240-OR chain (under the token bound)": "SELECT * FROM t WHERE " + " OR ".join(f"a = {i}" for i in range(240)),
}


def hostile(rounds):
    """{name: [(wall seconds, thread CPU seconds, analysed)]} of each statement analysed cold."""
    from telemetry.queries import sql as telemetry_sql

    timings = {name: [] for name in HOSTILE}
    for _ in range(rounds):
        for name, statement in HOSTILE.items():
            telemetry_sql._analyze_cached.cache_clear()
            wall, cpu = time.perf_counter(), time.thread_time()
            result = telemetry_sql.analyze(statement, None, PG)
            timings[name].append((time.perf_counter() - wall, time.thread_time() - cpu, result.analysed))
    return timings


CHILD = r"""
import os, sys
sys.path.insert(0, {root!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
from telemetry.core import recorder
recorder.run_in_foreground()  # no flusher thread adding its own work to the count
django.setup()
sys.path.insert(0, {bench!r})
from analyze import STATEMENTS
from telemetry.queries.sql import analyze
for vendor, statement, params in STATEMENTS:
    analyze(statement, params, vendor)
if {empty}:
    def analyze(statement, params, vendor):
        return None
import gc
gc.collect()
gc.disable()  # collections triggered by the batch lists would swamp the figure
calls = {calls}
batches = [[(vendor, (statement + " ")[:-1], params if {with_params} else None)
            for vendor, statement, params in STATEMENTS] for _ in range(calls // len(STATEMENTS))]
for batch in batches:
    for vendor, statement, params in batch:
        analyze(statement, params, vendor)
"""


def instructions(calls, with_params, empty=False):
    """Instructions of the child under callgrind (start-up included; cancelled by the
    caller). ``empty``: the same loop with a no-op in place of analyze()."""
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), calls=calls, with_params=with_params,
                        empty=empty)
    return callgrind(["-c", code], {**os.environ, "PYTHONHASHSEED": "0"}).total


def per_call(function, repeat):
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - started) / repeat * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--hits", type=int, default=2000)
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per cache hit under callgrind (slow)")
    options = parser.parse_args()

    import django

    django.setup()
    from telemetry.queries import sql as telemetry_sql
    from telemetry.queries.sql import analyze

    def cold(with_params):
        timings = []
        for vendor, statement, params in STATEMENTS:
            telemetry_sql._analyze_cached.cache_clear()
            given = params if with_params else None
            timings.append(per_call(lambda s=statement, g=given, v=vendor: analyze(s, g, v), 1))
        return statistics.mean(timings)

    def hit(with_params):
        for vendor, statement, params in STATEMENTS:
            analyze(statement, params, vendor)
        repeat = max(1, options.hits // len(STATEMENTS))
        # Django builds a new string per execution: fresh copies, so each look-up hashes
        # the text as it would in production.
        batches = iter([[(vendor, (statement + " ")[:-1], params if with_params else None)
                         for vendor, statement, params in STATEMENTS] for _ in range(repeat)])

        def run_all():
            for vendor, statement, params in next(batches):
                analyze(statement, params, vendor)

        return per_call(run_all, repeat) / len(STATEMENTS)

    cold(False)  # warm imports and sqlglot's own caches
    configurations = {
        "cold, no params": lambda: cold(False), "cache hit, no params": lambda: hit(False),
        "cold, with params": lambda: cold(True), "cache hit, with params": lambda: hit(True),
    }
    results = {name: [] for name in configurations}
    for _ in range(options.rounds):
        for name, run in configurations.items():
            results[name].append(run())
    print(f"telemetry.queries.sql.analyze(), {len(STATEMENTS)} statements, {options.rounds} interleaved rounds "
          "(mean per statement per round; median and min-max over rounds):")
    for name, values in results.items():
        print(f"  {name:24} {statistics.median(values):9.2f} us  ({min(values):.2f} - {max(values):.2f})")
    hit_median = statistics.median(results["cache hit, with params"])
    print(f"  cold / hit (with params): {statistics.median(results['cold, with params']) / hit_median:.0f}x")
    found = {}
    for vendor, statement, params in STATEMENTS:
        for code in analyze(statement, params, vendor).suggestions:
            found[code] = found.get(code, 0) + 1
    print("  codes over the set:", ", ".join(f"{code} {count}" for code, count in sorted(found.items())))
    timings = hostile(options.rounds)
    print(f"Hostile statements, cold, {options.rounds} rounds (worst wall clock / worst thread CPU time):")
    for name, values in timings.items():
        print(f"  {name:38} {max(v[0] for v in values) * 1e3:7.1f} ms / {max(v[1] for v in values) * 1e3:6.1f} ms"
              f"  {'analysed' if values[0][2] else 'unanalysed'}")
    print(f"  worst single statement: {max(v[0] for values in timings.values() for v in values) * 1e3:.1f} ms wall, "
          f"{max(v[1] for values in timings.values() for v in values) * 1e3:.1f} ms CPU")
    if options.instructions:
        low, high = 300, 1500

        def per_call_instructions(with_params, empty=False):
            return (instructions(high, with_params, empty) - instructions(low, with_params, empty)) / (high - low)

        loop = per_call_instructions(True, empty=True)
        for with_params in (False, True):
            per_hit = per_call_instructions(with_params) - loop
            label = "with params" if with_params else "no params"
            print(f"  instructions per cache hit, {label}: {per_hit / 1000:.1f} k "
                  f"(callgrind, {high} - {low} calls, loop of {loop / 1000:.1f} k subtracted)")


if __name__ == "__main__":
    main()
