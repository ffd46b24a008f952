"""The ``TELEMETRY`` settings dict laid over ``DEFAULTS``.

Read through :func:`get_settings`, cached and cleared on ``setting_changed`` so that
``override_settings(TELEMETRY=...)`` works in tests. Never read at import time.
"""

from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS = {
    # Database alias that holds what telemetry stores; falls back to "default" when the
    # project defines no such alias.
    "DATABASE_ALIAS": "telemetry",
}


@lru_cache(maxsize=1)
def get_settings():
    merged = dict(DEFAULTS)
    merged.update(getattr(settings, "TELEMETRY", {}) or {})
    return merged


def get(name):
    return get_settings()[name]


@receiver(setting_changed)
def _clear_cache(*, setting, **kwargs):
    if setting in ("TELEMETRY", "DATABASES"):
        get_settings.cache_clear()
