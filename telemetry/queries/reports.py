"""The slow-query and optimization reports, built from stored statistics.

Both read the hourly per-fingerprint rows (``QueryStat``) of a period with one GROUP BY
over the indexed hour range; p95 comes from the summed histogram buckets. A report is
identified by (kind, period start, period end): building the same period again replaces
it, so the Celery tasks are idempotent and admin pages only read stored results.
"""

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Avg, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Greatest
from django.utils import timezone

from telemetry import conf
from telemetry.core.context import suppressed
from telemetry.core.routers import telemetry_alias
from telemetry.models import QueryFinding, QueryReport, QueryStat, QuerySuggestion
from telemetry.queries import advise, remedies

MAX_FINGERPRINT_TEXT = 2000
MAX_SUGGESTIONS = 200


def period(hours: float | None = None, end: datetime | None = None) -> tuple[datetime, datetime]:
    """``[start, end)`` of ``hours`` whole hours; ``end`` defaults to the end of the
    current hour, so the hour in progress is included and rebuilds replace."""
    hours = hours or conf.get("REPORT_PERIOD_HOURS")
    if end is None:
        end = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - timedelta(hours=hours), end


def percentile(buckets: Sequence[int], calls: int, fraction: float, max_ms: float) -> float:
    """The ``fraction`` quantile (ms) from histogram counts over ``QueryStat.BUCKETS_MS``,
    interpolated inside its bucket and never above the observed maximum."""
    if not calls:
        return 0.0
    bounds = QueryStat.BUCKETS_MS
    target = fraction * calls
    cumulative = 0
    for index, count in enumerate(buckets):
        if count and cumulative + count >= target:
            lower = bounds[index - 1] if index > 0 else 0.0
            upper = bounds[index] if index < len(bounds) else max(max_ms, lower)
            value = lower + (upper - lower) * (target - cumulative) / count
            return round(min(value, max_ms), 3)
        cumulative += count
    return round(max_ms, 3)


def _list_filter(field, value):
    """Rows whose comma list ``field`` holds ``value``."""
    return (Q(**{field: value}) | Q(**{f"{field}__startswith": f"{value},"})
            | Q(**{f"{field}__endswith": f",{value}"}) | Q(**{f"{field}__contains": f",{value},"}))


def aggregate(start: datetime, end: datetime, table: str | None = None, operation: str | None = None,
              complexity: str | None = None, suggestion: str | None = None) -> list[dict[str, Any]]:
    """Per-fingerprint totals over ``[start, end)``: one GROUP BY, p95 added after."""
    bucket_fields = QueryStat.bucket_fields()
    rows: QuerySet[QueryStat, Any] = QueryStat.objects.using(telemetry_alias()).filter(hour__gte=start, hour__lt=end)
    if table:
        rows = rows.filter(_list_filter("tables", table))
    if operation:
        rows = rows.filter(operation=operation)
    if complexity:
        rows = rows.filter(complexity=complexity)
    if suggestion:
        rows = rows.filter(_list_filter("suggestions", suggestion))
    rows = rows.values("fingerprint_id").order_by().annotate(
        calls_sum=Sum("calls"), total_ms_sum=Sum("total_ms"), rows_sum=Sum("rows"), max_ms_max=Max("max_ms"),
        min_ms_min=Min("min_ms"), fingerprint_text=Max("fingerprint"), operation_name=Max("operation"),
        tables_list=Max("tables"), complexity_name=Max("complexity"), complexity_score_max=Max("complexity_score"),
        suggestion_list=Max("suggestions"), alias_name=Max("alias"), last_seen_max=Max("last_seen"),
        **{f"{name}_sum": Sum(name) for name in bucket_fields},
    )
    result = []
    for row in rows:
        calls = row["calls_sum"] or 0
        buckets = [row[f"{name}_sum"] or 0 for name in bucket_fields]
        max_ms = row["max_ms_max"] or 0.0
        result.append({
            "fingerprint_id": row["fingerprint_id"], "fingerprint": row["fingerprint_text"],
            "alias": row["alias_name"], "operation": row["operation_name"],
            "tables": [name for name in (row["tables_list"] or "").split(",") if name],
            "complexity": row["complexity_name"], "complexity_score": row["complexity_score_max"],
            "suggestions": [code for code in (row["suggestion_list"] or "").split(",") if code],
            "calls": calls, "total_ms": round(row["total_ms_sum"] or 0.0, 3), "rows": row["rows_sum"] or 0,
            "mean_ms": round((row["total_ms_sum"] or 0.0) / calls, 3) if calls else 0.0,
            "p95_ms": percentile(buckets, calls, 0.95, max_ms), "max_ms": round(max_ms, 3),
            "last_seen": row["last_seen_max"],
        })
    return result


