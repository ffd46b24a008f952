"""The metric inventory: the 45 seed metrics registered with the seed's names, types and
label keys, and the families other test modules do not drive yet, each driven by real
activity of the platform (API calls, the login view, plugin runs, Celery signals) and
asserted as a delta of its exact sample."""

import json
import os
import subprocess
import sys
import time

import psutil
import pytest
from celery import shared_task
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path, resolve
from prometheus_client import REGISTRY

import plugins
from apps_builder.models import App, AppVersion, DataQuery, DataSource
from telemetry import api, conf
from telemetry.adapters import prometheus
from telemetry.core import labels, recorder, routes
from telemetry.metrics import families
from telemetry.pipeline import sampler
from telemetry.queries.sql import analyze
from tests.live import ROOT, free_port

#: The seed inventory (``seeds/000``): exposition name, type, label keys. ``{ns}`` is the
#: configured namespace. ``user_session_duration_seconds`` drops the seed's ``user_id``
#: label on purpose (unbounded; see the metric table in docs/metrics.md).
SEED_METRICS = [
    ("http_server_request_duration_seconds", "histogram",
     {"http_request_method", "http_route", "http_response_status_code", "organization_id"}),
    ("http_server_active_requests", "gauge", {"http_request_method", "http_route", "url_scheme"}),
    ("http_server_request_body_size_bytes", "histogram", {"http_request_method", "http_route"}),
    ("http_server_response_body_size_bytes", "histogram",
     {"http_request_method", "http_route", "http_response_status_code"}),
    ("db_client_operation_duration_seconds", "histogram",
     {"db_system", "db_operation_name", "db_collection_name", "organization_id"}),
    ("db_client_operation_count_total", "counter", {"db_system", "db_operation_name", "db_collection_name"}),
    ("db_client_response_returned_rows", "histogram", {"db_system", "db_operation_name"}),
    ("db_client_connection_count", "gauge", {"db_client_connection_pool_name", "db_system"}),
    ("db_client_connection_wait_time_seconds", "histogram", {"db_system"}),
    ("db_client_connection_timeouts_total", "counter", {"db_system"}),
    ("db_client_connection_idle_max", "gauge", {"db_client_connection_pool_name"}),
    ("db_client_connection_pending_requests", "gauge", {"db_client_connection_pool_name"}),
    ("{ns}_plugin_query_execution_duration_seconds", "histogram",
     {"{ns}_datasource_kind", "{ns}_organization_id", "{ns}_query_status"}),
    ("{ns}_plugin_query_execution_count_total", "counter", {"{ns}_datasource_kind", "{ns}_query_status"}),
    ("{ns}_plugin_query_result_total", "counter", {"{ns}_datasource_kind", "{ns}_query_result"}),
    ("{ns}_plugin_connection_cached_active", "gauge", {"{ns}_datasource_kind", "{ns}_organization_id"}),
    ("{ns}_plugin_connection_pool_size", "gauge", {"{ns}_datasource_kind", "{ns}_connection_type"}),
    ("{ns}_plugin_connection_create_duration_seconds", "histogram",
     {"{ns}_datasource_kind", "{ns}_organization_id"}),
    ("{ns}_plugin_connection_use_duration_seconds", "histogram", {"{ns}_datasource_kind"}),
    ("{ns}_plugin_data_transfer_size_bytes", "histogram", {"{ns}_datasource_kind", "{ns}_operation_type"}),
    ("user_logins_total", "counter", {"status", "method", "organization_id"}),
    ("user_session_duration_seconds", "histogram", {"organization_id"}),
    ("user_feature_usage_total", "counter", {"feature", "action", "organization_id"}),
    ("active_users_current", "gauge", {"organization_id", "scope"}),
    ("app_load_time_seconds", "histogram", {"app_id", "environment", "mode"}),
    ("app_query_execution_seconds", "histogram", {"app_id", "query_name", "status", "datasource_type"}),
    ("app_errors_total", "counter", {"app_id", "error_type", "component"}),
    ("api_calls_total", "counter", {"endpoint", "method", "status_code", "status_class"}),
    ("api_call_duration_seconds", "histogram", {"endpoint", "method"}),
    ("datasource_connections_active", "gauge", {"datasource_type", "organization_id"}),
    ("resource_utilization_percent", "gauge", {"resource_type", "component"}),
    ("storage_usage_bytes", "gauge", {"type", "organization_id"}),
    ("{ns}_api_breakdown_duration_seconds", "histogram", {"http_route", "{ns}_operation_type"}),
    ("{ns}_api_external_operation_duration_seconds", "histogram",
     {"{ns}_external_operation", "{ns}_external_provider"}),
    ("{ns}_app_builder_viewer_performance_seconds", "histogram",
     {"http_route", "{ns}_app_operation", "{ns}_app_db_query_count"}),
    ("{ns}_db_query_complexity", "gauge", {"db_operation_name", "db_system"}),
    ("{ns}_db_query_slow_total", "counter", {"db_operation_name", "{ns}_query_complexity"}),
    ("{ns}_db_query_pattern_total", "counter", {"db_operation_name", "{ns}_query_pattern"}),
    ("{ns}_db_query_optimization_suggestions_total", "counter", {"{ns}_optimization_suggestion"}),
    ("{ns}_benchmark_duration_seconds", "histogram",
     {"{ns}_release_version", "http_route", "{ns}_benchmark_type"}),
    ("{ns}_benchmark_comparison_total", "counter",
     {"{ns}_release_current", "{ns}_release_previous", "{ns}_comparison_significance"}),
    ("{ns}_benchmark_regression_detected_total", "counter", {"{ns}_release_current", "{ns}_regression_type"}),
    ("{ns}_benchmark_performance_score", "gauge", {"{ns}_release_version"}),
    ("{ns}_benchmark_trend_coefficient", "gauge", {"{ns}_release_version", "http_route"}),
    ("{ns}_plugin_operation_latency_seconds", "histogram", {"{ns}_datasource_kind", "{ns}_operation_phase"}),
]


