"""Per-fingerprint statistics and runtime detectors, fed by the flusher thread.

Statistics (calls, total / min / max / standard deviation, rows, a latency histogram)
are aggregated per fingerprint, database alias and hour in process and written by one
increment-upsert per sample interval. Detectors look at one request's statements:

- ``n_plus_one``: one fingerprint run ``N_PLUS_ONE_THRESHOLD`` times or more with
  different parameters;
- ``duplicate_query``: the same fingerprint with the same parameters run twice or more;
- ``add_limit_clause``: a SELECT without LIMIT that returned more than
  ``ADD_LIMIT_ROWS`` rows;
- ``slow``: a statement slower than ``SLOW_QUERY_MS``.

Findings keep the normalized statement, call site, route, organization and duration,
never parameter values; each (code, fingerprint) is kept at most once a minute per
process and the pending list is bounded.
"""

import bisect
import threading
import time

from django.utils import timezone

from telemetry import conf
from telemetry.queries import explain

MAX_PENDING_FINDINGS = 1000
#: Findings that are advice (``slow`` is a symptom): they also count in
#: ``<namespace>_db_query_optimization_suggestions_total``.
RUNTIME_SUGGESTIONS = frozenset({"n_plus_one", "duplicate_query", "add_limit_clause"})
FINDING_INTERVAL_SECONDS = 60.0

_pending_stats = {}
_bucket_bounds = None


def _load_bucket_bounds():
    """``QueryStat.BUCKETS_MS``, read once: an import inside a per-statement function costs
    more than the rest of it."""
    global _bucket_bounds
    from telemetry.models import QueryStat

    _bucket_bounds = QueryStat.BUCKETS_MS
    return _bucket_bounds
_pending_findings = []
_last_finding = {}
_lock = threading.Lock()


def observe(batch, analysis, alias, duration, rowcount):
    bounds = _bucket_bounds or _load_bucket_bounds()
    milliseconds = duration * 1000.0
    key = (analysis.fingerprint_id, alias, batch.hour)
    entry = _pending_stats.get(key)
    now = batch.now
    if entry is None:
        entry = _pending_stats[key] = {
            "analysis": analysis, "calls": 0, "total_ms": 0.0, "total_squares_ms": 0.0, "min_ms": milliseconds,
            "max_ms": milliseconds, "rows": 0, "buckets": [0] * (len(bounds) + 1),
            "first_seen": now,
        }
    entry["calls"] += 1
    entry["total_ms"] += milliseconds
    entry["total_squares_ms"] += milliseconds * milliseconds
    entry["min_ms"] = min(entry["min_ms"], milliseconds)
    entry["max_ms"] = max(entry["max_ms"], milliseconds)
    entry["rows"] += max(rowcount, 0)
    entry["buckets"][bisect.bisect_left(bounds, milliseconds)] += 1
    entry["last_seen"] = now


def _finding(code, analysis, alias, route, organization, call_site, duration, repetitions=1, rows=-1,
             trace_id=""):
    if code in RUNTIME_SUGGESTIONS:
        # Every detection counts in the metric; only the stored evidence is rate-limited.
        from telemetry.metrics import families

        families().analytics.optimization_suggestions.child((code,)).inc()
    key = (code, analysis.fingerprint_id)
    now = time.monotonic()
    if now - _last_finding.get(key, -FINDING_INTERVAL_SECONDS) < FINDING_INTERVAL_SECONDS:
        return
    if len(_pending_findings) >= MAX_PENDING_FINDINGS:
        return
    _last_finding[key] = now
    _pending_findings.append({
        "code": code, "fingerprint_id": analysis.fingerprint_id, "fingerprint": analysis.fingerprint,
        "alias": alias, "route": route or "", "organization_id": organization or "",
        "call_site": (call_site or "")[:500], "duration_ms": duration * 1000.0, "repetitions": repetitions,
        "rows": rows, "created_at": timezone.now(), "trace_id": trace_id,
    })


def _trace_id(event):
    """The trace of a query event: the span context the execute wrapper noted (index 11)."""
    span_context = event[11] if len(event) > 11 else None
    return f"{span_context.trace_id:032x}" if span_context is not None and span_context.is_valid else ""


