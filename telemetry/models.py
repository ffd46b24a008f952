"""What telemetry stores, on its own database alias (see ``routers.py``)."""

from django.contrib.postgres.indexes import GinIndex
from django.db import models


class UserActivity(models.Model):
    """Last request time per user: the sliding window behind ``active_users_current``,
    so no scrape ever scans the session table."""

    user_id = models.BigIntegerField(unique=True)
    organization_id = models.CharField(max_length=64, blank=True, default="")
    last_seen = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"user {self.user_id} last seen {self.last_seen:%Y-%m-%d %H:%M:%S %Z}"

    class Meta:
        verbose_name_plural = "user activity"


class ReleaseRouteStats(models.Model):
    """Latency per release, route and hour: what release comparison reads. Written by
    increment-upserts from every process; never one row per request."""

    release = models.CharField(max_length=64)
    route = models.CharField(max_length=255)
    hour = models.DateTimeField()
    count = models.BigIntegerField(db_default=0)
    total_seconds = models.FloatField(db_default=0.0)
    total_squares = models.FloatField(db_default=0.0)
    #: Apdex counts: requests within the target, and within four times the target.
    satisfied = models.BigIntegerField(db_default=0)
    tolerating = models.BigIntegerField(db_default=0)
    max_seconds = models.FloatField(db_default=0.0)

    def __str__(self) -> str:
        return f"{self.release} {self.route} {self.hour:%Y-%m-%d %H:00 %Z} ({self.count} requests)"

    class Meta:
        constraints = [models.UniqueConstraint(fields=["release", "route", "hour"], name="unique_release_route_hour")]
        indexes = [models.Index(fields=["release", "hour"])]
        verbose_name_plural = "release route stats"


class LatencyHistogram(models.Model):
    """A latency histogram kept per row for p50 / p95 / p99 (statements, routes): one
    column per bucket keeps it summable by increment-upserts."""

    #: Upper bounds (ms) of the buckets; the last column counts what is above them all.
    #: Floats: every statement's and request's duration (a float) is compared with them,
    #: and an int-float comparison costs more than a float-float one.
    BUCKETS_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0)

    bucket_0 = models.BigIntegerField(db_default=0)
    bucket_1 = models.BigIntegerField(db_default=0)
    bucket_2 = models.BigIntegerField(db_default=0)
    bucket_3 = models.BigIntegerField(db_default=0)
    bucket_4 = models.BigIntegerField(db_default=0)
    bucket_5 = models.BigIntegerField(db_default=0)
    bucket_6 = models.BigIntegerField(db_default=0)
    bucket_7 = models.BigIntegerField(db_default=0)
    bucket_8 = models.BigIntegerField(db_default=0)
    bucket_9 = models.BigIntegerField(db_default=0)
    bucket_10 = models.BigIntegerField(db_default=0)
    bucket_11 = models.BigIntegerField(db_default=0)
    bucket_12 = models.BigIntegerField(db_default=0)
    bucket_13 = models.BigIntegerField(db_default=0)
    bucket_14 = models.BigIntegerField(db_default=0)

    class Meta:
        abstract = True

    @classmethod
    def bucket_fields(cls) -> list[str]:
        return [f"bucket_{index}" for index in range(len(cls.BUCKETS_MS) + 1)]


class QueryStat(LatencyHistogram):
    """Per-fingerprint statistics per database alias and hour, like pg_stat_statements:
    written by increment-upserts from every process, so totals are exact."""

    fingerprint_id = models.CharField(max_length=32)
    alias = models.CharField(max_length=64)
    hour = models.DateTimeField()
    fingerprint = models.TextField()
    operation = models.CharField(max_length=32, db_default="other")
    tables = models.CharField(max_length=255, db_default="")
    complexity = models.CharField(max_length=16, db_default="unknown")
    complexity_score = models.FloatField(null=True)
    suggestions = models.CharField(max_length=255, db_default="")
    calls = models.BigIntegerField(db_default=0)
    total_ms = models.FloatField(db_default=0.0)
    total_squares_ms = models.FloatField(db_default=0.0)
    min_ms = models.FloatField(db_default=0.0)
    max_ms = models.FloatField(db_default=0.0)
    rows = models.BigIntegerField(db_default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.operation} {self.tables or '-'} {self.hour:%Y-%m-%d %H:00 %Z} ({self.calls} calls)"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["fingerprint_id", "alias", "hour"], name="unique_query_stat_hour"),
        ]
        indexes = [models.Index(fields=["hour"]), models.Index(fields=["fingerprint_id"])]

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0


