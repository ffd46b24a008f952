"""Admin for query intelligence: the fingerprint table, a fingerprint's page (hours,
latest plan, findings, suggestions), findings, plans and the stored reports.

The fingerprint table aggregates the hourly ``QueryStat`` rows of a period with one
GROUP BY over the indexed hour range (``telemetry.queries.reports.aggregate``); p95 comes from
the summed histogram buckets. Reports are read as the Celery tasks stored them. Every
page is read-only: telemetry rows are written by telemetry only.
"""

import json
from datetime import timedelta
from typing import Any, NamedTuple
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connections
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from telemetry import conf
from telemetry.admin import formatting
from telemetry.admin.formatting import compact
from telemetry.admin.names import organization_label, organization_names
from telemetry.admin.readonly import ReadOnlyAdmin
from telemetry.core.routers import telemetry_alias
from telemetry.models import QueryFinding, QueryPlan, QueryReport, QueryStat, QuerySuggestion
from telemetry.queries import remedies, reports

PERIODS = ((1, "last hour"), (24, "last 24 hours"), (168, "last 7 days"), (720, "last 30 days"))
SORT_KEYS = (("total_ms", "Total ms"), ("calls", "Calls"), ("mean_ms", "Mean ms"), ("p95_ms", "p95 ms"),
             ("rows", "Rows"))
MAX_ROWS = 300


def trace_url(trace_id: str | None) -> str:
    """The trace's waterfall (a trace dropped by sampling or retention leads back to the
    trace list with Django's "does not exist" message)."""
    if not trace_id:
        return ""
    return reverse("admin:telemetry_trace_change", args=[trace_id])


def render_plan(plan: Any) -> str:
    """Pretty JSON of a plan, sequential-scan nodes highlighted."""
    if not plan:
        return ""
    lines: list[str] = []
    for line in json.dumps(plan, indent=2).splitlines():
        if '"Node Type": "Seq Scan"' in line or '"Node Type": "Parallel Seq Scan"' in line:
            lines.append(format_html('<mark class="seq-scan">{}</mark>', line))
        else:
            lines.append(escape(line))
    return mark_safe('<pre class="query-plan">' + "\n".join(lines) + "</pre>")  # noqa: S308 - escaped above


def suggestion_remedy(suggestion: QuerySuggestion) -> str:
    """A runtime suggestion's remedy with its call site ("" without one)."""
    evidence = suggestion.evidence
    return remedies.describe(evidence.get("remedy") or {}, evidence.get("call_site", ""))


def _latest_optimization_codes():
    """fingerprint id -> codes of the latest optimization report (runtime, plan)."""
    report = QueryReport.objects.filter(kind="optimization").order_by("-period_end", "-built_at").first()
    codes = {}
    if report is not None:
        for fingerprint_id, code in report.suggestions.exclude(fingerprint_id="").values_list("fingerprint_id",
                                                                                             "code"):
            codes.setdefault(fingerprint_id, set()).add(code)
    return codes


