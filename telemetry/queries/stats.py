"""Per-fingerprint statistics and runtime detectors, fed by the flusher thread.

Statistics (calls, total / min / max / standard deviation, rows, a latency histogram)
are aggregated per fingerprint, database alias and hour in a bounded in-process table and
written by one increment-upsert per sample interval. Detectors look at one request's statements:

- ``n_plus_one``: one fingerprint run ``N_PLUS_ONE_THRESHOLD`` times or more with
  different parameters;
- ``duplicate_query``: the same fingerprint with the same parameters run twice or more;
- ``add_limit_clause``: a SELECT without LIMIT that returned more than
  ``ADD_LIMIT_ROWS`` rows;
- ``slow``: a statement slower than ``SLOW_QUERY_MS``.

Findings keep the normalized statement, call site, route, organization and duration,
never parameter values, and for an N+1 or a duplicate the ORM change that removes it
(``telemetry.queries.remedies``, resolved here on the flusher thread, cached per
fingerprint); each (code, fingerprint) is kept at most once a minute per process, the
detections in between folded into the next kept one (``occurrences``, ``occurrences_ms``),
and the pending list is bounded. What a full table or list cannot take is counted in
``telemetry_table_dropped_total{table}``.
"""

import threading
import time
from collections.abc import Sequence
from functools import partial
from operator import add, mul
from typing import NamedTuple

from django.utils import timezone

from telemetry import conf
from telemetry.core.context import suppressed
from telemetry.core.recorder import bucket_counts
from telemetry.core.routers import telemetry_alias
from telemetry.core.upsert import IncrementTable, Row
from telemetry.metrics import families, internal
from telemetry.models import QueryFinding, QueryStat
from telemetry.queries import explain, remedies
from telemetry.queries.sql import QueryAnalysis

#: Distinct (fingerprint, alias, hour) keys held between two writes.
MAX_PENDING_STATS = 10_000
MAX_PENDING_FINDINGS = 1000
#: (code, fingerprint) pairs whose last finding time is kept; forgotten all at once beyond it.
MAX_REMEMBERED_FINDINGS = 10_000
#: Findings that are advice (``slow`` is a symptom): they also count in
#: ``<namespace>_db_query_optimization_suggestions_total``.
RUNTIME_SUGGESTIONS = frozenset({"n_plus_one", "duplicate_query", "add_limit_clause"})
FINDING_INTERVAL_SECONDS = 60.0
#: Upper bounds of the latency histogram and the fields its counts are stored in.
BUCKET_BOUNDS_MS = QueryStat.BUCKETS_MS
BUCKET_FIELDS = tuple(QueryStat.bucket_fields())


class QueryStatRow(Row):
    """A fingerprint's hour on one alias (``QueryStat``); the analysis gives the
    descriptive fields, the latency histogram its ``bucket_<n>`` fields."""

    __slots__ = ("analysis", "calls", "total_ms", "total_squares_ms", "min_ms", "max_ms", "rows", "buckets",
                 "first_seen", "last_seen")

    def __init__(self, analysis, milliseconds, now):
        self.analysis = analysis
        self.calls = 0
        self.total_ms = 0.0
        self.total_squares_ms = 0.0
        self.min_ms = milliseconds
        self.max_ms = milliseconds
        self.rows = 0
        self.buckets = [0] * len(BUCKET_FIELDS)
        self.first_seen = now
        self.last_seen = now

    def fields(self):
        analysis = self.analysis
        fields = {
            "fingerprint": analysis.fingerprint[:10000], "operation": analysis.operation[:32],
            "tables": ",".join(analysis.tables)[:255], "complexity": (analysis.complexity or "unknown")[:16],
            "complexity_score": analysis.complexity_score, "suggestions": ",".join(analysis.suggestions)[:255],
            "calls": self.calls, "total_ms": self.total_ms, "total_squares_ms": self.total_squares_ms,
            "min_ms": self.min_ms, "max_ms": self.max_ms, "rows": self.rows,
            "first_seen": self.first_seen, "last_seen": self.last_seen,
        }
        fields.update(zip(BUCKET_FIELDS, self.buckets, strict=True))
        return fields


class _Folded:
    """When a (code, fingerprint)'s last finding was kept, and the detections since."""

    __slots__ = ("at", "occurrences", "total_ms")

    def __init__(self, at: float) -> None:
        self.at = at
        self.occurrences = 0
        self.total_ms = 0.0


