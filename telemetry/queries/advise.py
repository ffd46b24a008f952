"""Index advice a team can act on: what to add, with its evidence, and what is safe to drop.

- ``proven_advice``: the index candidates of the plans captured in a period (see
  ``telemetry.queries.advice``), one advice per index. A composite candidate whose keys
  start with another candidate's keys (same table, same condition) serves both statements:
  the narrower candidate is folded into it. Each advice carries its evidence: the
  statements it serves with their share of database time, the planner cost before and
  after, the estimated index size, an example trace and call site, the write cost of one
  more index on its table, and whether an existing index already covers it (read from the
  live catalog, so that once the index is migrated the advice is known to be done).
- ``unused_indexes``: never-scanned secondary indexes, only once PostgreSQL's statistics
  are ``UNUSED_INDEX_MIN_OBSERVATION_DAYS`` old (``pg_stat_database.stats_reset``, else the
  server's start), never an index behind a primary key, a unique or an exclusion constraint.

The report (``reports.build_optimization_report``) and ``manage.py telemetry_advise`` read
both; the statistics of the period (``reports.aggregate``) are passed in by the caller.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connections

from telemetry import conf
from telemetry.core import guard
from telemetry.core.context import suppressed
from telemetry.core.routers import telemetry_alias
from telemetry.models import QueryFinding, QueryPlan
from telemetry.queries.indexes import Condition, IndexKey

MAX_PLANS = 500
MAX_EXAMPLE_FINDINGS = 5000
WRITE_OPERATIONS = ("insert", "update", "delete")


@dataclass
class ServedStatement:
    """A statement an advice serves, with what its own plan showed."""

    fingerprint_id: str
    fingerprint: str
    calls: int
    total_ms: float
    share_of_db_time: float
    #: The planner's cost of the statement before and with the index its plan was proven
    #: with (``proven_with``: that index's keys, narrower when the advice folds it in).
    cost_before: float | None
    cost_after: float | None
    gain: float | None
    proven_with: str
    plan_id: int
    captured_at: datetime
    trace_id: str = ""
    call_site: str = ""
    route: str = ""


@dataclass
class WriteCost:
    """What one more index on a table costs: every write to the table maintains it."""

    statements_per_hour: float
    rows_per_hour: float
    write_fingerprints: int
    index_bytes: int | None


@dataclass
class IndexAdvice:
    """One index to add and its evidence (``covered_by``: the existing index that already
    serves it, when there is one)."""

    alias: str
    schema: str
    table: str
    keys: tuple[IndexKey, ...]
    condition: Condition | None
    shape: str
    create_statement: str
    proven: bool | None
    gain: float | None
    cost_before: float | None
    cost_after: float | None
    table_rows: int
    index_bytes: int | None
    statements: list[ServedStatement] = field(default_factory=list)
    share_of_db_time: float = 0.0
    write_cost: WriteCost | None = None
    #: Narrower candidates folded into this one (their labels).
    consolidates: list[str] = field(default_factory=list)
    covered_by: str | None = None

    @property
    def columns(self) -> list[str]:
        return [key.column for key in self.keys]

    @property
    def keys_label(self) -> str:
        text = f"({', '.join(key.label for key in self.keys)})"
        return f"{text} WHERE {self.condition.label}" if self.condition else text

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table} {self.keys_label}"

    def same_place(self, other: "IndexAdvice") -> bool:
        return (self.alias, self.schema, self.table, self.condition) == (
            other.alias, other.schema, other.table, other.condition)

    def evidence(self) -> dict[str, Any]:
        """JSON-safe evidence for a stored suggestion."""
        lead = self.statements[0] if self.statements else None
        write_cost = self.write_cost
        return {
            "plan_id": lead.plan_id if lead else None,
            "plan_captured_at": lead.captured_at.isoformat() if lead else "",
            "cost_before": self.cost_before, "cost_after": self.cost_after, "table_rows": self.table_rows,
            "index_bytes": self.index_bytes, "shape": self.shape, "keys": self.keys_label,
            "fingerprints": len(self.statements), "consolidates": self.consolidates,
            "call_site": next((item.call_site for item in self.statements if item.call_site), ""),
            "route": next((item.route for item in self.statements if item.call_site), ""),
            "trace_id": next((item.trace_id for item in self.statements if item.trace_id), ""),
            "statements": [
                {"fingerprint_id": item.fingerprint_id, "fingerprint": item.fingerprint[:500],
                 "share_of_db_time": item.share_of_db_time, "calls": item.calls, "total_ms": item.total_ms,
                 "cost_before": item.cost_before, "cost_after": item.cost_after, "proven_with": item.proven_with,
                 "trace_id": item.trace_id, "call_site": item.call_site}
                for item in self.statements
            ],
            "write_cost": None if write_cost is None else {
                "statements_per_hour": write_cost.statements_per_hour, "rows_per_hour": write_cost.rows_per_hour,
                "write_fingerprints": write_cost.write_fingerprints, "index_bytes": write_cost.index_bytes},
        }


def candidate_keys(candidate: Mapping[str, Any]) -> tuple[IndexKey, ...]:
    """The candidate's keys; candidates stored before ``keys`` existed list plain columns."""
    if candidate.get("keys"):
        return tuple(IndexKey.from_candidate(raw) for raw in candidate["keys"])
    return tuple(IndexKey(column) for column in candidate["columns"])