def _change(current, previous):
    return round((current - previous) / previous, 4) if previous else None


def _store(kind, start, end, data):

    report, _ = QueryReport.objects.using(telemetry_alias()).update_or_create(
        kind=kind, period_start=start, period_end=end, defaults={"data": data, "built_at": timezone.now()},
    )
    return report


def _public(row, total_ms):
    return {**{key: value for key, value in row.items() if key != "last_seen"},
            "fingerprint": (row["fingerprint"] or "")[:MAX_FINGERPRINT_TEXT],
            "share_of_db_time": round(row["total_ms"] / total_ms, 4) if total_ms else 0.0}


def n_plus_one_headline(evidence: dict[str, Any]) -> str:
    """"12 queries per request on /apps/<id> — add select_related(...) to the App queryset at
    apps_builder/views.py:88": an N+1's count per request, route and remedy."""
    where = f" on {evidence['route']}" if evidence.get("route") else ""
    remedy = remedies.describe(evidence.get("remedy") or {}, evidence.get("call_site", ""))
    return f"{evidence.get('per_request', 0)} queries per request{where}" + (f" — {remedy}" if remedy else "")


def build_slow_query_report(hours: float | None = None, end: datetime | None = None) -> QueryReport:
    """Top fingerprints by total time and by p95, with the change against the previous
    period of the same length."""
    start, end = period(hours, end)
    length = end - start
    with suppressed():
        current = aggregate(start, end)
        previous = {row["fingerprint_id"]: row for row in aggregate(start - length, start)}
    top_n = conf.get("REPORT_TOP_N")
    total_ms = sum(row["total_ms"] for row in current)
    calls = sum(row["calls"] for row in current)
    previous_total_ms = sum(row["total_ms"] for row in previous.values())
    previous_calls = sum(row["calls"] for row in previous.values())

    def entry(row: dict[str, Any]) -> dict[str, Any]:
        before = previous.get(row["fingerprint_id"])
        item = _public(row, total_ms)
        item["previous"] = (None if before is None else
                            {"calls": before["calls"], "total_ms": before["total_ms"], "p95_ms": before["p95_ms"]})
        item["change_total_ms"] = _change(row["total_ms"], before["total_ms"]) if before else None
        item["change_p95_ms"] = _change(row["p95_ms"], before["p95_ms"]) if before else None
        return item

    data = {
        "period_hours": length.total_seconds() / 3600.0,
        "totals": {"fingerprints": len(current), "calls": calls, "total_ms": round(total_ms, 3)},
        "previous_totals": {"fingerprints": len(previous), "calls": previous_calls,
                            "total_ms": round(previous_total_ms, 3)},
        "change": {"calls": _change(calls, previous_calls), "total_ms": _change(total_ms, previous_total_ms)},
        "by_total_time": [entry(row) for row in sorted(current, key=lambda r: -r["total_ms"])[:top_n]],
        "by_p95": [entry(row) for row in sorted(current, key=lambda r: (-r["p95_ms"], -r["total_ms"]))[:top_n]],
    }
    return _store("slow_queries", start, end, data)


