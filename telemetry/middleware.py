"""The one request hook: feeds HTTP metrics, per-request query analysis and (later)
the server span. Place it first in ``MIDDLEWARE``.

The request thread does only cheap work: two clock reads, a contextvar, and one event
appended to the recorder; the rest happens in the flusher thread.
"""

from time import perf_counter

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed
from django.utils.functional import SimpleLazyObject, empty

from . import conf, guard, organization, recorder, routes
from .context import RequestContext, current_request


def _user_id(request):
    """The user's id if authentication already ran; never triggers a session lookup."""
    user = getattr(request, "user", None)
    if user is None:
        return None
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    return user.pk if getattr(user, "is_authenticated", False) else None


def _response_size(response):
    length = response.get("Content-Length")
    if length is not None:
        return int(length)
    if getattr(response, "streaming", False):
        return 0
    return len(response.content)


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
        try:
            response = self.get_response(request)
        finally:
            current_request.reset(token)
        self._finish(request, response, context)
        return response

    async def __acall__(self, request):
        context = RequestContext(perf_counter())
        token = current_request.set(context)
        try:
            response = await self.get_response(request)
        finally:
            current_request.reset(token)
        self._finish(request, response, context)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        context = current_request.get()
        if context is not None:
            try:
                context.route = routes.of_request(request)
                context.active_key = (request.method, context.route, request.scheme)
                recorder.record(("active", context.active_key))
            except Exception as exc:  # noqa: BLE001
                guard.report("middleware", exc)
        return None

    def _finish(self, request, response, context):
        duration = perf_counter() - context.started
        try:
            route = context.route or routes.of_request(request)
            recorder.record((
                "request",
                request.method,
                route,
                response.status_code,
                organization.resolve(request),
                duration,
                int(request.META.get("CONTENT_LENGTH") or 0),
                _response_size(response),
                request.path_info,
                context,
                getattr(request, "app_operation", None),
                _user_id(request),
            ))
        except Exception as exc:  # noqa: BLE001
            guard.report("middleware", exc)