def probe_active_requests(request):
    """Reads the in-flight gauge from inside a request: it must count this request."""
    api.flush()
    value = REGISTRY.get_sample_value("http_server_active_requests", {
        "http_request_method": "GET", "http_route": "/probe/active", "url_scheme": "http"})
    return JsonResponse({"active": value})


def slow_statement(request):
    with connection.cursor() as cursor:
        # Its own text: slow findings are kept once a minute per statement, and other
        # tests look for theirs.
        cursor.execute("SELECT pg_sleep(%s) AS inventory_probe", [0.25])
    return JsonResponse({})


def failing_resolver(user):
    raise LookupError("organization resolver broke")


urlpatterns = [
    path("probe/active", probe_active_requests),
    path("probe/slow", slow_statement),
    path("", include("config.urls")),
]

pytestmark = [pytest.mark.django_db(databases=["default", "telemetry"]), pytest.mark.urls(__name__)]


def route_of(url_path):
    return routes.normalize(resolve(url_path).route)


# ---------------------------------------------------------------------------- registration


def registered_families():
    """Exposition name -> (type, label keys) of every family in the default registry."""
    found = {}
    for group in vars(families()).values():
        for family in vars(group).values():
            metric = family.metric
            described = metric.describe()[0]
            name = described.name + ("_total" if described.type == "counter" else "")
            assert prometheus.is_registered(REGISTRY, metric), f"{name} is not registered"
            found[name] = (described.type, set(prometheus.label_names(metric)))
    return found


def test_all_45_seed_metrics_are_registered_with_the_seed_types_and_label_keys():
    namespace = conf.get("NAMESPACE")
    assert namespace == "tooljet"  # the seed's prefix is the default namespace
    registered = registered_families()
    assert len(SEED_METRICS) == 45
    for name, kind, label_keys in SEED_METRICS:
        name = name.format(ns=namespace)
        assert name in registered, f"{name} is missing"
        assert registered[name] == (kind, {key.format(ns=namespace) for key in label_keys}), name


