"""Turns recorded events into metric updates. Runs in the flusher thread, in batches."""

from functools import lru_cache

from telemetry.core import labels, recorder
from telemetry.core.events import (
    DatabaseConnect,
    MetricUpdate,
    PluginRun,
    QueryExecuted,
    RequestFinished,
    RequestStarted,
)
from telemetry.metrics import families
from telemetry.queries import stats as querystats
from telemetry.tracing import spans
from telemetry.usage import activity, releases, traffic
from telemetry.usage import rollups as usage

DB_SYSTEMS = spans.DB_SYSTEMS
#: Datasource kinds that are databases, as ``db_system`` label values.
PLUGIN_DB_SYSTEMS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite",
                     "redis": "redis"}


def _is_api(path, settings):
    return path.startswith(tuple(settings["API_PATH_PREFIXES"]))


def _active_labels(event: RequestStarted):
    return labels.method(event.method), event.route, event.scheme


def on_active(batch, event: RequestStarted):
    batch.add(families().http.active_requests, _active_labels(event), 1)


def on_request(batch, event: RequestFinished):
    route, duration, context, app_operation = event.route, event.duration, event.context, event.app_operation
    organization_id = event.organization_id
    traced = event.span_context is not None
    keep_trace = traced and spans.keeps(event, batch.settings)
    metrics = families()
    method = labels.method(event.method)
    status = str(event.status)
    organization = labels.organization(organization_id)
    # Exemplars link only traces the store keeps: a dropped trace would be a dead link.
    exemplar = {"trace_id": f"{event.trace_id:032x}"} if keep_trace else None
    batch.observe(metrics.http.request_duration, (method, route, status, organization), duration, exemplar)
    if event.request_size:  # a request without a body (most GETs) would only add zeros
        batch.observe(metrics.http.request_body_size, (method, route), event.request_size)
    batch.observe(metrics.http.response_body_size, (method, route, status), event.response_size)
    if context.active_key is not None:
        batch.add(metrics.http.active_requests, _active_labels(context.active_key), -1)
    if _is_api(event.path, batch.settings):
        batch.inc(metrics.business.api_calls, (route, method, status, labels.status_class(status)))
        batch.observe(metrics.business.api_call_duration, (route, method), duration)
    external = min(context.external_time, duration)
    database = min(context.db_time, duration - external)
    analytics = metrics.analytics
    batch.observe(analytics.api_breakdown, (route, "database"), database)
    batch.observe(analytics.api_breakdown, (route, "external"), external)
    batch.observe(analytics.api_breakdown, (route, "application"), max(duration - database - external, 0.0))
    if app_operation:
        count = labels.count_bucket(context.query_count)
        batch.observe(analytics.app_builder_viewer, (route, app_operation, count), duration)
    benchmark_type = "app_builder_viewer" if app_operation else "api"
    batch.observe(analytics.benchmark_duration, (releases.current_release(), route, benchmark_type), duration)
    releases.observe(batch, route, duration)
    traffic.observe(batch, route, event.status, duration)
    usage.request(batch, organization_id, status, app_operation)
    if event.user_id is not None:
        activity.seen(event.user_id, organization_id)
    analysed = [(query, on_query(batch, query, organization)) for query in context.queries]
    if analysed and _detecting(analysed, batch.settings):
        querystats.detect(analysed, route, organization)
    if traced:
        spans.submit_request(event, analysed, batch.settings, keep_trace)


def _detecting(analysed, settings) -> bool:
    """The runtime detectors (and the EXPLAIN of slow statements they queue) belong to query
    statistics: off with ``QUERY_STATS_ENABLED``."""
    return settings["QUERY_STATS_ENABLED"] and querystats.worth_detecting(analysed, settings)


def on_standalone_query(batch, event: QueryExecuted):
    """A statement outside any request (Celery task, management command)."""
    analysed = [(event, on_query(batch, event))]
    if _detecting(analysed, batch.settings):
        querystats.detect(analysed)
    if event.span_context is not None:
        spans.submit_query(event, analysed[0][1], batch.settings)


_analyze: list = []  # telemetry.queries.sql.analyze, imported on the first statement (sqlglot loads then)


