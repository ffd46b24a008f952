"""Datasource plugin metrics, recorded once in the plugin base class for every kind."""

from types import SimpleNamespace

from telemetry.metrics.base import COARSE_DURATION_BUCKETS, SIZE_BUCKETS, counter, gauge, histogram


def define(namespace: str) -> SimpleNamespace:
    ns = namespace
    return SimpleNamespace(
        execution_duration=histogram(
            f"{ns}_plugin_query_execution_duration_seconds",
            "Duration of datasource query runs, by kind, organization and status.",
            [f"{ns}_datasource_kind", f"{ns}_organization_id", f"{ns}_query_status"],
        ),
        execution_count=counter(
            f"{ns}_plugin_query_execution_count",
            "Datasource query runs, by kind and status.",
            [f"{ns}_datasource_kind", f"{ns}_query_status"],
        ),
        result=counter(
            f"{ns}_plugin_query_result",
            "Datasource query results: success, or the error code.",
            [f"{ns}_datasource_kind", f"{ns}_query_result"],
        ),
        connection_cached_active=gauge(
            f"{ns}_plugin_connection_cached_active",
            "Connections held in the plugin connection cache, by kind and organization.",
            [f"{ns}_datasource_kind", f"{ns}_organization_id"],
        ),
        connection_pool_size=gauge(
            f"{ns}_plugin_connection_pool_size",
            "Plugin connection cache size by connection state (active = checked out, idle).",
            [f"{ns}_datasource_kind", f"{ns}_connection_type"],
        ),
        connection_create_duration=histogram(
            f"{ns}_plugin_connection_create_duration_seconds",
            "Time to open a new datasource connection.",
            [f"{ns}_datasource_kind", f"{ns}_organization_id"],
            COARSE_DURATION_BUCKETS,
        ),
        connection_use_duration=histogram(
            f"{ns}_plugin_connection_use_duration_seconds",
            "Time a datasource connection was checked out for one run.",
            [f"{ns}_datasource_kind"],
            COARSE_DURATION_BUCKETS,
        ),
        data_transfer_size=histogram(
            f"{ns}_plugin_data_transfer_size_bytes",
            "Bytes sent to (query) and received from (query_result) datasources.",
            [f"{ns}_datasource_kind", f"{ns}_operation_type"],
            SIZE_BUCKETS,
        ),
        operation_latency=histogram(
            f"{ns}_plugin_operation_latency_seconds",
            "Latency of each phase of a plugin run: connect, execute, serialize.",
            [f"{ns}_datasource_kind", f"{ns}_operation_phase"],
            COARSE_DURATION_BUCKETS,
        ),
    )
