"""The optional parts of telemetry and the extra of the distribution that installs each.

``pip install django-telemetry-lowcode`` installs the core: metrics, query statistics and
analysis, the embedded trace store and the admin pages. A feature whose extra is missing
is off: nothing imports its modules, and a system check (``telemetry.W004``...) names the
extra and how to install it. Whether an extra is there is decided once per process.
"""

from functools import cache
from importlib.util import find_spec
from typing import NamedTuple

DISTRIBUTION = "django-telemetry-lowcode"


class Extra(NamedTuple):
    """An extra of the distribution: the modules that show it is installed, what is off
    without it, and the id of the system check that says so."""

    name: str
    modules: tuple[str, ...]
    features: str
    check_id: str


TRACING = Extra(
    "tracing", ("opentelemetry.exporter.otlp.proto.http", "opentelemetry.instrumentation"),
    "OTLP export of kept traces and the spans of Celery, psycopg2, requests and redis clients "
    "(the embedded trace store and its admin pages work without it)", "telemetry.W004",
)
CELERY = Extra(
    "celery", ("celery",),
    "the periodic reports, retention, storage and queue sampling, release comparison, and the task metrics",
    "telemetry.W005",
)
API = Extra("api", ("rest_framework", "drf_spectacular"), "the REST API under /telemetry/api/", "telemetry.W006")

EXTRAS = (TRACING, CELERY, API)


def importable(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


@cache
def installed(extra: Extra) -> bool:
    return all(importable(module) for module in extra.modules)


def install_hint(extra: Extra) -> str:
    return f'pip install "{DISTRIBUTION}[{extra.name}]" (or [all])'
