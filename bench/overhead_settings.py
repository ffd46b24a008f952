"""Settings for bench/overhead.py: the project's settings with one configuration of
instrumentation, chosen by ``BENCH_CONFIG`` (off, metrics, everything, tracing,
django_prometheus, plain_otel)."""

import os

from config.settings import *  # noqa: F401,F403
from config.settings import DATABASES, INSTALLED_APPS, MIDDLEWARE, TELEMETRY
from telemetry.conf import DEFAULTS

#: How much slower than native a count run is taken to be (under callgrind, under load).
CALLGRIND_SLOWDOWN = 200

BENCH_CONFIG = os.environ.get("BENCH_CONFIG", "metrics")
# "metrics": every metric family; "everything": metrics plus query statistics and detectors.
ROOT_URLCONF = "bench.urls"
DEBUG = False
ALLOWED_HOSTS = ["*"]
MIDDLEWARE = [entry for entry in MIDDLEWARE if not entry.startswith("telemetry.")]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}

# Periodic sampling (resources, gauges, rollup writes) costs per second, not per request:
# under callgrind a run lasts minutes, so it would swamp the per-request difference.
TELEMETRY = {**TELEMETRY, "SAMPLE_INTERVAL_SECONDS": 3600.0}
if os.environ.get("BENCH_PACE"):
    # The default timers on the bench's virtual clock: it runs the flusher's and the trace
    # store writer's ticks itself, so their own threads must not tick in real time.
    # The writer counts its write interval in ticks (TRACE_WRITE_INTERVAL_SECONDS over
    # FLUSH_INTERVAL_SECONDS): both scaled alike, it writes every fifth tick as by default.
    TELEMETRY = {**TELEMETRY, "SAMPLE_INTERVAL_SECONDS": 10.0, "FLUSH_INTERVAL_SECONDS": 3600.0,
                 "TRACE_WRITE_INTERVAL_SECONDS": 3600.0 * DEFAULTS["TRACE_WRITE_INTERVAL_SECONDS"]
                 / DEFAULTS["FLUSH_INTERVAL_SECONDS"]}
elif os.environ.get("BENCH_BATCHED") or os.environ.get("BENCH_NO_DRAIN"):
    # Drains (metrics, spans) only at the end of a run: in production a one-second drain
    # covers many requests, under callgrind one or two, so its fixed cost per drain would
    # be charged to each request. BENCH_BATCHED=1 measures the per-request part alone.
    TELEMETRY = {**TELEMETRY, "FLUSH_INTERVAL_SECONDS": 3600.0}

if os.environ.get("BENCH_CALLGRIND"):
    # Python runs ~50x slower under callgrind, and slower still on a loaded machine: at
    # native thresholds a request or statement would count as slow (a kept trace, a finding
    # and its EXPLAIN, an analysis over its budget, a write past its deadline) by the luck
    # of the machine's load, which made two runs of one configuration differ by more than
    # the figures compared. The thresholds are scaled so that only what is slow at native
    # speed is slow here.
    TELEMETRY = {**TELEMETRY, **{name: TELEMETRY.get(name, DEFAULTS[name]) * CALLGRIND_SLOWDOWN for name in (
        "TRACE_SLOW_MS", "SLOW_QUERY_MS", "SQL_ANALYZE_BUDGET_MS", "STORE_TIMEOUT_SECONDS")}}
    # A PostgreSQL connection's SCRAM handshake alone takes seconds under callgrind.
    for _database in DATABASES.values():
        if "connect_timeout" in _database.get("OPTIONS", {}):
            _database["OPTIONS"]["connect_timeout"] *= CALLGRIND_SLOWDOWN

if BENCH_CONFIG == "off":
    TELEMETRY = {**TELEMETRY, "METRICS_ENABLED": False, "TRACES_ENABLED": False, "LOGS_ENABLED": False}
elif BENCH_CONFIG in ("metrics", "everything"):
    MIDDLEWARE = ["telemetry.http.middleware.TelemetryMiddleware", *MIDDLEWARE]
    TELEMETRY = {**TELEMETRY, "TRACES_ENABLED": False, "LOGS_ENABLED": False,
                 "QUERY_STATS_ENABLED": BENCH_CONFIG == "everything"}
elif BENCH_CONFIG == "tracing":
    # Everything on: metrics, query statistics, spans at the default sampling.
    MIDDLEWARE = ["telemetry.http.middleware.TelemetryMiddleware", *MIDDLEWARE]
    TELEMETRY = {**TELEMETRY, "TRACES_ENABLED": True, "LOGS_ENABLED": False, "QUERY_STATS_ENABLED": True}
elif BENCH_CONFIG == "plain_otel":
    # opentelemetry-instrumentation-django with an SDK provider and a batch processor
    # (psycopg instrumentation does not apply: Django is on psycopg 3 here).
    TELEMETRY = {**TELEMETRY, "METRICS_ENABLED": False, "TRACES_ENABLED": False, "LOGS_ENABLED": False}

elif BENCH_CONFIG == "django_prometheus":
    TELEMETRY = {**TELEMETRY, "METRICS_ENABLED": False, "TRACES_ENABLED": False, "LOGS_ENABLED": False}
    INSTALLED_APPS = [*INSTALLED_APPS, "django_prometheus"]
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *MIDDLEWARE,
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]
    # django-prometheus counts queries by swapping the database ENGINE.
    DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"


def before_setup():
    """Runs in the benchmark child before ``django.setup()``."""
    if BENCH_CONFIG != "plain_otel":
        return
    from opentelemetry import trace
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DiscardingExporter(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()

# Experiments: BENCH_TELEMETRY='{"TRACE_SAMPLE_RATE": 0}' overrides settings of any configuration.
if os.environ.get("BENCH_TELEMETRY"):
    import json

    TELEMETRY = {**TELEMETRY, **json.loads(os.environ["BENCH_TELEMETRY"])}
