"""Serializers of the telemetry API: query parameters (validated, 400 with field errors)
and the stored rows, which are sanitised when written (normalized SQL, no secrets)."""

from typing import Any

from rest_framework import serializers

from telemetry.models import LogEntry, OrganizationUsage, Trace

TRACE_ID_PATTERN = r"^[0-9a-f]{32}$"
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
MAX_PAGE_SIZE = 200


class TimeRangeQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; only rows at or after this time.")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601; only rows before this time.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE,
                                     help_text=f"Page size (at most {MAX_PAGE_SIZE}).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": "must be later than since."})
        return attrs


class TraceQuerySerializer(TimeRangeQuerySerializer):
    route = serializers.CharField(required=False, max_length=255, help_text="Route template, exact.")
    status = serializers.ChoiceField(required=False, choices=["ok", "error"])
    organization_id = serializers.CharField(required=False, max_length=64)
    min_duration_ms = serializers.FloatField(required=False, min_value=0)
    kept_because = serializers.ChoiceField(required=False, choices=["error", "slow", "sampled"])


class LogQuerySerializer(TimeRangeQuerySerializer):
    level = serializers.ChoiceField(required=False, choices=list(LEVELS), help_text="Minimum level.")
    trace_id = serializers.RegexField(TRACE_ID_PATTERN, required=False, help_text="32 lowercase hex characters.")
    text = serializers.CharField(required=False, max_length=200, help_text="Case-insensitive substring of the message.")


class TraceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Trace
        fields = ("trace_id", "root_name", "service", "route", "method", "status_code", "status",
                  "organization_id", "start", "duration_ms", "span_count", "is_slow", "kept_because")


class LogEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = LogEntry
        fields = ("time", "level", "level_number", "logger", "message", "trace_id", "span_id", "attributes")


class SpanSerializer(serializers.Serializer):
    """A span as laid out on the waterfall (``telemetry.tracing.waterfall.layout``)."""

    span_id = serializers.CharField()
    parent_span_id = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    service = serializers.CharField()
    start_ns = serializers.IntegerField()
    end_ns = serializers.IntegerField()
    duration_ms = serializers.FloatField()
    status = serializers.CharField()
    status_message = serializers.CharField()
    attributes = serializers.JSONField()
    events = serializers.JSONField()
    depth = serializers.IntegerField()
    offset_percent = serializers.FloatField()
    width_percent = serializers.FloatField()
    is_slow = serializers.BooleanField()
    is_error = serializers.BooleanField()
    on_critical_path = serializers.BooleanField()
    self_ms = serializers.FloatField(help_text="Time not covered by the span's children.")
    repeat_count = serializers.IntegerField(help_text="Runs of this statement among its siblings (from this one).")
    repeat_total_ms = serializers.FloatField()
    folded_into = serializers.CharField(help_text="The first run's span id when this run repeats it, else empty.")


class TraceDetailSerializer(serializers.Serializer):
    trace = TraceSerializer()
    spans = SpanSerializer(many=True)
    spans_truncated = serializers.BooleanField()
    logs = LogEntrySerializer(many=True)


class UsageQuerySerializer(TimeRangeQuerySerializer):
    """Hours of one organization's usage: the last ``USAGE_API_DEFAULT_DAYS`` by default."""


class UsageHourSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrganizationUsage
        fields = ("hour", "requests", "errors", "app_loads", "query_runs", "query_failures", "active_users",
                  "storage_bytes")