@admin.register(QueryStat)
class QueryStatAdmin(ReadOnlyAdmin):
    """The changelist is the per-fingerprint table of a period, not the hourly rows."""

    def get_urls(self) -> list[URLPattern]:
        return [
            path("fingerprint/<str:fingerprint_id>/", self.admin_site.admin_view(self.fingerprint_view),
                 name="telemetry_querystat_fingerprint"),
            *super().get_urls(),
        ]

    def _context(self, request, title):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title}

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            hours = int(request.GET.get("hours", 24))
        except ValueError:
            hours = 24
        start, end = reports.period(hours)
        filters = {name: request.GET.get(name, "") for name in ("table", "operation", "complexity", "suggestion")}
        rows = reports.aggregate(start, end, table=filters["table"] or None,
                                 operation=filters["operation"] or None, complexity=filters["complexity"] or None)
        runtime_codes = _latest_optimization_codes()
        slow_ms = conf.get("SLOW_QUERY_MS")
        for row in rows:
            # ``slow`` is the row's symptom (a badge), not one of its suggestions.
            row["codes"] = sorted((set(row["suggestions"]) | runtime_codes.get(row["fingerprint_id"], set()))
                                  - {"slow"})
            row["slow"] = row["max_ms"] >= slow_ms
        choices = {
            "table": sorted({table for row in rows for table in row["tables"]}),
            "operation": sorted({row["operation"] for row in rows if row["operation"]}),
            "complexity": sorted({row["complexity"] for row in rows if row["complexity"]}),
            "suggestion": sorted({code for row in rows for code in row["codes"]}),
        }
        if filters["suggestion"]:
            rows = [row for row in rows if filters["suggestion"] in row["codes"]]
        order = request.GET.get("o", "total_ms")
        descending = not order.startswith("-")
        key = order.lstrip("-")
        if key not in dict(SORT_KEYS):
            key, descending = "total_ms", True
        rows.sort(key=lambda row: row[key], reverse=descending)
        total_ms = sum(row["total_ms"] for row in rows)
        for row in rows:
            row["share"] = row["total_ms"] / total_ms if total_ms else 0.0
        for row in rows[:MAX_ROWS]:  # the rows shown
            row["url"] = reverse("admin:telemetry_querystat_fingerprint", args=[row["fingerprint_id"]])
            row["statement"] = compact(row["fingerprint"])
        base = {name: value for name, value in {**filters, "hours": hours}.items() if value}
        headers = [{
            "key": name, "label": label, "sorted": name == key, "descending": descending,
            "url": "?" + urlencode({**base, "o": name if not (name == key and descending) else f"-{name}"}),
        } for name, label in SORT_KEYS]
        filter_links = [{
            "name": name, "current": filters[name],
            "all_url": "?" + urlencode({k: v for k, v in {**base, "o": order}.items() if k != name}),
            "choices": [{"value": value, "selected": value == filters[name],
                         "url": "?" + urlencode({**base, "o": order, name: value})} for value in values[:50]],
        } for name, values in choices.items()]
        periods = [{"hours": value, "label": label, "selected": value == hours,
                    "url": "?" + urlencode({**base, "o": order, "hours": value})} for value, label in PERIODS]
        context = {
            **self._context(request, "Query fingerprints"), "rows": rows[:MAX_ROWS], "count": len(rows),
            "headers": headers, "filters": filter_links, "periods": periods, "start": start, "end": end,
            "total_ms": total_ms, "reports": QueryReport.objects.order_by("-built_at")[:6],
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/telemetry/queries/fingerprints.html", context)

    def fingerprint_view(self, request: HttpRequest, fingerprint_id: str) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        # Any rows: the loops below set display attributes (p95_ms, rendered, trace_url) for the template.
        hours: QuerySet[Any] = QueryStat.objects.filter(fingerprint_id=fingerprint_id).order_by("-hour")[:48]
        if not hours:
            raise Http404("no statistics for this fingerprint")
        bucket_fields = QueryStat.bucket_fields()
        for stat in hours:
            stat.p95_ms = reports.percentile([getattr(stat, name) for name in bucket_fields], stat.calls, 0.95,
                                             stat.max_ms)
        plans: list[Any] = list(QueryPlan.objects.filter(fingerprint_id=fingerprint_id).order_by("-captured_at"))
        for plan in plans:
            plan.rendered = render_plan(plan.plan)
        findings: list[Any] = list(
            QueryFinding.objects.filter(fingerprint_id=fingerprint_id).order_by("-created_at")[:20])
        for finding in findings:
            finding.trace_url = trace_url(finding.trace_id)
            finding.remedy_text = remedies.describe(finding.remedy, finding.call_site)
        slow_ms = conf.get("SLOW_QUERY_MS")
        slowest = max(stat.max_ms for stat in hours)
        suggestions: list[Any] = list(QuerySuggestion.objects.filter(
            fingerprint_id=fingerprint_id, report__kind="optimization").select_related("report").order_by(
            "-report__period_end", "rank")[:20])
        for suggestion in suggestions:
            suggestion.remedy_text = suggestion_remedy(suggestion)
        context = {
            **self._context(request, "Fingerprint " + fingerprint_id), "fingerprint_id": fingerprint_id,
            "latest": hours[0], "hours": hours, "plans": plans, "findings": findings, "suggestions": suggestions,
            "slow": slowest >= slow_ms, "slowest_ms": slowest, "slow_ms": slow_ms,
            "advised": any(suggestion.code != "slow" for suggestion in suggestions),
        }
        return TemplateResponse(request, "admin/telemetry/queries/fingerprint.html", context)


@admin.register(QueryFinding)
class QueryFindingAdmin(ReadOnlyAdmin):
    list_display = ("found", "code", "short_fingerprint", "route", "call_site", "duration", "repetitions",
                    "trace")
    list_filter = ("code", "alias")
    search_fields = ("fingerprint", "call_site", "route", "trace_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = ("code", "short_fingerprint", "alias", "route", "organization", "call_site", "remedy_text",
                       "duration", "repetitions", "occurrences", "occurrences_time", "rows", "trace", "found")
    fields = readonly_fields

    @admin.display(description="found", ordering="created_at")
    def found(self, finding: QueryFinding) -> str:
        return formatting.when(finding.created_at)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, finding: QueryFinding) -> str:
        return formatting.duration(finding.duration_ms)

    @admin.display(description="time of all occurrences")
    def occurrences_time(self, finding: QueryFinding) -> str:
        return formatting.duration(finding.occurrences_ms)

    @admin.display(description="organization")
    def organization(self, finding: QueryFinding) -> str:
        return organization_label(finding.organization_id, organization_names([finding.organization_id]))

    @admin.display(description="remedy")
    def remedy_text(self, finding: QueryFinding) -> str:
        return remedies.describe(finding.remedy, finding.call_site) or "—"

    @admin.display(description="statement")
    def short_fingerprint(self, finding: QueryFinding) -> str:
        url = reverse("admin:telemetry_querystat_fingerprint", args=[finding.fingerprint_id])
        return format_html('<a href="{}" title="{}">{}</a>', url, finding.fingerprint, compact(finding.fingerprint))

    @admin.display(description="trace")
    def trace(self, finding: QueryFinding) -> str:
        url = trace_url(finding.trace_id)
        return format_html('<a href="{}">{}</a>', url, finding.trace_id[:12]) if url else "—"


