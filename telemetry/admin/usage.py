"""Admin usage dashboard: organizations with their totals over a window (24 h, 7 d,
30 d), and one organization's hourly charts drawn as inline SVG (no script).

Pages read the hourly rollups of ``telemetry.usage.rollups`` only: the list is one GROUP BY over
the indexed hour range, an organization's page two range reads on its unique indexes.
"""

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Model, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from telemetry import conf
from telemetry.admin.names import organization_label, organization_names
from telemetry.admin.readonly import ReadOnlyAdmin
from telemetry.models import OrganizationDatasourceUsage, OrganizationUsage

PERIODS = ((24, "last 24 hours"), (168, "last 7 days"), (720, "last 30 days"))
COUNTS = ("requests", "errors", "app_loads", "query_runs", "query_failures")
MAX_ROWS = 300
COLORS = ("#417690", "#e08e0b", "#5b8c3a", "#9c4f96", "#c0392b", "#2f9e9e", "#7f6a3f", "#5d6d7e")
ERROR_COLOR = "#ba2121"


def period(request: HttpRequest) -> tuple[int, list[datetime]]:
    """(hours, hour list): the window's hours, oldest first, ending with the current one."""
    try:
        hours = int(request.GET.get("hours", 24))
    except ValueError:
        hours = 24
    if hours not in dict(PERIODS):
        hours = 24
    current = timezone.now().replace(minute=0, second=0, microsecond=0)
    return hours, [current - timedelta(hours=offset) for offset in range(hours - 1, -1, -1)]


# Any, not str: mypy cannot see that the loop always returns (at "GB").
def human_bytes(size: float | None) -> Any:
    if size is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def _n(number):
    return f"{number:.2f}"


def _axis(hours, width, height, left, top, peak, label):
    """Frame, peak value and first/last hour labels of a chart."""
    timestamp = "%d %b %H:%M" if len(hours) > 24 else "%H:%M"
    return format_html(
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" class="axis"/>'
        '<line x1="{l}" y1="{t}" x2="{l}" y2="{b}" class="axis"/>'
        '<text x="{lt}" y="{ty}" text-anchor="end">{peak}</text><text x="{lt}" y="{b}" text-anchor="end">0</text>'
        '<text x="{l}" y="{hy}">{first}</text><text x="{r}" y="{hy}" text-anchor="end">{last}</text>',
        l=left, r=width, t=top, b=top + height, lt=left - 4, ty=top + 10, hy=top + height + 14,
        peak=label(peak), first=hours[0].strftime(timestamp), last=hours[-1].strftime(timestamp),
    )


def bar_chart(chart_id: str, title: str, hours: Sequence[datetime], series: Sequence[tuple[str, str, Sequence[float]]],
              label: Callable[[Any], str] = str) -> SafeString:
    """Stacked bars per hour; ``series`` is ``[(name, color, values)]``. Every bar has a
    ``<title>`` (the browser's tooltip) with its hour and value."""
    width, height, left, top = 760, 120, 60, 6
    totals = [sum(values[index] for _, _, values in series) for index in range(len(hours))]
    peak = max(totals, default=0) or 1
    step = (width - left) / len(hours)
    bars: list[str] = []
    for index, hour in enumerate(hours):
        base: float = top + height
        for name, color, values in series:
            value = values[index]
            if not value:
                continue
            size = value / peak * height
            base -= size
            bars.append(format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} {}: {}</title></rect>',
                _n(left + index * step), _n(base), _n(max(step - 1, 0.5)), _n(size), color,
                hour.strftime("%Y-%m-%d %H:00"), name, label(value)))
    legend = format_html_join(" ", '<span class="usage-key"><i style="background:{}"></i>{}</span>',
                              ((color, name) for name, color, _ in series)) if len(series) > 1 else ""
    return format_html(
        '<figure class="usage-chart" id="chart-{}"><figcaption>{} <strong>{}</strong> {}</figcaption>'
        '<svg viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}" data-total="{}">{}{}</svg>'
        "</figure>",
        chart_id, title, label(sum(totals)) if chart_id != "active_users" else f"peak {max(totals, default=0)}",
        legend, width, top + height + 18, width, top + height + 18, title, sum(totals),
        _axis(hours, width, height, left, top, peak if any(totals) else 0, label), mark_safe("".join(bars)))


