"""Index advice per captured plan: the time ``advice.index_candidates`` takes (catalog
reads, the proposals by shape, one HypoPG proof per proposal) for one statement of each
shape, on the 100,000 generated orders of tests/telemetry/test_index_advice.py.

Runs on a scratch database (``test_<name>_<TEST_DB_SUFFIX>``, created and dropped here) of
the PostgreSQL server named by DATABASE_URL, which needs HypoPG. Interleaved rounds,
medians and min-max; never asserted.

    DATABASE_URL=postgres://... .venv/bin/python bench/advice.py
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("TEST_DB_SUFFIX", "bench_advice")

ROUNDS = 7
#: One statement per shape: (shape, SQL, parameters).
CASES = (
    ("equality", "SELECT id, note FROM ia_orders WHERE customer_id = %s", [4242]),
    ("composite", "SELECT id FROM ia_orders WHERE region = %s AND customer_id = %s", [7, 4207]),
    ("equality_range", "SELECT id FROM ia_orders WHERE created_at >= %s AND customer_id = %s", ["2026-06-01", 42]),
    ("order_limit", "SELECT id FROM ia_orders WHERE region = %s ORDER BY created_at DESC LIMIT 10", [7]),
    ("join_key", "SELECT o.id FROM ia_customers c JOIN ia_orders o ON o.customer_id = c.id WHERE c.name = %s",
     ["customer-42"]),
    ("expression", "SELECT id FROM ia_orders WHERE lower(email) = lower(%s)", ["User4242@Example.org"]),
    ("partial", "SELECT id FROM ia_orders WHERE status = %s", ["new"]),
    ("in_list", "SELECT id FROM ia_orders WHERE customer_id IN (%s, %s, %s)", [1, 2, 3]),
    ("prefix_like", "SELECT id FROM ia_orders WHERE email LIKE %s", ["user4242%"]),
    ("none (leading wildcard)", "SELECT id FROM ia_orders WHERE email LIKE %s", ["%4242@example.org"]),
)


def main():
    import django

    django.setup()
    from django.db import connections

    from telemetry import conf
    from telemetry.core.context import suppress_in_this_thread
    from telemetry.queries import advice
    from tests.telemetry.test_index_advice import SHOP_SQL

    suppress_in_this_thread()
    connection = connections["default"]
    if connection.vendor != "postgresql":
        sys.exit("default must be PostgreSQL (set DATABASE_URL)")
    created = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        settings = conf.get_settings()
        with connection.cursor() as cursor:
            for statement in SHOP_SQL:
                cursor.execute(statement)
            plans = {shape: advice.explain(cursor, sql, params) for shape, sql, params in CASES}
            found = {}
            results = {shape: [] for shape, _, _ in CASES}
            for _ in range(ROUNDS):
                for shape, sql, params in CASES:
                    started = time.perf_counter()
                    candidates = advice.index_candidates(
                        connection, cursor, plans[shape], sql, params, min_rows=settings["MISSING_INDEX_MIN_ROWS"],
                        min_gain=settings["HYPOPG_MIN_GAIN"],
                        max_selectivity=settings["MISSING_INDEX_MAX_SELECTIVITY"], use_hypopg=True)
                    results[shape].append(time.perf_counter() - started)
                    found[shape] = ", ".join(f"{c['shape']} {c['columns']}" for c in candidates) or "none"
        print(f"{'shape':26} {'median ms':>10} {'min-max ms':>14}   advice   ({ROUNDS} interleaved rounds)")
        for shape, values in results.items():
            low, high = min(values) * 1000, max(values) * 1000
            print(f"{shape:26} {statistics.median(values) * 1000:10.2f} {f'{low:.2f}-{high:.2f}':>14}   {found[shape]}")
        medians = [statistics.median(values) * 1000 for values in results.values()]
        print(f"advice per captured plan, median over the shapes: {statistics.median(medians):.2f} ms")
    finally:
        connection.close()
        connection.creation.destroy_test_db(created, verbosity=0)


if __name__ == "__main__":
    main()
