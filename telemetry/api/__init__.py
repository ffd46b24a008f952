"""The public API: what the platform and its plugins report that only they know, and
the few calls a host needs (``flush``, ``span``). A report into an optional metric domain
(plugins, datasources, apps, benchmarks, storage) switches the domain on in this process:
its families are exported from then on. Nothing else of telemetry is a surface
for hosts; telemetry's own modules report through ``telemetry.core.bus``.

Every function is cheap (one event appended) and fail-open. Label values that are
open-ended (organization, app, query name) are capped in the flusher.
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from telemetry import conf, tracing
from telemetry.core import labels, recorder
from telemetry.core.bus import emit as _emit
from telemetry.core.context import add_external_time
from telemetry.core.events import PluginRun
from telemetry.metrics import switch_on as _switch_on

#: A business or plugin span around a block: ``with api.span("app_lifecycle.create", **attributes):``;
#: a no-op context when tracing is off.
span = tracing.span


class PoolSample(NamedTuple):
    """One connection pool of a datasource kind, as a :func:`register_pool_sampler`
    callback reports it. ``organizations`` maps organization ids to the connections held
    for them; ``pool`` names a database pool, which is then also reported in the
    ``db_client_connection_*`` families with ``max_idle`` as its idle maximum."""

    kind: str
    active: int
    idle: int
    organizations: Mapping[Any, int] = {}
    pool: str = ""
    max_idle: int = 0


def register_pool_sampler(callback: Callable[[], Iterable[PoolSample]]) -> None:
    """``callback()`` is called every ``SAMPLE_INTERVAL_SECONDS`` off the request path; a
    pool or organization it stops reporting is reported as 0."""
    # Imported here: hosts import this module while Django loads apps, before models exist.
    from telemetry.pipeline import sampler

    _switch_on("plugins")
    _switch_on("datasources")
    sampler.register_pools(callback)


def _org(organization_id):
    return labels.organization(organization_id)


def track_feature(feature, action, organization_id=None):
    """A builder feature was used (``app_builder``/``create_component``, ...)."""
    _switch_on("apps")
    _emit("inc", ("business", "feature_usage"), (feature, action, _org(organization_id)), 1)


def record_app_load(app_id, seconds, environment="production", mode="direct"):
    _switch_on("apps")
    _emit("observe", ("business", "app_load_time"), (labels.app(app_id), environment, mode), seconds)


def record_app_query(app_id, query_name, status, datasource_type, seconds):
    _switch_on("apps")
    _emit("observe", ("business", "app_query_execution"),
          (labels.app(app_id), labels.query_name(query_name), status, datasource_type), seconds)


def record_app_error(app_id, error_type, component):
    _switch_on("apps")
    _emit("inc", ("business", "app_errors"), (labels.app(app_id), error_type, component), 1)


def record_external_operation(operation, provider, seconds):
    """A call to an external system; its time also counts as the request's external time."""
    add_external_time(seconds)
    _switch_on("datasources")
    _emit("observe", ("analytics", "external_operation"), (operation, provider), seconds)


def set_storage_usage(storage_type, organization_id, size_bytes):
    _switch_on("storage")
    _emit("set", ("business", "storage_usage"), (storage_type, _org(organization_id)), size_bytes)


def record_plugin_run(kind, organization_id, status, result, seconds, phases=None,
                      bytes_sent=0, bytes_received=0, connect_seconds=None, use_seconds=None):
    """One datasource query run, reported once by the plugin base class.

    ``status`` is ``success`` or ``error``; ``result`` is ``success`` or an error code;
    ``phases`` maps ``connect``/``execute``/``serialize`` to seconds; ``connect_seconds``
    is set when a new connection was opened; ``use_seconds`` is the checkout time.
    """
    add_external_time(seconds)
    if not conf.get("METRICS_ENABLED"):
        return
    _switch_on("plugins")
    _switch_on("datasources")  # the run is an external operation too
    recorder.record(PluginRun(kind, organization_id, status, result, seconds, phases or {},
                              bytes_sent, bytes_received, connect_seconds, use_seconds))


def record_benchmark_comparison(current, previous, significance):
    _switch_on("benchmarks")
    _emit("inc", ("analytics", "benchmark_comparison"), (current, previous, significance), 1)


def record_regression(current, regression_type):
    _switch_on("benchmarks")
    _emit("inc", ("analytics", "benchmark_regression"), (current, regression_type), 1)


def set_performance_score(release, score):
    _switch_on("benchmarks")
    _emit("set", ("analytics", "benchmark_score"), (release,), score)


def set_trend_coefficient(release, route, coefficient):
    _switch_on("benchmarks")
    _emit("set", ("analytics", "benchmark_trend"), (release, route), coefficient)


def record_release_baseline(release: str, path: str, hour: datetime, requests: int, mean_seconds: float,
                            variance_ratio: float = 1.04) -> bool:
    """What an earlier ``release`` measured on ``path`` in ``hour`` (imported from another
    system, or seeded), so that the release comparison has a baseline. Returns False
    when the path matches no route."""
    from telemetry.usage import releases  # see register_pool_sampler

    _switch_on("benchmarks")
    return releases.record_baseline(release, path, hour, requests, mean_seconds, variance_ratio)


def flush(sample=False):
    """Applies buffered events now (tests, and ``/metrics`` before it renders), then
    writes the spans and log records they produced to the trace store."""
    recorder.flush(sample=sample)
    tracing.flush()
