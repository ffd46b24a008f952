"""Datasource plugins behind one interface, with a connection cache.

The API layer calls only what is exported here, with plain values: ``options`` is the
data source's options merged with its secrets, ``query`` the data query's options (e.g.
``{"query": "SELECT ... WHERE id = :id"}``), ``parameters`` the run's values.

Every connection passes the egress policy first (``plugins.egress``; SQLite: the
directory of ``plugins.sqlite``): a refused target is an ``EgressDenied`` (HTTP 400,
``code`` ``egress_denied``), counted like any failed run.
"""

from telemetry import api as telemetry_api

from . import conf
from .base import PHASES, Deadline
from .cache import ConnectionCache
from .errors import (
    ConfigurationError,
    ConnectionFailed,
    EgressDenied,
    PluginError,
    QueryFailed,
    QueryTimeout,
)
from .registry import available_kinds, get_plugin
from .result import QueryResult

__all__ = [
    "PHASES", "ConfigurationError", "ConnectionFailed", "EgressDenied", "PluginError", "QueryFailed", "QueryResult",
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


def cache_gauges():
    """The connection cache as pools, one per datasource kind, sampled by telemetry off
    the request path (``telemetry.api.register_pool_sampler``)."""
    stats = connection_cache.stats()
    organizations = {}
    for (kind, organization_id), count in stats["organizations"].items():
        organizations.setdefault(kind, {})[organization_id] = count
    max_size = conf.get("CONNECTION_CACHE_MAX_SIZE")
    return [
        telemetry_api.PoolSample(
            kind, counts["active"], counts["idle"], organizations.get(kind, {}),
            # Database kinds are pools in the db_client_connection_* families too.
            pool="" if kind == "restapi" else f"plugins.{kind}", max_idle=max_size,
        )
        for kind, counts in stats["kinds"].items()
    ]


def test_connection(*, kind, options, timeout=None):
    """Opens a fresh connection, runs a cheap round trip and closes it:
    ``{"ok": True, "server": "..."}``; raises a ``PluginError`` on failure."""
    return get_plugin(kind).check(_check_dict(options, "options"), _deadline(timeout))


test_connection.__test__ = False  # not a pytest test when imported into a test module


def invalidate(data_source_id):
    """Closes the cached connections of a data source (its options changed, or it is gone)."""
    connection_cache.invalidate(data_source_id)
