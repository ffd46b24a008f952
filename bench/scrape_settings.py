"""Settings for bench/scrape.py: the platform as ``make demo`` runs it (``BENCH_CONFIG=ours``)
or with django-prometheus instead of telemetry's metrics (``django_prometheus``)."""

import os

from config.settings import *  # noqa: F401,F403
from config.settings import DATABASES, INSTALLED_APPS, MIDDLEWARE, TELEMETRY

BENCH_CONFIG = os.environ.get("BENCH_CONFIG", "ours")
DEBUG = False
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}

if BENCH_CONFIG == "django_prometheus":
    TELEMETRY = {**TELEMETRY, "METRICS_ENABLED": False, "TRACES_ENABLED": False, "LOGS_ENABLED": False}
    INSTALLED_APPS = [*INSTALLED_APPS, "django_prometheus"]
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *[entry for entry in MIDDLEWARE if not entry.startswith("telemetry.")],
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]
    ROOT_URLCONF = "bench.scrape_urls"
    # django-prometheus counts queries by swapping the database ENGINE.
    for _alias in DATABASES.values():
        if _alias["ENGINE"] == "django.db.backends.sqlite3":
            _alias["ENGINE"] = "django_prometheus.db.backends.sqlite3"