class Unavailable(NamedTuple):
    """Why plans (``what="plans"``) or HypoPG's proofs of index advice (``"proofs"``) are
    not made here, and the commands or settings that enable them."""

    what: str
    reason: str
    commands: tuple[str, ...]


def _postgresql_aliases() -> list[str]:
    """The aliases whose statements are explained: PostgreSQL ones, never telemetry's own store."""
    return [alias for alias in connections if alias != telemetry_alias() and connections[alias].vendor == "postgresql"]


def hypopg_unavailable(alias: str, server_version: int, available: bool, created: bool) -> Unavailable | None:
    """Why HypoPG cannot prove advice on ``alias`` (PostgreSQL ``server_version``, e.g.
    150018), from ``pg_available_extensions``; ``None`` when it is created there."""
    database = connections[alias].settings_dict.get("NAME") or alias
    if not available:
        return Unavailable("proofs", f"HypoPG is not installed on the PostgreSQL {server_version // 10000} server of "
                           f"the “{alias}” database: index advice is kept unproven.",
                           (f"apt install postgresql-{server_version // 10000}-hypopg",
                            f"psql -d {database} -c 'CREATE EXTENSION hypopg;'"))
    if not created:
        return Unavailable("proofs", f"HypoPG is installed but not created in the “{alias}” database: telemetry "
                           "creates it at its next proof when its role may; otherwise a superuser runs:",
                           (f"psql -d {database} -c 'CREATE EXTENSION hypopg;'",))
    return None


def _plans_off() -> Unavailable | None:
    """Why no plan is made here at all, from the settings and the databases' vendors."""
    switched_off = [name for name in ("QUERY_STATS_ENABLED", "EXPLAIN_ENABLED") if not conf.get(name)]
    if switched_off:
        return Unavailable("plans", f"Plans are off: {' and '.join(switched_off)} "
                           f"{'is' if len(switched_off) == 1 else 'are'} False. To have slow statements explained:",
                           tuple(f"TELEMETRY['{name}'] = True" for name in switched_off))
    if not _postgresql_aliases():
        vendors = ", ".join(sorted({connections[alias].vendor for alias in connections}))
        return Unavailable("plans", f"Plans need PostgreSQL: EXPLAIN runs on PostgreSQL databases only, and this "
                           f"project's are {vendors}. With the platform:",
                           ("DATABASE_URL=postgres://user:password@host/db make demo",))
    return None