class QueryStatistics:
    """This process's statistics table and pending findings, with the findings' rate limits.

    The table and the findings list are bounded; what does not fit is counted in
    ``telemetry_table_dropped_total{table="query_stats"|"query_findings"}``.
    """

    def __init__(self, max_keys: int = MAX_PENDING_STATS) -> None:
        self.drops = internal.DropCounter(internal.table_dropped, labelled=True)
        self.table: IncrementTable[QueryStatRow] = IncrementTable(
            QueryStat, QueryStatRow, key_fields=("fingerprint_id", "alias", "hour"),
            sum_fields=("calls", "total_ms", "total_squares_ms", "rows", *BUCKET_FIELDS),
            max_fields=("max_ms", "last_seen"), min_fields=("min_ms", "first_seen"),
            set_fields=("fingerprint", "operation", "tables", "complexity", "complexity_score", "suggestions"),
            max_keys=max_keys, drops=self.drops, drop_reason="query_stats")
        self._findings: list[QueryFinding] = []
        #: (code, fingerprint id) -> its last kept finding's time and the detections folded since.
        self._last_finding: dict[tuple[str, str], _Folded] = {}
        self._lock = threading.Lock()

    def observe(self, batch, analysis, alias, duration, rowcount) -> None:
        """One statement (query handler, flusher thread)."""
        self.add(batch, analysis, alias, [duration], [rowcount])

    def add(self, batch, analysis, alias, durations: Sequence[float], rowcounts: Sequence[int]) -> None:
        """Runs of one statement (``analysis``) on ``alias`` that took ``durations`` and
        returned ``rowcounts`` (-1: not known), in the flusher thread."""
        milliseconds = [duration * 1000.0 for duration in durations]
        now = batch.now
        row = self.table.row((analysis.fingerprint_id, alias, batch.hour), analysis, milliseconds[0], now,
                             weight=len(milliseconds))
        if row is None:
            return
        row.calls += len(milliseconds)
        row.total_ms += sum(milliseconds)
        row.total_squares_ms += sum(map(mul, milliseconds, milliseconds))
        row.min_ms = min(row.min_ms, *milliseconds)
        row.max_ms = max(row.max_ms, *milliseconds)
        row.rows += sum(count for count in rowcounts if count > 0)
        row.buckets = list(map(add, row.buckets, bucket_counts(BUCKET_BOUNDS_MS, milliseconds, len(BUCKET_FIELDS))))
        row.last_seen = now

    def finding(self, code, analysis, alias, route, organization, call_site, duration, repetitions=1, rows=-1,
                trace_id="", remedy=None) -> None:
        """A detection: counted when it is advice, kept as a ``QueryFinding`` at most once a
        minute per (code, fingerprint). ``remedy``: a zero-argument callable giving the
        finding's remedy, called only for a finding that is kept."""
        if code in RUNTIME_SUGGESTIONS:
            # Every detection counts in the metric; only the stored evidence is rate-limited.
            families().analytics.optimization_suggestions.child((code,)).inc()
        key = (code, analysis.fingerprint_id)
        now = time.monotonic()
        milliseconds = duration * 1000.0
        last = self._last_finding.get(key)
        if last is not None and now - last.at < FINDING_INTERVAL_SECONDS:
            # Folded into the next kept finding, so the report sums every occurrence's time.
            last.occurrences += 1
            last.total_ms += milliseconds
            return
        if len(self._findings) >= MAX_PENDING_FINDINGS:
            self.drops.count("query_findings")
            return
        if len(self._last_finding) >= MAX_REMEMBERED_FINDINGS:
            self._last_finding.clear()
            last = None
        self._last_finding[key] = _Folded(now)
        self._findings.append(QueryFinding(
            code=code, fingerprint_id=analysis.fingerprint_id, fingerprint=analysis.fingerprint, alias=alias,
            route=route or "", organization_id=organization or "", call_site=(call_site or "")[:500],
            duration_ms=milliseconds, repetitions=repetitions, rows=rows, created_at=timezone.now(),
            trace_id=trace_id, remedy=remedy() if remedy is not None else {},
            occurrences=1 + (last.occurrences if last else 0),
            occurrences_ms=milliseconds + (last.total_ms if last else 0.0),
        ))

    def write_pending(self, batch=None) -> None:
        """The sampler's step: one increment-upsert of the statistics, one insert of the findings."""
        with self._lock:
            findings, self._findings = self._findings, []
        self.table.write()
        if findings:
            with suppressed():
                QueryFinding.objects.using(telemetry_alias()).bulk_create(findings)

    def reset(self) -> None:
        """Forgets pending statistics and findings and the findings' rate limits
        (``telemetry.testing.reset``)."""
        self.table.reset()
        with self._lock:
            self._findings = []
        self._last_finding.clear()


