"""Public API for the platform and its plugins to report what only they know.

Every function is cheap (one event appended) and fail-open. Label values that are
open-ended (organization, app, query name) are capped in the flusher.
"""

from telemetry.core import conf, guard, labels, recorder
from telemetry.core.context import add_external_time


def _emit(operation, family_path, label_values, value):
    if not conf.get("METRICS_ENABLED"):
        return
    try:
        recorder.record(("metric", operation, family_path, label_values, value))
    except Exception as exc:  # noqa: BLE001
        guard.report("api", exc)


def _org(organization_id):
    return labels.organization(organization_id)


def track_feature(feature, action, organization_id=None):
    """A builder feature was used (``app_builder``/``create_component``, ...)."""
    _emit("inc", ("business", "feature_usage"), (feature, action, _org(organization_id)), 1)


def record_app_load(app_id, seconds, environment="production", mode="direct"):
    _emit("observe", ("business", "app_load_time"), (labels.app(app_id), environment, mode), seconds)


def record_app_query(app_id, query_name, status, datasource_type, seconds):
    _emit("observe", ("business", "app_query_execution"),
          (labels.app(app_id), labels.query_name(query_name), status, datasource_type), seconds)


def record_app_error(app_id, error_type, component):
    _emit("inc", ("business", "app_errors"), (labels.app(app_id), error_type, component), 1)


def record_external_operation(operation, provider, seconds):
    """A call to an external system; its time also counts as the request's external time."""
    add_external_time(seconds)
    _emit("observe", ("analytics", "external_operation"), (operation, provider), seconds)


def set_storage_usage(storage_type, organization_id, size_bytes):
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
    recorder.record(("plugin", kind, organization_id, status, result, seconds, phases or {},
                     bytes_sent, bytes_received, connect_seconds, use_seconds))


def record_benchmark_comparison(current, previous, significance):
    _emit("inc", ("analytics", "benchmark_comparison"), (current, previous, significance), 1)


def record_regression(current, regression_type):
    _emit("inc", ("analytics", "benchmark_regression"), (current, regression_type), 1)


def set_performance_score(release, score):
    _emit("set", ("analytics", "benchmark_score"), (release,), score)


def set_trend_coefficient(release, route, coefficient):
    _emit("set", ("analytics", "benchmark_trend"), (release, route), coefficient)


_samplers = {}


def register_sampler(callback):
    """``callback()`` returns ``[((group, family), label_values, value), ...]`` gauge
    values, sampled periodically off the request path (e.g. connection cache sizes)."""
    if callback in _samplers:
        return

    def sample(batch):
        from telemetry.metrics import families

        for (group, name), label_values, value in callback():
            batch.set(getattr(getattr(families(), group), name), tuple(label_values), value)

    _samplers[callback] = sample
    recorder.register_periodic(sample)


def flush(sample=False):
    """Applies buffered events now (tests, and ``/metrics`` before it renders), then
    writes the spans and log records they produced to the trace store."""
    recorder.flush(sample=sample)
    from telemetry import tracing

    tracing.flush()