def proven_advice(start: datetime, end: datetime, stats: Mapping[str, Mapping[str, Any]], *,
                  include_unproven: bool = False) -> list[IndexAdvice]:
    """The index advice of the plans captured in ``[start, end)``, most database time first.

    ``stats``: the period's per-fingerprint totals by fingerprint id (``reports.aggregate``).
    Only candidates proven by HypoPG unless ``include_unproven`` (the report shows those
    too, marked unproven). ``covered_by`` is set from the live catalog of each alias; a
    catalog that cannot be read is counted (``advise_catalog``) and leaves it unset."""
    with suppressed():
        plans = list(QueryPlan.objects.using(telemetry_alias())
                     .filter(captured_at__gte=start, captured_at__lt=end).exclude(candidates=[])
                     .order_by("-captured_at")[:MAX_PLANS])
    total_ms = sum(row["total_ms"] for row in stats.values())
    hours = max((end - start).total_seconds() / 3600.0, 1e-9)

    def share(fingerprint_ids: Iterable[str]) -> float:
        if not total_ms:
            return 0.0
        return round(sum(stats[f]["total_ms"] for f in set(fingerprint_ids) if f in stats) / total_ms, 4)

    groups: dict[tuple[Any, ...], IndexAdvice] = {}
    for plan in plans:
        for candidate in plan.candidates:
            if candidate.get("proven") is not True and not (include_unproven and candidate.get("proven") is None):
                continue
            keys = candidate_keys(candidate)
            condition = Condition.from_candidate(candidate.get("condition"))
            group_key = (plan.alias, candidate["schema"], candidate["table"], keys, condition)
            advice = groups.get(group_key)
            if advice is None:
                advice = groups[group_key] = IndexAdvice(
                    alias=plan.alias, schema=candidate["schema"], table=candidate["table"], keys=keys,
                    condition=condition, shape=candidate.get("shape") or ("composite" if len(keys) > 1 else "equality"),
                    create_statement=candidate["create_statement"], proven=candidate.get("proven"),
                    gain=candidate.get("gain"), cost_before=candidate.get("cost_before"),
                    cost_after=candidate.get("cost_after"), table_rows=candidate.get("table_rows") or 0,
                    index_bytes=candidate.get("index_bytes"),
                )
            if any(item.fingerprint_id == plan.fingerprint_id for item in advice.statements):
                continue
            stat = stats.get(plan.fingerprint_id, {})
            advice.statements.append(ServedStatement(
                fingerprint_id=plan.fingerprint_id, fingerprint=plan.fingerprint, calls=stat.get("calls", 0),
                total_ms=stat.get("total_ms", 0.0), share_of_db_time=share([plan.fingerprint_id]),
                cost_before=candidate.get("cost_before"), cost_after=candidate.get("cost_after"),
                gain=candidate.get("gain"), proven_with=advice.keys_label, plan_id=plan.pk,
                captured_at=plan.captured_at,
            ))
    for advice in groups.values():
        advice.statements.sort(key=lambda item: -item.total_ms)
        # The evidence of the advice is the proof of the statement it serves most.
        lead = advice.statements[0]
        advice.cost_before, advice.cost_after, advice.gain = lead.cost_before, lead.cost_after, lead.gain
        advice.share_of_db_time = share(item.fingerprint_id for item in advice.statements)

    chosen = _consolidated(groups.values())
    for advice in chosen:
        advice.statements.sort(key=lambda item: -item.total_ms)
        advice.share_of_db_time = share(item.fingerprint_id for item in advice.statements)
        advice.write_cost = _write_cost(advice, stats, hours)
    _add_examples(chosen, start, end)
    _mark_covered(chosen)
    chosen.sort(key=lambda advice: (-advice.share_of_db_time, advice.label))
    return chosen


