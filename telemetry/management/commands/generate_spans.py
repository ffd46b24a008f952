"""Fill the trace store with realistic synthetic traces, to measure the admin pages and
the API at volume (``bench/trace_pages.py``).

    manage.py generate_spans --spans 1000000 [--database telemetry] [--clear]

About ``--spans-per-trace`` spans per trace (server span, normalized DB statements, a
plugin run with its phases, business and Celery spans), a few failed and slow traces with
their log lines, several routes and organizations, spread over ``--days``. On PostgreSQL
rows go in with COPY (a million spans in well under a minute); elsewhere with bulk_create.
"""

import json
import random
import time
from argparse import ArgumentParser
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

from telemetry.core.routers import telemetry_alias
from telemetry.models import LogEntry, Span, Trace

STATEMENTS = (
    ("SELECT", "auth_user", 1.5, 'SELECT "auth_user"."id", "auth_user"."username" FROM "auth_user" '
                                 'WHERE "auth_user"."id" = %s LIMIT %s'),
    ("SELECT", "apps_builder_membership", 2.5,
     'SELECT "apps_builder_membership"."organization_id", "apps_builder_membership"."role" FROM '
     '"apps_builder_membership" WHERE "apps_builder_membership"."user_id" = %s'),
    ("SELECT", "apps_builder_app", 3.0, 'SELECT "apps_builder_app"."id", "apps_builder_app"."definition" FROM '
                                        '"apps_builder_app" WHERE "apps_builder_app"."slug" = %s LIMIT %s'),
    ("SELECT", "apps_builder_appversion", 4.5,
     'SELECT "apps_builder_appversion"."id", "apps_builder_appversion"."definition" FROM '
     '"apps_builder_appversion" INNER JOIN "apps_builder_app" ON ("apps_builder_appversion"."app_id" = '
     '"apps_builder_app"."id") WHERE ("apps_builder_app"."id" = %s AND "apps_builder_appversion"."is_released")'),
    ("SELECT", "apps_builder_dataquery", 3.5,
     'SELECT "apps_builder_dataquery"."id", "apps_builder_dataquery"."options" FROM "apps_builder_dataquery" '
     'WHERE "apps_builder_dataquery"."app_id" = %s'),
    ("UPDATE", "apps_builder_app", 2.0, 'UPDATE "apps_builder_app" SET "definition" = %s, "updated_at" = %s '
                                        'WHERE "apps_builder_app"."id" = %s'),
    ("INSERT", "apps_builder_app", 1.0, 'INSERT INTO "apps_builder_app" ("organization_id", "name", "slug", '
                                        '"definition") VALUES (%s, %s, %s, %s) RETURNING "apps_builder_app"."id"'),
)
#: (root span name, route, method, plugin kind or None, business span or None, weight)
ROUTES = (
    ("GET /api/apps/<slug>/view", "/api/apps/<slug>/view", "GET", "postgresql", None, 40),
    ("POST /api/data-queries/<int:pk>/run", "/api/data-queries/<int:pk>/run", "POST", "restapi", None, 20),
    ("GET /api/apps/", "/api/apps/", "GET", None, None, 15),
    ("POST /api/apps/", "/api/apps/", "POST", None, "app_lifecycle.create", 5),
    ("PATCH /api/apps/<slug>/", "/api/apps/<slug>/", "PATCH", None, "app_lifecycle.update", 8),
    ("POST /api/data-queries/<int:pk>/run", "/api/data-queries/<int:pk>/run", "POST", "mysql", None, 7),
    ("run telemetry.compare_releases", "", "", None, None, 5),
)
OPERATIONS = {"GET /api/apps/<slug>/view": "view", "POST /api/apps/": "create", "PATCH /api/apps/<slug>/": "update"}


