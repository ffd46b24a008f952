"""HTTP server metrics (OpenTelemetry HTTP semantic conventions, Prometheus names).

``requests`` and ``statements_in_requests`` are the crash-safe counts: the middleware
increments them on the request thread before the response leaves, so under gunicorn
they are in the multiprocess files even if the worker is killed the next instant.
Everything else here is applied by the flusher.
"""

from types import SimpleNamespace

from telemetry.metrics.base import SIZE_BUCKETS, counter, gauge, histogram


def define(namespace: str) -> SimpleNamespace:
    return SimpleNamespace(
        request_duration=histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP requests, by method, route template, status and organization.",
            ["http_request_method", "http_route", "http_response_status_code", "organization_id"],
        ),
        active_requests=gauge(
            "http_server_active_requests",
            "HTTP requests being served now.",
            ["http_request_method", "http_route", "url_scheme"],
        ),
        request_body_size=histogram(
            "http_server_request_body_size_bytes",
            "Size of HTTP request bodies.",
            ["http_request_method", "http_route"],
            SIZE_BUCKETS,
        ),
        response_body_size=histogram(
            "http_server_response_body_size_bytes",
            "Size of HTTP response bodies.",
            ["http_request_method", "http_route", "http_response_status_code"],
            SIZE_BUCKETS,
        ),
        requests=counter(
            "http_server_requests",
            "HTTP requests served, counted on the request thread before the response is sent.",
            ["http_request_method", "http_route", "http_response_status_code"],
        ),
        statements_in_requests=counter(
            "db_client_operations_in_requests",
            "Database statements run by HTTP requests, added once per request before its response is sent.",
            ["http_request_method", "http_route", "http_response_status_code"],
        ),
    )