#: This process's query statistics; the handlers and the sampler call the functions below.
statistics = QueryStatistics()
observe = statistics.observe
_finding = statistics.finding
write_pending = statistics.write_pending


def _trace_id(event):
    """The trace of a query event: the span context the execute wrapper noted."""
    span_context = event.span_context
    return f"{span_context.trace_id:032x}" if span_context is not None and span_context.is_valid else ""


def worth_detecting(analysed, settings):
    """Cheap pre-check: the execute wrapper finds call sites only for repeated or slow
    statements, so without one (and without a large result) there is nothing to detect."""
    limit_rows = settings["ADD_LIMIT_ROWS"]
    for event, _ in analysed:
        if event.call_site or event.rowcount > limit_rows:
            return True
    return False


def _has_limit(fingerprint):
    return " limit " in f" {fingerprint.lower()} "


def detect(analysed, route="", organization=""):
    """``analysed``: one request's (or one standalone) statements as
    ``(QueryExecuted, analysis)`` pairs, in order."""
    slow_seconds = conf.get("SLOW_QUERY_MS") / 1000.0
    limit_rows = conf.get("ADD_LIMIT_ROWS")
    groups = {}
    for index, (event, analysis) in enumerate(analysed):
        alias, duration, rowcount, call_site = event.alias, event.duration, event.rowcount, event.call_site
        if duration >= slow_seconds:
            _finding("slow", analysis, alias, route, organization, call_site, duration, rows=rowcount,
                     trace_id=_trace_id(event))
            # Queued for an EXPLAIN run later by this thread (rate-limited, PostgreSQL only).
            explain.offer(alias, event.vendor, event.sql, event.params, event.many, analysis)
        if (analysis.operation == "select" and rowcount > limit_rows and not event.many
                and not _has_limit(analysis.fingerprint)):
            _finding("add_limit_clause", analysis, alias, route, organization, call_site, duration, rows=rowcount,
                     trace_id=_trace_id(event))
        groups.setdefault((alias, analysis.fingerprint_id), (index, []))[1].append((event, analysis))
    threshold = conf.get("N_PLUS_ONE_THRESHOLD")
    loops = {}
    for (alias, fingerprint_id), (first, runs) in groups.items():
        if len(runs) < 2:
            continue
        analysis = runs[0][1]
        by_params = {}
        for event, _ in runs:
            by_params.setdefault(_params_key(event.params), []).append(event)
        call_site = next((event.call_site for event, _ in runs if event.call_site), "")
        total = sum(event.duration for event, _ in runs)
        repeated = max(len(events) for events in by_params.values())
        if repeated >= 2:
            # A repeated write or transaction statement may be meant: only a read is hoisted.
            _finding("duplicate_query", analysis, alias, route, organization, call_site, total, repeated,
                     trace_id=_trace_id(runs[0][0]), remedy=remedies.HOIST.copy if analysis.operation == "select"
                     else None)
        if len(by_params) >= threshold:
            loops[fingerprint_id] = _Loop(first, alias, analysis, call_site, total, len(runs),
                                          _trace_id(runs[0][0]))
    if loops:
        request = remedies.RequestRemedies(analysed, {key: loop.first for key, loop in loops.items()})
        for loop in loops.values():
            _finding("n_plus_one", loop.analysis, loop.alias, route, organization, loop.call_site, loop.total,
                     loop.repetitions, trace_id=loop.trace_id, remedy=partial(request.for_loop, loop.first))


class _Loop(NamedTuple):
    """An N+1 of one request: its statement's first run (an index into the request's statements)."""

    first: int
    alias: str
    analysis: QueryAnalysis
    call_site: str
    total: float
    repetitions: int
    trace_id: str


def _params_key(params):
    try:
        return repr(params)
    except Exception:  # noqa: BLE001
        return id(params)