class Generator:
    """Builds one trace at a time: (trace row, span rows, log rows) as plain tuples."""

    def __init__(self, seed, organizations, days, spans_per_trace):
        self.rng = random.Random(seed)
        self.organizations = [str(index) for index in range(1, organizations + 1)]
        # A few busy organizations and a long tail, as on a real platform.
        self.organization_weights = [1.0 / index for index in range(1, organizations + 1)]
        self.end = datetime.now(timezone.utc)
        self.window_ns = int(timedelta(days=days).total_seconds() * 1e9)
        self.spans_per_trace = spans_per_trace
        self.route_weights = [route[-1] for route in ROUTES]

    def hex_id(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def trace(self) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        rng = self.rng
        root_name, route, method, plugin_kind, business, _ = rng.choices(ROUTES, self.route_weights)[0]
        organization = rng.choices(self.organizations, self.organization_weights)[0]
        trace_id = self.hex_id(128)
        is_task = not method
        failed = rng.random() < 0.02
        slow_query_at = rng.randrange(self.spans_per_trace) if rng.random() < 0.03 else -1
        count = max(4, rng.randint(self.spans_per_trace // 2, self.spans_per_trace * 3 // 2))
        end_ns = int(self.end.timestamp() * 1e9)
        start_ns = end_ns - rng.randrange(self.window_ns)
        root_id = self.hex_id(64)
        spans, logs = [], []
        cursor = start_ns + rng.randint(200_000, 900_000)
        parent = root_id
        if business:
            business_id = self.hex_id(64)
            spans.append([business_id, root_id, business, "internal", cursor, 0, {"organization.id": organization}])
            parent = business_id
        plugin_at = count // 2 if plugin_kind else -1
        error_span = None
        while len(spans) < count - 1:
            index = len(spans)
            if index == plugin_at:
                plugin_id = self.hex_id(64)
                plugin_start = cursor
                plugin = [plugin_id, parent, f"plugin.run {plugin_kind}", "client", plugin_start, 0,
                          {"plugin.kind": plugin_kind, "organization.id": organization}]
                spans.append(plugin)
                for phase in ("connect", "execute", "serialize"):
                    if len(spans) >= count - 1:
                        break
                    duration = int(rng.lognormvariate(14.5, 0.8)) if phase != "serialize" else 150_000
                    spans.append([self.hex_id(64), plugin_id, f"plugin.{phase}", "internal", cursor, cursor + duration,
                                  {"plugin.kind": plugin_kind, "plugin.phase": phase}])
                    cursor += duration + 20_000
                plugin[5] = cursor
                if failed and error_span is None:
                    error_span = plugin
                cursor += rng.randint(50_000, 300_000)
                continue
            operation, table, complexity, statement = rng.choice(STATEMENTS)
            slow = index == slow_query_at
            duration = rng.randint(250_000_000, 2_500_000_000) if slow else int(rng.lognormvariate(13.5, 0.7))
            spans.append([self.hex_id(64), parent, "postgresql.query", "client", cursor, cursor + duration, {
                "db.system": "postgresql", "db.operation.name": operation, "db.collection.name": table,
                "db.statement": statement, "db.query.complexity_score": complexity, "db.query.tables": table,
                "db.query.is_slow": slow, "db.rows_affected": rng.randint(0, 50),
            }])
            if slow:
                logs.append((cursor + duration, "WARNING", 30, "telemetry.db",
                             f"slow query on {table}: {duration / 1e6:.0f} ms", spans[-1][0]))
            cursor += duration + rng.randint(20_000, 200_000)
        if business:
            spans[0][5] = cursor
            cursor += 50_000
        if failed:
            error_span = error_span or spans[-1]
            error_span.append("error")
            logs.append((error_span[5], "ERROR", 40, "plugins" if plugin_kind else "django.request",
                         "query run failed: ConnectionError", error_span[0]))
        root_end = cursor + rng.randint(300_000, 2_000_000)
        user_id = rng.randint(1, 5000)
        root_attributes = {"organization.id": organization, "user.id": user_id}
        if is_task:
            root_attributes.update({"celery.task_name": root_name.split(" ", 1)[1], "celery.state": "SUCCESS"})
        else:
            status_code = 500 if failed else 200
            root_attributes.update({"http.request.method": method, "http.route": route,
                                    "http.response.status_code": status_code,
                                    "tooljet.db_query_count": sum(span[2] == "postgresql.query" for span in spans)})
            if root_name in OPERATIONS:
                root_attributes["tooljet.app.operation"] = OPERATIONS[root_name]
        spans.insert(0, [root_id, "", root_name, "consumer" if is_task else "server", start_ns, root_end,
                         root_attributes] + (["error"] if failed else []))

        duration_ms = (root_end - start_ns) / 1e6
        is_slow = slow_query_at >= 0 and any(span[2] == "postgresql.query" and span[6]["db.query.is_slow"]
                                             for span in spans) or duration_ms >= 1000
        kept_because = "error" if failed else "slow" if is_slow else "sampled"
        service = "tooljet-worker" if is_task else "tooljet-web"
        trace_row = (trace_id, root_name, service, route, method, None if is_task else (500 if failed else 200),
                     "error" if failed else "ok", organization, _datetime(start_ns), duration_ms, len(spans),
                     is_slow, kept_because)
        span_rows = [
            (trace_id, span_id, parent_id, name, kind, service, start, end, (end - start) / 1e6,
             "error" if status else "unset", "ConnectionError" if status else "",
             json.dumps(attributes), "[]")
            for span_id, parent_id, name, kind, start, end, attributes, *status in spans
        ]
        log_rows = [(_datetime(at), level, number, logger, message, trace_id, span_id, "{}")
                    for at, level, number, logger, message, span_id in logs]
        return trace_row, span_rows, log_rows


def _datetime(epoch_ns):
    return datetime.fromtimestamp(epoch_ns / 1e9, tz=timezone.utc)


TRACE_COLUMNS = ("trace_id", "root_name", "service", "route", "method", "status_code", "status", "organization_id",
                 "start", "duration_ms", "span_count", "is_slow", "kept_because")
SPAN_COLUMNS = ("trace_id", "span_id", "parent_span_id", "name", "kind", "service", "start_ns", "end_ns",
                "duration_ms", "status", "status_message", "attributes", "events")
LOG_COLUMNS = ("time", "level", "level_number", "logger", "message", "trace_id", "span_id", "attributes")
TABLES = ((Trace, TRACE_COLUMNS), (Span, SPAN_COLUMNS), (LogEntry, LOG_COLUMNS))


class Command(BaseCommand):
    help = "Insert synthetic traces (about --spans spans) into the trace store, for benchmarks."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--spans", type=int, default=1_000_000)
        parser.add_argument("--spans-per-trace", type=int, default=20)
        parser.add_argument("--organizations", type=int, default=30)
        parser.add_argument("--days", type=float, default=7.0)
        parser.add_argument("--database", default=None, help="alias (default: the telemetry alias)")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--batch", type=int, default=50_000, help="spans per transaction")
        parser.add_argument("--clear", action="store_true", help="delete every stored trace, span and log first")

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"] or telemetry_alias()
        if alias not in connections:
            raise CommandError(f"unknown database alias {alias!r}")
        if options["spans"] < 1 or options["spans_per_trace"] < 4:
            raise CommandError("--spans must be positive and --spans-per-trace at least 4")
        connection = connections[alias]
        if options["clear"]:
            self.clear(connection)
        generator = Generator(options["seed"], options["organizations"], options["days"], options["spans_per_trace"])
        started = time.perf_counter()
        written = traces = 0
        while written < options["spans"]:
            batch: dict[type[Model], list[tuple[Any, ...]]] = {Trace: [], Span: [], LogEntry: []}
            while len(batch[Span]) < options["batch"] and written + len(batch[Span]) < options["spans"]:
                trace_row, span_rows, log_rows = generator.trace()
                batch[Trace].append(trace_row)
                batch[Span].extend(span_rows)
                batch[LogEntry].extend(log_rows)
            with transaction.atomic(using=alias):
                for model, columns in TABLES:
                    self.insert(connection, model, columns, batch[model])
            written += len(batch[Span])
            traces += len(batch[Trace])
            self.stdout.write(f"{written:,} spans, {traces:,} traces ({time.perf_counter() - started:.1f} s)")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for model, _ in TABLES:
                    cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
        self.stdout.write(self.style.SUCCESS(
            f"Inserted {written:,} spans in {traces:,} traces into {alias!r} "
            f"in {time.perf_counter() - started:.1f} s."))

    def clear(self, connection: BaseDatabaseWrapper) -> None:
        tables = [connection.ops.quote_name(model._meta.db_table) for model, _ in TABLES]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {', '.join(tables)}")
            else:
                for table in tables:
                    cursor.execute(f"DELETE FROM {table}")

    # Any model: one of TABLES' models (their union does not type ``objects.bulk_create``).
    def insert(self, connection: BaseDatabaseWrapper, model: Any, columns: Sequence[str],
               rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            raw_cursor = cursor.cursor
            if connection.vendor == "postgresql" and hasattr(raw_cursor, "copy"):
                # COPY through psycopg 3: one round trip per batch, no per-row INSERT parsing.
                with raw_cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return
        objects = [model(**dict(zip(columns, row, strict=False))) for row in rows]
        for instance in objects:
            for field in ("attributes", "events"):
                if isinstance(getattr(instance, field, None), str):
                    setattr(instance, field, json.loads(getattr(instance, field)))
        model.objects.using(connection.alias).bulk_create(objects, batch_size=5000)
