"""Render time of the admin pages over a year of rollups for 1,000 organizations, side by
side with the trace list over the stored spans.

The rollups are generated once (marked by the route ``/bench/route/0``), with SQL on
PostgreSQL: a year of hourly ``RouteStat`` rows for 60 routes (525,600 rows), hourly
``OrganizationUsage`` and ``OrganizationDatasourceUsage`` rows for 1,000 organizations,
each active one hour in four (2.19 M rows each), and hourly ``ReleaseRouteStats`` of 12
monthly releases. Retention would keep less (usage 90 days by default): this is the worst
case. Spans come from ``generate_spans``. Never asserted; the target is < 200 ms a page.

    export DATABASE_URL=postgres://... TELEMETRY_DATABASE_URL=postgres://...
    .venv/bin/python manage.py migrate && .venv/bin/python manage.py migrate --database telemetry
    .venv/bin/python manage.py generate_spans --spans 1000000 --clear
    .venv/bin/python bench/admin_pages.py [--rounds 11]
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.pages import time_pages  # noqa: E402 - after the path is set

ROUTES = 60
ORGANIZATIONS = 1000
HOURS = 365 * 24
BUCKETS = 15

FILL = [
    # Routes: requests and latency buckets vary by route and hour; every 7th route fails 2 %.
    """INSERT INTO {routestat} (route, hour, requests, client_errors, server_errors, total_ms, max_ms, {buckets})
       SELECT '/bench/route/' || r, date_trunc('hour', now()) - make_interval(hours => h),
              20 + (r * 7 + h) % 50, (r + h) % 3, CASE WHEN r % 7 = 0 THEN (h % 50 = 0)::int ELSE 0 END,
              (20 + (r * 7 + h) % 50) * (5 + r % 40), 200 + r * 10, {bucket_values}
       FROM generate_series(0, {routes} - 1) r, generate_series(0, {hours} - 1) h""",
    """INSERT INTO {usage} (organization_id, hour, requests, errors, app_loads, query_runs, query_failures,
                           active_users, storage_bytes)
       SELECT 'bench-org-' || o, date_trunc('hour', now()) - make_interval(hours => h),
              10 + (o + h) % 90, (o + h) % 17 / 16, 1 + (o + h) % 9, 5 + (o * 3 + h) % 40, (o + h) % 23 / 22,
              1 + o % 25, 1000000 * (1 + o % 300)
       FROM generate_series(0, {organizations} - 1) o, generate_series(0, {hours} - 1) h
       WHERE (o + h) % 4 = 0""",
    """INSERT INTO {datasource} (organization_id, hour, kind, runs, failures)
       SELECT 'bench-org-' || o, date_trunc('hour', now()) - make_interval(hours => h),
              (ARRAY['postgresql', 'restapi', 'mysql'])[1 + o % 3], 5 + (o * 3 + h) % 40, (o + h) % 23 / 22
       FROM generate_series(0, {organizations} - 1) o, generate_series(0, {hours} - 1) h
       WHERE (o + h) % 4 = 0""",
    """INSERT INTO {release} (release, route, hour, count, total_seconds, total_squares, satisfied, tolerating,
                             max_seconds)
       SELECT 'bench-' || lpad((h / 730)::text, 2, '0'), '/bench/route/' || r,
              date_trunc('hour', now()) - make_interval(hours => {hours} - 1 - h),
              20 + (r * 7 + h) % 50, (20 + (r * 7 + h) % 50) * (0.005 + (r % 40) * 0.001),
              (20 + (r * 7 + h) % 50) * power(0.005 + (r % 40) * 0.001, 2) * 1.1,
              18 + (r * 7 + h) % 45, 1, 0.2 + r * 0.01
       FROM generate_series(0, {routes} - 1) r, generate_series(0, {hours} - 1) h""",
]


def fill(connection, models):
    table = {name: connection.ops.quote_name(model._meta.db_table) for name, model in models.items()}
    buckets = ", ".join(f"bucket_{index}" for index in range(BUCKETS))
    # A spread over the buckets that depends on the route: fast routes fill the low ones.
    bucket_values = ", ".join(f"CASE WHEN {index} BETWEEN r % 6 AND r % 6 + 4 THEN 4 + (h + {index}) % 7 ELSE 0 END"
                              for index in range(BUCKETS))
    with connection.cursor() as cursor:
        for statement in FILL:
            started = time.perf_counter()
            cursor.execute(statement.format(
                **table, buckets=buckets, bucket_values=bucket_values, routes=ROUTES, organizations=ORGANIZATIONS,
                hours=HOURS))
            print(f"  filled {cursor.rowcount:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        for name in table.values():
            cursor.execute(f"ANALYZE {name}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=11)
    options = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.test import Client

    from telemetry.core.routers import telemetry_alias
    from telemetry.models import (
        OrganizationDatasourceUsage,
        OrganizationUsage,
        ReleaseRouteStats,
        RouteStat,
        Span,
        Trace,
    )

    alias = telemetry_alias()
    connection = connections[alias]
    if connection.vendor != "postgresql":
        sys.exit("the bench fills its rollups with PostgreSQL's generate_series: point TELEMETRY_DATABASE_URL at one")
    if not RouteStat.objects.using(alias).filter(route="/bench/route/0").exists():
        print("filling a year of rollups (once):", flush=True)
        fill(connection, {"routestat": RouteStat, "usage": OrganizationUsage,
                          "datasource": OrganizationDatasourceUsage, "release": ReleaseRouteStats})
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples::bigint FROM pg_class WHERE relname = ANY(%s)",
                       [[model._meta.db_table for model in (RouteStat, OrganizationUsage, Span)]])
        rows = dict(cursor.fetchall())

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    pages = {
        "overview, 24 hours": "/admin/telemetry/routestat/",
        "overview, 7 days": "/admin/telemetry/routestat/?hours=168",
        "overview, 30 days": "/admin/telemetry/routestat/?hours=720",
        "usage, 30 days (1,000 organizations)": "/admin/telemetry/organizationusage/?hours=720",
        "usage of one organization, 30 days": "/admin/telemetry/organizationusage/organization/bench-org-4/?hours=720",
        "releases": "/admin/telemetry/releaseroutestats/",
        "query insights": "/admin/telemetry/querystat/",
        "trace list (default)": "/admin/telemetry/trace/",
        "trace list, failed only": "/admin/telemetry/trace/?status=error",
    }
    print(f"{rows.get(RouteStat._meta.db_table, 0):,} route rows, "
          f"{rows.get(OrganizationUsage._meta.db_table, 0):,} usage rows, "
          f"{rows.get(Span._meta.db_table, 0):,} spans (estimates), {Trace.objects.count():,} traces on {alias!r}; "
          f"{options.rounds} interleaved rounds: page median (min-max); queries on the telemetry alias "
          f"and their median total time")
    time_pages(client, connection, pages, options.rounds)


if __name__ == "__main__":
    main()
