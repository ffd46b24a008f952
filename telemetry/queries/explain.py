"""Plans of slow PostgreSQL statements, captured off the request path.

``offer()`` is called by the detectors (flusher thread) for each ``slow`` statement. It
only queues: the queue is small, each (alias, fingerprint) is offered at most once per
``EXPLAIN_INTERVAL_SECONDS`` and at most ``EXPLAIN_PER_MINUTE`` statements are explained
per minute in a process. The queue is run by a periodic callback of the same flusher
thread (every ``SAMPLE_INTERVAL_SECONDS``), on the alias the statement ran on, so no
request thread ever waits on it and no extra thread or connection pool is needed.

EXPLAIN is ``(FORMAT JSON)`` only, never ANALYZE: the statement is planned, not run, so
a slow UPDATE changes nothing. Only single SELECT / INSERT / UPDATE / DELETE / WITH
statements are explained (no DDL, SET, SAVEPOINT, no second statement after ``;``).
The parameters live in memory until the EXPLAIN has run and are never stored: literals
are scrubbed from every expression of the stored plan.
"""

import math
import re
import time
from collections import deque
from time import perf_counter
from typing import Any, NamedTuple

from django.db import connections, transaction
from django.utils import timezone

from telemetry import conf
from telemetry.core import guard, recorder
from telemetry.core.context import scraping, suppressed
from telemetry.core.routers import telemetry_alias
from telemetry.models import QueryPlan
from telemetry.queries import advice
from telemetry.queries.sql import QueryAnalysis

MAX_QUEUE = 20
MAX_REMEMBERED_FINGERPRINTS = 10_000
STATEMENT_TIMEOUT_MS = 2000

_EXPLAINABLE = {"select", "insert", "update", "delete", "with"}
_FIRST_WORD = re.compile(r"^\s*(?:/\*.*?\*/\s*)*\(*\s*(\w+)", re.S)


def explainable(sql: str) -> bool:
    """A single plain DML statement: what EXPLAIN can plan without side effects."""
    match = _FIRST_WORD.match(sql)
    if not match or match.group(1).lower() not in _EXPLAINABLE:
        return False
    return ";" not in sql.rstrip().rstrip(";")


class PendingExplain(NamedTuple):
    """A slow statement waiting for its EXPLAIN (its parameters are never stored)."""

    alias: str
    sql: str
    params: Any
    fingerprint_id: str
    fingerprint: str


class ExplainQueue:
    """The statements waiting for an EXPLAIN in this process, with its rate limits."""

    def __init__(self) -> None:
        self._queue: deque[PendingExplain] = deque()
        #: (alias, fingerprint id) -> monotonic time of its last offer.
        self._last_offer: dict[tuple[str, str], float] = {}
        #: Monotonic times of the offers of the last minute.
        self._recent: deque[float] = deque()
        #: Counters of this process (the admin and the tests read them; errors also go to
        #: ``telemetry_internal_errors_total{component="explain"}``).
        self.stats = {"offered": 0, "explained": 0, "failed": 0, "rate_limited": 0, "refused": 0}

    def offer(self, alias: str, vendor: str, sql: str, params: Any, many: bool, analysis: QueryAnalysis) -> bool:
        """Queues one slow statement for EXPLAIN; True when queued. Never raises."""
        try:
            if vendor != "postgresql" or many or not conf.get("EXPLAIN_ENABLED"):
                return False
            if not explainable(sql):
                self.stats["refused"] += 1
                return False
            now = time.monotonic()
            key = (alias, analysis.fingerprint_id)
            if now - self._last_offer.get(key, -math.inf) < conf.get("EXPLAIN_INTERVAL_SECONDS"):
                return False
            recent = self._recent
            while recent and now - recent[0] >= 60.0:
                recent.popleft()
            if len(recent) >= conf.get("EXPLAIN_PER_MINUTE") or len(self._queue) >= MAX_QUEUE:
                self.stats["rate_limited"] += 1
                return False
            if len(self._last_offer) >= MAX_REMEMBERED_FINGERPRINTS:
                self._last_offer.clear()
            self._last_offer[key] = now
            recent.append(now)
            self._queue.append(PendingExplain(alias, sql, params, analysis.fingerprint_id, analysis.fingerprint))
            self.stats["offered"] += 1
            recorder.register_periodic(self.run_pending)
            return True
        except Exception as exc:  # noqa: BLE001
            guard.report("explain_offer", exc)
            return False

    def run_pending(self, batch: recorder.Batch | None = None) -> None:
        """Explains what is queued (periodic callback of the flusher). Each failure is
        counted and reported, never raised. With ``EXPLAIN_ENABLED`` (or the statistics
        that queue them) turned off since, the queue is dropped unexplained."""
        settings = conf.get_settings()
        if not (settings["EXPLAIN_ENABLED"] and settings["QUERY_STATS_ENABLED"] and settings["METRICS_ENABLED"]):
            self._queue.clear()
            return
        if scraping.active:
            return  # a /metrics scrape's drain: the flusher's next sample explains them
        while self._queue:
            pending = self._queue.popleft()
            try:
                capture(*pending)
                self.stats["explained"] += 1
            except Exception as exc:  # noqa: BLE001
                self.stats["failed"] += 1
                guard.report("explain", exc)

    def reset(self) -> None:
        """Forgets rate limits and the queue (``telemetry.testing.reset``); the counters stay."""
        self._queue.clear()
        self._last_offer.clear()
        self._recent.clear()