def _consolidated(groups: Iterable[IndexAdvice]) -> list[IndexAdvice]:
    """One advice per index: a candidate whose keys are a leading part of a wider one's
    (same table and condition) is folded into the wider one that serves the most time."""
    chosen: list[IndexAdvice] = []
    for advice in sorted(groups, key=lambda item: (-len(item.keys), -item.share_of_db_time, item.label)):
        wider = [other for other in chosen if other.same_place(advice) and len(other.keys) > len(advice.keys)
                 and other.keys[:len(advice.keys)] == advice.keys and other.proven == advice.proven]
        if not wider:
            chosen.append(advice)
            continue
        target = max(wider, key=lambda other: other.share_of_db_time)
        target.consolidates.append(advice.keys_label)
        served = {item.fingerprint_id for item in target.statements}
        target.statements.extend(item for item in advice.statements if item.fingerprint_id not in served)
    return chosen


def _write_cost(advice: IndexAdvice, stats: Mapping[str, Mapping[str, Any]], hours: float) -> WriteCost:
    writers = [row for row in stats.values()
               if row["operation"] in WRITE_OPERATIONS and advice.table in row["tables"]]
    return WriteCost(statements_per_hour=round(sum(row["calls"] for row in writers) / hours, 2),
                     rows_per_hour=round(sum(row["rows"] for row in writers) / hours, 2),
                     write_fingerprints=len(writers), index_bytes=advice.index_bytes)


def _add_examples(advice_list: Sequence[IndexAdvice], start: datetime, end: datetime) -> None:
    """The latest call site, route and trace of each served statement (from its findings)."""
    wanted = {item.fingerprint_id for advice in advice_list for item in advice.statements}
    if not wanted:
        return
    call_sites: dict[str, tuple[str, str]] = {}
    traces: dict[str, str] = {}
    with suppressed():
        findings = (QueryFinding.objects.using(telemetry_alias())
                    .filter(fingerprint_id__in=wanted, created_at__gte=start, created_at__lt=end)
                    .order_by("-created_at").values_list("fingerprint_id", "call_site", "route", "trace_id")
                    [:MAX_EXAMPLE_FINDINGS])
        for fingerprint_id, call_site, route, trace_id in findings:
            if call_site:
                call_sites.setdefault(fingerprint_id, (call_site, route))
            if trace_id:
                traces.setdefault(fingerprint_id, trace_id)
    for advice in advice_list:
        for item in advice.statements:
            item.call_site, item.route = call_sites.get(item.fingerprint_id, ("", ""))
            item.trace_id = traces.get(item.fingerprint_id, "")


# --------------------------------------------------------------------------- the live catalog

EXISTING_INDEXES_SQL = """
SELECT n.nspname, t.relname, i.relname, am.amname,
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, false) FROM generate_series(1, x.indnkeyatts) k ORDER BY k),
       ARRAY(SELECT o.opcname::text || CASE WHEN o.opcdefault THEN '*' ELSE '' END
             FROM unnest(x.indclass::oid[]) WITH ORDINALITY c(oid, k) JOIN pg_opclass o ON o.oid = c.oid
             ORDER BY c.k),
       ARRAY(SELECT (c.option & 1) = 1 FROM unnest(x.indoption::int2[]) WITH ORDINALITY c(option, k) ORDER BY c.k),
       pg_get_expr(x.indpred, x.indrelid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
WHERE x.indisvalid AND n.nspname = ANY(%s) AND t.relname = ANY(%s)
"""


