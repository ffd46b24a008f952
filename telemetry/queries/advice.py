"""Index advice from PostgreSQL plans and statistics views.

- ``missing_index``: a sequential scan with a filter on a table of at least
  ``MISSING_INDEX_MIN_ROWS`` rows gives a candidate index on the filtered columns
  (equality columns first, then one range column). Where HypoPG is installed the
  candidate is proven: a hypothetical index is created in this session only, the
  statement planned again, and the candidate kept only if the planner's cost drops by
  at least ``HYPOPG_MIN_GAIN``. The proof runs where the plan is captured because it
  needs the statement's real parameters, which are never stored; without HypoPG the
  candidate is kept unproven.
"""

import json
import re
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from telemetry.core import guard

HYPOPG_RETRY_SECONDS = 3600.0
_hypopg_unavailable_until: dict[str, float] = {}

_COMPARISON = re.compile(
    r"\(*\s*(?:\w+\.)?\"?([A-Za-z_][\w$]*)\"?\s*\)?(?:::[\w \"]+?)?\s*(=|<=|>=|<|>|~~)\s*(?!\s*\()"
)
_RANGE_OPERATORS = {"<", ">", "<=", ">="}
SEQ_SCANS = {"Seq Scan", "Parallel Seq Scan"}


def explain(cursor: CursorWrapper, sql: str, params: Sequence[Any] | Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The plan as JSON (a list with one ``{"Plan": ...}``), never ANALYZE."""
    cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
    value = cursor.fetchone()[0]
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    return value


def total_cost(plan: Sequence[Mapping[str, Any]] | None) -> float:
    return plan[0]["Plan"]["Total Cost"] if plan else 0.0


def plan_nodes(plan: Sequence[Mapping[str, Any]] | None) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) result, depth first."""
    stack = [entry["Plan"] for entry in plan or () if "Plan" in entry]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", ()))


def filtered_seq_scans(plan: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {"schema": node.get("Schema", "public"), "table": node["Relation Name"], "filter": node["Filter"],
         "cost": node.get("Total Cost", 0.0), "rows": node.get("Plan Rows", 0)}
        for node in plan_nodes(plan)
        if node.get("Node Type") in SEQ_SCANS and node.get("Filter") and node.get("Relation Name")
    ]


def filter_columns(filter_text: str, table_columns: Collection[str]) -> list[str]:
    """Columns worth indexing for a filter: equality columns first, then one range
    column; only names that are columns of the table."""
    equality: list[str]
    ranged: list[str]
    equality, ranged = [], []
    for name, operator in _COMPARISON.findall(filter_text):
        if name not in table_columns:
            continue
        target = ranged if operator in _RANGE_OPERATORS else equality
        if name not in equality and name not in ranged:
            target.append(name)
    return (equality[:3] + ranged[:1])[:3]


def _table_facts(cursor, schema, table):
    cursor.execute(
        "SELECT c.oid, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s", [schema, table],
    )
    found = cursor.fetchone()
    if found is None:
        return 0, set()
    oid, reltuples = found
    cursor.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
                   [oid])
    return reltuples, {row[0] for row in cursor.fetchall()}


def reset() -> None:
    """Forgets which aliases could not install HypoPG (``telemetry.testing.reset``)."""
    _hypopg_unavailable_until.clear()


def hypopg_ready(connection: BaseDatabaseWrapper, cursor: CursorWrapper) -> bool:
    """HypoPG usable in this database: installed, or installed now (needs the right
    privileges; a failure is counted, the proof skipped and not retried for an hour)."""
    if time.monotonic() < _hypopg_unavailable_until.get(connection.alias, 0.0):
        return False
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'")
    if cursor.fetchone():
        return True
    try:
        with transaction.atomic(using=connection.alias):
            cursor.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        return True
    except Exception as exc:  # noqa: BLE001
        _hypopg_unavailable_until[connection.alias] = time.monotonic() + HYPOPG_RETRY_SECONDS
        guard.report("hypopg", exc)
        return False


def index_name(table: str, columns: Sequence[str]) -> str:
    return f"{table}_{'_'.join(columns)}_idx"[:63]


def index_candidates(connection: BaseDatabaseWrapper, cursor: CursorWrapper, plan: Sequence[Mapping[str, Any]] | None,
                     sql: str, params: Sequence[Any] | Mapping[str, Any] | None, min_rows: float, min_gain: float,
                     use_hypopg: bool, seq_scans: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Proven (or, without HypoPG, unproven) index candidates for one plan (``seq_scans``:
    its ``filtered_seq_scans``, when the caller has them already)."""
    quote = connection.ops.quote_name
    cost_before = total_cost(plan)
    candidates, seen = [], set()
    hypopg = None
    for scan in filtered_seq_scans(plan) if seq_scans is None else seq_scans:
        schema, table = scan["schema"], scan["table"]
        reltuples, table_columns = _table_facts(cursor, schema, table)
        if reltuples < min_rows:
            continue
        columns = filter_columns(scan["filter"], table_columns)
        if not columns or (schema, table, tuple(columns)) in seen:
            continue
        seen.add((schema, table, tuple(columns)))
        target = f"{quote(schema)}.{quote(table)} ({', '.join(quote(column) for column in columns)})"
        candidate = {
            "schema": schema, "table": table, "columns": columns, "table_rows": int(reltuples),
            "create_statement": f"CREATE INDEX CONCURRENTLY {quote(index_name(table, columns))} ON {target};",
            "cost_before": cost_before, "cost_after": None, "gain": None, "proven": None,
        }
        if use_hypopg and hypopg is None:
            hypopg = hypopg_ready(connection, cursor)
        if use_hypopg and hypopg:
            try:
                cursor.execute("SELECT indexrelid FROM hypopg_create_index(%s)", [f"CREATE INDEX ON {target}"])
                cost_after = total_cost(explain(cursor, sql, params))
            finally:
                cursor.execute("SELECT hypopg_reset()")
            gain = 1.0 - cost_after / cost_before if cost_before > 0 else 0.0
            if gain < min_gain:
                continue
            candidate.update(cost_after=cost_after, gain=round(gain, 4), proven=True)
        candidates.append(candidate)
    return candidates