def plans_unavailable_reasons() -> list[Unavailable]:
    """Everything that keeps plans or their proofs from this page, from the settings and
    (one catalog query per PostgreSQL alias) the servers."""
    off = _plans_off()
    if off:
        return [off]
    if not conf.get("HYPOPG_ENABLED"):
        return [Unavailable("proofs", "HypoPG proofs are off (HYPOPG_ENABLED is False): index advice is kept "
                            "unproven.", ("TELEMETRY['HYPOPG_ENABLED'] = True",))]
    reasons = []
    for alias in _postgresql_aliases():
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT current_setting('server_version_num')::int, "
                               "(SELECT installed_version FROM pg_available_extensions WHERE name = 'hypopg'), "
                               "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg')")
                version, installed, available = cursor.fetchone()
        except DatabaseError as exc:
            reasons.append(Unavailable("proofs", f"The “{alias}” database did not answer ({type(exc).__name__}): "
                                       "whether HypoPG is there is unknown.", ()))
            continue
        reason = hypopg_unavailable(alias, version, available, installed is not None)
        if reason:
            reasons.append(reason)
    return reasons


def plans_unavailable() -> str:
    """Why no plan can be stored here, or "" when plans are just not there yet."""
    off = _plans_off()
    return " ".join((off.reason, *off.commands)) if off else ""


class PlanNode(NamedTuple):
    """One node of a plan as the plan page shows it."""

    depth: int
    node_type: str
    #: The table (with its alias when it differs), the index, or "".
    relation: str
    estimated_rows: float
    total_cost: float
    #: The node's total cost (with its children's) over the plan's.
    share: float
    #: The node's own cost (its total less its children's) over the plan's.
    own_share: float
    #: Its filter or join and index conditions, as EXPLAIN prints them.
    condition: str
    highlighted: bool


#: A node whose own cost is at least this share of the plan's is highlighted.
PLAN_HIGHLIGHT_SHARE = 0.2
_CONDITIONS = ("Index Cond", "Recheck Cond", "Hash Cond", "Merge Cond", "Join Filter", "Filter")


def plan_tree(plan: Any) -> list[PlanNode]:
    """The nodes of an EXPLAIN (FORMAT JSON) plan, depth first, each with its share of the
    plan's cost; only nodes whose own cost is ``PLAN_HIGHLIGHT_SHARE`` of it or more are
    highlighted (a 21-row sequential scan is not, the million-row one is)."""
    roots = [entry["Plan"] for entry in plan or () if isinstance(entry, dict) and isinstance(entry.get("Plan"), dict)]
    total = sum(float(root.get("Total Cost", 0.0)) for root in roots) or 1.0
    nodes: list[PlanNode] = []
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        node, depth = stack.pop()
        children = [child for child in node.get("Plans", ()) if isinstance(child, dict)]
        cost = float(node.get("Total Cost", 0.0))
        own_share = max(cost - sum(float(child.get("Total Cost", 0.0)) for child in children), 0.0) / total
        relation = node.get("Relation Name", "")
        if relation and node.get("Alias") not in (None, relation):
            relation = f"{relation} {node['Alias']}"
        if node.get("Index Name"):
            relation = f"{relation} using {node['Index Name']}" if relation else node["Index Name"]
        nodes.append(PlanNode(
            depth=depth, node_type=str(node.get("Node Type", "?")), relation=relation,
            estimated_rows=float(node.get("Plan Rows", 0)), total_cost=cost, share=min(cost / total, 1.0),
            own_share=own_share, condition="; ".join(f"{name}: {node[name]}" for name in _CONDITIONS if node.get(name)),
            highlighted=own_share >= PLAN_HIGHLIGHT_SHARE))
        stack.extend((child, depth + 1) for child in reversed(children))
    return nodes


def _empty_page_note(admin_: admin.ModelAdmin, request: HttpRequest, text: str) -> None:
    """Says on an empty list why it is empty (the admin's messages, shown above the list)."""
    if text and not admin_.model._default_manager.exists():
        admin_.message_user(request, text, level=messages.INFO)