@lru_cache(maxsize=5000)
def _labels_of(result, vendor):
    """(db system, operation, table label, pattern label) of an analysed statement: the
    same for every run of it, so computed once per analysis (analyses are cached per
    statement text)."""
    return (DB_SYSTEMS.get(vendor, vendor), result.operation,
            labels.table(result.tables[0]) if result.tables else "", labels.query_pattern(result.pattern))


labels.on_reset(_labels_of.cache_clear)


def on_query(batch, event: QueryExecuted, organization=""):
    """Metrics and statistics of one statement; returns its analysis."""
    vendor, duration, rowcount = event.vendor, event.duration, event.rowcount
    if not _analyze:
        from telemetry.queries.sql import analyze

        _analyze.append(analyze)
    result = _analyze[0](event.sql, event.params, vendor)
    settings = batch.settings
    if settings["QUERY_STATS_ENABLED"]:
        querystats.observe(batch, result, event.alias, duration, rowcount)
    metrics = families()
    system, operation, table, pattern = _labels_of(result, vendor)
    batch.observe(metrics.db.operation_duration, (system, operation, table, organization), duration)
    batch.inc(metrics.db.operation_count, (system, operation, table))
    if rowcount >= 0:
        batch.observe(metrics.db.returned_rows, (system, operation), rowcount)
    analytics = metrics.analytics
    if result.complexity_score is not None:
        batch.set(analytics.query_complexity, (operation, system), result.complexity_score)
    if duration * 1000 >= settings["SLOW_QUERY_MS"]:
        batch.inc(analytics.query_slow, (operation, result.complexity or "unknown"))
    batch.inc(analytics.query_pattern, (operation, pattern))
    for code in result.suggestions:
        batch.inc(analytics.optimization_suggestions, (code,))
    return result


def on_db_connect(batch, event: DatabaseConnect):
    system = DB_SYSTEMS.get(event.vendor, event.vendor)
    metrics = families().db
    if event.timed_out:
        batch.inc(metrics.connection_timeouts, (system,))
    else:
        batch.observe(metrics.connection_wait_time, (system,), event.seconds)


def on_plugin(batch, event: PluginRun):
    kind, organization_id, status, result, seconds, phases = (
        event.kind, event.organization_id, event.status, event.result, event.seconds, event.phases)
    metrics = families().plugins
    organization = labels.organization(organization_id)
    batch.observe(metrics.execution_duration, (kind, organization, status), seconds)
    batch.inc(metrics.execution_count, (kind, status))
    batch.inc(metrics.result, (kind, result))
    usage.query_run(batch, organization_id, kind, status)
    batch.observe(families().analytics.external_operation, ("datasource_query", kind), seconds)
    for phase, phase_seconds in phases.items():
        batch.observe(metrics.operation_latency, (kind, phase), phase_seconds)
    if event.bytes_sent:
        batch.observe(metrics.data_transfer_size, (kind, "query"), event.bytes_sent)
    batch.observe(metrics.data_transfer_size, (kind, "query_result"), event.bytes_received)
    if event.connect_seconds is not None:
        batch.observe(metrics.connection_create_duration, (kind, organization), event.connect_seconds)
    if event.use_seconds is not None:
        batch.observe(metrics.connection_use_duration, (kind,), event.use_seconds)
    system = PLUGIN_DB_SYSTEMS.get(kind)
    if system is not None:
        # The plugins' connection cache is a pool too: getting a connection (cached or
        # new) is its wait time; a run that timed out before executing timed out there.
        db_metrics = families().db
        if "connect" in phases:
            batch.observe(db_metrics.connection_wait_time, (system,), phases["connect"])
        if result == "timeout" and "execute" not in phases:
            batch.inc(db_metrics.connection_timeouts, (system,))


def on_metric(batch, event: MetricUpdate):
    """Generic updates from the internal bus and the public API."""
    group, name = event.family_path
    family = getattr(getattr(families(), group), name)
    getattr(batch, event.operation)(family, event.label_values, event.value)


def register_all():
    recorder.register(RequestStarted, on_active)
    recorder.register(RequestFinished, on_request)
    recorder.register(QueryExecuted, on_standalone_query)
    recorder.register(DatabaseConnect, on_db_connect)
    recorder.register(MetricUpdate, on_metric)
    recorder.register(PluginRun, on_plugin)
