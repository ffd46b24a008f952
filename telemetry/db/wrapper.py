"""The one database hook: ``connection.execute_wrapper`` on every connection of every
alias, installed on ``connection_created`` (so connections opened later, in any thread
or Celery worker, are covered). It times the statement and hands it to the recorder;
analysis happens off the request thread, cached by statement text.
"""

import weakref
from time import perf_counter

from django.db import connections
from django.db.backends.signals import connection_created

from telemetry import conf
from telemetry.core import guard, recorder
from telemetry.core.context import MAX_QUERIES_PER_REQUEST, current_request, suppression
from telemetry.core.events import DatabaseConnect, QueryExecuted
from telemetry.db import callsite
from telemetry.tracing import current_context_var, span_key
from telemetry.tracing import state as tracing_state

#: Distinct repeated statements per request whose call site is looked for.
MAX_CALL_SITES_PER_REQUEST = 20
#: Django connection wrappers seen connecting, for the connection-count gauges.
tracked_connections: weakref.WeakSet = weakref.WeakSet()


def execute_wrapper(execute, sql, params, many, context):
    if suppression.active or not _hot["on"]:
        return execute(sql, params, many, context)
    error = None
    started = perf_counter()
    try:
        return execute(sql, params, many, context)
    except Exception as exc:
        error = type(exc).__name__
        raise
    finally:
        duration = perf_counter() - started
        try:
            request = current_request.get()
            call_site = None
            if duration >= _hot["slow_seconds"]:
                call_site = callsite.find()
            elif request is not None:
                # Only a statement text seen before in this request (a possible N+1 or
                # duplicate) needs its call site: found once, at its first repeat, for at
                # most MAX_CALL_SITES_PER_REQUEST texts, so an N+1 of 50 walks the stack once.
                seen = request.statements_seen
                if sql not in seen:
                    seen[sql] = None
                else:
                    call_site = seen[sql]
                    if call_site is None and request.call_sites_found < MAX_CALL_SITES_PER_REQUEST:
                        call_site = seen[sql] = callsite.find()
                        request.call_sites_found += 1
            # The parent of the DB span the flusher builds: the request's span, or a business
            # span around the query.
            span_context = None
            if tracing_state["on"]:
                span = current_context_var.get().get(span_key)
                if span is not None:
                    # Mostly the request's own span, whose context is known already.
                    trace = request.trace if request is not None else None
                    span_context = trace.span_context if trace is not None and span is trace.span \
                        else span.get_span_context()
            connection = context["connection"]
            # tuple.__new__ builds the same QueryExecuted as calling the class, without the
            # Python frame of a NamedTuple's own __new__ (a third of the event's cost).
            event = tuple.__new__(QueryExecuted, (
                connection.alias, connection.vendor, sql, params, many, started, duration,
                context["cursor"].cursor.rowcount if error is None else -1, error, call_site, span_context))
            if request is None:
                recorder.record(event)
            else:
                request.query_count += 1
                request.db_time += duration
                queries = request.queries
                if len(queries) < MAX_QUERIES_PER_REQUEST:
                    queries.append(event)
                else:
                    recorder.record(event)
        except Exception as exc:  # noqa: BLE001
            guard.report("execute_wrapper", exc)


#: ``on``: METRICS_ENABLED, read again when the settings change, so that turning metrics
#: off stops the wrapper installed while they were on (settings are only read here).
_hot = {"on": True, "slow_seconds": 0.2}


def _read_settings():
    _hot["on"] = bool(conf.get("METRICS_ENABLED"))
    _hot["slow_seconds"] = conf.get("SLOW_QUERY_MS") / 1000.0


def _install(sender, connection, **kwargs):
    tracked_connections.add(connection)
    if execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(execute_wrapper)


def _instrument_connect(backend_class):
    """Times ``get_new_connection`` (a new connection, or a pool checkout) for the wait-time
    histogram and counts timeouts. Patched once per backend class."""
    if getattr(backend_class, "_telemetry_connect_timed", False):
        return
    original = backend_class.get_new_connection
    unwrap = backend_class.vendor == "postgresql" and _django_uses_psycopg2()

    def timed(self, conn_params):
        started = perf_counter()
        try:
            new_connection = original(self, conn_params)
        except Exception as exc:
            if "timeout" in f"{type(exc).__name__} {exc}".lower():
                recorder.record(DatabaseConnect(self.vendor, perf_counter() - started, True))
            raise
        recorder.record(DatabaseConnect(self.vendor, perf_counter() - started, False))
        # psycopg2 instrumentation wraps every psycopg2.connect(); Django's connections
        # get their one DB span from execute_wrapper, so they take the bare connection.
        return getattr(new_connection, "__wrapped__", new_connection) if unwrap else new_connection

    backend_class.get_new_connection = timed
    backend_class._telemetry_connect_timed = True


def _django_uses_psycopg2():
    from telemetry.tracing.instrument import django_uses_psycopg2

    return django_uses_psycopg2()


def install():
    """Idempotent: the signal receiver, already-open connections, connect timing."""
    connection_created.connect(_install, dispatch_uid="telemetry.db.install")
    for alias in connections:
        with guard.guarded("db_install"):
            wrapper = connections[alias]
            _instrument_connect(type(wrapper))
            if wrapper.connection is not None:
                _install(None, wrapper)