def test_the_seed_004_families_are_registered():
    registered = registered_families()
    expected = {
        "tooljet_task_executions_total": ("counter", {"task", "status"}),
        "tooljet_task_duration_seconds": ("histogram", {"task"}),
        "tooljet_task_queue_wait_seconds": ("histogram", {"task"}),
        "tooljet_tasks_active": ("gauge", {"task"}),
        "tooljet_queue_depth": ("gauge", {"queue"}),
        "tooljet_beat_missed_runs_total": ("counter", {"entry"}),
        "tooljet_health_checks_total": ("counter", {"service", "status"}),
        "tooljet_health_check_duration_seconds": ("histogram", {"service"}),
        "tooljet_health_dependency_status": ("gauge", {"dependency"}),
        "tooljet_rate_limit_requests_total": ("counter", {"endpoint", "authenticated"}),
        "tooljet_rate_limit_allowed_total": ("counter", {"scope"}),
        "tooljet_rate_limit_rejected_total": ("counter", {"scope"}),
        "tooljet_rate_limit_check_duration_seconds": ("histogram", {"endpoint"}),
        # Not from a seed: the crash-safe counts (docs/metrics.md, "What survives a crash").
        "http_server_requests_total": ("counter", {"http_request_method", "http_route", "http_response_status_code"}),
        "db_client_operations_in_requests_total": ("counter",
                                                   {"http_request_method", "http_route", "http_response_status_code"}),
    }
    assert {name: registered.get(name) for name in expected} == expected


# ---------------------------------------------------------------------------- platform fixtures


@pytest.fixture
def platform(org, make_member, sample_sqlite, api_client_for):
    """A released app with a working and a failing on-load query on a SQLite data source,
    and API clients of a builder and a viewer of ``org``."""
    plugins.connection_cache.clear()
    source = DataSource.objects.create(organization=org, kind="sqlite", name="Customers",
                                       options={"path": sample_sqlite})
    app = App.objects.create(organization=org, name="CRM", slug=f"crm-{org.pk}",
                             definition={"pages": [{"name": "home", "components": [{"type": "table"}]}]})
    AppVersion.objects.create(app=app, name="v1", definition=app.definition).release()
    good = DataQuery.objects.create(app=app, data_source=source, name="customers", run_on_page_load=True,
                                    options={"query": "SELECT id, name FROM customers ORDER BY id LIMIT 5"})
    broken = DataQuery.objects.create(app=app, data_source=source, name="broken", run_on_page_load=False,
                                      options={"query": "SELECT * FROM no_such_table"})
    builder = make_member(org, "builder")
    viewer = make_member(org, "viewer")
    yield {"org": org, "app": app, "source": source, "good": good, "broken": broken,
           "builder": api_client_for(builder), "viewer": api_client_for(viewer),
           "builder_user": builder, "viewer_user": viewer}
    plugins.connection_cache.clear()


# ---------------------------------------------------------------------------- business


def test_logins_through_the_api_and_the_admin_login_view(platform, client, samples, django_user_model):
    org = str(platform["org"].pk)
    success = samples.snapshot("user_logins_total", {"status": "success", "method": "password",
                                                     "organization_id": org})
    failure = samples.snapshot("user_logins_total", {"status": "failure", "method": "password",
                                                     "organization_id": ""})
    user = platform["viewer_user"]
    password = "pw-" + user.username
    assert client.post("/api/auth/login", {"username": user.username, "password": password},
                       content_type="application/json").status_code == 200
    assert client.post("/api/auth/login", {"username": user.username, "password": "wrong"},
                       content_type="application/json").status_code == 401
    # Django's own login view, as a browser uses it.
    user.is_staff = True
    user.save()
    response = client.post("/admin/login/?next=/admin/", {"username": user.username, "password": password})
    assert response.status_code == 302
    assert (success(), failure()) == (2, 1)


def test_session_length_is_observed_at_logout(platform, samples):
    from rest_framework.test import APIClient

    org = str(platform["org"].pk)
    sessions = samples.snapshot("user_session_duration_seconds_count", {"organization_id": org})
    seconds = samples.snapshot("user_session_duration_seconds_sum", {"organization_id": org})
    browser = APIClient()
    user = platform["builder_user"]
    assert browser.post("/api/auth/login", {"username": user.username, "password": "pw-" + user.username},
                        format="json").status_code == 200
    assert browser.post("/api/auth/logout").status_code == 204
    assert sessions() == 1
    assert seconds() > 0


