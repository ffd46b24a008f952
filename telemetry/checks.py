"""System checks for misconfiguration, with stable ids."""

from django.conf import settings
from django.core import checks

MIDDLEWARE_PATH = "telemetry.http.middleware.TelemetryMiddleware"


@checks.register()
def check_middleware(app_configs, **kwargs):
    errors = []
    middleware = list(getattr(settings, "MIDDLEWARE", []))
    if MIDDLEWARE_PATH not in middleware:
        errors.append(checks.Warning(
            "TelemetryMiddleware is not in MIDDLEWARE: no HTTP metrics will be recorded.",
            hint=f"Add '{MIDDLEWARE_PATH}' as the first entry of MIDDLEWARE.", id="telemetry.W001",
        ))
    elif middleware.index(MIDDLEWARE_PATH) != 0:
        errors.append(checks.Warning(
            "TelemetryMiddleware is not first in MIDDLEWARE: time spent in earlier middleware is not measured.",
            hint="Move it to the first position.", id="telemetry.W002",
        ))
    return errors
