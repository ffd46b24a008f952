"""The one request hook: feeds HTTP metrics, per-request query analysis and the server
span. Place it first in ``MIDDLEWARE``. It is the Django instrumentation: do not add
opentelemetry-instrumentation-django's middleware as well.

The request thread does only cheap work: two clock reads, a contextvar, one event
appended to the recorder, and the crash-safe counts: ``http_server_requests_total`` and
(when the request ran statements) ``db_client_operations_in_requests_total``, a cached
child's ``inc()`` each, written to the multiprocess files before the response leaves, so
a worker killed the next instant has still counted it. The rest happens in the flusher
thread. With tracing on it also puts a bare span context in the OpenTelemetry context
(children made during the request get it as parent); the server span itself is built
from the request event later.
"""

from time import perf_counter
from typing import Any, NamedTuple

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.apps import apps
from django.core.exceptions import MiddlewareNotUsed
from django.urls import ResolverMatch
from django.utils.functional import SimpleLazyObject, empty
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import NonRecordingSpan, SpanContext, get_current_span

from telemetry import conf
from telemetry.adapters import prometheus
from telemetry.core import guard, labels, organization, recorder, routes
from telemetry.core.context import RequestContext, current_request, restore, suppress
from telemetry.core.events import RequestFinished, RequestStarted
from telemetry.metrics import families
from telemetry.tracing import current_context_var, span_key
from telemetry.tracing import state as tracing_state
from telemetry.tracing.spans import new_server_context