def test_builder_actions_count_as_feature_usage(platform, samples):
    org = platform["org"]

    def feature(action):
        return samples.snapshot("user_feature_usage_total",
                                {"feature": "app_builder", "action": action, "organization_id": str(org.pk)})

    created, edited, versioned = feature("create_app"), feature("edit_definition"), feature("create_version")
    builder = platform["builder"]
    response = builder.post("/api/apps/", {"organization": org.pk, "name": "New", "slug": f"new-{org.pk}"},
                            format="json")
    assert response.status_code == 201, response.content
    slug = response.json()["slug"]
    for index in range(2):
        assert builder.patch(f"/api/apps/{slug}/", {"definition": {"pages": [index]}},
                             format="json").status_code == 200
    assert builder.post(f"/api/apps/{slug}/versions/", {"name": "v1"}, format="json").status_code == 201
    assert (created(), edited(), versioned()) == (1, 2, 1)


def test_active_users_count_distinct_users_of_the_organization(platform, samples):
    api.flush(sample=True)  # earlier tests' users are written before this test's window
    org = str(platform["org"].pk)
    slug = platform["app"].slug
    for client in (platform["builder"], platform["viewer"], platform["viewer"]):
        assert client.get(f"/api/apps/{slug}/").status_code == 200  # a request about the organization
    api.flush(sample=True)
    assert samples.value("active_users_current", {"organization_id": org, "scope": "organization"}) == 2
    # A later request that names no organization keeps the user counted for theirs.
    assert platform["viewer"].get("/api/apps/").status_code == 200
    api.flush(sample=True)
    assert samples.value("active_users_current", {"organization_id": org, "scope": "organization"}) == 2
    assert samples.value("active_users_current", {"organization_id": "", "scope": "platform"}) >= 2


def test_viewer_loads_and_query_runs_in_apps(platform, samples):
    app = platform["app"]
    app_id = str(app.pk)
    loads = samples.snapshot("app_load_time_seconds_count",
                             {"app_id": app_id, "environment": "production", "mode": "direct"})
    staging = samples.snapshot("app_load_time_seconds_count",
                               {"app_id": app_id, "environment": "staging", "mode": "direct"})
    good = samples.snapshot("app_query_execution_seconds_count", {
        "app_id": app_id, "query_name": "customers", "status": "success", "datasource_type": "sqlite"})
    bad = samples.snapshot("app_query_execution_seconds_count", {
        "app_id": app_id, "query_name": "broken", "status": "error", "datasource_type": "sqlite"})
    viewer = platform["viewer"]
    assert viewer.get(f"/api/apps/{app.slug}/view").status_code == 200  # runs "customers" on load
    assert viewer.get(f"/api/apps/{app.slug}/view?environment=staging").status_code == 200
    assert viewer.post(f"/api/data-queries/{platform['good'].pk}/run", {}, format="json").status_code == 200
    failed = viewer.post(f"/api/data-queries/{platform['broken'].pk}/run", {}, format="json")
    assert failed.status_code == 400
    code = failed.json()["error"]["code"]
    errors = samples.value("app_errors_total", {"app_id": app_id, "error_type": code, "component": "query"})
    assert (loads(), staging(), good(), bad()) == (1, 1, 3, 1)
    assert errors == 1