def worth_detecting(analysed, settings):
    """Cheap pre-check: the execute wrapper finds call sites only for repeated or slow
    statements, so without one (and without a large result) there is nothing to detect."""
    limit_rows = settings["ADD_LIMIT_ROWS"]
    return any(event[10] or event[8] > limit_rows for event, _ in analysed)


def _has_limit(fingerprint):
    return " limit " in f" {fingerprint.lower()} "


def detect(analysed, route="", organization=""):
    """``analysed``: one request's (or one standalone) statements as
    ``(event, analysis)`` pairs, in order."""
    slow_seconds = conf.get("SLOW_QUERY_MS") / 1000.0
    limit_rows = conf.get("ADD_LIMIT_ROWS")
    groups = {}
    for event, analysis in analysed:
        _, alias, _, _, params, many, _, duration, rowcount, _, call_site = event[:11]
        if duration >= slow_seconds:
            _finding("slow", analysis, alias, route, organization, call_site, duration, rows=rowcount,
                     trace_id=_trace_id(event))
            # Queued for an EXPLAIN run later by this thread (rate-limited, PostgreSQL only).
            explain.offer(alias, event[2], event[3], params, many, analysis)
        if (analysis.operation == "select" and rowcount > limit_rows and not many
                and not _has_limit(analysis.fingerprint)):
            _finding("add_limit_clause", analysis, alias, route, organization, call_site, duration, rows=rowcount,
                     trace_id=_trace_id(event))
        groups.setdefault((alias, analysis.fingerprint_id), []).append((event, analysis))
    threshold = conf.get("N_PLUS_ONE_THRESHOLD")
    for (alias, _), runs in groups.items():
        if len(runs) < 2:
            continue
        analysis = runs[0][1]
        by_params = {}
        for event, _ in runs:
            by_params.setdefault(_params_key(event[4]), []).append(event)
        call_site = next((event[10] for event, _ in runs if event[10]), "")
        total = sum(event[7] for event, _ in runs)
        repeated = max(len(events) for events in by_params.values())
        if repeated >= 2:
            _finding("duplicate_query", analysis, alias, route, organization, call_site, total, repeated,
                     trace_id=_trace_id(runs[0][0]))
        if len(by_params) >= threshold:
            _finding("n_plus_one", analysis, alias, route, organization, call_site, total, len(runs),
                     trace_id=_trace_id(runs[0][0]))


def _params_key(params):
    try:
        return repr(params)
    except Exception:  # noqa: BLE001
        return id(params)


def write_pending(batch=None):
    from telemetry.core.context import suppressed
    from telemetry.models import QueryFinding, QueryStat
    from telemetry.core.routers import telemetry_alias
    from telemetry.core.upsert import increment

    with _lock:
        stats = dict(_pending_stats)
        _pending_stats.clear()
        findings = list(_pending_findings)
        _pending_findings.clear()
    bucket_fields = QueryStat.bucket_fields()
    rows = []
    for (fingerprint_id, alias, hour), entry in stats.items():
        analysis = entry["analysis"]
        row = {
            "fingerprint_id": fingerprint_id, "alias": alias, "hour": hour,
            "fingerprint": analysis.fingerprint[:10000], "operation": analysis.operation[:32],
            "tables": ",".join(analysis.tables)[:255], "complexity": (analysis.complexity or "unknown")[:16],
            "complexity_score": analysis.complexity_score, "suggestions": ",".join(analysis.suggestions)[:255],
            "calls": entry["calls"], "total_ms": entry["total_ms"], "total_squares_ms": entry["total_squares_ms"],
            "min_ms": entry["min_ms"], "max_ms": entry["max_ms"], "rows": entry["rows"],
            "first_seen": entry["first_seen"], "last_seen": entry["last_seen"],
        }
        row.update(zip(bucket_fields, entry["buckets"]))
        rows.append(row)
    increment(
        QueryStat, rows, key_fields=("fingerprint_id", "alias", "hour"),
        sum_fields=("calls", "total_ms", "total_squares_ms", "rows", *bucket_fields),
        max_fields=("max_ms", "last_seen"), min_fields=("min_ms", "first_seen"),
        set_fields=("fingerprint", "operation", "tables", "complexity", "complexity_score", "suggestions"),
    )
    if findings:
        with suppressed():
            QueryFinding.objects.using(telemetry_alias()).bulk_create([QueryFinding(**row) for row in findings])
