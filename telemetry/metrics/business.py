"""Business analytics: users, apps, queries, API calls, resources, storage."""

from types import SimpleNamespace

from telemetry.metrics.base import (
    COARSE_DURATION_BUCKETS,
    PER_ROUTE_DURATION_BUCKETS,
    SESSION_BUCKETS,
    counter,
    gauge,
    histogram,
)


def define(namespace: str) -> SimpleNamespace:
    return SimpleNamespace(
        logins=counter(
            "user_logins", "Login attempts, by status, method and organization.",
            ["status", "method", "organization_id"],
        ),
        session_duration=histogram(
            "user_session_duration_seconds",
            "Session length at logout or expiry (the seed's user_id label is dropped: unbounded).",
            ["organization_id"],
            SESSION_BUCKETS,
        ),
        feature_usage=counter(
            "user_feature_usage", "Builder features used, by feature, action and organization.",
            ["feature", "action", "organization_id"],
        ),
        active_users=gauge(
            "active_users_current",
            "Distinct users with a request in the sliding window, by organization and scope.",
            ["organization_id", "scope"],
            multiprocess_mode="mostrecent",
        ),
        app_load_time=histogram(
            "app_load_time_seconds", "Viewer load time of released apps.",
            ["app_id", "environment", "mode"],
            COARSE_DURATION_BUCKETS,
        ),
        app_query_execution=histogram(
            "app_query_execution_seconds", "Duration of app queries, by app, query, status and datasource.",
            ["app_id", "query_name", "status", "datasource_type"],
            # A series per app query: which query got slower. The datasource run inside it
            # has the fine layout in the plugin family.
            COARSE_DURATION_BUCKETS,
        ),
        app_errors=counter(
            "app_errors", "App errors, by app, error type and component.",
            ["app_id", "error_type", "component"],
        ),
        api_calls=counter(
            "api_calls", "API calls, by endpoint (route template), method and status.",
            ["endpoint", "method", "status_code", "status_class"],
        ),
        api_call_duration=histogram(
            "api_call_duration_seconds", "Duration of API calls, by endpoint and method.",
            ["endpoint", "method"],
            PER_ROUTE_DURATION_BUCKETS,
        ),
        datasource_connections=gauge(
            "datasource_connections_active",
            "Datasource connections open in plugin connection caches, by type and organization.",
            ["datasource_type", "organization_id"],
        ),
        resource_utilization=gauge(
            "resource_utilization_percent",
            "Process resource use in percent (memory of system RAM, CPU of one core), summed over processes.",
            ["resource_type", "component"],
        ),
        storage_usage=gauge(
            "storage_usage_bytes",
            "Stored bytes per organization and type, computed by a periodic task.",
            ["type", "organization_id"],
            multiprocess_mode="mostrecent",
        ),
    )