def test_plugin_runs_through_the_api_feed_the_plugin_families(platform, samples):
    org = str(platform["org"].pk)
    sent = samples.snapshot("tooljet_plugin_data_transfer_size_bytes_count",
                            {"tooljet_datasource_kind": "sqlite", "tooljet_operation_type": "query"})
    runs = samples.snapshot("tooljet_plugin_query_execution_duration_seconds_count", {
        "tooljet_datasource_kind": "sqlite", "tooljet_organization_id": org, "tooljet_query_status": "success"})
    for _ in range(2):
        assert platform["viewer"].post(f"/api/data-queries/{platform['good'].pk}/run", {},
                                       format="json").status_code == 200
    assert (sent(), runs()) == (2, 2)
    api.flush(sample=True)
    assert samples.value("tooljet_plugin_connection_pool_size",
                         {"tooljet_datasource_kind": "sqlite", "tooljet_connection_type": "idle"}) == 1
    assert samples.value("tooljet_plugin_connection_pool_size",
                         {"tooljet_datasource_kind": "sqlite", "tooljet_connection_type": "active"}) == 0
    assert samples.value("datasource_connections_active", {"datasource_type": "sqlite", "organization_id": org}) == 1


def test_resource_utilization_of_this_process(samples):
    api.flush(sample=True)
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    api.flush(sample=True)
    assert sampler.component() == "django"  # pytest is neither web nor a Celery process
    memory = samples.value("resource_utilization_percent", {"resource_type": "memory", "component": "django"})
    cpu = samples.value("resource_utilization_percent", {"resource_type": "cpu", "component": "django"})
    assert memory == pytest.approx(psutil.Process().memory_percent(), rel=0.25)
    assert cpu > 0


def test_storage_usage_is_the_stored_size_of_the_organizations_definitions(org, samples):
    from telemetry.tasks import sample_storage_usage

    definition = {"pages": ["x" * 700]}
    App.objects.create(organization=org, name="a", slug=f"a-{org.pk}", definition=definition)
    App.objects.create(organization=org, name="b", slug=f"b-{org.pk}", definition=definition)
    sample_storage_usage()
    # PostgreSQL prints jsonb as json.dumps does: ", " and ": " separators.
    assert samples.value("storage_usage_bytes", {"type": "app_definitions", "organization_id": str(org.pk)}) \
        == 2 * len(json.dumps(definition))


# ---------------------------------------------------------------------------- HTTP and advanced


def test_active_requests_gauge_counts_the_request_in_flight(client, samples):
    response = client.get("/probe/active")
    assert response.json() == {"active": 1.0}
    assert samples.value("http_server_active_requests", {
        "http_request_method": "GET", "http_route": "/probe/active", "url_scheme": "http"}) == 0


def test_benchmark_duration_by_release_route_and_type(platform, samples, settings):
    settings.RELEASE_VERSION = "7.7.7"
    app = platform["app"]
    view_route = route_of(f"/api/apps/{app.slug}/view")
    list_route = route_of("/api/apps/")
    viewer_type = samples.snapshot("tooljet_benchmark_duration_seconds_count", {
        "tooljet_release_version": "7.7.7", "http_route": view_route, "tooljet_benchmark_type": "app_builder_viewer"})
    api_type = samples.snapshot("tooljet_benchmark_duration_seconds_count", {
        "tooljet_release_version": "7.7.7", "http_route": list_route, "tooljet_benchmark_type": "api"})
    performance = {bucket: samples.snapshot("tooljet_app_builder_viewer_performance_seconds_count", {
        "http_route": view_route, "tooljet_app_operation": "app_view", "tooljet_app_db_query_count": bucket})
        for bucket in ("0", "1", "2-5", "6-20", ">20")}
    statements = []
    with connection.execute_wrapper(lambda execute, *args: statements.append(1) or execute(*args)):
        assert platform["viewer"].get(f"/api/apps/{app.slug}/view").status_code == 200
    for _ in range(2):
        assert platform["viewer"].get("/api/apps/").status_code == 200
    assert (viewer_type(), api_type()) == (1, 2)
    # The viewer request's own statement count, bucketed, labels its one observation.
    expected = labels.count_bucket(len(statements))
    assert {bucket: delta() for bucket, delta in performance.items()} == {
        bucket: int(bucket == expected) for bucket in performance}


