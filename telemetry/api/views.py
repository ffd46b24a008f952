"""The telemetry API (DRF): stored traces and logs, and the current values of the key
metrics. Staff see everything; other authenticated users see the traces (and their logs)
of their own organization, resolved by ``USER_ORGANIZATION_RESOLVER``; metrics, which
span every organization, are for staff only. Anonymous callers get 401.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.module_loading import import_string
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from prometheus_client import REGISTRY
from prometheus_client.samples import Sample
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from telemetry import api, conf
from telemetry.api.serializers import (
    LEVELS,
    MAX_PAGE_SIZE,
    LogEntrySerializer,
    LogQuerySerializer,
    TraceDetailSerializer,
    TraceQuerySerializer,
    TraceSerializer,
    UsageHourSerializer,
    UsageQuerySerializer,
)
from telemetry.core import guard
from telemetry.metrics import families, multiprocess
from telemetry.models import LogEntry, OrganizationUsage, Span, Trace
from telemetry.tracing import waterfall

MAX_LOGS_PER_TRACE = 500
#: Hours of usage one call returns at most (90 days), and those it returns by default (7 days).
MAX_USAGE_HOURS = 90 * 24
DEFAULT_USAGE_HOURS = 7 * 24
#: Routes listed by the metrics endpoint (the busiest first).
MAX_METRIC_ROUTES = 50


def organization_ids(user: AbstractBaseUser | AnonymousUser, setting: str = "USER_ORGANIZATION_RESOLVER") -> list[str]:
    """The organization ids whose telemetry ``user`` may read (strings, as stored) by the
    resolver ``setting`` names; none when it is not configured or fails (closed, never open)."""
    path = conf.get(setting)
    if not path:
        return []
    try:
        resolved = import_string(path)(user)
    except Exception as exc:  # noqa: BLE001 - a broken resolver shows nothing rather than a 500
        guard.report("telemetry_api_organization", exc)
        return []
    if resolved is None or resolved == "":
        return []
    if isinstance(resolved, (list, tuple, set, frozenset)):
        return [str(value) for value in resolved]
    return [str(resolved)]


def visible_traces(user: Any) -> QuerySet[Trace]:
    """Any user: the host's user model, which has ``is_staff`` (``AbstractBaseUser`` does not)."""
    if user.is_staff:
        return Trace.objects.all()
    return Trace.objects.filter(organization_id__in=organization_ids(user))


class NewestFirstPagination(CursorPagination):
    """Cursor pages: no COUNT over a large table, stable while new rows arrive."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = MAX_PAGE_SIZE


class TracePagination(NewestFirstPagination):
    ordering = "-start"


class LogPagination(NewestFirstPagination):
    ordering = "-time"


def _validated(serializer_class, request):
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _time_range(queryset, field, params):
    if "since" in params:
        queryset = queryset.filter(**{f"{field}__gte": params["since"]})
    if "until" in params:
        queryset = queryset.filter(**{f"{field}__lt": params["until"]})
    return queryset


@extend_schema(parameters=[TraceQuerySerializer], tags=["telemetry"])
class TraceListView(generics.ListAPIView):
    """Stored traces, newest first, filtered by route, status, organization, minimum
    duration and time range."""

    permission_classes = [IsAuthenticated]  # whatever the host's DRF default is

    serializer_class = TraceSerializer
    pagination_class = TracePagination

    def get_queryset(self) -> QuerySet[Trace]:
        params = _validated(TraceQuerySerializer, self.request)
        queryset = visible_traces(self.request.user)
        for field in ("route", "status", "organization_id", "kept_because"):
            if field in params:
                queryset = queryset.filter(**{field: params[field]})
        if "min_duration_ms" in params:
            queryset = queryset.filter(duration_ms__gte=params["min_duration_ms"])
        return _time_range(queryset, "start", params)


@extend_schema(responses=TraceDetailSerializer, tags=["telemetry"])
class TraceDetailView(APIView):
    """One trace: its summary, its spans as on the waterfall (depth, offsets, slow,
    failed, critical path; at most ``waterfall.MAX_SPANS``) and its log lines."""

    permission_classes = [IsAuthenticated]

    def get(self, request: Request, trace_id: str) -> Response:
        trace = get_object_or_404(visible_traces(request.user), trace_id=trace_id.lower())
        # Any rows: layout() extends these dicts in place, beyond the values() fields.
        spans: list[Any] = list(Span.objects.filter(trace_id=trace.trace_id).order_by("start_ns").values(
            "span_id", "parent_span_id", "name", "kind", "service", "start_ns", "end_ns", "duration_ms",
            "status", "status_message", "attributes", "events")[: waterfall.MAX_SPANS + 1])
        truncated = len(spans) > waterfall.MAX_SPANS
        rows, _ = waterfall.layout(spans[: waterfall.MAX_SPANS])
        logs = LogEntry.objects.filter(trace_id=trace.trace_id).order_by("time")[:MAX_LOGS_PER_TRACE]
        data = {"trace": trace, "spans": rows, "spans_truncated": truncated, "logs": logs}
        return Response(TraceDetailSerializer(data).data)


@extend_schema(parameters=[LogQuerySerializer], tags=["telemetry"])
class LogListView(generics.ListAPIView):
    """Stored log records, newest first, by minimum level, trace id, text and time range.
    Non-staff users see the records of their organization's traces only."""

    permission_classes = [IsAuthenticated]  # whatever the host's DRF default is

    serializer_class = LogEntrySerializer
    pagination_class = LogPagination

    def get_queryset(self) -> QuerySet[LogEntry]:
        params = _validated(LogQuerySerializer, self.request)
        queryset = LogEntry.objects.all()
        if not self.request.user.is_staff:
            queryset = queryset.filter(trace_id__in=visible_traces(self.request.user).values("trace_id"))
        if "level" in params:
            queryset = queryset.filter(level_number__gte=LEVELS[params["level"]])
        if "trace_id" in params:
            queryset = queryset.filter(trace_id=params["trace_id"])
        if "text" in params:
            queryset = queryset.filter(message__icontains=params["text"])
        return _time_range(queryset, "time", params)


