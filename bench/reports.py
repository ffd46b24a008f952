"""Query-intelligence storage at scale: the statistics flush and the report builds over
100,000 fingerprint-hours (1,000 fingerprints x 100 hours) on PostgreSQL.

Runs on scratch databases (``test_<name>_<TEST_DB_SUFFIX>``, created and dropped here)
of the PostgreSQL servers named by DATABASE_URL / TELEMETRY_DATABASE_URL. Interleaved
rounds, medians and min-max; never asserted.

    DATABASE_URL=postgres://... TELEMETRY_DATABASE_URL=postgres://... .venv/bin/python bench/reports.py
"""

import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("TEST_DB_SUFFIX", "bench_reports")

FINGERPRINTS = 1000
HOURS = 100
ROUNDS = 5


def analyses():
    from telemetry.queries.sql import analyze

    tables = [f"bench_table_{index}" for index in range(40)]
    return [analyze(f"SELECT * FROM {tables[index % 40]} WHERE column_{index} = %s", None, "postgresql")
            for index in range(FINGERPRINTS)]


def fill(all_analyses, now):
    from telemetry.models import QueryStat

    random.seed(7)
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    rows = []
    for offset in range(HOURS):
        hour = first_hour + timedelta(hours=offset)
        for analysis in all_analyses:
            calls = random.randint(1, 500)
            buckets = [0] * 15
            for _ in range(3):
                buckets[random.randint(0, 9)] += calls // 3
            buckets[0] += calls - sum(buckets)
            rows.append(QueryStat(
                fingerprint_id=analysis.fingerprint_id, alias="default", hour=hour, fingerprint=analysis.fingerprint,
                operation=analysis.operation, tables=",".join(analysis.tables), complexity="low",
                suggestions="select_star" if random.random() < 0.1 else "", calls=calls,
                total_ms=calls * random.uniform(0.5, 50), min_ms=0.1, max_ms=200.0, rows=calls, first_seen=hour,
                last_seen=hour, **{f"bucket_{index}": count for index, count in enumerate(buckets)},
            ))
    QueryStat.objects.using("telemetry").bulk_create(rows, batch_size=5000)
    return len(rows)


def timed(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def flush(all_analyses, count):
    """One sample interval's write: ``count`` fingerprints, each seen 10 times."""
    from telemetry.core import recorder
    from telemetry.queries import stats as querystats

    batch = recorder.Batch()
    for analysis in all_analyses[:count]:
        for _ in range(10):
            querystats.observe(batch, analysis, "default", 0.004, 3)
    return timed(querystats.write_pending)


def main():
    import django

    django.setup()
    from django.db import connections
    from django.utils import timezone

    from telemetry.core import recorder
    from telemetry.core.context import suppress_in_this_thread
    from telemetry.queries import reports

    recorder.run_in_foreground()
    suppress_in_this_thread()
    for alias in ("default", "telemetry"):
        if connections[alias].vendor != "postgresql":
            sys.exit(f"{alias} must be PostgreSQL (set DATABASE_URL and TELEMETRY_DATABASE_URL)")
    created = {alias: connections[alias].creation.create_test_db(verbosity=0, autoclobber=True)
               for alias in ("default", "telemetry")}
    try:
        all_analyses = analyses()
        started = time.perf_counter()
        rows = fill(all_analyses, timezone.now())
        print(f"filled {rows:,} fingerprint-hours in {time.perf_counter() - started:.1f} s")
        with connections["telemetry"].cursor() as cursor:
            cursor.execute("ANALYZE telemetry_querystat")
        cases = {
            "flush 100 fingerprints": lambda: flush(all_analyses, 100),
            "flush 1,000 fingerprints": lambda: flush(all_analyses, 1000),
            "slow-query report, 24 h (24k rows + 24k previous)":
                lambda: timed(lambda: reports.build_slow_query_report(24)),
            "slow-query report, 100 h (all rows)": lambda: timed(lambda: reports.build_slow_query_report(100)),
            "optimization report, 24 h": lambda: timed(lambda: reports.build_optimization_report(24)),
            "optimization report, 100 h": lambda: timed(lambda: reports.build_optimization_report(100)),
        }
        results = {name: [] for name in cases}
        for _ in range(ROUNDS):
            for name, case in cases.items():
                results[name].append(case())
        print(f"{'case':52} {'median ms':>10} {'min-max ms':>16}   ({ROUNDS} interleaved rounds)")
        for name, values in results.items():
            low, high = min(values) * 1000, max(values) * 1000
            print(f"{name:52} {statistics.median(values) * 1000:10.1f} {f'{low:.1f}-{high:.1f}':>16}")
        base = statistics.median(results["flush 100 fingerprints"])
        ratio = statistics.median(results["flush 1,000 fingerprints"]) / base
        print(f"flush of 1,000 vs 100 fingerprints: x{ratio:.1f}")
    finally:
        for alias, name in created.items():
            connections[alias].creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    main()
