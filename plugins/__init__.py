"""Datasource plugins behind one interface, with a connection cache.

The API layer calls only what is exported here, with plain values: ``options`` is the
data source's options merged with its secrets, ``query`` the data query's options (e.g.
``{"query": "SELECT ... WHERE id = :id"}``), ``parameters`` the run's values.
"""

from . import conf
from .base import PHASES, Deadline
from .cache import ConnectionCache
from .errors import (
    ConfigurationError,
    ConnectionFailed,
    PluginError,
    QueryFailed,
    QueryTimeout,
)
from .registry import available_kinds, get_plugin
from .result import QueryResult

__all__ = [
    "PHASES", "ConfigurationError", "ConnectionFailed", "PluginError", "QueryFailed", "QueryResult",
    "QueryTimeout", "available_kinds", "connection_cache", "get_plugin", "invalidate", "run_query",
    "test_connection",
]

#: The process's connection cache.
connection_cache = ConnectionCache()


def _deadline(timeout):
    seconds = conf.get("RUN_TIMEOUT_SECONDS") if timeout is None else timeout
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 3600:
        raise ConfigurationError("timeout must be a number of seconds between 0 and 3600", code="invalid_timeout")
    return Deadline(float(seconds))


def _check_dict(value, name):
    if not isinstance(value, dict):
        raise ConfigurationError(f"{name} must be an object", code=f"invalid_{name}")
    return value


def run_query(*, data_source_id, kind, options, query, parameters=None, timeout=None, organization_id=None):
    """Runs one query on a cached connection of the data source within ``timeout``
    seconds (default ``PLUGINS["RUN_TIMEOUT_SECONDS"]``); raises a ``PluginError``.
    ``organization_id`` labels the run's metrics and the cached connection."""
    plugin = get_plugin(kind)
    return plugin.execute(
        cache=connection_cache,
        data_source_id=data_source_id,
        options=_check_dict(options, "options"),
        query=_check_dict(query, "query"),
        parameters=_check_dict(parameters if parameters is not None else {}, "parameters"),
        deadline=_deadline(timeout),
        organization_id=organization_id,
    )


_reported_gauges = set()


def cache_gauges():
    """Gauge values of the connection cache, sampled by telemetry off the request path.
    Series reported before and now empty are reported as 0."""
    from telemetry.core import labels

    stats = connection_cache.stats()
    values = {}
    for kind, counts in stats["kinds"].items():
        values[(("plugins", "connection_pool_size"), (kind, "active"))] = counts["active"]
        values[(("plugins", "connection_pool_size"), (kind, "idle"))] = counts["idle"]
        if kind != "restapi":
            pool = f"plugins.{kind}"
            values[(("db", "connection_count"), (pool, kind))] = counts["active"] + counts["idle"]
            values[(("db", "connection_idle_max"), (pool,))] = conf.get("CONNECTION_CACHE_MAX_SIZE")
            # The cache never queues a caller: it opens a new connection instead.
            values[(("db", "connection_pending_requests"), (pool,))] = 0
    for (kind, organization_id), count in stats["organizations"].items():
        organization = labels.organization(organization_id)
        for family in (("plugins", "connection_cached_active"), ("business", "datasource_connections")):
            key = (family, (kind, organization))
            values[key] = values.get(key, 0) + count
    for key in _reported_gauges - values.keys():
        values[key] = 0
    _reported_gauges.update(values)
    return [(family, label_values, value) for (family, label_values), value in values.items()]


def test_connection(*, kind, options, timeout=None):
    """Opens a fresh connection, runs a cheap round trip and closes it:
    ``{"ok": True, "server": "..."}``; raises a ``PluginError`` on failure."""
    return get_plugin(kind).check(_check_dict(options, "options"), _deadline(timeout))


test_connection.__test__ = False  # not a pytest test when imported into a test module


def invalidate(data_source_id):
    """Closes the cached connections of a data source (its options changed, or it is gone)."""
    connection_cache.invalidate(data_source_id)
