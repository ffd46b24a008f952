"""Instrumentation of the clients telemetry does not wrap itself, once per process.

Django's own queries are NOT instrumented here: the execute wrapper makes one DB span per
query on every backend. psycopg2 instrumentation is for the plugins' raw connections
(Django uses psycopg 3 here; were it on psycopg2, ``telemetry.db`` unwraps the traced
proxy from Django's connections so a query never gets two spans).
"""

from telemetry import extras
from telemetry.core import guard

_done: set[str] = set()


def _once(name, instrument):
    if name in _done:
        return
    _done.add(name)
    with guard.guarded(f"instrument_{name}"):
        instrument()


def install() -> None:
    """At start-up: Celery (publish and run), cheap to import. Needs the [tracing] and
    [celery] extras."""
    if not (extras.installed(extras.TRACING) and extras.installed(extras.CELERY)):
        return

    def celery() -> None:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument(skip_dep_check=True)

    _once("celery", celery)


def install_clients() -> None:
    """At the first plugin run: the clients' instrumentations cost about a second of
    imports, which would otherwise delay every process's start (a gunicorn worker's
    first answer, a Celery child's first task). Needs the [tracing] extra; a client that
    is not installed is skipped."""
    if not extras.installed(extras.TRACING):
        return

    def psycopg2() -> None:
        from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor

        Psycopg2Instrumentor().instrument(skip_dep_check=True)

    def requests() -> None:
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        RequestsInstrumentor().instrument(skip_dep_check=True)

    def redis() -> None:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor().instrument(skip_dep_check=True)  # its db.statement is "COMMAND ? ?": no values

    for name, instrument in (("psycopg2", psycopg2), ("requests", requests), ("redis", redis)):
        if extras.importable(name):
            _once(name, instrument)


def django_uses_psycopg2() -> bool:
    try:
        from django.db.backends.postgresql.psycopg_any import is_psycopg3
    except Exception:  # noqa: BLE001 - no PostgreSQL driver at all
        return False
    return not is_psycopg3
