"""Periodic samples taken by the flusher thread every ``SAMPLE_INTERVAL_SECONDS``:
process resources, database connection gauges, active users, and callbacks that other
apps register (the plugins' connection cache)."""

import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psutil
from django.conf import settings
from django.db import connections

from telemetry.core import guard, labels, routers
from telemetry.core.background import store_deadlines
from telemetry.core.context import scraping
from telemetry.core.recorder import Batch
from telemetry.core.routers import telemetry_alias
from telemetry.db.wrapper import tracked_connections
from telemetry.metrics import families
from telemetry.pipeline.handlers import DB_SYSTEMS
from telemetry.queries import stats as querystats
from telemetry.usage import activity, releases, traffic
from telemetry.usage import rollups as usage

_process: dict[int, psutil.Process] = {}


def component() -> str:
    """The role of this process, as the ``component`` label of resource metrics."""
    role = os.environ.get("TELEMETRY_COMPONENT")
    if role:
        return role
    # The program, not the whole command line: ``pytest tests/test_celery.py`` is no worker.
    program = sys.argv[0] if sys.argv else ""
    if os.path.basename(program) == "__main__.py":  # python -m gunicorn / celery
        program = os.path.dirname(program)
    program = os.path.basename(program)
    if program.startswith("gunicorn"):
        return "web"
    if program.startswith("celery"):
        return "beat" if "beat" in sys.argv[1:] else "worker"
    return "django"


def _resources(batch):
    process = _process.get(os.getpid())
    if process is None:
        process = _process[os.getpid()] = psutil.Process()
        process.cpu_percent(None)
    gauge = families().business.resource_utilization
    role = component()
    batch.set(gauge, ("memory", role), process.memory_percent())
    batch.set(gauge, ("cpu", role), process.cpu_percent(None))


def _database_connections(batch):
    metrics = families().db
    open_per_alias = {}
    for wrapper in list(tracked_connections):
        if wrapper.connection is not None:
            open_per_alias[wrapper.alias] = open_per_alias.get(wrapper.alias, 0) + 1
    for alias in settings.DATABASES:
        wrapper = connections[alias]
        system = DB_SYSTEMS.get(wrapper.vendor, wrapper.vendor)
        # A zero increment creates the series, so "no timeouts" scrapes as 0, not absent.
        batch.inc(metrics.connection_timeouts, (system,), 0)
        pool = getattr(wrapper, "pool", None) if wrapper.vendor == "postgresql" else None
        if pool:
            stats = pool.get_stats()
            batch.set(metrics.connection_count, (alias, system), stats.get("pool_size", 0))
            batch.set(metrics.connection_idle_max, (alias,), pool.max_size)
            batch.set(metrics.connection_pending_requests, (alias,), stats.get("requests_waiting", 0))
        else:
            batch.set(metrics.connection_count, (alias, system), open_per_alias.get(alias, 0))
            # Without a pool each thread keeps at most one connection open between requests.
            idle_max = 0 if wrapper.settings_dict.get("CONN_MAX_AGE", 0) == 0 else threading.active_count()
            batch.set(metrics.connection_idle_max, (alias,), idle_max)
            batch.set(metrics.connection_pending_requests, (alias,), 0)


def sample(batch: Batch) -> None:
    """The periodic sample. Under :func:`store_untouched` (a ``/metrics`` scrape) only the
    in-process gauges are sampled; the store's writes and counts wait for the flusher, and
    for telemetry's migrations (a project's first ``migrate``: its in-process tables keep
    what they hold, bounded, until the tables exist). Nothing at all with ``METRICS_ENABLED``
    off (registered while it was on)."""
    if not batch.settings["METRICS_ENABLED"]:
        return
    steps = [("resources", _resources), ("db_connections", _database_connections), ("pools", _pools)]
    for name, step in steps:
        with guard.guarded(f"sample:{name}"):
            step(batch)
    if scraping.active or routers.migrations_pending():
        return
    # The store's writes, bounded in time together: a hung store fails them (each counted)
    # instead of holding the flusher, and with it every metric of this process, for more
    # than STORE_TIMEOUT_SECONDS per sample. One deadline for the five: the first write a
    # hung store holds fails at the deadline, the rest at once (its connection is shut down).
    with store_deadlines.bounded(telemetry_alias(), batch.settings["STORE_TIMEOUT_SECONDS"]):
        for name, step in (("active_users", activity.write_and_count), ("releases", releases.write_pending),
                           ("routes", traffic.write_pending), ("query_stats", querystats.write_pending),
                           ("usage", usage.write_pending)):
            with guard.guarded(f"sample:{name}"):
                step(batch)


class store_untouched:
    """Periodic work run in this block (``/metrics``) touches no database: samples write
    nothing to telemetry's store, queued EXPLAINs wait for the flusher
    (``core.context.scraping``), so a scrape never waits on a database."""

    def __enter__(self) -> None:
        scraping.active = True

    def __exit__(self, *exc_info: object) -> None:
        scraping.active = False


#: Callbacks returning ``telemetry.api.PoolSample``s (Any here: pipeline sits below the api layer).
_pool_samplers: list[Callable[[], Iterable[Any]]] = []
#: Pool series set at an earlier sample: one that is not reported again is set to 0.
_pool_series: set[tuple[Any, tuple[str, ...]]] = set()


def register_pools(callback: Callable[[], Iterable[Any]]) -> None:
    """See ``telemetry.api.register_pool_sampler``."""
    if callback not in _pool_samplers:
        _pool_samplers.append(callback)


def _pools(batch):
    metrics = families()
    values = {}
    for callback in list(_pool_samplers):
        with guard.guarded("sample:pools"):
            for pool in callback():
                values[(metrics.plugins.connection_pool_size, (pool.kind, "active"))] = pool.active
                values[(metrics.plugins.connection_pool_size, (pool.kind, "idle"))] = pool.idle
                if pool.pool:
                    values[(metrics.db.connection_count, (pool.pool, pool.kind))] = pool.active + pool.idle
                    values[(metrics.db.connection_idle_max, (pool.pool,))] = pool.max_idle
                    # A cache that never queues a caller (it opens a new connection instead).
                    values[(metrics.db.connection_pending_requests, (pool.pool,))] = 0
                for organization_id, count in pool.organizations.items():
                    organization = labels.organization(organization_id)
                    for family in (metrics.plugins.connection_cached_active, metrics.business.datasource_connections):
                        key = (family, (pool.kind, organization))
                        values[key] = values.get(key, 0) + count
    for key in _pool_series - values.keys():
        values[key] = 0
    _pool_series.update(values)
    for (family, label_values), value in values.items():
        batch.set(family, label_values, value)