def line_chart(chart_id: str, title: str, hours: Sequence[datetime], values: Sequence[float | None],
               label: Callable[[Any], str] = str) -> SafeString:
    """A line over the hours that have a value (gaps where ``None``)."""
    width, height, left, top = 760, 120, 60, 6
    present = [value for value in values if value is not None]
    peak = max(present, default=0) or 1
    step = (width - left) / len(hours)
    current: list[tuple[float, float, datetime, float]]
    segments, current = [], []
    for index, value in enumerate(values):
        if value is None:
            if current:
                segments.append(current)
            current = []
            continue
        current.append((left + (index + 0.5) * step, top + height - value / peak * height, hours[index], value))
    if current:
        segments.append(current)
    shapes: list[str] = []
    for segment in segments:
        shapes.append(format_html('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>', COLORS[0],
                                  " ".join(f"{x:.2f},{y:.2f}" for x, y, _, _ in segment)))
        shapes.extend(format_html('<circle cx="{}" cy="{}" r="2.5" fill="{}"><title>{}: {}</title></circle>',
                                  _n(x), _n(y), COLORS[0], hour.strftime("%Y-%m-%d %H:00"), label(value))
                      for x, y, hour, value in segment)
    latest = present[-1] if present else None
    return format_html(
        '<figure class="usage-chart" id="chart-{}"><figcaption>{} <strong>{}</strong></figcaption>'
        '<svg viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}">{}{}</svg></figure>',
        chart_id, title, "latest " + label(latest) if present else "not sampled", width, top + height + 18, width,
        top + height + 18, title, _axis(hours, width, height, left, top, max(present, default=0), label),
        mark_safe("".join(shapes)))


def latest_storage(organization_ids: list[str], start: datetime) -> dict[str, int | None]:
    """Each organization's latest storage sample since ``start``: two reads on the unique
    (organization, hour) index. (A subquery in the totals' query would join its GROUP BY
    and run once per hourly row: 180,000 times for 1,000 organizations over 30 days.)"""
    latest = (OrganizationUsage.objects.filter(organization_id__in=organization_ids, hour__gte=start,
                                               storage_bytes__isnull=False)
              .values("organization_id").annotate(hour=Max("hour")).order_by())
    keys = Q()
    for row in latest:
        keys |= Q(organization_id=row["organization_id"], hour=row["hour"])
    if not keys:
        return {}
    return dict(OrganizationUsage.objects.filter(keys).values_list("organization_id", "storage_bytes"))