@extend_schema(parameters=[UsageQuerySerializer], responses=UsageHourSerializer(many=True), tags=["telemetry"])
class UsageView(APIView):
    """One organization's hourly usage, oldest hour first, with the range's totals: for
    staff, and for the users ``USAGE_ORGANIZATION_RESOLVER`` names (the platform: the
    organization's admins). Any other organization is a 404, as one that does not exist."""

    permission_classes = [IsAuthenticated]

    def get(self, request: Request, organization_id: str) -> Response:
        if not request.user.is_staff and organization_id not in organization_ids(
                request.user, "USAGE_ORGANIZATION_RESOLVER"):
            raise Http404
        params = _validated(UsageQuerySerializer, request)
        until = params.get("until") or timezone.now()
        since = params.get("since") or until - timedelta(hours=DEFAULT_USAGE_HOURS)
        if until - since > timedelta(hours=MAX_USAGE_HOURS):
            raise ValidationError({"since": f"at most {MAX_USAGE_HOURS // 24} days before until."})
        hours = (OrganizationUsage.objects.filter(organization_id=organization_id, hour__gte=since, hour__lt=until)
                 .order_by("hour")[:MAX_USAGE_HOURS])
        rows = UsageHourSerializer(hours, many=True).data
        totals = {field: sum(row[field] for row in rows)
                  for field in ("requests", "errors", "app_loads", "query_runs", "query_failures")}
        return Response({"organization_id": organization_id, "since": since, "until": until, "totals": totals,
                         "hours": rows})


@extend_schema(responses=OpenApiTypes.OBJECT, tags=["telemetry"])
class MetricsView(APIView):
    """Current values of the key metrics, from the same registry ``/metrics`` renders
    (every process's files in multiprocess mode): requests, error rate and p50/p95
    estimates per route, API calls, database operations and slow statements, plugin runs,
    tasks, active users."""

    permission_classes = [IsAdminUser]

    def get(self, request: Request) -> Response:
        with guard.guarded("telemetry_api_metrics"):
            api.flush(sample=True)
        return Response(summarize(_collect()))


def _collect():
    """Samples by metric family name."""
    path = multiprocess.directory()
    if path:
        with multiprocess.locked(path, exclusive=False):
            collected = list(multiprocess.collect_registry().collect())
    else:
        collected = list(REGISTRY.collect())
    return {metric.name: metric.samples for metric in collected}


def _family_name(family):
    """The name samples are collected under (a counter's without ``_total``)."""
    return family.metric.describe()[0].name


def quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus ``histogram_quantile``: ``cumulative`` is ``[(upper bound, count), ...]``
    sorted by bound, ending with +Inf; linear interpolation inside the bucket."""
    if not cumulative or cumulative[-1][1] == 0:
        return None
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _histogram_by(samples, family_name, key_labels):
    """``{key: {"buckets": {le: count}, "count": n}}`` summed over the other labels."""
    grouped = defaultdict(lambda: {"buckets": defaultdict(float), "count": 0.0})
    for sample in samples.get(family_name, ()):
        key = tuple(sample.labels.get(label, "") for label in key_labels)
        if sample.name == family_name + "_bucket":
            grouped[key]["buckets"][float(sample.labels["le"])] += sample.value
        elif sample.name == family_name + "_count":
            grouped[key]["count"] += sample.value
    return grouped


def _milliseconds(q, buckets):
    value = quantile(q, sorted(buckets.items()))
    return None if value is None else round(value * 1000, 3)


def _counter_by(samples, family_name, key_labels):
    totals = defaultdict(float)
    for sample in samples.get(family_name, ()):
        if sample.name == family_name + "_total":
            totals[tuple(sample.labels.get(label, "") for label in key_labels)] += sample.value
    return totals


def summarize(samples: Mapping[str, Sequence[Sample]]) -> dict[str, Any]:
    metrics = families()
    namespace = conf.get("NAMESPACE")

    http_name = _family_name(metrics.http.request_duration)
    by_route_status = _histogram_by(samples, http_name, ("http_route", "http_response_status_code"))
    routes: defaultdict[str, dict[str, Any]] = defaultdict(
        lambda: {"requests": 0.0, "errors": 0.0, "buckets": defaultdict(float)})
    overall_buckets: defaultdict[float, float] = defaultdict(float)
    for (route, status_code), values in by_route_status.items():
        entry = routes[route]
        entry["requests"] += values["count"]
        if status_code.startswith("5"):
            entry["errors"] += values["count"]
        for bound, count in values["buckets"].items():
            entry["buckets"][bound] += count
            overall_buckets[bound] += count
    route_rows = sorted(
        ({"route": route, "requests": int(entry["requests"]), "errors": int(entry["errors"]),
          "error_rate": round(entry["errors"] / entry["requests"], 4) if entry["requests"] else 0.0,
          "p50_ms": _milliseconds(0.5, entry["buckets"]), "p95_ms": _milliseconds(0.95, entry["buckets"])}
         for route, entry in routes.items()),
        key=lambda row: (-row["requests"], row["route"]),
    )
    requests = sum(row["requests"] for row in route_rows)
    errors = sum(row["errors"] for row in route_rows)

    db_operations = _counter_by(samples, _family_name(metrics.db.operation_count),
                                ("db_system", "db_operation_name"))
    kind_label, status_label = f"{namespace}_datasource_kind", f"{namespace}_query_status"
    plugin_runs = _counter_by(samples, _family_name(metrics.plugins.execution_count), (kind_label, status_label))
    plugin_latency = _histogram_by(samples, _family_name(metrics.plugins.execution_duration), (kind_label,))
    plugin_kinds: defaultdict[str, dict[str, int]] = defaultdict(lambda: {"executions": 0, "errors": 0})
    for (kind, status), count in plugin_runs.items():
        plugin_kinds[kind]["executions"] += int(count)
        if status != "success":
            plugin_kinds[kind]["errors"] += int(count)
    slow_queries = _counter_by(samples, _family_name(metrics.analytics.query_slow), ("db_operation_name",))
    api_calls = _counter_by(samples, _family_name(metrics.business.api_calls), ("status_class",))
    task_runs = _counter_by(samples, _family_name(metrics.jobs.task_executions), ("status",))
    active_users = sum(sample.value for sample in samples.get(_family_name(metrics.business.active_users), ())
                       if sample.labels.get("scope") == "platform")

    return {
        "generated_at": timezone.now().isoformat(),
        "http": {
            "requests": requests, "errors": errors,
            "error_rate": round(errors / requests, 4) if requests else 0.0,
            "p50_ms": _milliseconds(0.5, overall_buckets), "p95_ms": _milliseconds(0.95, overall_buckets),
            "api_calls": int(sum(api_calls.values())),
            "api_calls_by_status_class": {status_class: int(count)
                                          for (status_class,), count in sorted(api_calls.items())},
            "routes": route_rows[:MAX_METRIC_ROUTES],
        },
        "db": {
            "operations": int(sum(db_operations.values())),
            "slow_queries": int(sum(slow_queries.values())),
            "by_operation": [{"db_system": system, "db_operation_name": operation, "count": int(count)}
                             for (system, operation), count in sorted(db_operations.items(), key=lambda i: -i[1])],
        },
        "plugins": {
            "executions": sum(entry["executions"] for entry in plugin_kinds.values()),
            "errors": sum(entry["errors"] for entry in plugin_kinds.values()),
            "by_kind": [{"kind": kind, **entry,
                         "p95_ms": _milliseconds(0.95, plugin_latency.get((kind,), {}).get("buckets", {}))}
                        for kind, entry in sorted(plugin_kinds.items())],
        },
        "tasks": {status: int(count) for (status,), count in sorted(task_runs.items())},
        "active_users": int(active_users),
    }
