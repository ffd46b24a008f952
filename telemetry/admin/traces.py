"""Admin for traces and logs: the trace list and the waterfall page.

The list reads only the ``Trace`` summary rows, through the indexes on ``-start``; filter
choices come from the latest rows (never a DISTINCT over the whole table) and the
paginator counts at most ``COUNT_CAP`` rows, so the page costs the same with a million
spans stored as with a hundred. A trace's change page is its waterfall.
"""

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import tzinfo
from functools import lru_cache, partial
from html import escape as _html_escape
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from telemetry import conf
from telemetry.admin import formatting, trace_search
from telemetry.admin.names import organization_label, organization_names
from telemetry.admin.readonly import ReadOnlyAdmin
from telemetry.models import LogEntry, QueryPlan, Span, Trace
from telemetry.tracing import waterfall

#: Rows the paginator counts before it stops: past it, later pages are out of reach and
#: the filters narrow the list.
COUNT_CAP = 10_000
#: Route and organization filters offer the most frequent values among this many latest traces.
CHOICES_WINDOW = 5_000
CHOICES_LIMIT = 30
CHOICES_CACHE_SECONDS = 60
#: Log records shown on one waterfall.
MAX_LOGS = 500
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
#: Where the waterfall rows go in the rendered page (``put_rows``); escaped data cannot contain it.
ROWS_PLACEHOLDER = "<!-- waterfall rows -->"
SPAN_FIELDS = ("span_id", "parent_span_id", "name", "kind", "service", "start_ns", "end_ns", "duration_ms",
               "status", "status_message")
SPAN_JSON_FIELDS = ("attributes", "events")
LOG_FIELDS = ("time", "level", "logger", "message", "span_id")


def escape(value: object) -> str:
    return _html_escape(str(value), quote=True)


class CappedCountPaginator(Paginator):
    """Counts ``COUNT_CAP + 1`` rows at most (``SELECT COUNT(*) FROM (... LIMIT n)``):
    an exact count of a million-row table would cost more than the page itself."""

    object_list: QuerySet[Any]

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: COUNT_CAP + 1].count()


class FieldFilter(admin.SimpleListFilter):
    """A filter on one field's exact value (``field``); its subclasses say where the choices come from."""

    field: Any = None  # the model field's name, set by each subclass

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class ChoicesFilter(FieldFilter):
    """A filter over fixed choices: no query to build its lookups."""

    options: tuple[tuple[str, str], ...] = ()

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Iterable[tuple[str, str]]:
        return self.options


class StatusFilter(ChoicesFilter):
    title = "status"
    parameter_name = "status"
    field = "status"
    options = (("ok", "ok"), ("error", "error"))


class KeptBecauseFilter(ChoicesFilter):
    title = "kept because"
    parameter_name = "kept_because"
    field = "kept_because"
    options = (("error", "error"), ("slow", "slow"), ("sampled", "sampled"))


