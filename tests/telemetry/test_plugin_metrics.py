"""Plugin metrics, recorded once in the plugin base class, from real runs."""

import sqlite3

import pytest

import plugins
from telemetry import api


@pytest.fixture
def sample_db(tmp_path):
    path = tmp_path / "sample.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        connection.executemany("INSERT INTO items (name) VALUES (?)", [(f"item {i}",) for i in range(50)])
    yield {"path": str(path)}
    plugins.connection_cache.clear()


def run(options, sql, data_source_id=901, organization_id=7, **parameters):
    return plugins.run_query(data_source_id=data_source_id, kind="sqlite", options=options,
                             query={"query": sql}, parameters=parameters, organization_id=organization_id)


def test_runs_are_counted_by_kind_status_and_result(sample_db, samples):
    ok = samples.snapshot("tooljet_plugin_query_execution_count_total",
                          {"tooljet_datasource_kind": "sqlite", "tooljet_query_status": "success"})
    failed = samples.snapshot("tooljet_plugin_query_execution_count_total",
                              {"tooljet_datasource_kind": "sqlite", "tooljet_query_status": "error"})
    durations = samples.snapshot("tooljet_plugin_query_execution_duration_seconds_count", {
        "tooljet_datasource_kind": "sqlite", "tooljet_organization_id": "7", "tooljet_query_status": "success"})
    results = samples.snapshot("tooljet_plugin_query_result_total",
                               {"tooljet_datasource_kind": "sqlite", "tooljet_query_result": "success"})
    run(sample_db, "SELECT * FROM items WHERE id < :limit", limit=10)
    run(sample_db, "SELECT count(*) FROM items")
    error = None
    try:
        run(sample_db, "SELECT * FROM no_such_table")
    except plugins.PluginError as exc:
        error = exc
    assert error is not None
    error_results = samples.value("tooljet_plugin_query_result_total",
                                  {"tooljet_datasource_kind": "sqlite", "tooljet_query_result": error.code})
    assert (ok(), failed(), durations(), results()) == (2, 1, 2, 2)
    assert error_results >= 1


def test_phases_bytes_and_connection_times(sample_db, samples):
    phases = {phase: samples.snapshot("tooljet_plugin_operation_latency_seconds_count", {
        "tooljet_datasource_kind": "sqlite", "tooljet_operation_phase": phase}) for phase in plugins.PHASES}
    received = samples.snapshot("tooljet_plugin_data_transfer_size_bytes_sum",
                                {"tooljet_datasource_kind": "sqlite", "tooljet_operation_type": "query_result"})
    created = samples.snapshot("tooljet_plugin_connection_create_duration_seconds_count",
                               {"tooljet_datasource_kind": "sqlite", "tooljet_organization_id": "7"})
    used = samples.snapshot("tooljet_plugin_connection_use_duration_seconds_count",
                            {"tooljet_datasource_kind": "sqlite"})
    first = run(sample_db, "SELECT * FROM items")
    second = run(sample_db, "SELECT * FROM items WHERE id = :id", id=3)
    assert all(delta() == 2 for delta in phases.values())
    assert received() == first.bytes + second.bytes
    assert created() == 1  # the second run reused the cached connection
    assert used() == 2


def test_cache_gauges_are_sampled_and_drop_to_zero(sample_db, samples):
    run(sample_db, "SELECT 1", data_source_id=902, organization_id=8)
    api.flush(sample=True)
    labels = {"tooljet_datasource_kind": "sqlite", "tooljet_organization_id": "8"}
    assert samples.value("tooljet_plugin_connection_cached_active", labels) == 1
    assert samples.value("datasource_connections_active", {"datasource_type": "sqlite", "organization_id": "8"}) == 1
    assert samples.value("tooljet_plugin_connection_pool_size",
                         {"tooljet_datasource_kind": "sqlite", "tooljet_connection_type": "idle"}) >= 1
    assert samples.value("db_client_connection_count",
                         {"db_client_connection_pool_name": "plugins.sqlite", "db_system": "sqlite"}) >= 1
    plugins.connection_cache.clear()
    api.flush(sample=True)
    assert samples.value("tooljet_plugin_connection_cached_active", labels) == 0


def test_plugin_time_counts_as_external_time_of_the_request(sample_db, samples):
    from telemetry.core.context import RequestContext, current_request

    context = RequestContext(0.0)
    token = current_request.set(context)
    try:
        run(sample_db, "SELECT * FROM items")
    finally:
        current_request.reset(token)
    assert context.external_time > 0
