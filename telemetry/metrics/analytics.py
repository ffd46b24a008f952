"""Advanced analytics: time breakdown, external calls, app operations, query
intelligence and release benchmarks."""

from types import SimpleNamespace

from telemetry.metrics.base import COARSE_DURATION_BUCKETS, PER_ROUTE_DURATION_BUCKETS, counter, gauge, histogram


def define(namespace: str) -> SimpleNamespace:
    ns = namespace
    return SimpleNamespace(
        api_breakdown=histogram(
            f"{ns}_api_breakdown_duration_seconds",
            "Request time split into database, external and application time.",
            ["http_route", f"{ns}_operation_type"],
            PER_ROUTE_DURATION_BUCKETS,
        ),
        external_operation=histogram(
            f"{ns}_api_external_operation_duration_seconds",
            "Duration of calls to external systems, by operation and provider.",
            [f"{ns}_external_operation", f"{ns}_external_provider"],
            COARSE_DURATION_BUCKETS,
        ),
        app_builder_viewer=histogram(
            f"{ns}_app_builder_viewer_performance_seconds",
            "Duration of app builder and viewer operations, with the request's query count (bucketed).",
            ["http_route", f"{ns}_app_operation", f"{ns}_app_db_query_count"],
            COARSE_DURATION_BUCKETS,
        ),
        query_complexity=gauge(
            f"{ns}_db_query_complexity",
            "Complexity score of the most recent analysed statement, by operation and system.",
            ["db_operation_name", "db_system"],
            multiprocess_mode="mostrecent",
        ),
        query_slow=counter(
            f"{ns}_db_query_slow",
            "Statements slower than SLOW_QUERY_MS, by operation and complexity class.",
            ["db_operation_name", f"{ns}_query_complexity"],
        ),
        query_pattern=counter(
            f"{ns}_db_query_pattern",
            "Statements by pattern (operation and tables, capped).",
            ["db_operation_name", f"{ns}_query_pattern"],
        ),
        optimization_suggestions=counter(
            f"{ns}_db_query_optimization_suggestions",
            "Statements executed that carry an optimization suggestion, by code.",
            [f"{ns}_optimization_suggestion"],
        ),
        benchmark_duration=histogram(
            f"{ns}_benchmark_duration_seconds",
            "Route latency per release, for release comparison.",
            [f"{ns}_release_version", "http_route", f"{ns}_benchmark_type"],
            # Release comparison reads the stored per-release route statistics, not these.
            PER_ROUTE_DURATION_BUCKETS,
        ),
        benchmark_comparison=counter(
            f"{ns}_benchmark_comparison",
            "Release comparisons per route, by significance of the change.",
            [f"{ns}_release_current", f"{ns}_release_previous", f"{ns}_comparison_significance"],
        ),
        benchmark_regression=counter(
            f"{ns}_benchmark_regression_detected",
            "Performance regressions found by release comparison, by class.",
            [f"{ns}_release_current", f"{ns}_regression_type"],
        ),
        benchmark_score=gauge(
            f"{ns}_benchmark_performance_score",
            "Performance score of a release (0-100).",
            [f"{ns}_release_version"],
            multiprocess_mode="mostrecent",
        ),
        benchmark_trend=gauge(
            f"{ns}_benchmark_trend_coefficient",
            "Latency trend per route over recent releases (slope relative to the mean).",
            [f"{ns}_release_version", "http_route"],
            multiprocess_mode="mostrecent",
        ),
    )