class MinimumDurationFilter(admin.SimpleListFilter):
    title = "minimum duration"
    parameter_name = "min_ms"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Iterable[tuple[str, str]]:
        return (("100", "≥ 100 ms"), ("500", "≥ 500 ms"), ("1000", "≥ 1 s"), ("5000", "≥ 5 s"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        try:
            return queryset.filter(duration_ms__gte=float(cast(str, self.value()))) if self.value() else queryset
        except ValueError:
            return queryset.none()


class TimeRangeFilter(admin.SimpleListFilter):
    """Instead of ``date_hierarchy``, which groups every row by date to draw its links."""

    title = "started"
    parameter_name = "since"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Iterable[tuple[str, str]]:
        return (("15m", "last 15 minutes"), ("1h", "last hour"), ("1d", "last day"), ("7d", "last 7 days"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        window = trace_search.PRESETS.get(cast(str, self.value()))
        return queryset.filter(start__gte=timezone.now() - window) if window else queryset


class RecentValuesFilter(FieldFilter):
    """The most frequent values of ``field`` among the latest ``CHOICES_WINDOW`` traces,
    cached briefly: bounded work however many traces are stored."""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Iterable[tuple[str, str]]:
        key = f"telemetry:admin:trace-choices:{self.field}"
        values = cache.get(key)
        if values is None:
            # Counting in Python: 5,000 short strings read through the ``-start`` index
            # cost less than a grouped IN-subquery.
            latest = Counter(Trace.objects.order_by("-start").values_list(self.field, flat=True)[:CHOICES_WINDOW])
            latest.pop("", None)
            values = [value for value, _ in latest.most_common(CHOICES_LIMIT)]
            cache.set(key, values, CHOICES_CACHE_SECONDS)
        values = sorted(values)
        if self.value() and self.value() not in values:
            values.append(self.value())
        names = self.names(values)
        return [(value, self.label(value, names)) for value in values]

    def names(self, values: list[str]) -> dict[str, str]:
        """Display names of the choices (none: the values are shown)."""
        return {}

    def label(self, value: str, names: dict[str, str]) -> str:
        return names.get(value, value)


class RouteFilter(RecentValuesFilter):
    title = "route"
    parameter_name = "route"
    field = "route"


class OrganizationFilter(RecentValuesFilter):
    title = "organization"
    parameter_name = "organization"
    field = "organization_id"

    def names(self, values: list[str]) -> dict[str, str]:
        return organization_names(values)

    def label(self, value: str, names: dict[str, str]) -> str:
        return organization_label(value, names)


class LargeTableAdmin(ReadOnlyAdmin):
    """The changelist of a table that grows to millions of rows (traces, logs): its cost
    bounded by the capped count, without the full count or the facet counts."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    # Facet counts would run one COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50


class TraceChangeList(ChangeList):
    """The changelist with the search's parameters (``trace_search.SEARCH_PARAMS``): kept in
    its links, kept from the field lookups, applied by ``trace_search.apply``."""

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        self.search = trace_search.TraceSearch.parse(request.GET)
        self.search_notes: list[str] = []
        super().__init__(request, *args, **kwargs)

    def get_filters_params(self, params: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
        lookup_params = super().get_filters_params(params)
        for name in trace_search.SEARCH_PARAMS:
            lookup_params.pop(name, None)
        return lookup_params

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        result = trace_search.apply(self.search, super().get_queryset(request, exclude_parameters))
        self.search_notes = result.notes
        return result.queryset

    def get_results(self, request: HttpRequest) -> None:
        """The page's traces, their organizations named with one resolver call."""
        super().get_results(request)
        if conf.organizations_configured():
            names = organization_names(trace.organization_id for trace in self.result_list)
            for trace in self.result_list:
                trace.organization_label = organization_label(trace.organization_id, names)


@admin.register(Trace)
class TraceAdmin(LargeTableAdmin):
    change_list_template = "admin/telemetry/trace/change_list.html"
    list_display = ("root_name", "route", "status_badge", "duration", "organization", "span_count", "started")
    list_filter = (RouteFilter, StatusFilter, OrganizationFilter, KeptBecauseFilter, MinimumDurationFilter,
                   TimeRangeFilter)
    search_fields = ("trace_id",)
    search_help_text = "Exact trace id (32 hexadecimal characters)."
    ordering = ("-start",)
    sortable_by = ("started", "duration")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TraceChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The list with the search form and the duration scatter of the listed traces. Empty
        fields of a submitted search are dropped from the address first (one redirect)."""
        empty = [name for name in trace_search.FORM_PARAMS if name in request.GET and not request.GET[name].strip()]
        if empty:
            params = request.GET.copy()
            for name in empty:
                del params[name]
            return HttpResponseRedirect(f"{request.path}?{params.urlencode()}" if params else request.path)
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context is None or "cl" not in context:  # a redirect (bad lookup) or an error page
            return response
        changelist = context["cl"]
        rows = list(changelist.queryset.order_by("-start").values_list(
            "trace_id", "start", "duration_ms", "status")[: trace_search.SCATTER_MAX + 1])
        context.update(
            search=changelist.search, search_notes=changelist.search_notes,
            scatter=trace_search.scatter(rows[: trace_search.SCATTER_MAX], len(rows) > trace_search.SCATTER_MAX),
            search_values={name: request.GET.get(name, "") for name in trace_search.FORM_PARAMS},
            search_hidden=[(name, value) for name, value in changelist.params.items()
                           if name not in trace_search.FORM_PARAMS],
            organizations=conf.organizations_configured(),
            time_zone=timezone.get_current_timezone_name(),
        )
        return response

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        """The organization column, only in a project with organizations."""
        organizations = conf.organizations_configured()
        return [name for name in super().get_list_display(request) if organizations or name != "organization"]

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        """The organization filter, only in a project with organizations."""
        organizations = conf.organizations_configured()
        return [entry for entry in super().get_list_filter(request)
                if organizations or entry is not OrganizationFilter]

    @admin.display(description="status")
    def status_badge(self, trace: Trace) -> str:
        code = f" {trace.status_code}" if trace.status_code else ""
        if trace.status == "error":
            return format_html('<strong class="trace-status-error" style="color: #ba2121">error{}</strong>', code)
        return f"ok{code}"

    @admin.display(description="organization")
    def organization(self, trace: Trace) -> str:
        # Named for the whole page at once by TraceChangeList.get_results.
        return getattr(trace, "organization_label", None) or trace.organization_id or "—"

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, trace: Trace) -> str:
        return formatting.duration(trace.duration_ms)

    @admin.display(description="start", ordering="start")
    def started(self, trace: Trace) -> str:
        return formatting.when(trace.start)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Trace],
                           search_term: str) -> tuple[QuerySet[Trace], bool]:
        """An exact match on the unique index; ``icontains`` would scan every row."""
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        return queryset.filter(trace_id=term), False

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Trace | None:
        """By primary key, or by trace id so ``/admin/telemetry/trace/<trace id>/change/`` works."""
        if TRACE_ID.match(str(object_id)):
            return Trace.objects.filter(trace_id=object_id).first()
        return super().get_object(request, object_id, from_field)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        trace = self.get_object(request, object_id)
        if trace is None:
            # A private ModelAdmin helper that django-stubs does not declare.
            return self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id)
        if not self.has_view_permission(request, trace):
            raise PermissionDenied
        spans = span_values(trace.trace_id)
        truncated = len(spans) > waterfall.MAX_SPANS
        spans = spans[: waterfall.MAX_SPANS]
        logs = list(LogEntry.objects.filter(trace_id=trace.trace_id).order_by("time").values(*LOG_FIELDS)[:MAX_LOGS])
        rows, unmatched_logs = waterfall.layout(spans, logs)
        trace_start = min((row["start_ns"] for row in rows), default=0)
        span_total_ms = (max(row["end_ns"] for row in rows) - trace_start) / 1e6 if rows else trace.duration_ms
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Trace {trace.trace_id}",
            "subtitle": trace.root_name,
            "trace": trace,
            "organization": organization_label(trace.organization_id,
                                               organization_names([trace.organization_id])),
            "rows": rows,
            "rows_placeholder": mark_safe(ROWS_PLACEHOLDER),
            "unmatched_logs_html": mark_safe(  # noqa: S308 - every interpolated value is escaped
                log_lines_html(unmatched_logs, timezone.get_current_timezone())),
            "truncated": truncated,
            "max_spans": waterfall.MAX_SPANS,
            "ticks": [(percent, span_total_ms * percent / 100) for percent in (0, 25, 50, 75, 100)],
            "critical_count": sum(row["on_critical_path"] for row in rows),
            "folded_count": sum(bool(row["folded_into"]) for row in rows),
            "unfolded": bool(request.GET.get("unfold")),
            "slow_count": sum(row["is_slow"] for row in rows),
            "error_count": sum(row["is_error"] for row in rows),
            "has_view_permission": True,
            **(extra_context or {}),
        }
        response = TemplateResponse(request, "admin/telemetry/trace/waterfall.html", context)
        if rows:
            rows_html = span_rows_html(rows, trace_start, unfold=bool(request.GET.get("unfold")),
                                       advice=fingerprint_advice(rows))
            response.add_post_render_callback(partial(put_rows, rows_html))
        return response


def span_values(trace_id: str) -> list[dict[str, Any]]:
    """The first ``MAX_SPANS + 1`` spans of a trace, as dicts. The JSON columns are read as
    text and decoded with one ``json.loads`` per column: decoding each value on its own
    (the ``JSONField`` converter) made the query a third slower at 2,000 spans."""
    rows = list(Span.objects.filter(trace_id=trace_id).order_by("start_ns").values_list(
        *SPAN_FIELDS, *(Cast(field, TextField()) for field in SPAN_JSON_FIELDS))[: waterfall.MAX_SPANS + 1])
    attributes, events = (json.loads(f"[{','.join(row[index] for row in rows)}]") for index in (-2, -1))
    return [dict(zip(SPAN_FIELDS, row, strict=False), attributes=row_attributes, events=row_events)
            for row, row_attributes, row_events in zip(rows, attributes, events, strict=False)]


def put_rows(rows_html: str, response: TemplateResponse) -> None:
    """Puts the rows in the rendered page as bytes: carried through the template's nested
    joins (and widened to two bytes a character by the admin's "…") and encoded with the
    page, the megabytes of a 2,000-span waterfall cost ~8 ms."""
    head, tail = response.content.split(ROWS_PLACEHOLDER.encode(), 1)
    response.content = [head, rows_html.encode(response.charset), tail]


def _fingerprint_url(fingerprint_id: str) -> str:
    return reverse("admin:telemetry_querystat_fingerprint", args=[fingerprint_id])


def fingerprint_advice(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """What the trace's statements have been advised, per fingerprint id: the proven index
    of their latest plan (one query over the plans of the fingerprints on the page)."""
    fingerprint_ids = {str(row["attributes"].get("db.query.fingerprint_id")) for row in rows
                       if isinstance(row["attributes"], dict) and row["attributes"].get("db.query.fingerprint_id")}
    advice: dict[str, str] = {}
    if not fingerprint_ids:
        return advice
    for fingerprint_id, candidates in (QueryPlan.objects.filter(fingerprint_id__in=fingerprint_ids)
                                       .exclude(candidates=[]).values_list("fingerprint_id", "candidates")):
        proven = [candidate for candidate in candidates if candidate.get("proven")]
        if proven and fingerprint_id not in advice:
            best = max(proven, key=lambda candidate: candidate.get("gain") or 0.0)
            advice[fingerprint_id] = (f'{best["create_statement"]} '
                                      f'({round((best.get("gain") or 0.0) * 100)} % lower planner cost)')
    return advice


def span_rows_html(rows: Sequence[Mapping[str, Any]], trace_start: int, unfold: bool = False,
                   advice: Mapping[str, str] | None = None) -> SafeString:
    """The waterfall rows, built in Python: the template engine took seconds over the
    ~60,000 values of a 2,000-span trace, string building takes milliseconds. Every
    stored value goes through ``escape``; ``cached_escape`` (memoized for this page)
    for the names, kinds, statuses and statements most spans share.

    Repeated statements show as their first span with "xN" (the rest hidden unless
    ``unfold``), marked N+1 from ``N_PLUS_ONE_THRESHOLD`` repetitions; a DB span links to
    its fingerprint page and shows the index proven for it (``advice``: fingerprint id ->
    text). The critical path colours the bars; a span with children shows its self time."""
    cached_escape = lru_cache(maxsize=None)(escape)
    fingerprint_url = lru_cache(maxsize=None)(_fingerprint_url)
    threshold = conf.get("N_PLUS_ONE_THRESHOLD")
    zone = timezone.get_current_timezone()
    parts: list[str] = []
    append = parts.append
    for row in rows:
        attributes = row["attributes"] if isinstance(row["attributes"], dict) else {}
        classes = "wf-row wf-span"
        marks = ""
        if row["on_critical_path"]:
            classes += " wf-critical"
        if row["folded_into"] and not unfold:
            classes += " wf-folded"
        repeats = row["repeat_count"]
        fingerprint_id = attributes.get("db.query.fingerprint_id")
        if repeats > 1:
            title = f"the same statement {repeats} times under this parent: {row['repeat_total_ms']:,.2f} ms in all"
            marks += f'<span class="wf-mark wf-mark-repeat" title="{title}">&times;{repeats}</span>'
            if repeats >= threshold:
                href = fingerprint_url(str(fingerprint_id)) if fingerprint_id else ""
                marks += (f'<a class="wf-mark wf-mark-nplus1" href="{escape(href)}" title="N+1: {repeats} runs of one '
                          f'statement in this request">N+1</a>' if href else
                          '<span class="wf-mark wf-mark-nplus1">N+1</span>')
        if row["is_slow"]:
            classes += " wf-slow"
            marks += '<span class="wf-mark wf-mark-slow">slow</span>'
        if row["is_error"]:
            classes += " wf-error"
            marks += f'<span class="wf-mark wf-mark-error" title="{cached_escape(row["status_message"])}">failed</span>'
        span_id = escape(row["span_id"])
        kind = cached_escape(row["kind"]) + (f" &middot; {cached_escape(row['service'])}" if row["service"] else "")
        status = cached_escape(f"{row['status']}: {row['status_message']}" if row["status_message"] else row["status"])
        depth = row["depth"]
        duration = f'{row["duration_ms"]:,.2f} ms'
        if repeats > 1 and not unfold:
            duration = f'{row["repeat_total_ms"]:,.2f} ms in all'
        elif row["self_ms"] < row["duration_ms"]:  # it has children
            duration += f' (self {row["self_ms"]:,.2f} ms)'
        append(
            f'<div class="{classes}" id="span-{span_id}" data-span-id="{span_id}" data-depth="{depth}">'
            f'<div class="wf-name" style="padding-left: calc(8px + {depth} * 16px)"><details><summary>'
            f'<span class="wf-span-name">{cached_escape(row["name"])}</span>'
            f'<span class="wf-duration">{duration}</span>{marks}</summary>'
            f'<div class="wf-details"><table><tr><th>span id</th><td>{span_id}</td></tr>'
            f'<tr><th>kind</th><td>{kind}</td></tr>'
            f'<tr><th>starts at</th><td>+{(row["start_ns"] - trace_start) / 1e6:,.3f} ms</td></tr>'
            f'<tr><th>status</th><td>{status}</td></tr></table>'
        )
        if attributes:
            # One escape per span over "key = value" lines: a table cell per attribute
            # doubled the page's size and time for large traces.
            lines = "\n".join([f"{key} = {value}" for key, value in sorted(attributes.items())])
            append(f'<pre class="wf-attributes">{escape(lines)}</pre>')
        events = row["events"] if isinstance(row["events"], list) else []
        if events:
            append('<table><tr><th colspan="2">events</th></tr>')
            for event in events:
                append(_event_html(event, trace_start))
            append("</table>")
        append("</div></details>")
        statement = attributes.get("db.statement")
        if statement:
            append(f'<code class="wf-statement">{cached_escape(str(statement))}</code>')
            if fingerprint_id:
                append(f'<a class="wf-fingerprint" href="{escape(fingerprint_url(str(fingerprint_id)))}">'
                       'statistics, findings and advice</a>')
                proven = (advice or {}).get(str(fingerprint_id))
                if proven:
                    append(f'<div class="wf-advice">proven index: <code>{escape(proven)}</code></div>')
        if row["logs"]:
            append(f'<ul class="wf-logs">{log_lines_html(row["logs"], zone, cached_escape)}</ul>')
        append(f'</div><div class="wf-track"><div class="wf-bar" style="left: {row["offset_percent"]:.3f}%; '
               f'width: {row["width_percent"]:.3f}%"></div></div></div>\n')
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated value is escaped above


def log_lines_html(logs: Iterable[Mapping[str, Any]], zone: tzinfo,
                   cached_escape: Callable[[object], str] = escape) -> str:
    """``<li>`` lines of log records, their time in ``zone`` (the current time zone, as the
    ``date`` filter; looking it up per record cost more than the rest of the line)."""
    return "".join([
        f'<li class="wf-log wf-log-{cached_escape(log["level"].lower())}">'
        f'{log["time"].astimezone(zone).time().isoformat("microseconds")} {cached_escape(log["level"])} '
        f'{cached_escape(log["logger"])}: {escape(log["message"])}</li>' for log in logs])


def _event_html(event, trace_start):
    if not isinstance(event, dict):
        return f"<tr><th>{escape(event)}</th><td></td></tr>"
    time_ns = event.get("time_ns") or event.get("timestamp")
    offset = f" (+{(time_ns - trace_start) / 1e6:,.3f} ms)" if isinstance(time_ns, int) else ""
    attributes = event.get("attributes") if isinstance(event.get("attributes"), dict) else {}
    pairs = ", ".join(f"{escape(key)}={escape(value)}" for key, value in sorted(attributes.items()))
    return f"<tr><th>{escape(event.get('name', ''))}{offset}</th><td>{pairs}</td></tr>"


class MinimumLevelFilter(admin.SimpleListFilter):
    title = "level"
    parameter_name = "level"
    levels: dict[str | None, int] = {"warning": 30, "error": 40, "critical": 50}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Iterable[tuple[str, str]]:
        return (("warning", "warning and above"), ("error", "error and above"), ("critical", "critical"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        number = self.levels.get(self.value())
        return queryset.filter(level_number__gte=number) if number else queryset


@admin.register(LogEntry)
class LogEntryAdmin(LargeTableAdmin):
    list_display = ("logged", "level", "logger", "short_message", "trace_link")
    list_filter = (MinimumLevelFilter,)
    search_fields = ("message",)
    search_help_text = "Text in the message, or an exact trace id."
    ordering = ("-time",)
    sortable_by = ("logged",)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[LogEntry],
                           search_term: str) -> tuple[QuerySet[LogEntry], bool]:
        term = search_term.strip()
        if TRACE_ID.match(term.lower()):
            return queryset.filter(trace_id=term.lower()), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="time", ordering="time")
    def logged(self, entry: LogEntry) -> str:
        return formatting.when(entry.time)

    @admin.display(description="message")
    def short_message(self, entry: LogEntry) -> str:
        return entry.message if len(entry.message) <= 140 else entry.message[:139] + "…"

    @admin.display(description="trace")
    def trace_link(self, entry: LogEntry) -> str:
        if not entry.trace_id:
            return "—"
        url = reverse("admin:telemetry_trace_change", args=[entry.trace_id])
        return format_html('<a href="{}">{}</a>', url, entry.trace_id)