class RouteStat(LatencyHistogram):
    """Requests per route and hour, with their status classes and latency histogram: what
    the overview page reads, never the spans. Written by increment-upserts from every
    process, so counts are exact and independent of sampling."""

    route = models.CharField(max_length=255)
    hour = models.DateTimeField()
    requests = models.BigIntegerField(db_default=0)
    #: Responses with a 4xx and with a 5xx status.
    client_errors = models.BigIntegerField(db_default=0)
    server_errors = models.BigIntegerField(db_default=0)
    total_ms = models.FloatField(db_default=0.0)
    max_ms = models.FloatField(db_default=0.0)

    def __str__(self) -> str:
        return f"{self.route} {self.hour:%Y-%m-%d %H:00 %Z} ({self.requests} requests)"

    class Meta:
        constraints = [models.UniqueConstraint(fields=["route", "hour"], name="unique_route_stat_hour")]
        indexes = [models.Index(fields=["hour"], name="telemetry_route_stat_hour")]
        verbose_name = "overview"
        verbose_name_plural = "overview"


class QueryFinding(models.Model):
    """A runtime detection (n_plus_one, duplicate_query, add_limit_clause, slow) with its
    evidence: normalized statement, call site, route, organization, trace id. Never the
    parameter values. ``remedy`` is the ORM change that removes an N+1 or a duplicate
    (``telemetry.queries.remedies``: kind, model, queryset, call, text); empty otherwise."""

    code = models.CharField(max_length=32)
    fingerprint_id = models.CharField(max_length=32)
    fingerprint = models.TextField()
    alias = models.CharField(max_length=64)
    route = models.CharField(max_length=255, blank=True, default="")
    organization_id = models.CharField(max_length=64, blank=True, default="")
    call_site = models.CharField(max_length=500, blank=True, default="")
    duration_ms = models.FloatField(default=0.0)
    repetitions = models.IntegerField(default=1)
    rows = models.BigIntegerField(default=-1)
    trace_id = models.CharField(max_length=32, blank=True, default="")
    remedy = models.JSONField(default=dict, blank=True)
    #: The detections this row stands for in its process (itself and those the once-a-minute
    #: limit folded into it since the previous one) and their summed ``duration_ms``.
    occurrences = models.IntegerField(default=1)
    occurrences_ms = models.FloatField(default=0.0)
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        where = self.route or self.alias
        return f"{self.code.replace('_', ' ')} on {where} ({self.repetitions}x, {self.duration_ms:.1f} ms)"

    class Meta:
        indexes = [models.Index(fields=["code", "-created_at"]), models.Index(fields=["fingerprint_id"])]


class Trace(models.Model):
    """One kept trace, summarised when its local root span ends: what the trace list
    reads, so the list never scans spans (indexes serve each filter with ``-start``)."""

    trace_id = models.CharField(max_length=32, unique=True)
    root_name = models.CharField(max_length=255)
    service = models.CharField(max_length=128, blank=True, default="")
    route = models.CharField(max_length=255, blank=True, default="")
    method = models.CharField(max_length=16, blank=True, default="")
    status_code = models.IntegerField(null=True, blank=True)
    #: ``ok`` or ``error`` (any span failed, or a 5xx response).
    status = models.CharField(max_length=8, default="ok")
    organization_id = models.CharField(max_length=64, blank=True, default="")
    start = models.DateTimeField()
    duration_ms = models.FloatField()
    span_count = models.IntegerField(default=0)
    is_slow = models.BooleanField(default=False)
    #: Why it was kept: ``error``, ``slow`` or ``sampled``.
    kept_because = models.CharField(max_length=16, default="sampled")

    class Meta:
        indexes = [
            models.Index(fields=["-start"], name="telemetry_trace_start"),
            models.Index(fields=["route", "-start"], name="telemetry_trace_route"),
            models.Index(fields=["organization_id", "-start"], name="telemetry_trace_org"),
            models.Index(fields=["status", "-start"], name="telemetry_trace_status"),
            models.Index(fields=["duration_ms"], name="telemetry_trace_duration"),
            models.Index(fields=["status_code", "-start"], name="telemetry_trace_status_code"),
        ]

    def __str__(self):
        return f"{self.root_name} {self.trace_id}"


