"""The ``TELEMETRY`` settings dict laid over ``DEFAULTS``.

Read through :func:`get_settings`, cached and cleared on ``setting_changed`` so that
``override_settings(TELEMETRY=...)`` works in tests. Never read at import time.
Every key is documented in the configuration table of docs/configuration.md.
"""

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # One switch per signal. Off means the hooks are not installed at all.
    "METRICS_ENABLED": True,
    "TRACES_ENABLED": True,
    "LOGS_ENABLED": True,
    # Traces: service name when OTEL_SERVICE_NAME is not set; tail sampling when a
    # trace's local root ends (every error, every root slower than TRACE_SLOW_MS, and
    # TRACE_SAMPLE_RATE of the rest, deterministic on the trace id); queue bounds.
    "SERVICE_NAME": "tooljet",
    "TRACE_SAMPLE_RATE": 0.1,
    "TRACE_SLOW_MS": 1000,
    "TRACE_QUEUE_MAX": 50_000,
    # Requests under these paths make no trace: scrapes, health checks, telemetry's own pages.
    "TRACE_EXCLUDED_PATHS": ["/metrics", "/health", "/telemetry/", "/admin/telemetry/"],
    # Keep third-party spans' raw SQL (db.statement) instead of its normalized form.
    "TRACE_CAPTURE_SQL": False,
    # The trace store writer's circuit breaker: after this many consecutive failed writes
    # it writes nothing for the seconds (kept spans and log records dropped and counted as
    # ``store_unavailable``), then tries one batch; its success closes the breaker. A few
    # seconds: traces flow again soon after the store returns, and a dead store costs one
    # write attempt per process per cool-down.
    "TRACE_STORE_BREAKER_FAILURES": 3,
    # The longest one write of telemetry's own threads (the trace store writer, the
    # sampler's upserts) may wait on the store: past it the connection's socket is shut down,
    # the write fails and is counted (a hung store never holds those threads).
    "STORE_TIMEOUT_SECONDS": 5.0,
    "TRACE_STORE_BREAKER_SECONDS": 5.0,
    # How often the trace store writer's thread writes what it decided (it decides and exports
    # every FLUSH_INTERVAL_SECONDS): a write's fixed cost (~250 k instructions: the connection
    # check, the statement's round trip and deadline) is paid once per interval, not per
    # tick. Sooner when 1,000 rows wait; 0 writes at every tick. ``api.flush()`` and process
    # exit write at once.
    "TRACE_WRITE_INTERVAL_SECONDS": 5.0,
    # Retention of stored traces and logs (Celery beat, in batches).
    "TRACE_RETENTION_DAYS": 7,
    "TRACE_RETENTION_MAX_SPANS": 1_000_000,
    "LOG_RETENTION_MAX_ROWS": 200_000,
    # Retention of query intelligence, release statistics and user activity (Celery beat,
    # ``telemetry.purge_stored``): rows older than the days, then the oldest beyond the count.
    "QUERY_STATS_RETENTION_DAYS": 30,
    "QUERY_STATS_MAX_ROWS": 500_000,
    "QUERY_FINDINGS_RETENTION_DAYS": 30,
    "QUERY_FINDINGS_MAX_ROWS": 100_000,
    "QUERY_PLANS_RETENTION_DAYS": 30,
    "QUERY_PLANS_MAX_ROWS": 10_000,
    "QUERY_REPORTS_RETENTION_DAYS": 30,
    "QUERY_REPORTS_MAX_ROWS": 2_000,
    "RELEASE_STATS_RETENTION_DAYS": 180,
    "RELEASE_STATS_MAX_ROWS": 200_000,
    "ROUTE_STATS_RETENTION_DAYS": 400,
    "ROUTE_STATS_MAX_ROWS": 2_000_000,
    "USER_ACTIVITY_RETENTION_DAYS": 7,
    # Log records at this level and above are kept with their trace (LogEntry).
    "LOG_STORE_LEVEL": "WARNING",
    "LOG_QUEUE_MAX": 10_000,
    # Stored log rows per logger and message template a minute; the rest are counted.
    "LOG_RATE_LIMIT_PER_MINUTE": 10,
    # Prefix of the namespaced families (``django_task_executions_total``, ...): they describe
    # the Django project's own work, as django-prometheus's ``django_*`` families do (no name
    # is shared with them). A product sets its own; the platform's is ``tooljet``.
    "NAMESPACE": "django",
    # Optional metric domains exported from the start: families only a low-code platform
    # drives ("plugins", "datasources", "apps", "benchmarks", "storage"). A domain not listed
    # is exported once the host first reports into it through ``telemetry.api`` (or sets
    # STORAGE_USAGE_PROVIDER, for "storage"); a fresh project exports none of them.
    "METRIC_DOMAINS": [],
    # Database alias that holds what telemetry stores; "default" when the project has none.
    "DATABASE_ALIAS": "telemetry",
    # Dotted path to ``callable(request) -> organization id or None``. The usage admin page
    # and the organization filters appear once organizations are configured: this set to
    # another function, or a user resolver set (see ``organizations_configured``).
    "ORGANIZATION_RESOLVER": "telemetry.core.organization.from_request_attribute",
    # Dotted path to ``callable(user) -> organization id, a list of them, or None``: the
    # organizations whose traces and logs the user may read in the API; logins count for
    # the first.
    "USER_ORGANIZATION_RESOLVER": None,
    # Dotted path to ``callable(user) -> organization id, a list of them, or None``: the
    # organizations whose usage the user may read in the API (e.g. the ones they administer);
    # None: staff only.
    "USAGE_ORGANIZATION_RESOLVER": None,
    # Dotted path to ``callable(ids) -> {id: name}``: organization names on the admin pages
    # (asked once per page with the ids it shows); None: ids are shown.
    "ORGANIZATION_NAME_RESOLVER": None,
    # /metrics access: a bearer token, an IP allowlist (addresses or CIDR networks);
    # with neither, only loopback may scrape.
    "METRICS_TOKEN": "",
    "METRICS_ALLOWED_IPS": [],
    # Reverse proxies whose X-Forwarded-For /metrics believes (addresses or CIDR networks).
    # A request that carries forwarding headers from any other peer is never loopback.
    "METRICS_TRUSTED_PROXIES": [],
    # Readiness (/health): each check waits at most this long, one run per check is in
    # flight and its result is reused for HEALTH_CACHE_SECONDS; the broker is checked when
    # Celery is configured (None: when CELERY_BROKER_URL is set), or as forced here.
    "HEALTH_CHECK_TIMEOUT_SECONDS": 2.0,
    "HEALTH_CACHE_SECONDS": 1.0,
    "HEALTH_CHECK_BROKER": None,
    # Cardinality caps: distinct values per label before the ``other`` bucket.
    "MAX_ORGANIZATIONS": 200,
    "MAX_APPS": 500,
    "MAX_QUERY_NAMES": 500,
    "MAX_QUERY_PATTERNS": 200,
    "MAX_ROUTES": 500,
    "MAX_TABLES": 500,
    # prometheus-client's ``*_created`` sample beside every counter and histogram series of a
    # single-process scrape: Prometheus' text format stores each as a series of its own, so
    # they are off (process-wide: the host's own families too); multiprocess output has none.
    "METRICS_CREATED_SERIES": False,
    # Series budgets: beyond these, a family's new label sets fold into one series whose
    # labels are all "other" (counted in telemetry_series_folded_total{family}).
    "MAX_SERIES_PER_FAMILY": 1000,
    "MAX_SERIES_TOTAL": 20_000,
    # Path prefixes whose requests count as API calls (``api_calls_total``).
    "API_PATH_PREFIXES": ["/api/"],
    # Statements slower than this are "slow" (milliseconds).
    "SLOW_QUERY_MS": 200,
    # Per-fingerprint statistics and runtime detectors (query intelligence).
    "QUERY_STATS_ENABLED": True,
    # Record the statements of management commands (``migrate``, data seeds, ``shell``) as
    # any other: off, they are in no metric, fingerprint, finding, report or trace, as
    # telemetry's own statements (its admin pages, views, tasks and writers) never are.
    "QUERY_STATS_MANAGEMENT_COMMANDS": False,
    # Runtime query detectors: repetitions of one fingerprint with different parameters
    # in one request that make an N+1, and rows a SELECT without LIMIT may return.
    "N_PLUS_ONE_THRESHOLD": 5,
    "ADD_LIMIT_ROWS": 1000,
    # Static suggestion thresholds of telemetry.queries.sql.analyze(): IN-list items beyond which
    # `large_in_list`, OFFSET rows beyond which `offset_pagination`, JOINs in one SELECT
    # from which `consider_join_optimization`.
    "LARGE_IN_LIST_ITEMS": 100,
    "OFFSET_PAGINATION_ROWS": 1000,
    "MAX_JOINS": 4,
    # Bounds of the analysis of one statement (a cache miss): beyond this many tokens it is
    # not parsed; tokenizing, parsing and the rules stop after these milliseconds of the
    # thread's CPU time. Either way it is fingerprinted by a regular expression (literals
    # replaced), marked unanalysed and counted in telemetry_sql_unparsed_total.
    "SQL_MAX_TOKENS": 1000,
    "SQL_ANALYZE_BUDGET_MS": 20.0,
    # Plans of slow PostgreSQL statements: EXPLAIN (FORMAT JSON, never ANALYZE) off the
    # request path, at most once per fingerprint per interval and this many per minute.
    "EXPLAIN_ENABLED": True,
    "EXPLAIN_PER_MINUTE": 10,
    "EXPLAIN_INTERVAL_SECONDS": 600,
    # Index advice: scans an index could serve (filters, sorts under a LIMIT, join sides) on
    # tables of at least this many rows become ``missing_index`` candidates, kept when a
    # HypoPG hypothetical index cuts the planner's cost by at least this share; none for a
    # filter estimated to keep more than this share of the table's rows (an index would
    # not beat the scan). ``unused_index`` needs the same table size.
    "HYPOPG_ENABLED": True,
    "HYPOPG_MIN_GAIN": 0.5,
    "MISSING_INDEX_MIN_ROWS": 10_000,
    "MISSING_INDEX_MAX_SELECTIVITY": 0.2,
    # ``unused_index`` only once PostgreSQL's statistics have been gathered for this many
    # days (since ``pg_stat_database.stats_reset``, else the server's start): an index read
    # by a weekly job looks unused for six days.
    "UNUSED_INDEX_MIN_OBSERVATION_DAYS": 7,
    # Fingerprints per ranking in the slow-query report; period of both reports (hours).
    "REPORT_TOP_N": 20,
    "REPORT_PERIOD_HOURS": 24,
    # Apdex target for the release performance score (seconds).
    "APDEX_TARGET_SECONDS": 0.5,
    # The mildest regression class (minor: +<20 %, moderate: +20-50 %, severe: +50 % or more,
    # each significant by Welch's t) that makes ``manage.py telemetry_release_check`` exit 1.
    "RELEASE_CHECK_FAIL_ON": "moderate",
    # Hot-path events are buffered and applied in batches by a background thread.
    "FLUSH_INTERVAL_SECONDS": 1.0,
    "BUFFER_MAX_EVENTS": 100_000,
    # Active users: a user counts as active for this many seconds after a request.
    "ACTIVE_USER_WINDOW_SECONDS": 300,
    # Dotted path to ``callable() -> [(type, organization id, bytes), ...]`` for storage usage.
    "STORAGE_USAGE_PROVIDER": None,
    # Hourly per-organization usage rollups older than this are deleted (Celery beat).
    "USAGE_RETENTION_DAYS": 90,
    # Broker queues whose depth is sampled (default: Celery's default queue).
    "QUEUE_DEPTH_QUEUES": [],
    # Process resource sampling period (memory, CPU, DB pool gauges).
    "SAMPLE_INTERVAL_SECONDS": 10.0,
}


