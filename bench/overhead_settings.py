"""Settings for bench/overhead.py: the project's settings with one configuration of
instrumentation, chosen by ``BENCH_CONFIG`` (off, metrics, django_prometheus)."""

import os

from config.settings import *  # noqa: F401,F403
from config.settings import INSTALLED_APPS, MIDDLEWARE, TELEMETRY

BENCH_CONFIG = os.environ.get("BENCH_CONFIG", "metrics")
# "metrics": every metric family; "everything": metrics plus query statistics and detectors.
ROOT_URLCONF = "bench.urls"
DEBUG = False
ALLOWED_HOSTS = ["*"]
MIDDLEWARE = [entry for entry in MIDDLEWARE if not entry.startswith("telemetry.")]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}

if BENCH_CONFIG == "off":
    TELEMETRY = {**TELEMETRY, "METRICS_ENABLED": False, "TRACES_ENABLED": False, "LOGS_ENABLED": False}
elif BENCH_CONFIG in ("metrics", "everything"):
    MIDDLEWARE = ["telemetry.middleware.TelemetryMiddleware", *MIDDLEWARE]
    TELEMETRY = {**TELEMETRY, "TRACES_ENABLED": False, "LOGS_ENABLED": False,
                 "QUERY_STATS_ENABLED": BENCH_CONFIG == "everything"}
elif BENCH_CONFIG == "django_prometheus":
    TELEMETRY = {**TELEMETRY, "METRICS_ENABLED": False, "TRACES_ENABLED": False, "LOGS_ENABLED": False}
    INSTALLED_APPS = [*INSTALLED_APPS, "django_prometheus"]
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *MIDDLEWARE,
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]
    from config.settings import DATABASES

    # django-prometheus counts queries by swapping the database ENGINE.
    DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"
