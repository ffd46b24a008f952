"""The events the hot path hands to the recorder, one ``NamedTuple`` per kind.

A NamedTuple costs what a plain tuple costs to build and keep (it is one), and its
fields are read by name. The recorder dispatches on the event's type
(:func:`telemetry.core.recorder.register`); the handlers in ``telemetry.pipeline``
turn events into metric updates, statistics and spans, in the flusher thread.

Imports nothing of telemetry but type names, so every layer can build events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opentelemetry.trace import SpanContext

    from telemetry.core.context import RequestContext


class RequestStarted(NamedTuple):
    """A request was routed (``process_view``): the in-flight gauge goes one up. The
    middleware keeps the event on the request's context, and the request's end takes
    the gauge down again with the same labels."""

    method: str
    route: str
    scheme: str


class RequestFinished(NamedTuple):
    """A request ended (``TelemetryMiddleware._finish``): HTTP metrics, the request's
    statements (``context.queries``), usage, and its server span when traced."""

    method: str
    route: str
    status: int
    organization_id: Any
    duration: float
    request_size: int
    response_size: int
    path: str
    context: RequestContext
    app_operation: str | None
    user_id: Any
    #: The server span's context, and its remote parent; both None when not traced.
    span_context: SpanContext | None
    parent: SpanContext | None

    @property
    def trace_id(self) -> int:
        """The trace of a traced request; 0 when not traced."""
        return self.span_context.trace_id if self.span_context is not None else 0


class QueryExecuted(NamedTuple):
    """One statement run through the execute wrapper: kept in its request's context, or
    recorded alone outside any request (Celery task, management command)."""

    alias: str
    vendor: str
    sql: str
    params: Any
    many: bool
    #: ``perf_counter()`` seconds when the statement started.
    started: float
    duration: float
    #: The cursor's rowcount; -1 when the statement failed or the driver did not say.
    rowcount: int
    #: The exception class name of a failed statement, else None.
    error: str | None
    #: ``path:line in function`` of the caller, found only for repeated or slow statements.
    call_site: str | None
    #: The current span when the statement ran: the parent of its DB span.
    span_context: SpanContext | None


class DatabaseConnect(NamedTuple):
    """A new database connection (or pool checkout) took ``seconds``, or timed out."""

    vendor: str
    seconds: float
    timed_out: bool


class MetricUpdate(NamedTuple):
    """A generic metric update from the internal bus or the public API: ``operation`` is a
    :class:`~telemetry.core.recorder.Batch` method (``inc``, ``observe``, ``set``,
    ``add``), ``family_path`` is ``(group, name)`` in ``telemetry.metrics.families()``."""

    operation: str
    family_path: tuple[str, str]
    label_values: tuple[str, ...]
    value: float


class PluginRun(NamedTuple):
    """One datasource query run, as ``telemetry.api.record_plugin_run`` reports it."""

    kind: str
    organization_id: Any
    status: str
    result: str
    seconds: float
    #: ``connect``/``execute``/``serialize`` -> seconds.
    phases: Mapping[str, float]
    bytes_sent: int
    bytes_received: int
    #: Set when a new connection was opened.
    connect_seconds: float | None
    #: The connection's checkout time.
    use_seconds: float | None


#: Any event the recorder takes.
Event = RequestStarted | RequestFinished | QueryExecuted | DatabaseConnect | MetricUpdate | PluginRun

#: The name each event type goes by in ``telemetry_internal_errors_total``
#: (``component="handler:<name>"``) when one of its handlers fails.
KIND_NAMES: dict[type, str] = {
    RequestStarted: "active", RequestFinished: "request", QueryExecuted: "query", DatabaseConnect: "db_connect",
    MetricUpdate: "metric", PluginRun: "plugin",
}