def build_optimization_report(hours: float | None = None, end: datetime | None = None) -> QueryReport:
    """Every suggestion of the period, ranked by the share of database time of the
    fingerprints it affects: statement rules, runtime findings, proven missing indexes
    (from captured plans) and unused indexes (from the statistics views)."""
    alias = telemetry_alias()
    start, end = period(hours, end)
    settings = conf.get_settings()
    with suppressed():
        stats = {row["fingerprint_id"]: row for row in aggregate(start, end)}
        total_ms = sum(row["total_ms"] for row in stats.values())
        findings = list(
            QueryFinding.objects.using(alias).filter(created_at__gte=start, created_at__lt=end)
            .values("code", "fingerprint_id").order_by().annotate(
                occurrences=Sum("occurrences"), latest=Max("created_at"), repetitions_mean=Avg("repetitions"),
                # Rows written before occurrences_ms existed hold 0 there: their own duration counts.
                occurrences_ms=Sum(Greatest("occurrences_ms", "duration_ms")))
        )
        examples: dict[tuple[str, str], dict[str, Any]] = {}
        # Both names are reused below: for values() rows and for index candidates' keys.
        finding: Any
        key: tuple[Any, ...]
        for finding in QueryFinding.objects.using(alias).filter(
                created_at__gte=start, created_at__lt=end).order_by("-created_at")[:5000].iterator():
            key = (finding.code, finding.fingerprint_id)
            example = examples.setdefault(key, {"fingerprint": finding.fingerprint, "alias": finding.alias,
                                                "call_site": finding.call_site, "route": finding.route,
                                                "duration_ms": finding.duration_ms,
                                                "repetitions": finding.repetitions, "trace_id": "",
                                                "remedy": finding.remedy})
            if not example["trace_id"] and finding.trace_id:
                example["trace_id"] = finding.trace_id
        missing = advise.missing_index_suggestions(advise.proven_advice(start, end, stats, include_unproven=True))
        unused, unused_failed = advise.unused_index_suggestions(stats, settings["MISSING_INDEX_MIN_ROWS"])

    def share(fingerprint_ids: Collection[str]) -> float:
        if not total_ms:
            return 0.0
        return round(sum(stats[f]["total_ms"] for f in fingerprint_ids if f in stats) / total_ms, 4)

    # The first example with a call site, per fingerprint.
    call_sites: dict[str, dict[str, Any]] = {}
    for (_, found_id), example in examples.items():
        if example["call_site"]:
            call_sites.setdefault(found_id, example)

    suggestions = []
    for row in stats.values():
        example = call_sites.get(row["fingerprint_id"], {})
        for code in row["suggestions"]:
            suggestions.append(dict(
                code=code, source="static", fingerprint_id=row["fingerprint_id"], fingerprint=row["fingerprint"],
                alias=row["alias"], table=",".join(row["tables"])[:255],
                share_of_db_time=share([row["fingerprint_id"]]),
                evidence={"calls": row["calls"], "total_ms": row["total_ms"], "p95_ms": row["p95_ms"],
                          "call_site": example.get("call_site", ""), "route": example.get("route", ""),
                          "trace_id": example.get("trace_id", "")},
            ))
    for finding in findings:
        example = examples.get((finding["code"], finding["fingerprint_id"]), {})
        stat = stats.get(finding["fingerprint_id"], {})
        evidence = {"occurrences": finding["occurrences"], "latest": finding["latest"].isoformat(),
                    "call_site": example.get("call_site", ""), "route": example.get("route", ""),
                    "duration_ms": example.get("duration_ms"), "repetitions": example.get("repetitions"),
                    "trace_id": example.get("trace_id", ""), "remedy": example.get("remedy") or {}}
        share_of_db_time = share([finding["fingerprint_id"]])
        if finding["code"] == "n_plus_one":
            # An N+1 costs its repetitions in every request it occurs in: ranked by their summed time.
            share_of_db_time = round(finding["occurrences_ms"] / total_ms, 4) if total_ms else 0.0
            evidence.update(per_request=round(finding["repetitions_mean"] or 0),
                            repetitions_ms=round(finding["occurrences_ms"], 3))
            evidence["headline"] = n_plus_one_headline(evidence)
        suggestions.append(dict(
            code=finding["code"], source="runtime", fingerprint_id=finding["fingerprint_id"],
            fingerprint=example.get("fingerprint", ""), alias=example.get("alias", ""),
            table=",".join(stat.get("tables", ()))[:255], share_of_db_time=share_of_db_time, evidence=evidence,
        ))
    suggestions.extend(missing)
    suggestions.extend(unused)
    suggestions.sort(key=lambda item: (-item["share_of_db_time"], item["code"], item.get("fingerprint_id", "")))
    # ``slow`` is a symptom: listed only for a fingerprint no other suggestion explains.
    advised = {item["fingerprint_id"] for item in suggestions if item["code"] != "slow" and item.get("fingerprint_id")}
    suggestions = [item for item in suggestions
                   if item["code"] != "slow" or item["fingerprint_id"] not in advised][:MAX_SUGGESTIONS]
    by_code = dict(Counter(item["code"] for item in suggestions))
    data = {"period_hours": (end - start).total_seconds() / 3600.0, "total_ms": round(total_ms, 3),
            "fingerprints": len(stats), "suggestions": len(suggestions), "by_code": by_code,
            "unused_index_failed_aliases": unused_failed}
    with suppressed(), transaction.atomic(using=alias):
        report = _store("optimization", start, end, data)
        report.suggestions.all().delete()
        QuerySuggestion.objects.using(alias).bulk_create([
            QuerySuggestion(report=report, rank=rank, **{
                **item, "fingerprint": (item.get("fingerprint") or "")[:MAX_FINGERPRINT_TEXT]})
            for rank, item in enumerate(suggestions, start=1)
        ])
    return report
