"""Spans built off the request thread.

The server span and the DB spans are made here, in the flusher thread, from the events
the middleware and the execute wrapper recorded: ``ReadableSpan`` objects the SDK's
exporters accept, at a fraction of what live SDK spans cost on the request thread.
"""

import random
import time
from functools import lru_cache
from operator import attrgetter

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from telemetry.core.events import QueryExecuted, RequestFinished
from telemetry.tracing import processor, provider
from telemetry.tracing.sanitize import DB_SCOPE_NAME, HTTP_SCOPE_NAME

#: perf_counter() seconds + this = epoch nanoseconds; one offset per process (the
#: monotonic clock is shared by forked children, so it stays valid after a fork).
EPOCH_OFFSET_NS = time.time_ns() - time.perf_counter_ns()
SAMPLED = TraceFlags(TraceFlags.SAMPLED)
HTTP_SCOPE = InstrumentationScope(HTTP_SCOPE_NAME)
DB_SCOPE = InstrumentationScope(DB_SCOPE_NAME)
DB_SYSTEMS = {"postgresql": "postgresql", "mysql": "mysql", "sqlite": "sqlite", "oracle": "oracle"}
_OK = Status(StatusCode.UNSET)
_error = attrgetter("error")


def new_server_context(parent):
    """The request's span context: a new span in the caller's trace, or a new trace."""
    trace_id = parent.trace_id if parent is not None else random.getrandbits(128) or 1
    return SpanContext(trace_id, random.getrandbits(64) or 1, False, SAMPLED)


def epoch_ns(perf_seconds):
    return int(perf_seconds * 1e9) + EPOCH_OFFSET_NS


def server_span(event: RequestFinished, settings) -> ReadableSpan:
    """A traced request's end (see ``TelemetryMiddleware._finish``) as its server span."""
    method, route, status, context = event.method, event.route, event.status, event.context
    start = epoch_ns(context.started)
    attributes = {"http.request.method": method, "http.route": route, "http.response.status_code": status,
                  "tooljet.db_query_count": context.query_count}
    if event.organization_id is not None:
        attributes["organization.id"] = str(event.organization_id)
    if event.user_id is not None:
        attributes["user.id"] = str(event.user_id)
    if event.app_operation:
        attributes["tooljet.app.operation"] = event.app_operation
    return ReadableSpan(
        name=f"{method} {route}", context=event.span_context, parent=event.parent, resource=provider.resource(),
        attributes=attributes, kind=SpanKind.SERVER, instrumentation_scope=HTTP_SCOPE,
        status=Status(StatusCode.ERROR) if status >= 500 else _OK, start_time=start,
        end_time=start + int(event.duration * 1e9),
    )


def db_span(event: QueryExecuted, result, settings) -> ReadableSpan | None:
    """One statement as its ``<db.system>.query`` span, or None outside any sampled span."""
    parent = event.span_context
    if parent is None or not parent.is_valid or not parent.trace_flags.sampled:
        return None
    duration, rowcount, error = event.duration, event.rowcount, event.error
    attributes = dict(_statement_attributes(result, event.alias, event.vendor))
    attributes["db.query.is_slow"] = duration * 1000.0 >= settings["SLOW_QUERY_MS"]
    if rowcount >= 0:
        attributes["db.rows_affected"] = rowcount
    start = epoch_ns(event.started)
    return ReadableSpan(
        name=attributes["db.system"] + ".query",
        context=SpanContext(parent.trace_id, random.getrandbits(64) or 1, False, SAMPLED),
        parent=parent, resource=provider.resource(), attributes=attributes, kind=SpanKind.CLIENT,
        instrumentation_scope=DB_SCOPE, status=Status(StatusCode.ERROR, error) if error else _OK,
        start_time=start, end_time=start + int(duration * 1e9),
    )


@lru_cache(maxsize=5000)
def _statement_attributes(result, alias, vendor):
    """What a DB span says of its statement, the same for every run of it: built once
    per (analysis, alias) and copied, as analyses are cached per statement text."""
    system = DB_SYSTEMS.get(vendor, vendor)
    attributes = {"db.system": system, "db.operation.name": result.operation, "db.statement": result.fingerprint,
                  "db.query.tables": list(result.tables), "db.namespace": alias,
                  "db.query.fingerprint_id": result.fingerprint_id}
    if result.tables:
        attributes["db.collection.name"] = result.tables[0]
    if result.complexity_score is not None:
        attributes["db.query.complexity_score"] = result.complexity_score
    return attributes


def keeps(event: RequestFinished, settings) -> bool:
    """Whether the request's trace is kept when it ends: a 5xx, a slow request, a failed
    statement, or the sampled share. (A failed child span of the SDK keeps it as well;
    the store writer finds those, see ``submit_request``.)"""
    return (event.status >= 500 or event.duration * 1000.0 >= settings["TRACE_SLOW_MS"]
            or processor.sampled_by_ratio(event.trace_id, settings) or any(map(_error, event.context.queries)))


def submit_request(event: RequestFinished, analysed, settings, kept: bool) -> None:
    """The request's DB spans, then its server span: the root reaches the store writer
    after its children, so its sampling decision sees them all.

    Most requests are OK, fast and outside the sampled share (``kept`` is false): their
    spans would be built only to be dropped. For those the writer gets a ``DeferredTrace``
    instead, which builds the spans only if a child span already waiting for the trace
    failed."""
    if not kept:
        processor.submit(processor.DeferredTrace(
            event.trace_id, lambda: _request_spans(event, analysed, settings)))
        return
    for span in _request_spans(event, analysed, settings):
        processor.submit(span)


def _request_spans(event, analysed, settings):
    built = [db_span(query, result, settings) for query, result in analysed]
    built = [span for span in built if span is not None]
    built.append(server_span(event, settings))
    return built


def submit_query(event: QueryExecuted, result, settings) -> None:
    span = db_span(event, result, settings)
    if span is not None:
        processor.submit(span)


