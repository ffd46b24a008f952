"""Render time of the trace admin pages and the trace API with a million stored spans.

Fill the store once (about a minute on PostgreSQL), then time the pages with Django's
test Client logged in as a superuser, interleaved rounds, medians and min-max. Never
asserted; the target is < 200 ms per page. The bench adds one trace at the page's cap
(``MAX_SPANS`` spans, nested, with events and ``MAX_LOGS`` log lines) if it is missing:
generated traces have about 20 spans.

    export DATABASE_URL=postgres://... TELEMETRY_DATABASE_URL=postgres://...
    .venv/bin/python manage.py generate_spans --spans 1000000 --clear
    .venv/bin/python bench/trace_pages.py [--rounds 15]
"""

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.pages import time_pages  # noqa: E402 - after the path is set

CAPPED_TRACE = "cafe" * 8


def store_capped_trace(Trace, Span, LogEntry, max_spans, max_logs):
    """Plugin runs of 49 queries each under a failed root; one query per run fails with an
    exception event; log lines (with markup to escape) go to the first spans."""
    from datetime import datetime, timezone

    if Trace.objects.filter(trace_id=CAPPED_TRACE).exists():
        return
    start_ns = time.time_ns() - 3_600 * 10**9
    root = Span(span_id="0" * 16, name="GET /api/apps/<slug>/view", kind="server", start_ns=start_ns, status="error",
                attributes={"http.route": "/api/apps/<slug>/view", "http.response.status_code": 500})
    spans, cursor = [root], start_ns + 100_000
    while len(spans) < max_spans:
        group = Span(span_id=f"{len(spans):016x}", parent_span_id=root.span_id, name="plugin.run postgresql",
                     kind="client", start_ns=cursor, attributes={"plugin.kind": "postgresql"})
        spans.append(group)
        for index in range(min(49, max_spans - len(spans))):
            failed = index == 25
            spans.append(Span(
                span_id=f"{len(spans):016x}", parent_span_id=group.span_id, name="postgresql.query", kind="client",
                start_ns=cursor, end_ns=cursor + 400_000, status="error" if failed else "unset",
                status_message="OperationalError: <timeout>" if failed else "",
                attributes={"db.system": "postgresql", "db.operation.name": "SELECT", "db.collection.name": "apps",
                            "db.statement": 'SELECT "apps"."id" FROM "apps" WHERE "apps"."name" = %s AND x < %s',
                            "db.query.tables": ["apps"], "db.rows_affected": index, "db.query.is_slow": False,
                            "db.query.complexity_score": 3},
                events=[{"name": "exception", "time_ns": cursor + 400_000, "attributes": {
                    "exception.type": "OperationalError", "exception.message": "<timeout> & retry"}}]
                if failed else []))
            cursor += 450_000
        group.end_ns = cursor
        cursor += 100_000
    root.end_ns = cursor
    for span in spans:
        span.trace_id, span.service, span.duration_ms = CAPPED_TRACE, "tooljet-web", (span.end_ns - span.start_ns) / 1e6
    Span.objects.bulk_create(spans, batch_size=1000)
    LogEntry.objects.bulk_create([
        LogEntry(time=datetime.fromtimestamp(span.end_ns / 1e9, tz=timezone.utc), level="WARNING", level_number=30,
                 logger="telemetry.db", message=f"slow <query> {span.span_id} & more", trace_id=CAPPED_TRACE,
                 span_id=span.span_id) for span in spans[:max_logs]])
    Trace.objects.create(
        trace_id=CAPPED_TRACE, root_name=root.name, service="tooljet-web", route="/api/apps/<slug>/view", method="GET",
        status_code=500, status="error", organization_id="bench",
        start=datetime.fromtimestamp(start_ns / 1e9, tz=timezone.utc), duration_ms=root.duration_ms,
        span_count=len(spans), is_slow=True, kept_because="error")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connections
    from django.test import Client

    from telemetry.admin.traces import MAX_LOGS
    from telemetry.core.routers import telemetry_alias
    from telemetry.models import LogEntry, Span, Trace
    from telemetry.tracing import waterfall

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

    store_capped_trace(Trace, Span, LogEntry, waterfall.MAX_SPANS, MAX_LOGS)
    # Generated traces only: the bench's own requests are traced too (no organization).
    generated = Trace.objects.exclude(organization_id__in=["", "bench"])
    slow = generated.filter(duration_ms__gte=1000).order_by("-start").first()
    typical = generated.filter(span_count__gte=18, span_count__lte=22).order_by("-start").first()
    biggest = generated.order_by("-span_count").first()
    capped = Trace.objects.get(trace_id=CAPPED_TRACE)
    organization = slow.organization_id
    user_id = Span.objects.get(trace_id=typical.trace_id, parent_span_id="").attributes["user.id"]
    pages = {
        "list (default)": "/admin/telemetry/trace/",
        "list (filter choices not cached)": "/admin/telemetry/trace/",
        f"list org={organization} + >=1 s": f"/admin/telemetry/trace/?organization={organization}&min_ms=1000",
        "list route + last day + error": f"/admin/telemetry/trace/?route={typical.route}&since=1d&status=error",
        "list search by trace id": f"/admin/telemetry/trace/?q={typical.trace_id}",
        "list status 5xx + absolute range": "/admin/telemetry/trace/?status_code=5xx&"
            + urlencode({"from": f"{slow.start - timedelta(days=2):%Y-%m-%dT%H:%M}",
                         "to": f"{slow.start:%Y-%m-%dT%H:%M}"}),
        f"list attribute user.id={user_id} (rare)": f"/admin/telemetry/trace/?attr=user.id%3D{user_id}",
        "list attribute plugin.kind=mysql": "/admin/telemetry/trace/?attr=plugin.kind%3Dmysql",
        "list attribute plugin.kind=mysql, 1 d": "/admin/telemetry/trace/?attr=plugin.kind%3Dmysql&since=1d",
        f"trace page ({typical.span_count} spans)": f"/admin/telemetry/trace/{typical.pk}/change/",
        f"trace page ({biggest.span_count} spans)": f"/admin/telemetry/trace/{biggest.pk}/change/",
        f"trace page ({capped.span_count} spans, {MAX_LOGS} logs)": f"/admin/telemetry/trace/{capped.pk}/change/",
        "logs list (default)": "/admin/telemetry/logentry/",
        "API traces (org + min duration)":
            f"/telemetry/api/traces?organization_id={organization}&min_duration_ms=1000",
        "API trace detail": f"/telemetry/api/traces/{typical.trace_id}",
    }
    print(f"{spans:,} spans (estimate), {traces:,} traces on {alias!r} ({connection.vendor}); "
          f"{options.rounds} interleaved rounds: page median (min-max); queries on the telemetry alias "
          f"and their median total time (the part that depends on the volume stored)")
    time_pages(client, connection, pages, options.rounds,
               before_each=lambda name: cache.clear() if "not cached" in name else None)


if __name__ == "__main__":
    main()