@admin.register(OrganizationUsage)
class OrganizationUsageAdmin(ReadOnlyAdmin):
    """The changelist is the organizations' totals of a window, not the hourly rows. Shown
    only in a project with organizations (``conf.organizations_configured()``): elsewhere
    it is absent from the admin index and its pages answer 403."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return conf.organizations_configured() and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return conf.organizations_configured() and super().has_view_permission(request, obj)

    def get_urls(self) -> list[URLPattern]:
        return [
            path("organization/<str:organization_id>/", self.admin_site.admin_view(self.organization_view),
                 name="telemetry_organizationusage_organization"),
            *super().get_urls(),
        ]

    def _context(self, request, title, hours):
        return {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": title, "hours": hours,
            "periods": [{"hours": value, "label": label, "selected": value == hours,
                         "url": "?" + urlencode({"hours": value})} for value, label in PERIODS],
        }

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        hours, window = period(request)
        rows = list(
            OrganizationUsage.objects.filter(hour__gte=window[0]).values("organization_id")
            .annotate(**{name: Sum(name) for name in COUNTS}, active_users=Max("active_users"))
            .order_by("-requests", "organization_id")[:MAX_ROWS]
        )
        storage = latest_storage([row["organization_id"] for row in rows], window[0])
        for row in rows:
            row["storage_bytes"] = storage.get(row["organization_id"])
            row["storage"] = human_bytes(row["storage_bytes"])
            row["error_rate"] = row["errors"] / row["requests"] if row["requests"] else 0.0
            row["url"] = (reverse("admin:telemetry_organizationusage_organization", args=[row["organization_id"]])
                          + "?" + urlencode({"hours": hours}))
        names = organization_names(row["organization_id"] for row in rows)
        for row in rows:
            row["name"] = organization_label(row["organization_id"], names)
        totals = {name: sum(row[name] for row in rows) for name in COUNTS}
        context = {**self._context(request, "Usage by organization", hours), "rows": rows, "totals": totals,
                   "start": window[0], **(extra_context or {})}
        return TemplateResponse(request, "admin/telemetry/usage/dashboard.html", context)

    def organization_view(self, request: HttpRequest, organization_id: str) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        hours, window = period(request)
        index = {hour: position for position, hour in enumerate(window)}
        series = {name: [0] * hours for name in (*COUNTS, "active_users")}
        storage: list[int | None] = [None] * hours
        row: Any  # the two loops below read two models through this name
        for row in OrganizationUsage.objects.filter(organization_id=organization_id, hour__gte=window[0]):
            position = index.get(row.hour)
            if position is None:
                continue
            for name in series:
                series[name][position] = getattr(row, name)
            storage[position] = row.storage_bytes
        kinds: dict[str, dict[str, Any]] = {}
        for row in OrganizationDatasourceUsage.objects.filter(organization_id=organization_id,
                                                              hour__gte=window[0]).order_by("kind"):
            position = index.get(row.hour)
            if position is not None:
                kind = kinds.setdefault(row.kind, {"kind": row.kind, "runs": [0] * hours, "failures": 0})
                kind["runs"][position] = row.runs
                kind["failures"] += row.failures
        datasources = sorted(kinds.values(), key=lambda kind: -sum(kind["runs"]))
        for kind in datasources:
            kind["total"] = sum(kind["runs"])
        latest_storage = (OrganizationUsage.objects.filter(organization_id=organization_id,
                                                           storage_bytes__isnull=False)
                          .order_by("-hour").values_list("storage_bytes", flat=True).first())
        ok = [requests - errors for requests, errors in zip(series["requests"], series["errors"], strict=False)]
        charts = [
            bar_chart("requests", "Requests", window, [("below 500", COLORS[0], ok),
                                                       ("5xx", ERROR_COLOR, series["errors"])]),
            bar_chart("errors", "Errors (5xx)", window, [("5xx", ERROR_COLOR, series["errors"])]),
            bar_chart("query_runs", "Query runs by datasource", window,
                      [(kind["kind"], COLORS[position % len(COLORS)], kind["runs"])
                       for position, kind in enumerate(datasources)] or [("runs", COLORS[0], [0] * hours)]),
            bar_chart("app_loads", "App loads", window, [("loads", COLORS[2], series["app_loads"])]),
            bar_chart("active_users", "Active users (peak of the hour)", window,
                      [("users", COLORS[3], series["active_users"])]),
            line_chart("storage", "Storage", window, storage, label=human_bytes),
        ]
        totals = {name: sum(series[name]) for name in COUNTS}
        totals["active_users"] = max(series["active_users"], default=0)
        label = "organization " + organization_label(organization_id, organization_names([organization_id]))
        context = {
            **self._context(request, f"Usage of {label}", hours),
            "organization_id": organization_id, "organization": label, "totals": totals, "charts": charts,
            "datasources": datasources,
            "storage": human_bytes(latest_storage), "start": window[0],
        }
        return TemplateResponse(request, "admin/telemetry/usage/organization.html", context)