@lru_cache(maxsize=1)
def get_settings() -> dict[str, Any]:
    merged = dict(DEFAULTS)
    merged.update(getattr(settings, "TELEMETRY", {}) or {})
    return merged


def get(name: str, default: Any = None) -> Any:
    return get_settings().get(name, default)


def seconds(name: str) -> float:
    """Setting ``name``, a duration: a finite number of seconds, zero or more; any other
    value (a string from the environment, a negative number) is replaced by its default,
    since a typo in ``TELEMETRY`` must not stop one of telemetry's threads."""
    value = get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf:
        return float(value)
    return float(DEFAULTS[name])


def organizations_configured() -> bool:
    """Whether the project has organizations: a resolver of its own for requests, or one
    for users (``USER_ORGANIZATION_RESOLVER``, ``USAGE_ORGANIZATION_RESOLVER``). The default
    resolver (``request.organization_id``) alone finds nothing in a project whose views
    never set it, so it does not count."""
    settings_now = get_settings()
    return (settings_now["USER_ORGANIZATION_RESOLVER"] is not None
            or settings_now["USAGE_ORGANIZATION_RESOLVER"] is not None
            or settings_now["ORGANIZATION_RESOLVER"] != DEFAULTS["ORGANIZATION_RESOLVER"])


_change_callbacks: list[Callable[[], object]] = []


def on_change(callback: Callable[[], object]) -> None:
    """Calls ``callback()`` now and whenever the settings change: for hot paths that keep
    a setting in a module variable instead of looking it up per call."""
    if callback not in _change_callbacks:
        _change_callbacks.append(callback)
    callback()


@receiver(setting_changed)
def _clear_cache(*, setting, **kwargs):
    if setting in ("TELEMETRY", "DATABASES"):
        get_settings.cache_clear()
        for callback in _change_callbacks:
            callback()
