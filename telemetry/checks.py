"""System checks for misconfiguration, with stable ids."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from telemetry import conf, extras

MIDDLEWARE_PATH = "telemetry.http.middleware.TelemetryMiddleware"


@checks.register()
def check_middleware(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
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


@checks.register(checks.Tags.security)
def check_metrics_behind_proxy(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Behind a reverse proxy, loopback is the proxy: only a token keeps /metrics private."""
    behind_proxy = (getattr(settings, "USE_X_FORWARDED_HOST", False)
                    or getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
                    or conf.get("METRICS_TRUSTED_PROXIES"))
    if behind_proxy and not conf.get("METRICS_TOKEN"):
        return [checks.Warning(
            "The site runs behind a reverse proxy and TELEMETRY['METRICS_TOKEN'] is empty: /metrics is open to "
            "whatever the proxy forwards from the allowed addresses.",
            hint="Set METRICS_TOKEN (Prometheus: authorization credentials) or block /metrics at the proxy.",
            id="telemetry.W003",
        )]
    return []


@checks.register()
def check_extras(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    """One warning per extra of the distribution that is not installed: its features are off."""
    return [
        checks.Warning(
            f"The [{extra.name}] extra of {extras.DISTRIBUTION} is not installed: {extra.features} are off.",
            hint=f"To enable them: {extras.install_hint(extra)}. To silence this: SILENCED_SYSTEM_CHECKS = "
                 f"[\"{extra.check_id}\"].",
            id=extra.check_id,
        )
        for extra in extras.EXTRAS if not extras.installed(extra)
    ]
