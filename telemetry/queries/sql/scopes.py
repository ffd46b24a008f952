"""Where a node sits in a parsed statement: its clause, its query block, the sources a
column can come from, and which block a column resolves to.

Column resolution follows SQL's rule (innermost block first). A qualified column
resolves to the block whose FROM has that alias or table name. An unqualified one
resolves to the innermost block that has a source known to carry it; when a block has a
source of unknown columns, the column is assumed to be that block's own (the precise
answer needs a schema; assuming "local" never invents a correlation). Django's models
provide the schema of the project's own tables.
"""

from collections.abc import Collection, Iterator, Mapping

from sqlglot import exp

BLOCKS = (exp.Select, exp.Update, exp.Delete)
COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ,
               exp.In, exp.Like, exp.ILike, exp.Between)
_NESTED = (exp.Select, exp.Subquery, exp.Exists)


def clause(node: exp.Expr) -> tuple[str | None, exp.Expr | None]:
    """``(clause name, block)`` of the nearest enclosing query block: ``"where"``,
    ``"on"``, ``"having"``, or the block's argument name (``"expressions"`` for the
    select list, ``"from_"``, ``"order"``, ...)."""
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.Where):
            return "where", parent.parent
        if isinstance(parent, exp.Having):
            return "having", parent.parent
        if isinstance(parent, exp.Join) and child.arg_key == "on":
            return "on", parent.parent
        if isinstance(parent, (exp.Select, exp.Update, exp.Delete, exp.Insert, exp.SetOperation, exp.Subquery)):
            return child.arg_key, parent
        child, parent = parent, parent.parent
    return None, None


def own_nodes(node: exp.Expr, types: type[exp.Expr] | tuple[type[exp.Expr], ...]) -> Iterator[exp.Expr]:
    """Nodes of ``types`` under ``node`` that belong to its own block, not a nested query."""
    for found in node.walk(prune=lambda candidate: candidate is not node and isinstance(candidate, _NESTED)):
        if isinstance(found, types):
            yield found


def own_columns(node: exp.Expr) -> list[exp.Expr]:
    return [column for column in own_nodes(node, exp.Column) if not isinstance(column.this, exp.Star)]


def enclosing_blocks(node: exp.Expr) -> list[exp.Select | exp.Update | exp.Delete]:
    """Query blocks around ``node``, innermost first (the node itself if it is one)."""
    blocks = []
    current: exp.Expr | None = node
    while current is not None:
        if isinstance(current, BLOCKS):
            blocks.append(current)
        current = current.parent
    return blocks


class Source:
    """One entry of a FROM list: a table, a derived table, a CTE reference, or something
    opaque (LATERAL, a table function)."""

    __slots__ = ("key", "table", "columns", "opaque")

    def __init__(self, key, table=None, columns=None, opaque=False):
        self.key = key
        self.table = table
        self.columns = columns
        self.opaque = opaque

    def has(self, name: str) -> bool | None:
        """True, False, or None when its columns are not known."""
        if self.columns is None:
            return None
        return name in self.columns


def _output_names(query):
    if isinstance(query, exp.Subquery):
        query = query.this
    while isinstance(query, exp.SetOperation):
        query = query.this
        if isinstance(query, exp.Subquery):
            query = query.this
    if not isinstance(query, exp.Select):
        return None
    names = set()
    for projection in query.expressions:
        if isinstance(projection, exp.Star) or (isinstance(projection, exp.Column)
                                                and isinstance(projection.this, exp.Star)):
            return None
        names.add(projection.alias_or_name.lower())
    return names


def _ctes(block):
    ctes = {}
    current = block
    while current is not None:
        with_ = current.args.get("with_")
        if with_ is not None:
            for cte in with_.expressions:
                ctes.setdefault(cte.alias_or_name.lower(), cte.this)
        current = current.parent
    return ctes


def _source(item, ctes, schema):
    if isinstance(item, exp.Table):
        if not isinstance(item.this, exp.Identifier):
            return Source(item.alias_or_name.lower() or "?", opaque=True)
        name = item.name.lower()
        key = (item.alias or item.name).lower()
        if name in ctes and not item.db:
            return Source(key, None, _output_names(ctes[name]))
        return Source(key, name, schema.get(name))
    if isinstance(item, exp.Subquery) and not isinstance(item.parent, exp.Lateral):
        return Source(item.alias.lower() or "?", None, _output_names(item))
    return Source(item.alias_or_name.lower() if hasattr(item, "alias_or_name") else "?", opaque=True)


def source_items(block: exp.Expr) -> list[tuple[exp.Expr, exp.Join | None]]:
    """FROM-list entries of a block with the Join that brought each (None for the first)."""
    items: list[tuple[exp.Expr, exp.Join | None]] = []
    if isinstance(block, exp.Select):
        from_ = block.args.get("from_")
        if from_ is not None:
            items.append((from_.this, None))
    elif isinstance(block, (exp.Update, exp.Delete)):
        if block.this is not None:
            items.append((block.this, None))
        from_ = block.args.get("from_")
        if from_ is not None:
            items.append((from_.this, None))
        for using in block.args.get("using") or ():
            items.append((using, None))
    for join in block.args.get("joins") or ():
        items.append((join.this, join))
    return items


def sources(block: exp.Expr, schema: Mapping[str, Collection[str]],
            cache: dict[int, dict[str, Source]]) -> dict[str, Source]:
    """``{alias or table name: Source}`` of a block, memoized in ``cache`` per block."""
    found = cache.get(id(block))
    if found is None:
        ctes = _ctes(block)
        found = {}
        for item, _ in source_items(block):
            source = _source(item, ctes, schema)
            found.setdefault(source.key, source)
        cache[id(block)] = found
    return found


def resolve(column: exp.Column, schema: Mapping[str, Collection[str]],
            cache: dict[int, dict[str, Source]]) -> tuple[exp.Expr | None, str | None]:
    """``(block, source key or None)`` the column belongs to, or ``(None, None)``."""
    qualifier = column.table.lower()
    name = column.name.lower()
    blocks = enclosing_blocks(column)
    if qualifier:
        for block in blocks:
            block_sources = sources(block, schema, cache)
            if qualifier in block_sources:
                return block, qualifier
            key = next((key for key, source in block_sources.items() if source.table == qualifier), None)
            if key is not None:
                return block, key
        return None, None
    for block in blocks:
        block_sources = sources(block, schema, cache)
        if not block_sources:
            continue
        owners = [key for key, source in block_sources.items() if source.has(name)]
        if owners:
            return block, owners[0] if len(owners) == 1 else None
        if any(source.has(name) is None for source in block_sources.values()):
            return block, next(iter(block_sources)) if len(block_sources) == 1 else None
    return None, None


def is_within(node: exp.Expr | None, ancestor: exp.Expr) -> bool:
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return False
