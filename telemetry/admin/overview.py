"""Admin overview: where an on-call engineer starts. Over a window (24 h, 7 d, 30 d):
requests and the 5xx share per hour, p95 per hour, each route's rate, 5xx share and
p50 / p95 / p99 (linked to its traces), open findings by kind, the top suggestions of the
latest optimization report, the latest failed traces and the running release against the
previous one.

Everything comes from pre-aggregated rows: ``RouteStat`` (one GROUP BY per route and one
per hour over the indexed hour range), findings counted by kind, the ten newest failed
traces through the trace list's index, and the release comparison of the hourly release
rows. No span is read.
"""

from collections import defaultdict
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from telemetry.admin.readonly import ReadOnlyAdmin
from telemetry.admin.usage import ERROR_COLOR, PERIODS, bar_chart, line_chart, period
from telemetry.models import QueryFinding, QueryReport, RouteStat, Trace
from telemetry.queries.reports import percentile
from telemetry.usage import releases, traffic

#: Routes listed, the busiest first.
MAX_ROUTES = 50
RECENT_FAILURES = 10
#: Suggestions of the latest optimization report shown.
TOP_SUGGESTIONS = 5


def _quantiles(buckets: list[int], requests: int, max_ms: float) -> dict[str, float]:
    return {f"p{int(q * 100)}": percentile(buckets, requests, q, max_ms) for q in (0.5, 0.95, 0.99)}


@admin.register(RouteStat)
class OverviewAdmin(ReadOnlyAdmin):
    """The changelist is the overview, not the hourly rows."""

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        hours, window = period(request)
        start = window[0]
        in_window = RouteStat.objects.filter(hour__gte=start)
        sums = {name: Sum(name) for name in ("requests", "server_errors", "client_errors", "total_ms",
                                             *traffic.BUCKET_FIELDS)}
        routes = list(in_window.values("route").annotate(**sums, max_ms=Max("max_ms"))
                      .order_by("-requests", "route")[:MAX_ROUTES])
        trace_list = reverse("admin:telemetry_trace_changelist")
        for row in routes:
            row.update(_quantiles([row[name] for name in traffic.BUCKET_FIELDS], row["requests"], row["max_ms"]))
            row["per_minute"] = row["requests"] / (hours * 60)
            row["error_share"] = row["server_errors"] / row["requests"] if row["requests"] else 0.0
            row["mean_ms"] = row["total_ms"] / row["requests"] if row["requests"] else 0.0
            row["traces_url"] = trace_list + "?" + urlencode({"route": row["route"]})
            row["failed_url"] = trace_list + "?" + urlencode({"route": row["route"], "status": "error"})

        per_hour: dict[Any, dict[str, Any]] = defaultdict(dict)
        for row in in_window.values("hour").annotate(**sums, max_ms=Max("max_ms")).order_by():
            per_hour[row["hour"]] = row
        requests = [per_hour.get(hour, {}).get("requests") or 0 for hour in window]
        errors = [per_hour.get(hour, {}).get("server_errors") or 0 for hour in window]
        p95 = [percentile([per_hour[hour][name] for name in traffic.BUCKET_FIELDS], per_hour[hour]["requests"], 0.95,
                          per_hour[hour]["max_ms"]) if per_hour.get(hour, {}).get("requests") else None
               for hour in window]
        total_requests, total_errors = sum(requests), sum(errors)
        all_buckets = [sum(per_hour[hour][name] or 0 for hour in per_hour) for name in traffic.BUCKET_FIELDS]
        overall = _quantiles(all_buckets, total_requests, max((row["max_ms"] or 0 for row in per_hour.values()),
                                                              default=0.0))

        findings = list(QueryFinding.objects.filter(created_at__gte=start).values("code")
                        .annotate(count=Count("id")).order_by("-count", "code"))
        finding_list = reverse("admin:telemetry_queryfinding_changelist")
        for row in findings:
            row["url"] = finding_list + "?" + urlencode({"code": row["code"]})
        failed: list[Any] = list(Trace.objects.filter(status="error", start__gte=start).order_by("-start")
                      .values("trace_id", "route", "method", "status_code", "start", "duration_ms")[:RECENT_FAILURES])
        for trace in failed:
            trace["url"] = reverse("admin:telemetry_trace_change", args=[trace["trace_id"]])
        comparison = releases.route_comparison()
        report = QueryReport.objects.filter(kind="optimization").order_by("-period_end", "-built_at").first()
        suggestions: list[Any] = []
        report_url = ""
        if report is not None:
            report_url = reverse("admin:telemetry_queryreport_change", args=[report.pk])
            suggestions = list(report.suggestions.order_by("rank")[:TOP_SUGGESTIONS])
        for suggestion in suggestions:
            suggestion.url = (reverse("admin:telemetry_querystat_fingerprint", args=[suggestion.fingerprint_id])
                              if suggestion.fingerprint_id else report_url)

        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Overview", "hours": hours,
            "periods": [{"hours": value, "label": label, "selected": value == hours,
                         "url": "?" + urlencode({"hours": value})} for value, label in PERIODS],
            "start": start, "routes": routes, "total_requests": total_requests, "total_errors": total_errors,
            "error_share": total_errors / total_requests if total_requests else 0.0, "overall": overall,
            "charts": [
                bar_chart("requests", "Requests", window, [("2xx-4xx", "#417690", [
                    total - error for total, error in zip(requests, errors, strict=True)]),
                    ("5xx", ERROR_COLOR, errors)]),
                line_chart("p95", "p95 latency", window, p95, lambda value: f"{value:.0f} ms"),
            ],
            "findings": findings, "failed": failed, "comparison": comparison, "report": report,
            "suggestions": suggestions,
            "report_url": report_url,
            "regressions": comparison.regressions("minor"),
            "releases_url": reverse("admin:telemetry_releaseroutestats_changelist"),
            "traces_url": trace_list, "failed_traces_url": trace_list + "?" + urlencode({"status": "error"}),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/telemetry/overview.html", context)
