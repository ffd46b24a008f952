"""Turns recorded events into metric updates. Runs in the flusher thread, in batches."""

from telemetry import conf
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
from telemetry.pipeline import shapes
from telemetry.queries import stats as querystats
from telemetry.tracing import spans
from telemetry.usage import activity
from telemetry.usage import rollups as usage

DB_SYSTEMS = spans.DB_SYSTEMS
#: Datasource kinds that are databases, as ``db_system`` label values.
PLUGIN_DB_SYSTEMS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite",
                     "redis": "redis"}


#: ``API_PATH_PREFIXES`` as the tuple ``str.startswith`` takes, read when the settings
#: change (registered by :func:`register_all`).
_api_prefixes: tuple[str, ...] = ()


def _read_api_prefixes() -> None:
    global _api_prefixes
    _api_prefixes = tuple(conf.get("API_PATH_PREFIXES"))


def on_active(batch, event: RequestStarted, delta: int = 1) -> None:
    """A request started: the in-flight gauge goes one up. Its end calls this with
    ``delta`` -1 and the same event, to take it down again."""
    cache = shapes.cache
    try:
        key = cache.active[event]
    except KeyError:
        key = cache.add_active(event)
    if key is not None:
        deltas = batch.gauge_deltas
        deltas[key] = deltas.get(key, 0.0) + delta


def on_request(batch, event: RequestFinished):
    """A finished request: its values go to its :class:`~telemetry.pipeline.shapes.RequestShape`
    (HTTP, business and analytics metrics, release latency, route traffic, usage), its
    statements to theirs; then the detectors and its spans."""
    context, app_operation = event.context, event.app_operation
    settings = batch.settings
    traced = event.span_context is not None
    keep_trace = traced and spans.keeps(event, settings)
    cache = shapes.cache
    key = (event.method, event.route, event.status, event.organization_id, app_operation,
           labels.count_bucket(context.query_count) if app_operation else None, event.path.startswith(_api_prefixes))
    shape = cache.requests.get(key)
    if shape is None:
        shape = cache.add_request(key, shapes.RequestShape(*key))
    if shape.batch is not batch:  # use()'s own test, without the call for all but a drain's first request
        shape.use(batch)
    shape.requests.append((event.duration, event.response_size, event.request_size, context.db_time,
                           context.external_time))
    if keep_trace:
        # Exemplars link only traces the store keeps: a dropped trace would be a dead link.
        batch.exemplar(families().http.request_duration, shape.duration_labels, event.duration,
                       {"trace_id": f"{event.trace_id:032x}"})
    if context.active_key is not None:
        on_active(batch, context.active_key, -1)
    if event.user_id is not None:
        activity.seen(event.user_id, event.organization_id)
    organization = shape.organization
    analysed = [(query, on_query(batch, query, organization)) for query in context.queries]
    if analysed and _detecting(analysed, settings):
        querystats.detect(analysed, event.route, organization)
    if traced:
        spans.submit_request(event, analysed, settings, keep_trace)


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


def _labels_of(result, vendor) -> tuple[str, str, str, str]:
    """(db system, operation, table label, pattern label) of an analysed statement, for
    its shape."""
    return (DB_SYSTEMS.get(vendor, vendor), result.operation,
            labels.table(result.tables[0]) if result.tables else "", labels.query_pattern(result.pattern))


def on_query(batch, event: QueryExecuted, organization=""):
    """A statement: its analysis, and its run added to the analysis's
    :class:`~telemetry.pipeline.shapes.StatementShape`; returns the analysis."""
    if not _analyze:
        from telemetry.queries.sql import analyze

        _analyze.append(analyze)
    result = _analyze[0](event.sql, event.params, event.vendor)
    key = (id(result), event.alias, organization)  # the shape holds ``result``: its id stays unique
    shape = shapes.cache.statements.get(key)
    if shape is None:
        shape = shapes.cache.add_statement(key, shapes.StatementShape(
            result, event.alias, *_labels_of(result, event.vendor), organization))
    if shape.batch is not batch:
        shape.use(batch)
    shape.runs.append((event.duration, event.rowcount))
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
    conf.on_change(_read_api_prefixes)
    recorder.register(RequestStarted, on_active)
    recorder.register(RequestFinished, on_request)
    recorder.register(QueryExecuted, on_standalone_query)
    recorder.register(DatabaseConnect, on_db_connect)
    recorder.register(MetricUpdate, on_metric)
    recorder.register(PluginRun, on_plugin)
