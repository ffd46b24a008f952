"""DRF throttles that report their decisions. Use these names in
``REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]`` instead of DRF's own."""

from time import perf_counter
from typing import TYPE_CHECKING

from rest_framework import throttling
from rest_framework.request import Request

from telemetry.core import routes
from telemetry.core.bus import emit

if TYPE_CHECKING:
    # Only for the annotation: rest_framework.views imports the throttle classes while it loads.
    from rest_framework.views import APIView


class ReportingThrottleMixin(throttling.BaseThrottle):
    def allow_request(self, request: Request, view: "APIView") -> bool:
        started = perf_counter()
        allowed = super().allow_request(request, view)
        seconds = perf_counter() - started
        if getattr(self, "key", None) is None:
            # DRF sets ``key`` only when the throttle judges the request; without it (no
            # rate, or an anonymous throttle and a signed-in user) nothing was decided.
            return allowed
        endpoint = routes.of_request(request)
        scope = getattr(self, "scope", None) or type(self).__name__
        authenticated = "true" if getattr(request.user, "is_authenticated", False) else "false"
        emit("inc", ("jobs", "rate_limit_requests"), (endpoint, authenticated), 1)
        emit("inc", ("jobs", "rate_limit_allowed" if allowed else "rate_limit_rejected"), (scope,), 1)
        emit("observe", ("jobs", "rate_limit_check_duration"), (endpoint,), seconds)
        return allowed


class AnonRateThrottle(ReportingThrottleMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(ReportingThrottleMixin, throttling.UserRateThrottle):
    pass


class ScopedRateThrottle(ReportingThrottleMixin, throttling.ScopedRateThrottle):
    pass
