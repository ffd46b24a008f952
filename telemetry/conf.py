"""The ``TELEMETRY`` settings dict laid over ``DEFAULTS``.

Read through :func:`get_settings`, cached and cleared on ``setting_changed`` so that
``override_settings(TELEMETRY=...)`` works in tests. Never read at import time.
Every key is documented in the README's configuration table.
"""

from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS = {
    # One switch per signal. Off means the hooks are not installed at all.
    "METRICS_ENABLED": True,
    "TRACES_ENABLED": True,
    "LOGS_ENABLED": True,
    # Prefix of the ``tooljet_*`` families (the seed's names use ``tooljet``).
    "NAMESPACE": "tooljet",
    # Database alias that holds what telemetry stores; "default" when the project has none.
    "DATABASE_ALIAS": "telemetry",
    # Dotted path to ``callable(request) -> organization id or None``.
    "ORGANIZATION_RESOLVER": "telemetry.organization.from_request_attribute",
    # Dotted path to ``callable(user) -> organization id or None`` (login metrics).
    "USER_ORGANIZATION_RESOLVER": None,
    # /metrics access: a bearer token, an IP allowlist (addresses or CIDR networks);
    # with neither, only loopback may scrape.
    "METRICS_TOKEN": "",
    "METRICS_ALLOWED_IPS": [],
    # Cardinality caps: distinct values per label before the ``other`` bucket.
    "MAX_ORGANIZATIONS": 200,
    "MAX_APPS": 500,
    "MAX_QUERY_NAMES": 500,
    "MAX_QUERY_PATTERNS": 200,
    "MAX_ROUTES": 500,
    "MAX_TABLES": 500,
    # Path prefixes whose requests count as API calls (``api_calls_total``).
    "API_PATH_PREFIXES": ["/api/"],
    # Statements slower than this are "slow" (milliseconds).
    "SLOW_QUERY_MS": 200,
    # Per-fingerprint statistics and runtime detectors (query intelligence).
    "QUERY_STATS_ENABLED": True,
    # Runtime query detectors: repetitions of one fingerprint with different parameters
    # in one request that make an N+1, and rows a SELECT without LIMIT may return.
    "N_PLUS_ONE_THRESHOLD": 5,
    "ADD_LIMIT_ROWS": 1000,
    # Apdex target for the release performance score (seconds).
    "APDEX_TARGET_SECONDS": 0.5,
    # Hot-path events are buffered and applied in batches by a background thread.
    "FLUSH_INTERVAL_SECONDS": 1.0,
    "BUFFER_MAX_EVENTS": 100_000,
    # Active users: a user counts as active for this many seconds after a request.
    "ACTIVE_USER_WINDOW_SECONDS": 300,
    # Dotted path to ``callable() -> [(type, organization id, bytes), ...]`` for storage usage.
    "STORAGE_USAGE_PROVIDER": None,
    # Broker queues whose depth is sampled (default: Celery's default queue).
    "QUEUE_DEPTH_QUEUES": [],
    # Process resource sampling period (memory, CPU, DB pool gauges).
    "SAMPLE_INTERVAL_SECONDS": 10.0,
}


@lru_cache(maxsize=1)
def get_settings():
    merged = dict(DEFAULTS)
    merged.update(getattr(settings, "TELEMETRY", {}) or {})
    return merged


def get(name, default=None):
    return get_settings().get(name, default)


_change_callbacks = []


def on_change(callback):
    """Calls ``callback()`` now and whenever the settings change: for hot paths that keep
    a setting in a module variable instead of looking it up per call."""
    if callback not in _change_callbacks:
        _change_callbacks.append(callback)
    callback()


@receiver(setting_changed)
def _clear_cache(*, setting, **kwargs):
    if setting in ("TELEMETRY", "DATABASES"):
        get_settings.cache_clear()
        for callback in _change_callbacks:
            callback()
