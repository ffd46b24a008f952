"""Spans stored per second by the trace store writer, into PostgreSQL and into SQLite.

Builds traces of one server span and nine DB spans (the attributes the execute wrapper's
spans carry), submits them as the flusher would, and times ``telemetry.tracing.flush()``
(decision, sanitising, one statement per batch on PostgreSQL, one transaction on SQLite), interleaving the two
databases over several rounds in fresh processes (see shared BENCHMARKING.md).

    TELEMETRY_BENCH_PG=postgres://user:pw@127.0.0.1:5432/db .venv/bin/python bench/tracing.py
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import child_env, child_script, run_child  # noqa: E402 - run as a script

CHILD = r"""
import random, time
from bench.child import setup_django
setup_django()
from django.conf import settings
from django.core.management import call_command
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind
from telemetry import conf
from telemetry.models import Span, Trace
from telemetry.tracing import processor, spans as builder

settings.TELEMETRY = {{**settings.TELEMETRY, "TRACE_SAMPLE_RATE": 1.0}}
conf.get_settings.cache_clear()
call_command("migrate", "telemetry", database="telemetry", verbosity=0)
Span.objects.using("telemetry").all().delete()
Trace.objects.using("telemetry").all().delete()
processor.run_in_foreground()
traces, batch_traces = int(sys.argv[1]), int(sys.argv[2])
resource = builder.provider.resource()

def trace_spans():
    trace_id = random.getrandbits(128)
    root = SpanContext(trace_id, random.getrandbits(64), False, builder.SAMPLED)
    start = time.time_ns()
    out = []
    for index in range(9):
        out.append(ReadableSpan(
            name="postgresql.query", context=SpanContext(trace_id, random.getrandbits(64), False, builder.SAMPLED),
            parent=root, resource=resource, kind=SpanKind.CLIENT, instrumentation_scope=builder.DB_SCOPE,
            attributes={{"db.system": "postgresql", "db.operation.name": "select", "db.collection.name": "apps",
                        "db.statement": 'SELECT "apps"."id", "apps"."name" FROM "apps" WHERE "apps"."id" = %s',
                        "db.query.tables": ["apps"], "db.query.is_slow": False, "db.rows_affected": 1,
                        "db.query.complexity_score": 3}},
            start_time=start + index * 1000, end_time=start + index * 1000 + 500))
    out.append(ReadableSpan(
        name="GET /api/apps/<slug>/", context=root, parent=None, resource=resource, kind=SpanKind.SERVER,
        instrumentation_scope=builder.HTTP_SCOPE, attributes={{"http.route": "/api/apps/<slug>/",
        "http.request.method": "GET", "http.response.status_code": 200, "organization.id": "1"}},
        start_time=start, end_time=start + 20_000))
    return out

elapsed = 0.0
stored = 0
for _ in range(traces // batch_traces):
    for _ in range(batch_traces):
        for span in trace_spans():
            processor.submit(span)
    started = time.perf_counter()
    processor.flush()
    elapsed += time.perf_counter() - started
stored = Span.objects.using("telemetry").count()
print(stored, elapsed)
"""


def run(database_url, traces, batch_traces, script, var_dir):
    env = child_env("tracing", TELEMETRY_DATABASE_URL=database_url, VAR_DIR=var_dir)
    result = run_child([script, str(traces), str(batch_traces)], env)
    stored, elapsed = result.stdout.split()[-2:]
    return int(stored) / float(elapsed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--batch-traces", type=int, default=100, help="traces per flush (10 spans each)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    var_dir = tempfile.mkdtemp(prefix="bench-tracing-")
    targets = {"sqlite": f"sqlite:///{var_dir}/telemetry.sqlite3"}
    if os.environ.get("TELEMETRY_BENCH_PG"):
        targets["postgresql"] = os.environ["TELEMETRY_BENCH_PG"]
    rates = {name: [] for name in targets}
    with child_script(CHILD) as script:
        for _ in range(args.rounds):
            for name, url in targets.items():
                rates[name].append(run(url, args.traces, args.batch_traces, script, var_dir))
    print(f"Spans stored per second ({args.traces} traces x 10 spans, {args.batch_traces * 10} spans per flush, "
          f"{args.rounds} interleaved rounds; median, min-max):")
    for name, values in rates.items():
        print(f"{name:<12}{statistics.median(values):>10.0f}  ({min(values):.0f}-{max(values):.0f})")


if __name__ == "__main__":
    main()