@dataclass(frozen=True)
class ExistingIndex:
    """An index of the live catalog, its keys normalized for comparison."""

    name: str
    method: str
    keys: tuple[str, ...]
    #: Operator class per key, ``None`` where it is the type's default.
    opclasses: tuple[str | None, ...]
    descending: tuple[bool, ...]
    predicate: str | None

    def covers(self, advice: IndexAdvice) -> bool:
        """Serves what the advice would: a b-tree whose leading keys are the advice's (same
        expressions, operator classes and directions), with no predicate or the same one."""
        if self.method != "btree" or len(self.keys) < len(advice.keys):
            return False
        if self.predicate is not None and (advice.condition is None
                                           or self.predicate != _normalized_predicate(advice.condition.label)):
            return False
        return all(
            self.keys[position] == _normalized(key.expression) and self.opclasses[position] == key.opclass
            and self.descending[position] == key.descending
            for position, key in enumerate(advice.keys)
        )


def existing_indexes(alias: str, tables: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[ExistingIndex]]:
    """The valid indexes of ``tables`` (``(schema, table)`` pairs) on ``alias``."""
    tables = set(tables)
    found: dict[tuple[str, str], list[ExistingIndex]] = {}
    if not tables:
        return found
    with suppressed(), connections[alias].cursor() as cursor:
        cursor.execute(EXISTING_INDEXES_SQL, [sorted({schema for schema, _ in tables}),
                                              sorted({table for _, table in tables})])
        rows = cursor.fetchall()
    for schema, table, name, method, keys, opclasses, descending, predicate in rows:
        if (schema, table) not in tables:
            continue
        found.setdefault((schema, table), []).append(ExistingIndex(
            name=name, method=method, keys=tuple(_normalized(key) for key in keys),
            opclasses=tuple(None if opclass.endswith("*") else opclass for opclass in opclasses),
            descending=tuple(descending), predicate=_normalized_predicate(predicate) if predicate else None,
        ))
    return found


def _mark_covered(advice_list: Sequence[IndexAdvice]) -> None:
    by_alias: dict[str, list[IndexAdvice]] = {}
    for advice in advice_list:
        by_alias.setdefault(advice.alias, []).append(advice)
    for alias, items in by_alias.items():
        if alias not in connections or connections[alias].vendor != "postgresql":
            continue
        try:
            indexes = existing_indexes(alias, ((advice.schema, advice.table) for advice in items))
        except Exception as exc:  # noqa: BLE001
            guard.report("advise_catalog", exc)
            continue
        for advice in items:
            advice.covered_by = next((index.name for index in indexes.get((advice.schema, advice.table), ())
                                      if index.covers(advice)), None)


_TIME_ZONE = re.compile(r"\s+at\s+time\s+zone\s+'[^']*'(?:::[a-z_ ]+)?")
_CAST = re.compile(r"::[a-z_][a-z_ ]*(?:\[\])?")
_NOISE = re.compile(r"[\"()'\s]")


def _normalized(expression: str) -> str:
    """An index key or predicate as text that compares equal however PostgreSQL prints it:
    lower case, without casts, quotes, parentheses, spaces or a time-zone conversion
    (``lower((email)::text)`` and ``lower(email)`` are both ``loweremail``)."""
    text = _TIME_ZONE.sub("", expression.lower())
    return _NOISE.sub("", _CAST.sub("", text))


def _normalized_predicate(predicate: str) -> str:
    text = _normalized(predicate)
    # ``flag = true`` is printed ``flag`` by Django and by PostgreSQL alike.
    if text.endswith("=true"):
        return text[:-len("=true")]
    if text.endswith("=false"):
        return "not" + text[:-len("=false")]
    return text


# --------------------------------------------------------------------------- unused indexes

OBSERVATION_SQL = """
SELECT COALESCE((SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
                pg_postmaster_start_time()), now()
"""

UNUSED_INDEXES_SQL = """
SELECT s.schemaname, s.relname, s.indexrelname, c.reltuples::bigint, pg_relation_size(s.indexrelid),
       pg_get_indexdef(s.indexrelid)
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
JOIN pg_class c ON c.oid = s.relid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion AND c.reltuples >= %s
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = s.indexrelid AND k.contype IN ('p', 'u', 'x'))
ORDER BY pg_relation_size(s.indexrelid) DESC
LIMIT 100
"""


@dataclass
class ObservationWindow:
    """How long PostgreSQL has been counting index scans in a database."""

    since: datetime
    days: float
    min_days: float

    @property
    def long_enough(self) -> bool:
        return self.days >= self.min_days

    def as_evidence(self) -> dict[str, Any]:
        return {"observed_since": self.since.isoformat(timespec="seconds"), "observed_days": round(self.days, 1),
                "min_observation_days": self.min_days}


