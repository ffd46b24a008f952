"""Plugin settings: ``settings.PLUGINS`` laid over ``DEFAULTS``, read through a cached
getter that ``override_settings`` clears."""

from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS = {
    # Default limit of one run (connect + execute + serialize), overridable per call.
    "RUN_TIMEOUT_SECONDS": 10.0,
    # Connection cache: a connection is closed this long after it was opened ...
    "CONNECTION_CACHE_TTL_SECONDS": 600.0,
    # ... or after being idle this long; at most this many are kept per process.
    "CONNECTION_CACHE_IDLE_SECONDS": 120.0,
    "CONNECTION_CACHE_MAX_SIZE": 64,
    # Egress policy of the network plugins (see ``plugins.egress``): networks and
    # host:port[/database] entries tenants' data sources may reach although they are
    # private, loopback or the platform's own ...
    "EGRESS_ALLOWLIST": [],
    # ... and host:port where the platform's web server listens (refused like its database).
    "EGRESS_PLATFORM_ADDRESSES": [],
    # SQLite sources: files inside this directory only, opened read-only; None refuses them all.
    "SQLITE_DIRECTORY": None,
    # kind -> dotted path of a ``plugins.base.Plugin`` subclass, loaded on first use.
    "PLUGIN_CLASSES": {
        "postgresql": "plugins.postgresql.PostgreSQLPlugin",
        "mysql": "plugins.mysql.MySQLPlugin",
        "restapi": "plugins.restapi.RestAPIPlugin",
        "redis": "plugins.redis.RedisPlugin",
        "sqlite": "plugins.sqlite.SQLitePlugin",
    },
}


@cache
def _merged():
    return {**DEFAULTS, **getattr(settings, "PLUGINS", {})}


def get(name):
    return _merged()[name]


@receiver(setting_changed)
def _reset(*, setting, **kwargs):
    if setting == "PLUGINS":
        _merged.cache_clear()
        from .registry import get_plugin

        get_plugin.cache_clear()