class Span(models.Model):
    """A finished span of a kept trace. Times are epoch nanoseconds so the waterfall
    keeps the precision OpenTelemetry gives; attributes are already sanitised (normalized
    SQL, no secrets) when they reach this table."""

    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    parent_span_id = models.CharField(max_length=16, blank=True, default="")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, default="internal")
    service = models.CharField(max_length=128, blank=True, default="")
    start_ns = models.BigIntegerField()
    end_ns = models.BigIntegerField()
    duration_ms = models.FloatField()
    #: ``unset``, ``ok`` or ``error``.
    status = models.CharField(max_length=8, default="unset")
    status_message = models.CharField(max_length=255, blank=True, default="")
    attributes = models.JSONField(default=dict)
    events = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"{self.name} ({self.duration_ms:.1f} ms)"

    class Meta:
        indexes = [
            models.Index(fields=["trace_id", "start_ns"], name="telemetry_span_trace"),
            # Retention finds spans whose trace row is gone (a late span of a lost batch) by age.
            models.Index(fields=["start_ns"], name="telemetry_span_start"),
            # The trace list's attribute search (``attributes @> {key: value}``), on PostgreSQL
            # only (migration 0010 skips it elsewhere, where the search is bounded instead).
            GinIndex(fields=["attributes"], opclasses=["jsonb_path_ops"], name="telemetry_span_attributes"),
        ]
        constraints = [models.UniqueConstraint(fields=["trace_id", "span_id"], name="unique_span_in_trace")]


class LogEntry(models.Model):
    """A warning or error log record kept with its trace (level is a setting)."""

    time = models.DateTimeField()
    level = models.CharField(max_length=16)
    level_number = models.SmallIntegerField()
    logger = models.CharField(max_length=255)
    message = models.TextField()
    trace_id = models.CharField(max_length=32, blank=True, default="")
    span_id = models.CharField(max_length=16, blank=True, default="")
    attributes = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.level} {self.logger}: {self.message[:80]}"

    class Meta:
        indexes = [
            models.Index(fields=["-time"], name="telemetry_log_time"),
            models.Index(fields=["trace_id"], name="telemetry_log_trace"),
            models.Index(fields=["level_number", "-time"], name="telemetry_log_level"),
        ]
        verbose_name_plural = "log entries"


class QueryPlan(models.Model):
    """The latest plan of a slow PostgreSQL statement per fingerprint and alias:
    EXPLAIN (FORMAT JSON) with literals scrubbed, never ANALYZE, never the parameters.
    ``candidates`` holds the index advice proven at capture time, when the real
    parameters were still in memory (see ``telemetry.queries.advice``)."""

    fingerprint_id = models.CharField(max_length=32)
    alias = models.CharField(max_length=64)
    fingerprint = models.TextField()
    plan = models.JSONField(default=list)
    total_cost = models.FloatField(default=0.0)
    #: Sequential scans with a filter: ``[{table, rows, cost, filter}]``.
    seq_scans = models.JSONField(default=list)
    #: ``[{table, columns, create_statement, cost_before, cost_after, gain, proven}]``.
    candidates = models.JSONField(default=list)
    duration_ms = models.FloatField(default=0.0)
    captured_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"plan of {self.fingerprint[:80]} (cost {self.total_cost:.0f})"

    class Meta:
        constraints = [models.UniqueConstraint(fields=["fingerprint_id", "alias"], name="unique_query_plan")]
        indexes = [models.Index(fields=["-captured_at"], name="telemetry_plan_captured")]


