"""Index advice from PostgreSQL plans and statistics views.

- ``missing_index``: the proposals of ``telemetry.queries.indexes`` (equality, composite,
  equality + range, ORDER BY + LIMIT, join keys, expressions, partial indexes for rare
  values, IN lists, prefix LIKE), none on a table under ``MISSING_INDEX_MIN_ROWS`` rows,
  none for a filter estimated to keep more than ``MISSING_INDEX_MAX_SELECTIVITY`` of the
  rows, none where an existing index leads with the same key. Where HypoPG is installed
  each is proven: a hypothetical index is created in this session only, the statement
  planned again, and the proposal kept only if the planner's cost drops by at least
  ``HYPOPG_MIN_GAIN``; of the proven proposals for one scan, the cheapest plan wins, and
  among plans within ``NEAR_COST`` of it the smallest index. The proof runs where the plan
  is captured because it needs the statement's real parameters, which are never stored;
  without HypoPG the first proposal of each scan is kept unproven.
"""

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from telemetry.core import guard
from telemetry.queries import indexes

HYPOPG_RETRY_SECONDS = 3600.0
_hypopg_unavailable_until: dict[str, float] = {}

SEQ_SCANS = indexes.SEQ_SCANS
#: Proposals proven per plan at most (each is one hypothetical index and one EXPLAIN).
MAX_PROOFS = 12
#: Proven plans this much costlier than the cheapest still compete on index size.
NEAR_COST = 1.1


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


class Proof(NamedTuple):
    """A proposal planned with its hypothetical index."""

    proposal: indexes.Proposal
    cost_after: float
    index_bytes: int


def index_candidates(connection: BaseDatabaseWrapper, cursor: CursorWrapper, plan: Sequence[Mapping[str, Any]] | None,
                     sql: str, params: Sequence[Any] | Mapping[str, Any] | None, *, min_rows: float,
                     min_gain: float, max_selectivity: float, use_hypopg: bool) -> list[dict[str, Any]]:
    """Proven (or, without HypoPG, unproven) index candidates for one plan of ``sql`` with
    its real ``params``: at most one per scan or join side, each a dict of the keys
    documented in docs/queries.md ("Index advice")."""
    quote = connection.ops.quote_name
    cost_before = total_cost(plan)
    facts: dict[tuple[str | None, str], indexes.TableFacts | None] = {}

    def facts_of(schema: str | None, table: str) -> indexes.TableFacts | None:
        if (schema, table) not in facts:
            facts[schema, table] = indexes.table_facts(cursor, quote, schema, table)
        return facts[schema, table]

    candidates: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    hypopg = None
    proofs_left = MAX_PROOFS
    for group in indexes.proposals(plan, facts_of):
        kept: dict[tuple[Any, ...], indexes.Proposal] = {}
        for proposal in group:
            if (proposal.facts.rows >= min_rows and not proposal.served and proposal.identity() not in seen
                    and (proposal.selectivity is None or proposal.selectivity <= max_selectivity)):
                # The first of equal indexes (a sort and a range on one column propose the same).
                kept.setdefault(proposal.identity(), proposal)
        group = list(kept.values())
        if not group:
            continue
        if use_hypopg and hypopg is None:
            hypopg = hypopg_ready(connection, cursor)
        if not (use_hypopg and hypopg):
            seen.add(group[0].identity())
            candidates.append(_candidate(group[0], quote, cost_before))
            continue
        proven = []
        for proposal in group[:proofs_left]:
            proofs_left -= 1
            proof = _prove(connection, cursor, proposal, sql, params, quote)
            gain = 1.0 - proof.cost_after / cost_before if proof and cost_before > 0 else 0.0
            if proof and gain >= min_gain:
                proven.append(proof)
        if proven:
            cheapest = min(proof.cost_after for proof in proven)
            best = min((proof for proof in proven if proof.cost_after <= cheapest * NEAR_COST),
                       key=lambda proof: proof.index_bytes)
            seen.add(best.proposal.identity())
            candidates.append(_candidate(best.proposal, quote, cost_before, best))
    return candidates


def _prove(connection: BaseDatabaseWrapper, cursor: CursorWrapper, proposal: indexes.Proposal, sql: str,
           params: Sequence[Any] | Mapping[str, Any] | None, quote: Callable[[str], str]) -> Proof | None:
    """The statement planned with the proposal as a hypothetical index of this session; None
    when HypoPG refuses it (counted)."""
    try:
        with transaction.atomic(using=connection.alias):
            cursor.execute("SELECT indexrelid FROM hypopg_create_index(%s)",
                           [f"CREATE INDEX ON {proposal.target(quote)}"])
            indexrelid = cursor.fetchone()[0]
            cost_after = total_cost(explain(cursor, sql, params))
            cursor.execute("SELECT hypopg_relation_size(%s)", [indexrelid])
            return Proof(proposal, cost_after, int(cursor.fetchone()[0]))
    except DatabaseError as exc:
        guard.report("index_advice", exc)
        return None
    finally:
        # Hypothetical indexes live in the session, not in the transaction a failure rolls back.
        cursor.execute("SELECT hypopg_reset()")


def _candidate(proposal: indexes.Proposal, quote: Callable[[str], str], cost_before: float,
               proof: Proof | None = None) -> dict[str, Any]:
    gain = 1.0 - proof.cost_after / cost_before if proof and cost_before > 0 else None
    return {
        "schema": proposal.facts.schema, "table": proposal.facts.table, "columns": proposal.columns,
        "table_rows": int(proposal.facts.rows),
        "create_statement": f"CREATE INDEX CONCURRENTLY {quote(proposal.name())} ON {proposal.target(quote)};",
        "cost_before": cost_before, "cost_after": proof.cost_after if proof else None,
        "gain": round(gain, 4) if gain is not None else None, "proven": True if proof else None,
        "shape": proposal.shape, "keys": [key.as_dict() for key in proposal.keys],
        "condition": proposal.condition.as_dict() if proposal.condition else None,
        "index_bytes": proof.index_bytes if proof else None,
    }
