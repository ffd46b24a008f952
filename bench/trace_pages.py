"""Render time of the trace admin pages and the trace API with a million stored spans.

Fill the store once (about a minute on PostgreSQL), then time the pages with Django's
test Client logged in as a superuser, interleaved rounds, medians and min-max. Never
asserted; the target is < 200 ms per page.

    export DATABASE_URL=postgres://... TELEMETRY_DATABASE_URL=postgres://...
    .venv/bin/python manage.py generate_spans --spans 1000000 --clear
    .venv/bin/python bench/trace_pages.py [--rounds 15]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connections, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from telemetry.models import Span, Trace
    from telemetry.routers import telemetry_alias

    alias = telemetry_alias()
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [Span._meta.db_table])
        spans = cursor.fetchone()[0]
    traces = Trace.objects.count()
    if spans < 100_000:
        sys.exit(f"only ~{spans} spans stored on {alias!r}: run `manage.py generate_spans --spans 1000000` first")

    user, _ = get_user_model().objects.get_or_create(
        username="bench-traces", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)

    # Generated traces only: the bench's own requests are traced too (no organization).
    generated = Trace.objects.exclude(organization_id="")
    slow = generated.filter(duration_ms__gte=1000).order_by("-start").first()
    typical = generated.filter(span_count__gte=18, span_count__lte=22).order_by("-start").first()
    biggest = Trace.objects.order_by("-span_count").first()
    organization = slow.organization_id
    pages = {
        "list (default)": "/admin/telemetry/trace/",
        "list (filter choices not cached)": "/admin/telemetry/trace/",
        f"list org={organization} + >=1 s": f"/admin/telemetry/trace/?organization={organization}&min_ms=1000",
        "list route + last day + error": f"/admin/telemetry/trace/?route={typical.route}&since=1d&status=error",
        "list search by trace id": f"/admin/telemetry/trace/?q={typical.trace_id}",
        f"trace page ({typical.span_count} spans)": f"/admin/telemetry/trace/{typical.pk}/change/",
        f"trace page ({biggest.span_count} spans)": f"/admin/telemetry/trace/{biggest.pk}/change/",
        "logs list (default)": "/admin/telemetry/logentry/",
        "API traces (org + min duration)":
            f"/telemetry/api/traces?organization_id={organization}&min_duration_ms=1000",
        "API trace detail": f"/telemetry/api/traces/{typical.trace_id}",
    }
    for url in pages.values():  # warm-up: templates, connections, filter choices
        assert client.get(url).status_code == 200, url

    timings = {name: [] for name in pages}
    queries = {}
    sql_seconds = {name: [] for name in pages}
    for _ in range(options.rounds):
        for name, url in pages.items():
            if "not cached" in name:
                cache.clear()
            reset_queries()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                timings[name].append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
            queries[name] = len(captured)
            sql_seconds[name].append(sum(float(query["time"]) for query in captured.captured_queries))

    print(f"{spans:,} spans (estimate), {traces:,} traces on {alias!r} ({connection.vendor}); "
          f"{options.rounds} interleaved rounds: page median (min-max); queries on the telemetry alias "
          f"and their median total time (the part that depends on the volume stored)")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"  {name:<40} {median * 1e3:7.1f} ms ({min(values) * 1e3:.1f}-{max(values) * 1e3:.1f})"
              f"  {queries[name]} queries {statistics.median(sql_seconds[name]) * 1e3:6.1f} ms")


if __name__ == "__main__":
    main()