def execute(sql, params=None):
    """Runs ``sql`` on the platform's connection; returns the analysis the flusher applies."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return analyze(sql, params, "postgresql")


def test_query_patterns_are_counted_per_statement(samples):
    sql = "SELECT id, name FROM auth_group WHERE id > %s"
    pattern = labels.query_pattern(analyze(sql, [0], "postgresql").pattern)
    delta = samples.snapshot("tooljet_db_query_pattern_total",
                             {"db_operation_name": "select", "tooljet_query_pattern": pattern})
    for _ in range(3):
        execute(sql, [0])
    assert delta() == 3


def test_slow_statements_are_counted_by_complexity_class(client, samples):
    complexity = analyze("SELECT pg_sleep(%s) AS inventory_probe", [0.25], "postgresql").complexity or "unknown"
    slow = samples.snapshot("tooljet_db_query_slow_total",
                            {"db_operation_name": "select", "tooljet_query_complexity": complexity})
    assert client.get("/probe/slow").status_code == 200
    execute("SELECT 1")  # fast: not counted
    assert slow() == 1


def test_query_complexity_gauge_shows_the_score_of_the_latest_statement(samples):
    result = execute("SELECT g.id, count(p.id) FROM auth_group g LEFT JOIN auth_group_permissions p "
                     "ON p.group_id = g.id WHERE g.name LIKE %s GROUP BY g.id ORDER BY 2 DESC", ["a%"])
    assert result.complexity_score is not None, "the statement analyzer gives no complexity score"
    assert samples.value("tooljet_db_query_complexity",
                         {"db_operation_name": "select", "db_system": "postgresql"}) == result.complexity_score


def test_optimization_suggestions_are_counted_per_statement(samples):
    sql = "SELECT * FROM auth_group WHERE name LIKE %s"
    result = analyze(sql, ["%x"], "postgresql")
    assert result.suggestions, "the statement analyzer suggests nothing for a leading-wildcard SELECT *"
    deltas = {code: samples.snapshot("tooljet_db_query_optimization_suggestions_total",
                                     {"tooljet_optimization_suggestion": code}) for code in result.suggestions}
    for _ in range(2):
        execute(sql, ["%x"])
    assert {code: delta() for code, delta in deltas.items()} == {code: 2 for code in result.suggestions}


# ---------------------------------------------------------------------------- seed 004 families


def test_health_checks_count_duration_and_a_dependency_going_down(client, samples, settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "HEALTH_CACHE_SECONDS": 0}
    from celery import current_app

    services = ("database", "broker", "cache")
    durations = {service: samples.snapshot("tooljet_health_check_duration_seconds_count", {"service": service})
                 for service in services}
    broker_down = samples.snapshot("tooljet_health_checks_total", {"service": "broker", "status": "down"})
    assert client.get("/health").status_code == 200
    assert samples.value("tooljet_health_dependency_status", {"dependency": "broker"}) == 1
    previous = current_app.conf.broker_url, current_app.conf.broker_transport
    # Nothing listens there (the URL's scheme names the transport, not the embedded one's).
    current_app.conf.broker_url, current_app.conf.broker_transport = f"redis://127.0.0.1:{free_port()}/0", None
    try:
        response = client.get("/health")
    finally:
        current_app.conf.broker_url, current_app.conf.broker_transport = previous
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["status"] == "down"
    assert {service: delta() for service, delta in durations.items()} == {service: 2 for service in services}
    assert broker_down() == 1
    assert samples.value("tooljet_health_dependency_status", {"dependency": "broker"}) == 0


def test_rate_limit_checks_of_the_platform_throttles(platform, client, samples):
    from django.core.cache import cache

    cache.clear()
    apps, login = route_of("/api/apps/"), route_of("/api/auth/login")
    checks = samples.snapshot("tooljet_rate_limit_check_duration_seconds_count", {"endpoint": apps})
    authenticated = samples.snapshot("tooljet_rate_limit_requests_total", {"endpoint": apps, "authenticated": "true"})
    anonymous = samples.snapshot("tooljet_rate_limit_requests_total", {"endpoint": login, "authenticated": "false"})
    user_allowed = samples.snapshot("tooljet_rate_limit_allowed_total", {"scope": "user"})
    anon_allowed = samples.snapshot("tooljet_rate_limit_allowed_total", {"scope": "anon"})
    for _ in range(3):
        assert platform["viewer"].get("/api/apps/").status_code == 200
    assert client.post("/api/auth/login", {"username": "nobody", "password": "wrong"},
                       content_type="application/json").status_code == 401
    # DRF's user throttle judges anonymous clients too (by address); the anonymous one
    # skips signed-in users, and a throttle that skips a request is not counted.
    assert (authenticated(), anonymous(), checks()) == (3, 2, 3)
    assert (user_allowed(), anon_allowed()) == (4, 1)


@shared_task(name="tests.inventory.probe")
def probe_task():
    api.flush()
    return REGISTRY.get_sample_value("tooljet_tasks_active", {"task": "tests.inventory.probe"})


def test_a_running_task_is_active_and_counted_when_done(samples):
    executions = samples.snapshot("tooljet_task_executions_total",
                                  {"task": "tests.inventory.probe", "status": "success"})
    durations = samples.snapshot("tooljet_task_duration_seconds_count", {"task": "tests.inventory.probe"})
    assert probe_task.apply().get() == 1  # the task saw itself running
    assert samples.value("tooljet_tasks_active", {"task": "tests.inventory.probe"}) == 0
    assert (executions(), durations()) == (1, 1)


def test_internal_errors_are_counted_and_the_login_still_succeeds_and_counts(platform, client, samples,
                                                                            settings):
    errors = samples.snapshot("telemetry_internal_errors_total", {"component": "user_organization"})
    logins = samples.snapshot("user_logins_total", {"status": "success", "method": "password", "organization_id": ""})
    settings.TELEMETRY = {**settings.TELEMETRY, "USER_ORGANIZATION_RESOLVER": f"{__name__}.failing_resolver"}
    user = platform["viewer_user"]
    for _ in range(2):
        assert client.post("/api/auth/login", {"username": user.username, "password": "pw-" + user.username},
                           content_type="application/json").status_code == 200
    assert (errors(), logins()) == (2, 2)


def test_events_beyond_the_buffer_are_dropped_and_counted(samples, settings, org):
    settings.TELEMETRY = {**settings.TELEMETRY, "BUFFER_MAX_EVENTS": 5}
    feature = {"feature": "inventory", "action": "drop", "organization_id": str(org.pk)}
    dropped = samples.snapshot("telemetry_dropped_events_total")
    used = samples.snapshot("user_feature_usage_total", feature)
    for _ in range(8):
        api.track_feature("inventory", "drop", org.pk)
    settings.TELEMETRY = {key: value for key, value in settings.TELEMETRY.items() if key != "BUFFER_MAX_EVENTS"}
    assert (used(), dropped()) == (5, 3)
    assert recorder.event_buffer.queue.limit == 100_000


# ---------------------------------------------------------------------------- connection pool

POOL_SCRIPT = r"""
import json, threading, time
import django
django.setup()
from django.db import connection
from prometheus_client import REGISTRY
from telemetry.core import recorder

recorder.run_in_foreground()
held, release = threading.Event(), threading.Event()

def holder():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    held.set()
    release.wait(20)
    connection.close()

def waiter():
    held.wait(20)
    connection.ensure_connection()
    connection.close()

threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
for thread in threads:
    thread.start()
held.wait(20)
labels = {"db_client_connection_pool_name": "default"}
pending = []
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    recorder.flush(sample=True)
    pending.append(REGISTRY.get_sample_value("db_client_connection_pending_requests", labels))
    if pending[-1] == 1:
        break
    time.sleep(0.05)
release.set()
for thread in threads:
    thread.join()
recorder.flush(sample=True)
print(json.dumps({"waiting": pending[-1],
                  "after": REGISTRY.get_sample_value("db_client_connection_pending_requests", labels)}))
"""


def test_a_request_waiting_for_a_pooled_connection_is_pending():
    env = {**os.environ, "DATABASE_POOL": "1", "DATABASE_POOL_MAX_SIZE": "1", "DATABASE_POOL_TIMEOUT": "15",
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    assert env["DATABASE_URL"].startswith("postgres")
    completed = subprocess.run([sys.executable, "-c", POOL_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {"waiting": 1, "after": 0}