@dataclass
class UnusedIndexes:
    """The never-scanned indexes of one database; none until its window is long enough."""

    alias: str
    window: ObservationWindow
    indexes: list[dict[str, Any]]


def unused_indexes(alias: str, min_rows: float, min_days: float | None = None) -> UnusedIndexes:
    """Never-scanned secondary indexes on tables of at least ``min_rows`` rows, once the
    statistics of ``alias`` have been gathered ``min_days`` (default
    ``UNUSED_INDEX_MIN_OBSERVATION_DAYS``): never one behind a primary key, a unique or an
    exclusion constraint."""
    if min_days is None:
        min_days = conf.get("UNUSED_INDEX_MIN_OBSERVATION_DAYS")
    connection = connections[alias]
    quote = connection.ops.quote_name
    with suppressed(), connection.cursor() as cursor:
        cursor.execute(OBSERVATION_SQL)
        since, now = cursor.fetchone()
        window = ObservationWindow(since=since, days=(now - since).total_seconds() / 86400.0, min_days=min_days)
        rows = []
        if window.long_enough:
            cursor.execute(UNUSED_INDEXES_SQL, [min_rows])
            rows = cursor.fetchall()
    return UnusedIndexes(alias=alias, window=window, indexes=[
        {"alias": alias, "schema": schema, "table": table, "index": index, "table_rows": table_rows,
         "index_bytes": index_bytes, "definition": definition,
         "drop_statement": f"DROP INDEX CONCURRENTLY {quote(schema)}.{quote(index)};"}
        for schema, table, index, table_rows, index_bytes, definition in rows
    ])


# --------------------------------------------------------------------------- report suggestions

def missing_index_suggestions(advice_list: Iterable[IndexAdvice]) -> list[dict[str, Any]]:
    """``missing_index`` suggestions of the optimization report: one per advice no
    existing index covers yet."""
    return [
        dict(code="missing_index", source="plan", fingerprint_id=advice.statements[0].fingerprint_id,
             fingerprint=advice.statements[0].fingerprint, alias=advice.alias, table=advice.table,
             columns=", ".join(key.label for key in advice.keys)[:255], create_statement=advice.create_statement,
             proven=advice.proven, estimated_gain=advice.gain, share_of_db_time=advice.share_of_db_time,
             evidence=advice.evidence())
        for advice in advice_list if advice.covered_by is None and advice.statements
    ]


def postgresql_aliases() -> list[str]:
    """The host's PostgreSQL databases (telemetry's own store is not advised on)."""
    telemetry = telemetry_alias()
    return [alias for alias in connections if alias != telemetry and connections[alias].vendor == "postgresql"]


def unused_index_suggestions(stats: Mapping[str, Mapping[str, Any]],
                             min_rows: float) -> tuple[list[dict[str, Any]], list[str]]:
    """``unused_index`` suggestions of the optimization report over the host's PostgreSQL
    databases, ranked by the database time of the writes that maintain each index, and the
    aliases whose statistics could not be read (counted as ``unused_indexes``)."""
    total_ms = sum(row["total_ms"] for row in stats.values())
    suggestions, failed = [], []
    for alias in postgresql_aliases():
        try:
            found = unused_indexes(alias, min_rows)
        except Exception as exc:  # noqa: BLE001
            guard.report("unused_indexes", exc)
            failed.append(alias)
            continue
        for index in found.indexes:
            # An index nobody reads still costs every write to its table.
            writers = [row for row in stats.values()
                       if row["operation"] in WRITE_OPERATIONS and index["table"] in row["tables"]]
            write_ms = sum(row["total_ms"] for row in writers)
            suggestions.append(dict(
                code="unused_index", source="statistics", alias=alias, table=index["table"],
                create_statement=index["drop_statement"],
                share_of_db_time=round(write_ms / total_ms, 4) if total_ms else 0.0,
                evidence={"index": index["index"], "definition": index["definition"],
                          "table_rows": index["table_rows"], "index_bytes": index["index_bytes"], "idx_scan": 0,
                          "write_fingerprints": len(writers), **found.window.as_evidence()},
            ))
    return suggestions, failed

