"""Database client metrics for Django's connections and the pools we run."""

from types import SimpleNamespace

from telemetry.metrics.base import COARSE_DURATION_BUCKETS, DB_DURATION_BUCKETS, ROW_BUCKETS, counter, gauge, histogram


def define(namespace: str) -> SimpleNamespace:
    return SimpleNamespace(
        operation_duration=histogram(
            "db_client_operation_duration_seconds",
            "Duration of database statements, by system, operation, table and organization.",
            ["db_system", "db_operation_name", "db_collection_name", "organization_id"],
            DB_DURATION_BUCKETS,
        ),
        operation_count=counter(
            "db_client_operation_count",
            "Database statements executed.",
            ["db_system", "db_operation_name", "db_collection_name"],
        ),
        returned_rows=histogram(
            "db_client_response_returned_rows",
            "Rows returned (or affected) per statement.",
            ["db_system", "db_operation_name"],
            ROW_BUCKETS,
        ),
        connection_count=gauge(
            "db_client_connection_count",
            "Open database connections, by pool (Django alias or plugin pool) and system.",
            ["db_client_connection_pool_name", "db_system"],
        ),
        connection_wait_time=histogram(
            "db_client_connection_wait_time_seconds",
            "Time to obtain a connection (new connection or pool checkout).",
            ["db_system"],
            COARSE_DURATION_BUCKETS,
        ),
        connection_timeouts=counter(
            "db_client_connection_timeouts",
            "Attempts to obtain a connection that timed out.",
            ["db_system"],
        ),
        connection_idle_max=gauge(
            "db_client_connection_idle_max",
            "Maximum idle connections the pool keeps.",
            ["db_client_connection_pool_name"],
        ),
        connection_pending_requests=gauge(
            "db_client_connection_pending_requests",
            "Requests waiting for a connection from the pool.",
            ["db_client_connection_pool_name"],
        ),
    )
