"""Index proposals on PostgreSQL, read from a plan: the shapes an index can serve.

``proposals(plan, facts_of)`` walks an EXPLAIN (FORMAT JSON) result and yields, for each
place an index could replace a sequential scan, a group of proposals, best guess first:

- a sequential scan with a filter: its equality columns (``=``, ``IN`` lists, booleans,
  and the expressions ``lower(col)``, ``upper(col)``, ``date_trunc('unit', col)``) most selective
  first by ``pg_stats`` (``n_distinct``, ``null_frac``), then one range column or one prefix
  ``LIKE`` (with the column type's ``*_pattern_ops`` operator class unless its collation
  is ``C``; a ``LIKE`` that starts with a wildcard gives none). An equality on a
  low-cardinality column (at most ``PARTIAL_MAX_DISTINCT`` values) also gives a partial
  index ``WHERE column = value`` per rare value (frequency under
  ``PARTIAL_MAX_FREQUENCY``): the value is ``pg_stats``', never the statement's, and the
  proof tells which one, if any, the statement can use;
- a scan sorted right under a ``LIMIT``: its equality columns, then the sort keys in their
  directions;
- a join whose side is a sequential scan: that side's join column.

Filters, sort keys and join conditions are PostgreSQL's own text of the statement's
expressions (aliases resolved, the real parameters in them): they are parsed here with
sqlglot and nothing of a parameter is copied into a proposal (a ``date_trunc`` unit is
kept only when it is one of PostgreSQL's units). Which proposals are kept (table size,
selectivity, existing indexes, the HypoPG proof) is ``advice.index_candidates``' business.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

SEQ_SCANS = {"Seq Scan", "Parallel Seq Scan"}
#: Columns with at most this many distinct values get partial indexes for their rare values.
PARTIAL_MAX_DISTINCT = 20
#: A value is rare below this frequency among the column's most common values.
PARTIAL_MAX_FREQUENCY = 0.05
#: Rare values tried per column (each is one HypoPG proof).
PARTIAL_MAX_VALUES = 3
#: Longest filter or condition text parsed (sqlglot's time grows with it; past this, no shape).
MAX_EXPRESSION_CHARS = 10_000

#: Plan nodes an index proposal sees through on its way to the scan below.
_PASS_THROUGH = {"Gather", "Gather Merge", "Materialize", "Hash", "Memoize"}
_SORTS = {"Sort", "Incremental Sort"}
_JOIN_CONDITIONS = ("Hash Cond", "Merge Cond", "Join Filter")
_DATE_TRUNC_UNITS = {"microseconds", "milliseconds", "second", "minute", "hour", "day", "week", "month", "quarter",
                     "year", "decade", "century", "millennium"}
_TEXT_CASTS = {exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR,
               exp.DataType.Type.NAME}
_PATTERN_OPCLASSES = {"text": "text_pattern_ops", "varchar": "varchar_pattern_ops", "bpchar": "bpchar_pattern_ops"}
_RANGES = (exp.GT, exp.GTE, exp.LT, exp.LTE)
_INTEGER_TYPES = {"int2", "int4", "int8"}


def literal(value: Any) -> str:
    """A value as an SQL literal (labels and comparisons; never a statement's parameter)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class IndexKey:
    """One key of an index: a column, or a function of it, with its operator class and order."""

    column: str
    function: str | None = None
    #: Literal arguments before the column (``("day",)`` for ``date_trunc('day', col)``).
    function_args: tuple[str, ...] = ()
    opclass: str | None = None
    descending: bool = False

    @classmethod
    def from_candidate(cls, raw: Mapping[str, Any]) -> "IndexKey":
        """From an entry of a stored candidate's ``keys``."""
        return cls(column=raw["column"], function=raw.get("function"),
                   function_args=tuple(raw.get("function_args") or ()), opclass=raw.get("opclass"),
                   descending=bool(raw.get("descending")))

    @property
    def expression(self) -> str:
        """``email`` or ``date_trunc('day', created_at)``: the key without quoting."""
        if not self.function:
            return self.column
        return f"{self.function}({', '.join([*map(literal, self.function_args), self.column])})"

    @property
    def label(self) -> str:
        """The key as people read it: ``lower(email) text_pattern_ops``, ``created_at DESC``."""
        return " ".join(filter(None, (self.expression, self.opclass, "DESC" if self.descending else "")))

    def same_expression(self, other: "IndexKey") -> bool:
        return (self.column, self.function, self.function_args) == (other.column, other.function, other.function_args)

    def sql(self, quote: Callable[[str], str]) -> str:
        target = quote(self.column)
        if self.function:
            arguments = "".join(f"'{argument}', " for argument in self.function_args)
            target = f"{self.function}({arguments}{target})"
        return target + (f" {self.opclass}" if self.opclass else "") + (" DESC" if self.descending else "")

    def as_dict(self) -> dict[str, Any]:
        return {"column": self.column, "function": self.function, "function_args": list(self.function_args),
                "opclass": self.opclass, "descending": self.descending}


@dataclass(frozen=True, slots=True)
class Condition:
    """The predicate of a partial index: ``column = value``, the value from ``pg_stats``."""

    column: str
    value: str | int | bool

    @classmethod
    def from_candidate(cls, raw: Mapping[str, Any] | None) -> "Condition | None":
        """From a stored candidate's ``condition`` (always an equality)."""
        return cls(column=raw["column"], value=raw["value"]) if raw else None

    @property
    def label(self) -> str:
        return f"{self.column} = {literal(self.value)}"

    def sql(self, quote: Callable[[str], str]) -> str:
        value = self.value
        if isinstance(value, bool):
            # PostgreSQL's own form of a boolean predicate (HypoPG matches only that).
            return quote(self.column) if value else f"NOT {quote(self.column)}"
        if isinstance(value, int):
            literal = str(value)
        else:
            literal = "'" + value.replace("'", "''") + "'"
        return f"{quote(self.column)} = {literal}"

    def as_dict(self) -> dict[str, Any]:
        return {"column": self.column, "operator": "=", "value": self.value}


@dataclass(frozen=True, slots=True)
class ColumnFacts:
    """What the catalog and ``pg_stats`` say about one column."""

    type_name: str
    #: ``pg_type.typcategory``: S string, N numeric, B boolean, E enum, D date/time, ...
    category: str
    c_collation: bool
    null_frac: float
    #: Estimated distinct non-null values; None without statistics.
    distinct: float | None
    #: ``(value as text, frequency)`` of the most common values.
    common_values: tuple[tuple[str, float], ...]

    def equality_selectivity(self) -> float:
        """Share of rows one ``=`` keeps, on average (1.0 without statistics)."""
        return (1.0 - self.null_frac) / self.distinct if self.distinct else 1.0


@dataclass(frozen=True, slots=True)
class TableFacts:
    schema: str
    table: str
    rows: float
    columns: Mapping[str, ColumnFacts]
    #: Keys of the table's valid, non-partial B-tree indexes.
    indexes: tuple[tuple[IndexKey, ...], ...]

    def served(self, key: IndexKey) -> bool:
        """An existing index leads with this key (same expression; a pattern operator class
        when the key needs one, and only then)."""
        return any(index and index[0].same_expression(key) and (index[0].opclass is None) == (key.opclass is None)
                   for index in self.indexes)


@dataclass(frozen=True, slots=True)
class Proposal:
    """An index worth proving."""

    facts: TableFacts
    shape: str
    keys: tuple[IndexKey, ...]
    condition: Condition | None = None
    #: The scan's estimated share of the table's rows, for proposals that only a selective
    #: filter justifies; None for sorts and joins.
    selectivity: float | None = None

    @property
    def columns(self) -> list[str]:
        return [key.column for key in self.keys]

    @property
    def served(self) -> bool:
        return self.condition is None and self.facts.served(self.keys[0])

    def identity(self) -> tuple[Any, ...]:
        return self.facts.schema, self.facts.table, self.keys, self.condition

    def target(self, quote: Callable[[str], str]) -> str:
        """``"schema"."table" (keys) [WHERE condition]``: what follows ``CREATE INDEX [name] ON``."""
        keys = ", ".join(key.sql(quote) for key in self.keys)
        where = f" WHERE {self.condition.sql(quote)}" if self.condition else ""
        return f"{quote(self.facts.schema)}.{quote(self.facts.table)} ({keys}){where}"

    def name(self) -> str:
        parts = [f"{key.function}_{key.column}" if key.function else key.column for key in self.keys]
        return "_".join([self.facts.table, *parts, *(["partial"] if self.condition else []), "idx"])[:63]


class _Predicate(NamedTuple):
    #: "equality", "in_list", "range", "prefix_like" or "join".
    kind: str
    key: IndexKey


FactsOf = Callable[[str | None, str], TableFacts | None]


def proposals(plan: Sequence[Mapping[str, Any]] | None, facts_of: FactsOf) -> Iterator[list[Proposal]]:
    """Groups of proposals, one group per scan or join side an index could serve, best guess
    first in each (``facts_of(schema or None, table)`` reads the catalog, None when gone)."""
    stack: list[tuple[Mapping[str, Any], tuple[Mapping[str, Any], ...]]] = [
        (entry["Plan"], ()) for entry in plan or () if "Plan" in entry]
    while stack:
        node, ancestors = stack.pop()
        stack.extend((child, (*ancestors, node)) for child in node.get("Plans", ()))
        if node.get("Node Type") in SEQ_SCANS and node.get("Relation Name"):
            facts = facts_of(node.get("Schema"), node["Relation Name"])
            if facts is not None:
                yield from _scan_groups(node, ancestors, facts)
        for condition in _JOIN_CONDITIONS:
            if node.get(condition):
                yield from _join_groups(node, node[condition], facts_of)


def _scan_groups(node: Mapping[str, Any], ancestors: Sequence[Mapping[str, Any]],
                 facts: TableFacts) -> Iterator[list[Proposal]]:
    alias = node.get("Alias", node["Relation Name"])
    predicates = [predicate for predicate in _predicates(node.get("Filter"), alias)
                  if _fits(predicate, facts)]
    equality = _by_selectivity([p.key for p in predicates if p.kind in ("equality", "in_list")], facts)
    ranged = [_with_opclass(p.key, facts) if p.kind == "prefix_like" else p.key
              for p in predicates if p.kind in ("range", "prefix_like")][:1]
    group = []
    order = _limited_sort(node, ancestors, alias, facts)
    if order:
        keys = equality + [key for key in order if not any(key.same_expression(other) for other in equality)]
        group.append(Proposal(facts, "order_limit", tuple(keys)))
    if equality or ranged:
        keys = equality + ranged
        workers = next((a["Workers Planned"] for a in reversed(ancestors) if "Workers Planned" in a), 0)
        # A parallel scan's rows are per process; the leader works too, less as workers grow.
        rows = node.get("Plan Rows", 0) * (workers + max(0.0, 1.0 - 0.3 * workers) if workers else 1)
        selectivity = min(1.0, rows / facts.rows) if facts.rows > 0 else 1.0
        kinds = {p.kind for p in predicates if any(p.key.same_expression(key) for key in keys)}
        group.append(Proposal(facts, _shape(keys, kinds), tuple(keys), selectivity=selectivity))
        group.extend(_partial_proposals(predicates, keys, facts, selectivity))
    if group:
        yield group
    for predicate in predicates:
        if predicate.kind == "join":  # a correlated subquery's filter on the outer row
            yield [Proposal(facts, "join_key", (predicate.key,))]


def _shape(keys: Sequence[IndexKey], kinds: set[str]) -> str:
    if any(key.function for key in keys):
        return "expression"
    for kind in ("prefix_like", "in_list"):
        if kind in kinds:
            return kind
    if "range" in kinds:
        return "equality_range"
    return "composite" if len(keys) > 1 else "equality"


def _partial_proposals(predicates: Sequence[_Predicate], keys: Sequence[IndexKey], facts: TableFacts,
                       selectivity: float) -> Iterator[Proposal]:
    for predicate in predicates:
        key = predicate.key
        column = facts.columns[key.column]
        if (predicate.kind != "equality" or key.function or column.distinct is None
                or column.distinct > PARTIAL_MAX_DISTINCT):
            continue
        others = tuple(other for other in keys if not other.same_expression(key)) or (key,)
        rare = [value for value, frequency in column.common_values if frequency < PARTIAL_MAX_FREQUENCY]
        for text in rare[:PARTIAL_MAX_VALUES]:
            value = _typed(text, column)
            if value is not None:
                yield Proposal(facts, "partial", others, Condition(key.column, value), selectivity)


def _typed(text: str, column: ColumnFacts) -> str | int | bool | None:
    """A ``pg_stats`` value as the contract carries it; None for types a partial index
    predicate is not proposed on."""
    if column.category in ("S", "E"):
        return text
    if column.type_name in _INTEGER_TYPES:
        return int(text)
    if column.category == "B":
        return text in ("t", "true")
    return None


def _join_groups(node: Mapping[str, Any], condition: str, facts_of: FactsOf) -> Iterator[list[Proposal]]:
    tree = _parse(condition)
    if tree is None:
        return
    for conjunct in _conjuncts(tree):
        if not isinstance(conjunct, exp.EQ):
            continue
        for side in (conjunct.this, conjunct.expression):
            column = _strip_text_casts(side)
            if not (isinstance(column, exp.Column) and column.table):
                continue
            scan = _scan_below(node, column.table)
            if scan is None:
                continue
            facts = facts_of(scan.get("Schema"), scan["Relation Name"])
            if facts is not None and column.name in facts.columns:
                yield [Proposal(facts, "join_key", (IndexKey(column.name),))]


def _scan_below(node: Mapping[str, Any], alias: str) -> Mapping[str, Any] | None:
    """The sequential scan of ``alias`` that feeds the join ``node`` directly."""
    for child in node.get("Plans", ()):
        while child.get("Node Type") in _PASS_THROUGH | _SORTS and child.get("Plans"):
            child = child["Plans"][0]
        if child.get("Node Type") in SEQ_SCANS and child.get("Alias") == alias and child.get("Relation Name"):
            return child
    return None


def _limited_sort(node: Mapping[str, Any], ancestors: Sequence[Mapping[str, Any]], alias: str,
                  facts: TableFacts) -> list[IndexKey]:
    """The sort keys of a sort right above the scan and right under a LIMIT, when they are
    all this table's columns in PostgreSQL's default null order; else none."""
    above = [ancestor for ancestor in reversed(ancestors) if ancestor.get("Node Type") not in _PASS_THROUGH]
    if len(above) < 2 or above[0].get("Node Type") not in _SORTS or above[1].get("Node Type") != "Limit":
        return []
    keys = []
    for text in above[0].get("Sort Key", ()):
        # EXPLAIN names the null order only when it is not the default for the direction.
        if " NULLS " in text:
            return []
        descending = text.endswith(" DESC")
        key = _key(_parse(text.removesuffix(" DESC")), alias)
        if key is None or key.column not in facts.columns:
            return []
        keys.append(IndexKey(key.column, key.function, key.function_args, descending=descending))
    return keys


def _by_selectivity(keys: list[IndexKey], facts: TableFacts) -> list[IndexKey]:
    unique: list[IndexKey] = []
    for key in keys:
        if not any(key.same_expression(other) for other in unique):
            unique.append(key)
    return sorted(unique, key=lambda key: facts.columns[key.column].equality_selectivity())


def _fits(predicate: _Predicate, facts: TableFacts) -> bool:
    column = facts.columns.get(predicate.key.column)
    if column is None:
        return False
    if predicate.key.function == "date_trunc":
        # date_trunc of a timestamptz depends on the time zone: not indexable.
        return column.type_name == "timestamp"
    if predicate.kind == "prefix_like":
        return column.type_name in _PATTERN_OPCLASSES
    return True


def _with_opclass(key: IndexKey, facts: TableFacts) -> IndexKey:
    column = facts.columns[key.column]
    if column.c_collation:
        return key
    # lower() and upper() return text, whatever the column's type.
    opclass = _PATTERN_OPCLASSES["text" if key.function else column.type_name]
    return IndexKey(key.column, key.function, key.function_args, opclass=opclass)


def _predicates(text: str | None, alias: str) -> list[_Predicate]:
    """The indexable conjuncts of a filter on the relation ``alias``."""
    tree = _parse(text) if text else None
    found = []
    for conjunct in _conjuncts(tree) if tree is not None else ():
        predicate = _predicate(conjunct, alias)
        if predicate is not None:
            found.append(predicate)
    return found


def _predicate(node: exp.Expression, alias: str) -> _Predicate | None:
    # PostgreSQL prints ``flag = true`` as ``flag`` and ``flag = false`` as ``NOT flag``.
    flag = _unparen(node.this) if isinstance(node, exp.Not) else node
    if isinstance(flag, exp.Column):
        key = _key(flag, alias)
        return _Predicate("equality", key) if key is not None else None
    if isinstance(node, exp.Like):
        key = _key(node.this, alias)
        pattern = _strip_casts(node.expression)
        if key is None or not (isinstance(pattern, exp.Literal) and pattern.is_string):
            return None
        return None if pattern.this[:1] in ("%", "_") else _Predicate("prefix_like", key)
    if not isinstance(node, (exp.EQ, *_RANGES)):
        return None
    key, other = _key(node.this, alias), node.expression
    if key is None:
        key, other = _key(node.expression, alias), node.this
    if key is None:
        return None
    other = _strip_casts(other)
    if isinstance(node, _RANGES):
        return _Predicate("range", key) if _constant(other) else None
    if isinstance(other, exp.Any):
        return _Predicate("in_list", key) if _constant(other) else None
    if _constant(other):
        return _Predicate("equality", key)
    outer = _strip_text_casts(other)
    if isinstance(outer, exp.Column) and outer.table and outer.table != alias and key.function is None:
        return _Predicate("join", key)
    return None


def _key(node: exp.Expression | None, alias: str | None) -> IndexKey | None:
    """The index key an expression is (a column of ``alias``, or ``lower``/``upper``/
    ``date_trunc`` of one); None for anything else. ``alias`` None: any qualifier."""
    node = _strip_text_casts(node)
    if isinstance(node, exp.Column):
        if node.table and alias is not None and node.table != alias:
            return None
        return IndexKey(node.name)
    if isinstance(node, (exp.Lower, exp.Upper)):
        inner = _key(node.this, alias)
        if inner is None or inner.function:
            return None
        return IndexKey(inner.column, "lower" if isinstance(node, exp.Lower) else "upper")
    if isinstance(node, exp.TimestampTrunc):
        inner = _key(node.this, alias)
        unit = _strip_casts(node.args.get("unit"))
        if (inner is None or inner.function or not isinstance(unit, exp.Literal) or not unit.is_string
                or unit.this.lower() not in _DATE_TRUNC_UNITS):
            return None
        return IndexKey(inner.column, "date_trunc", (unit.this,))
    return None


def index_keys(definitions: Sequence[str], opclasses: Sequence[str]) -> tuple[IndexKey, ...]:
    """An existing index's keys from ``pg_get_indexdef(oid, column, true)`` texts and
    operator class names; stops at the first key that is no column or known expression."""
    keys = []
    for definition, opclass in zip(definitions, opclasses, strict=False):
        key = _key(_parse(definition), None)
        if key is None:
            break
        pattern = opclass if opclass.endswith("_pattern_ops") else None
        keys.append(IndexKey(key.column, key.function, key.function_args, opclass=pattern))
    return tuple(keys)


def _parse(text: str) -> exp.Expression | None:
    if len(text) > MAX_EXPRESSION_CHARS:
        return None
    try:
        tree = sqlglot.parse_one(text, read="postgres")
    except SqlglotError:
        return None
    return tree if isinstance(tree, exp.Expression) else None


def _conjuncts(tree: exp.Expression | None) -> Iterator[exp.Expression]:
    tree = _unparen(tree)
    if isinstance(tree, exp.And):
        yield from _conjuncts(tree.this)
        yield from _conjuncts(tree.expression)
    elif tree is not None:
        yield tree


def _unparen(node: exp.Expression | None) -> exp.Expression | None:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _strip_casts(node: exp.Expression | None) -> exp.Expression | None:
    node = _unparen(node)
    while isinstance(node, exp.Cast):
        node = _unparen(node.this)
    return node


def _strip_text_casts(node: exp.Expression | None) -> exp.Expression | None:
    """Without the casts to a text type PostgreSQL prints on ``varchar`` columns (they
    change nothing an index sees); any other cast makes another expression."""
    node = _unparen(node)
    while isinstance(node, exp.Cast) and node.to.this in _TEXT_CASTS:
        node = _unparen(node.this)
    return node


def _constant(node: exp.Expression | None) -> bool:
    """No column of any relation in it: a literal, a parameter, a function of those."""
    return node is not None and node.find(exp.Column) is None


TABLE_SQL = """
SELECT c.oid, n.nspname, c.relname, c.reltuples
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%s)
"""
COLUMNS_SQL = """
SELECT a.attname, t.typname, t.typcategory,
       COALESCE(CASE WHEN co.collname = 'default'
                     THEN (SELECT datcollate FROM pg_database WHERE datname = current_database())
                     ELSE co.collname END, '') IN ('C', 'POSIX'),
       COALESCE(s.null_frac, 0), s.n_distinct, s.most_common_vals::text::text[], s.most_common_freqs
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_stats s ON s.schemaname = %s AND s.tablename = %s AND s.attname = a.attname AND NOT s.inherited
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
"""
INDEXES_SQL = """
SELECT ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k),
       ARRAY(SELECT o.opcname FROM generate_series(1, i.indnkeyatts) k
             JOIN pg_opclass o ON o.oid = i.indclass[k - 1] ORDER BY k)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = %s AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree'
"""


def table_facts(cursor: Any, quote: Callable[[str], str], schema: str | None, table: str) -> TableFacts | None:
    """The table as the planner sees it (``schema`` None: found through the search path,
    as the statement found it); None when it is gone."""
    cursor.execute(TABLE_SQL, [f"{quote(schema)}.{quote(table)}" if schema else quote(table)])
    found = cursor.fetchone()
    if found is None:
        return None
    oid, schema, table, reltuples = found
    cursor.execute(COLUMNS_SQL, [schema, table, oid])
    columns = {}
    for name, type_name, category, c_collation, null_frac, n_distinct, values, frequencies in cursor.fetchall():
        distinct = None
        if n_distinct:
            # Negative: a share of the rows (the count grows with the table).
            distinct = n_distinct if n_distinct > 0 else -n_distinct * max(reltuples, 0.0)
        columns[name] = ColumnFacts(type_name, category, c_collation, null_frac, distinct,
                                    tuple(zip(values or (), frequencies or (), strict=False)))
    cursor.execute(INDEXES_SQL, [oid])
    indexes = tuple(index_keys(definitions, opclasses) for definitions, opclasses in cursor.fetchall())
    return TableFacts(schema, table, reltuples, columns, indexes)