class MetaGetter(Getter[dict[str, Any]]):
    """Reads propagation headers (``traceparent``, ``tracestate``, ``baggage``) from
    ``request.META``, where they are ``HTTP_<NAME>`` keys as in a WSGI environ."""

    def get(self, carrier: dict[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [value]

    def keys(self, carrier: dict[str, Any]) -> list[str]:
        return [key[5:].lower().replace("_", "-") for key in carrier if key.startswith("HTTP_")]


meta_getter = MetaGetter()


class RequestTrace(NamedTuple):
    """A traced request's span (a bare span context, current in the OpenTelemetry context
    during the request), its context, its remote parent, and the token that detaches it
    from the OpenTelemetry context when the request ends."""

    span: NonRecordingSpan
    span_context: SpanContext
    parent: SpanContext | None
    token: Any


def _start_trace(request):
    """The request's :class:`RequestTrace`, or None when the caller's trace is not
    sampled, the path is excluded, or starting it failed (counted, never raised).
    ``traceparent`` is parsed only when the header is present."""
    try:
        if request.path_info.startswith(tracing_state["excluded_paths"]):
            return None
        parent = None
        if "HTTP_TRACEPARENT" in request.META:
            parent = get_current_span(propagate.extract(request.META, getter=meta_getter)).get_span_context()
            if not parent.is_valid:
                parent = None
            elif not parent.trace_flags.sampled:
                return None
        span_context = new_server_context(parent)
        span = NonRecordingSpan(span_context)
        # What set_span_in_context(span) returns, without its three calls to reach the
        # current context (one context-variable read here).
        token = otel_context.attach(Context({**current_context_var.get(), span_key: span}))
        return tuple.__new__(RequestTrace, (span, span_context, parent, token))
    except Exception as exc:  # noqa: BLE001
        guard.report("middleware_trace", exc)
        return None


def _children(key: tuple[str, str, int]) -> tuple[Any, Any]:
    method, route, status = key
    http = families().http
    label_values = (method, route, str(status))
    return http.requests.child(label_values), http.statements_in_requests.child(label_values)


#: (method label, route, status) -> the increments of the children of
#: ``http_server_requests`` and ``db_client_operations_in_requests`` with those labels.
#: Bounded as the labels are (known methods, capped routes, HTTP status codes).
_counted = prometheus.Increments(_children)


def _count(method: str, route: str, status: int, statements: int) -> None:
    """Counts a finished request, and the statements it ran, on the request thread: a dict
    lookup and one increment (two with statements), so the counts are in the
    multiprocess files before the response is sent. ``method`` is the request's own: an
    unknown one is counted as ``other``, as its label says."""
    if method not in labels.KNOWN_METHODS:
        method = labels.method(method)
    increments = _counted[method, route, status]
    increments[0](1)
    if statements:
        increments[1](statements)


def _user_id(request):
    """The user's id if authentication already ran; never triggers a session lookup."""
    user = getattr(request, "user", None)
    if user is None:
        return None
    # ``object.__getattribute__``: the lookup LazyObject's own (Python) __getattribute__
    # makes for ``_wrapped``, without that method's frame.
    if isinstance(user, SimpleLazyObject) and object.__getattribute__(user, "_wrapped") is empty:
        return None
    return user.pk if getattr(user, "is_authenticated", False) else None


def _response_size(response):
    length = response.headers.get("Content-Length")
    if length is not None:
        return int(length)
    if getattr(response, "streaming", False):
        return 0
    return len(response.content)


#: Prefixes of the admin URL names of telemetry's models (``telemetry_trace_changelist``,
#: custom pages such as ``telemetry_organizationusage_organization``), filled on first use.
_own_admin_names: list[tuple[str, ...]] = []


def _is_own_view(match: ResolverMatch) -> bool:
    """Whether the resolved view, in an application namespace (``match.app_names`` not
    empty), is one of telemetry's own: its URLconf (``/metrics``, ``/health``, the traces
    API) or the admin pages of its models. Their statements are telemetry reading its own
    store, not the host's work."""
    if "telemetry" in match.app_names:
        return True
    if match.app_names != ["admin"]:
        return False
    if match.kwargs.get("app_label") == "telemetry":
        return True
    if not _own_admin_names:
        _own_admin_names.append(tuple(f"telemetry_{model._meta.model_name}_"
                                      for model in apps.get_app_config("telemetry").get_models()))
    return (match.url_name or "").startswith(_own_admin_names[0])


class TelemetryMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        if not conf.get("METRICS_ENABLED"):
            raise MiddlewareNotUsed("telemetry metrics are off")
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        context = RequestContext(perf_counter())
        token = current_request.set(context)
        trace = context.trace = _start_trace(request) if tracing_state["on"] else None
        try:
            response = self.get_response(request)
        finally:
            current_request.reset(token)
            if trace is not None:
                otel_context.detach(trace.token)
                context.trace = None  # the context outlives the request in its event: keep it small
            if context.suppressed_before is not None:
                restore(context.suppressed_before)
        self._finish(request, response, context, trace)
        return response

    async def __acall__(self, request):
        context = RequestContext(perf_counter())
        token = current_request.set(context)
        trace = context.trace = _start_trace(request) if tracing_state["on"] else None
        try:
            response = await self.get_response(request)
        finally:
            current_request.reset(token)
            if trace is not None:
                otel_context.detach(trace.token)
                context.trace = None  # the context outlives the request in its event: keep it small
            if context.suppressed_before is not None:
                # process_view ran in the thread that runs the sync parts of this request.
                await sync_to_async(restore, thread_sensitive=True)(context.suppressed_before)
        self._finish(request, response, context, trace)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        context = current_request.get()
        if context is not None:
            try:
                match = request.resolver_match
                # Most views are in no application namespace: not one of telemetry's.
                if match is not None and match.app_names and _is_own_view(match):
                    # Once per request, in the thread that runs the view: the execute wrapper's
                    # per-thread check then skips the view's statements at no extra cost.
                    context.suppressed_before = suppress()
                context.route = routes.of_request(request)
                request_started = tuple.__new__(RequestStarted, (request.method, context.route, request.scheme))
                # Only an accepted start is undone at the end: a full buffer must not
                # leave the in-flight gauge one up for good.
                if recorder.record(request_started):
                    context.active_key = request_started
            except Exception as exc:  # noqa: BLE001
                guard.report("middleware", exc)
        return None

    def _finish(self, request, response, context, trace=None):
        duration = perf_counter() - context.started
        try:
            organization_id = organization.resolve(request)
        except Exception as exc:  # noqa: BLE001 - a broken resolver costs the label, not the event
            guard.report("organization_resolver", exc)
            organization_id = None
        try:
            method, route, status = request.method, context.route or routes.of_request(request), response.status_code
            # tuple.__new__: the events of this module are built without the Python frame of
            # a NamedTuple's own __new__.
            recorder.record(tuple.__new__(RequestFinished, (
                method,
                route,
                status,
                organization_id,
                duration,
                int(request.META.get("CONTENT_LENGTH") or 0),
                _response_size(response),
                request.path_info,
                context,
                getattr(request, "app_operation", None),
                _user_id(request),
                None if trace is None else trace.span_context,
                None if trace is None else trace.parent,
            )))
            _count(method, route, status, context.query_count)
        except Exception as exc:  # noqa: BLE001
            guard.report("middleware", exc)
