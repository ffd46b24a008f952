"""HTTP server metrics (OpenTelemetry HTTP semantic conventions, Prometheus names)."""

from types import SimpleNamespace

from telemetry.metrics.base import SIZE_BUCKETS, gauge, histogram


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
    )