class QueryReport(models.Model):
    """A built report (``slow_queries`` or ``optimization``) for one period; rebuilding
    the same period replaces it, so the admin reads stored results only."""

    KINDS = (("slow_queries", "slow queries"), ("optimization", "optimization"))

    kind = models.CharField(max_length=32, choices=KINDS)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    built_at = models.DateTimeField()
    data = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "period_start", "period_end"], name="unique_query_report"),
        ]
        indexes = [models.Index(fields=["kind", "-period_end"], name="telemetry_report_kind")]

    def __str__(self):
        kind = self.get_kind_display().capitalize()
        return f"{kind} {self.period_start:%Y-%m-%d %H:%M} – {self.period_end:%Y-%m-%d %H:%M}"


class QuerySuggestion(models.Model):
    """One ranked suggestion of an optimization report with its evidence: example
    normalized statement, call site, plan, hypothetical-index gain, example trace."""

    report = models.ForeignKey(QueryReport, on_delete=models.CASCADE, related_name="suggestions")
    rank = models.IntegerField()
    code = models.CharField(max_length=32)
    #: ``static`` (statement rules), ``runtime`` (detectors), ``plan`` or ``statistics``.
    source = models.CharField(max_length=16)
    fingerprint_id = models.CharField(max_length=32, blank=True, default="")
    fingerprint = models.TextField(blank=True, default="")
    alias = models.CharField(max_length=64, blank=True, default="")
    table = models.CharField(max_length=255, blank=True, default="")
    columns = models.CharField(max_length=255, blank=True, default="")
    create_statement = models.TextField(blank=True, default="")
    proven = models.BooleanField(null=True)
    estimated_gain = models.FloatField(null=True)
    share_of_db_time = models.FloatField(default=0.0)
    evidence = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"#{self.rank} {self.code.replace('_', ' ')} {self.table}".rstrip()

    class Meta:
        indexes = [models.Index(fields=["report", "rank"], name="telemetry_suggestion_rank")]
        ordering = ["rank"]


class OrganizationUsage(models.Model):
    """Usage per organization and hour: what the usage dashboard reads. Counts are
    written by increment-upserts from every process (exact, independent of trace
    sampling); ``active_users`` is the hour's peak of the sliding-window count and
    ``storage_bytes`` the hour's latest storage sample (``NULL``: not sampled)."""

    organization_id = models.CharField(max_length=64)
    hour = models.DateTimeField()
    requests = models.BigIntegerField(db_default=0)
    #: Responses with a 5xx status.
    errors = models.BigIntegerField(db_default=0)
    #: Successful viewer loads (``app_view`` requests below 400).
    app_loads = models.BigIntegerField(db_default=0)
    query_runs = models.BigIntegerField(db_default=0)
    query_failures = models.BigIntegerField(db_default=0)
    active_users = models.IntegerField(db_default=0)
    storage_bytes = models.BigIntegerField(null=True)

    def __str__(self) -> str:
        return f"organization {self.organization_id} {self.hour:%Y-%m-%d %H:00 %Z}"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization_id", "hour"], name="unique_organization_usage_hour"),
        ]
        # The unique index serves "one organization, recent hours"; this one the window
        # over every organization and retention.
        indexes = [models.Index(fields=["hour"], name="telemetry_usage_hour")]
        verbose_name_plural = "organization usage"


class OrganizationDatasourceUsage(models.Model):
    """Datasource query runs per organization, hour and datasource kind: one row per
    kind keeps every count an increment-upsert."""

    organization_id = models.CharField(max_length=64)
    hour = models.DateTimeField()
    kind = models.CharField(max_length=64)
    runs = models.BigIntegerField(db_default=0)
    failures = models.BigIntegerField(db_default=0)

    def __str__(self) -> str:
        return f"organization {self.organization_id} {self.kind} {self.hour:%Y-%m-%d %H:00 %Z}"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization_id", "hour", "kind"],
                                    name="unique_organization_datasource_hour"),
        ]
        indexes = [models.Index(fields=["hour"], name="telemetry_ds_usage_hour")]
        verbose_name_plural = "organization datasource usage"