@admin.register(QueryPlan)
class QueryPlanAdmin(ReadOnlyAdmin):
    """A plan's page is its tree (node, relation, estimated rows, share of the cost), its
    index advice and the JSON behind an expand, under a banner when plans or their
    HypoPG proofs are unavailable here."""

    list_display = ("captured", "alias", "short_fingerprint", "total_cost", "seq_scan_tables", "advice")
    list_filter = ("alias",)
    search_fields = ("fingerprint",)

    @admin.display(description="captured", ordering="captured_at")
    def captured(self, plan: QueryPlan) -> str:
        return formatting.when(plan.captured_at)

    @admin.display(description="statement")
    def short_fingerprint(self, plan: QueryPlan) -> str:
        return compact(plan.fingerprint)

    @admin.display(description="seq scans with filter")
    def seq_scan_tables(self, plan: QueryPlan) -> str:
        return ", ".join(scan["table"] for scan in plan.seq_scans) or "—"

    @admin.display(description="index advice")
    def advice(self, plan: QueryPlan) -> str:
        return "; ".join(f"{c['create_statement']} (gain {c['gain']:.0%})" if c.get("gain") is not None
                         else c["create_statement"] for c in plan.candidates) or "—"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        _empty_page_note(self, request, plans_unavailable() or (
            f"No plan yet: a PostgreSQL statement slower than SLOW_QUERY_MS ({conf.get('SLOW_QUERY_MS'):g} ms) is "
            "explained off the request path, at most once per fingerprint per EXPLAIN_INTERVAL_SECONDS."))
        return super().changelist_view(request, extra_context)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        plan = self.viewable_object(request, object_id)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": str(plan), "plan": plan,
            "original": plan, "statement": compact(plan.fingerprint), "nodes": plan_tree(plan.plan),
            "highlight_share": PLAN_HIGHLIGHT_SHARE,
            "unavailable": plans_unavailable_reasons(), "plan_json": json.dumps(plan.plan, indent=2),
            "fingerprint_url": reverse("admin:telemetry_querystat_fingerprint", args=[plan.fingerprint_id]),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/telemetry/queries/plan.html", context)


@admin.register(QueryReport)
class QueryReportAdmin(ReadOnlyAdmin):
    """A report's change page shows what the task stored: rankings or suggestions with
    their evidence."""

    list_display = ("__str__", "kind", "built_at", "summary")
    list_filter = ("kind",)
    ordering = ("-period_end", "kind")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        _empty_page_note(self, request, (
            "No report yet: Celery beat builds them (telemetry.build_slow_query_report every 2 minutes, "
            "telemetry.build_optimization_report every 3; run `celery -A <project> beat` and a worker), or build "
            "both now: python manage.py shell -c \"from telemetry.queries import reports; "
            "reports.build_slow_query_report(); reports.build_optimization_report()\""))
        return super().changelist_view(request, extra_context)

    @admin.display(description="summary")
    def summary(self, report: QueryReport) -> str:
        if report.kind == "optimization":
            data = report.data
            return f"{data.get('suggestions', 0)} suggestions over {data.get('fingerprints', 0)} fingerprints"
        totals = report.data.get("totals", {})
        return f"{totals.get('fingerprints', 0)} fingerprints, {totals.get('calls', 0)} calls"

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        report = self.viewable_object(request, object_id)
        suggestions = list(report.suggestions.all())
        plans = QueryPlan.objects.in_bulk([s.evidence["plan_id"] for s in suggestions if s.evidence.get("plan_id")])
        for suggestion in suggestions:
            suggestion.trace_url = trace_url(suggestion.evidence.get("trace_id", ""))
            suggestion.remedy_text = suggestion_remedy(suggestion)
            plan = plans.get(suggestion.evidence.get("plan_id"))
            suggestion.rendered_plan = render_plan(plan.plan) if plan else ""
            suggestion.fingerprint_url = (reverse("admin:telemetry_querystat_fingerprint",
                                                  args=[suggestion.fingerprint_id])
                                          if suggestion.fingerprint_id else "")
        for row in [*report.data.get("by_total_time", ()), *report.data.get("by_p95", ())]:
            row["url"] = reverse("admin:telemetry_querystat_fingerprint", args=[row["fingerprint_id"]])
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": str(report),
            "report": report, "data": report.data, "suggestions": suggestions, "original": report,
            "age": timezone.now() - report.built_at if report.built_at else timedelta(0),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/telemetry/queries/report.html", context)
