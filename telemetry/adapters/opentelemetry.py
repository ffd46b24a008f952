"""OpenTelemetry API and SDK internals telemetry relies on, checked with opentelemetry-api
and opentelemetry-sdk 1.45.1.

The current span, read by the execute wrapper on every statement (one context-variable
lookup instead of the four calls of ``get_current_span``):

- ``opentelemetry.trace.propagation._SPAN_KEY``: the key ``set_span_in_context`` stores
  the current span under in a ``Context``;
- ``opentelemetry.context._RUNTIME_CONTEXT._current_context``: the ``ContextVar`` holding
  the current ``Context`` in the default (contextvars) runtime context. Under another
  runtime context (``OTEL_PYTHON_CONTEXT``) :data:`current_context_var` reads the public
  ``get_current()`` instead.

Finished spans, read by the trace store writer once per stored span, and sanitised:

- ``ReadableSpan``'s fields ``_name``, ``_context``, ``_parent``, ``_kind``,
  ``_start_time``, ``_end_time``, ``_attributes``, ``_events``, ``_status``, ``_resource``:
  what its properties return, without the copies ``attributes`` and ``events`` make;
  ``_attributes``, ``_events`` and ``_status`` are also written;
- ``Span.end`` hands span processors a new ``ReadableSpan``, so rewriting its fields
  leaves the live span alone.

:func:`verify` checks all of it against the installed version.
"""

from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY

from telemetry.adapters import checking, expect

CHECKED_VERSION = "1.45.1"

#: The key of the current span in a ``Context``: ``current_context_var.get().get(SPAN_KEY)``
#: is the current span, or ``None``.
SPAN_KEY: str = _SPAN_KEY


class _PublicContext:
    """Stands in for the context variable under a runtime context that has none."""

    def get(self) -> Context:
        return otel_context.get_current()


def _context_variable():
    runtime_context = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    return getattr(runtime_context, "_current_context", None) or _PublicContext()


#: ``current_context_var.get()`` is the current ``Context``.
current_context_var: ContextVar[Context] | _PublicContext = _context_variable()


def span_fields(span: ReadableSpan) -> tuple[Any, ...]:
    """``(name, context, parent, kind, start_time, end_time, attributes, events, status,
    resource)`` of a finished span, as held: ``attributes`` may be the SDK's
    ``BoundedAttributes`` or ``None``, ``events`` a ``BoundedList``. A plain tuple, so a
    stored span costs one call and no object more than reading the fields in place."""
    return (span._name, span._context, span._parent, span._kind, span._start_time, span._end_time,
            span._attributes, span._events, span._status, span._resource)


def rewrite_span(span: ReadableSpan, *, attributes: dict[str, Any] | None = None,
                 events: tuple[Event, ...] | None = None, status: Status | None = None) -> None:
    """Replaces the given fields of a finished span (the copy span processors receive)."""
    if attributes is not None:
        span._attributes = attributes
    if events is not None:
        span._events = events
    if status is not None:
        span._status = status


# ---------------------------------------------------------------------------- verify


def verify() -> None:
    """Raises :class:`telemetry.adapters.IncompatibleLibrary` unless every internal named
    above exists and behaves as relied on. Uses a tracer provider of its own (the global
    one is left alone) and the process's runtime context."""
    _verify_current_span()
    _verify_span_fields()


def _check(what):
    return checking("opentelemetry-sdk", CHECKED_VERSION, what)


def _verify_current_span():
    with _check("_SPAN_KEY and _RUNTIME_CONTEXT._current_context"):
        span = trace_api.NonRecordingSpan(trace_api.SpanContext(0xA1, 0xB2, False))
        context = trace_api.set_span_in_context(span)
        expect(context.get(SPAN_KEY) is span, "set_span_in_context no longer stores the span under _SPAN_KEY")
        variable = otel_context._RUNTIME_CONTEXT._current_context
        expect(isinstance(variable, ContextVar) and current_context_var is variable,
               f"the runtime context's _current_context is {variable!r}, not the ContextVar read here")
        token = otel_context.attach(context)
        try:
            expect(current_context_var.get().get(SPAN_KEY) is span and trace_api.get_current_span() is span,
                   "the span attached as current is not the one read through the context variable")
        finally:
            otel_context.detach(token)


class _Finished(SpanProcessor):
    def __init__(self):
        self.spans = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def _verify_span_fields():
    with _check("ReadableSpan's private fields"):
        finished = _Finished()
        provider = TracerProvider(resource=Resource.create({"service.name": "adapter-check"}), shutdown_on_exit=False)
        provider.add_span_processor(finished)
        tracer = provider.get_tracer("adapter-check")
        with tracer.start_as_current_span("parent"):
            with tracer.start_as_current_span("child", kind=trace_api.SpanKind.CLIENT,
                                              attributes={"db.system": "postgresql"}) as live:
                live.add_event("exception", {"exception.type": "ValueError", "exception.message": "row 7"})
                live.set_status(Status(StatusCode.ERROR, "ValueError: row 7"))
        provider.shutdown()
        span = finished.spans[0]
        expect(span is not live, "span processors receive the live span, not a copy")
        public = (span.name, span.context, span.parent, span.kind, span.start_time, span.end_time,
                  dict(span.attributes), span.events, span.status, span.resource)
        fields = span_fields(span)
        held = fields[:6] + (dict(fields[6]), tuple(fields[7])) + fields[8:]
        expect(held == public, f"private fields {held} != properties {public}")
        expect(span.parent == finished.spans[1].context and span.start_time <= span.end_time,
               "the fields hold other values than the span's parent and times")
        event = Event("exception", {"exception.type": "ValueError"}, span.events[0].timestamp)
        status = Status(StatusCode.ERROR, "ValueError")
        rewrite_span(span, attributes={"db.statement": "SELECT ?"}, events=(event,), status=status)
        expect(dict(span.attributes) == {"db.statement": "SELECT ?"} and span.events == (event,)
               and span.status is status, "rewritten fields are not what the span's properties return")
        expect(dict(live.attributes) == {"db.system": "postgresql"} and live.status.description == "ValueError: row 7",
               "rewriting the finished copy changed the live span")