#: This process's EXPLAIN queue; the detectors and the tests use the names below.
queue = ExplainQueue()
offer = queue.offer
run_pending = queue.run_pending
stats = queue.stats


def capture(alias: str, sql: str, params: Any, fingerprint_id: str, fingerprint: str) -> None:
    """EXPLAINs on ``alias`` with the real parameters, proves index candidates, stores the
    scrubbed plan as the latest of its fingerprint."""
    settings = conf.get_settings()
    started = perf_counter()
    connection = connections[alias]
    with suppressed():
        # A savepoint (or a transaction of its own) so that a failing EXPLAIN never
        # aborts a transaction the connection is in; SET LOCAL ends with it.
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            plan = advice.explain(cursor, sql, params)
            seq_scans = advice.filtered_seq_scans(plan)
            candidates = advice.index_candidates(
                connection, cursor, plan, sql, params, min_rows=settings["MISSING_INDEX_MIN_ROWS"],
                min_gain=settings["HYPOPG_MIN_GAIN"], max_selectivity=settings["MISSING_INDEX_MAX_SELECTIVITY"],
                use_hypopg=settings["HYPOPG_ENABLED"],
            )
        QueryPlan.objects.using(telemetry_alias()).update_or_create(
            fingerprint_id=fingerprint_id, alias=alias,
            defaults={
                "fingerprint": fingerprint[:10000], "plan": scrub(plan), "total_cost": advice.total_cost(plan),
                "seq_scans": scrub(seq_scans), "candidates": candidates,
                "duration_ms": (perf_counter() - started) * 1000.0, "captured_at": timezone.now(),
            },
        )


#: Plan keys whose values are names, not expressions: kept as they are.
_NAME_KEYS = {
    "Node Type", "Relation Name", "Schema", "Alias", "Index Name", "Parent Relationship", "Strategy",
    "Join Type", "Scan Direction", "Partial Mode", "Operation", "CTE Name", "Subplan Name", "Function Name",
    "Command", "Sort Method", "table", "schema", "relation",
}
_LITERAL = re.compile(r"'(?:[^']|'')*'|(?<![\w$.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def scrub(value: Any, key: str | None = None) -> Any:
    """A copy of a plan with every literal in its expressions replaced by ``?``."""
    if isinstance(value, dict):
        return {name: scrub(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, key) for item in value]
    if isinstance(value, str) and key not in _NAME_KEYS:
        return _LITERAL.sub("?", value)
    return value
