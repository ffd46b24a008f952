"""Static suggestion codes: problems visible in the statement itself.

A code is emitted only when the problem is there (a wrong code costs as much as a missed
one); the "Query suggestion codes" table of docs/queries.md says what each means and what to do.
Two codes may also depend on bound values: ``leading_wildcard_like`` (a LIKE pattern
bound as a parameter) and ``offset_pagination`` (a bound OFFSET). ``find`` returns the
placeholder keys that feed them, so a cached statement is re-checked against new
parameters without parsing it again.
"""

from collections.abc import Collection, Mapping

from sqlglot import exp

from telemetry.queries.sql.scopes import (
    COMPARISONS,
    Source,
    clause,
    is_within,
    own_columns,
    own_nodes,
    resolve,
    source_items,
    sources,
)

CODES = (
    "select_star",
    "missing_where",
    "leading_wildcard_like",
    "function_on_filter_column",
    "or_across_columns",
    "large_in_list",
    "offset_pagination",
    "cartesian_join",
    "consider_join_optimization",
    "correlated_subquery",
    "not_in_subquery",
    "order_by_random",
)

_PATTERN_WRAPPERS = (exp.Paren, exp.Upper, exp.Lower, exp.Cast, exp.TryCast, exp.Collate)
_CONCATS = (exp.DPipe, exp.Concat, exp.ConcatWs)


class Limits:
    """The thresholds in force (settings), read once per settings change."""

    __slots__ = ("in_list_items", "offset_rows", "max_joins")

    def __init__(self, in_list_items, offset_rows, max_joins):
        self.in_list_items = in_list_items
        self.offset_rows = offset_rows
        self.max_joins = max_joins


class Findings:
    """Codes found in a tree, and placeholders whose bound values may add a code."""

    def __init__(self):
        self.codes = set()
        self.like_placeholders = []
        self.offset_placeholders = []
        self.star_projections = 0
        self.literal_leading_wildcards = 0


def find(tree: exp.Expr, limits: Limits, schema: Mapping[str, Collection[str]]) -> Findings:
    findings = Findings()
    cache: dict[int, dict[str, Source]] = {}
    _select_star(tree, findings)
    _missing_where(tree, findings)
    _like_patterns(tree, findings)
    _comparisons(tree, limits, findings)
    _ors(tree, schema, cache, findings)
    _offsets(tree, limits, findings)
    for block in tree.find_all(exp.Select):
        _joins(block, limits, schema, cache, findings)
    _subqueries(tree, schema, cache, findings)
    _order_by_random(tree, findings)
    return findings


def _unwrap(node):
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _select_star(tree, findings):
    for star in tree.find_all(exp.Star):
        projection = star.parent if isinstance(star.parent, exp.Column) else star
        owner = projection.parent
        if projection.arg_key != "expressions":
            continue
        if isinstance(owner, exp.Select):
            holder = owner.parent.parent if isinstance(owner.parent, exp.Subquery) else owner.parent
            if isinstance(holder, exp.Exists) or isinstance(owner.parent, exp.Exists):
                continue
        elif not isinstance(owner, exp.Returning):
            continue
        findings.codes.add("select_star")
        findings.star_projections += 1


def _missing_where(tree, findings):
    for statement in tree.find_all(exp.Update, exp.Delete):
        if statement.args.get("where") is None:
            findings.codes.add("missing_where")


def _pattern_start(pattern):
    """The leftmost piece of a LIKE pattern: a literal, a placeholder, or something else."""
    while True:
        if isinstance(pattern, _PATTERN_WRAPPERS):
            pattern = pattern.this
        elif isinstance(pattern, exp.DPipe):
            pattern = pattern.this
        elif isinstance(pattern, (exp.Concat, exp.ConcatWs)) and pattern.expressions:
            pattern = pattern.expressions[1 if isinstance(pattern, exp.ConcatWs) else 0]
        else:
            return pattern


def _like_patterns(tree, findings):
    for like in tree.find_all(exp.Like, exp.ILike):
        start = _pattern_start(like.expression)
        if isinstance(start, exp.Literal) and start.is_string:
            if start.this[:1] in ("%", "_"):
                findings.codes.add("leading_wildcard_like")
                findings.literal_leading_wildcards += 1
        elif isinstance(start, exp.Placeholder):
            findings.like_placeholders.append(start.name)


def _wraps_column(node):
    """A function, cast or arithmetic over a column of this block (a row of columns,
    ``(a, b) IN (...)``, is not)."""
    node = _unwrap(node)
    if isinstance(node, exp.Tuple):
        return any(_wraps_column(item) for item in node.expressions)
    return not isinstance(node, (exp.Column, exp.Subquery, exp.Select)) and bool(own_columns(node))


def _sides(comparison):
    if isinstance(comparison, exp.Between):
        return [comparison.this, comparison.args.get("low"), comparison.args.get("high")]
    if isinstance(comparison, exp.In):
        return [comparison.this, *comparison.expressions]
    return [comparison.this, comparison.expression]


def _comparisons(tree, limits, findings):
    for comparison in tree.find_all(*COMPARISONS):
        if isinstance(comparison, exp.In) and len(comparison.expressions) > limits.in_list_items:
            findings.codes.add("large_in_list")
        if isinstance(comparison, exp.In) and comparison.args.get("negate") and comparison.args.get("query"):
            findings.codes.add("not_in_subquery")
        if "function_on_filter_column" in findings.codes:
            continue
        if clause(comparison)[0] not in ("where", "on"):
            continue
        if any(side is not None and _wraps_column(side) for side in _sides(comparison)):
            findings.codes.add("function_on_filter_column")
    for negation in tree.find_all(exp.Not):
        inner = _unwrap(negation.this)
        if isinstance(inner, exp.In) and inner.args.get("query") is not None:
            findings.codes.add("not_in_subquery")


def _or_operands(node):
    node = _unwrap(node)
    if isinstance(node, exp.Or):
        return _or_operands(node.this) + _or_operands(node.expression)
    return [node]


def _column_keys(node, schema, cache):
    keys = set()
    for column in own_columns(node):
        _, source = resolve(column, schema, cache)
        keys.add((source or column.table.lower() or None, column.name.lower()))
    return keys


def _ors(tree, schema, cache, findings):
    for disjunction in tree.find_all(exp.Or):
        if isinstance(_unwrap_up(disjunction), exp.Or) or clause(disjunction)[0] != "where":
            continue
        operand_keys = [keys for keys in (_column_keys(operand, schema, cache)
                                          for operand in _or_operands(disjunction)) if keys]
        if any(None in (source for source, _ in keys) for keys in operand_keys):
            operand_keys = [{name for _, name in keys} for keys in operand_keys]
        if len({frozenset(keys) for keys in operand_keys}) > 1:
            findings.codes.add("or_across_columns")
            return


def _unwrap_up(node):
    parent = node.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    return parent


def _offsets(tree, limits, findings):
    for offset in tree.find_all(exp.Offset):
        _offset_value(offset.expression, limits, findings)
    for limit in tree.find_all(exp.Limit):
        if limit.args.get("offset") is not None:
            _offset_value(limit.args["offset"], limits, findings)


def _offset_value(node, limits, findings):
    node = _unwrap(node)
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            if int(node.this) > limits.offset_rows:
                findings.codes.add("offset_pagination")
        except ValueError:
            pass
    elif isinstance(node, exp.Placeholder):
        findings.offset_placeholders.append(node.name)


def _joins(block, limits, schema, cache, findings):
    joins = block.args.get("joins") or []
    if len(joins) >= limits.max_joins:
        findings.codes.add("consider_join_optimization")
    if not joins or "cartesian_join" in findings.codes:
        return
    block_sources = sources(block, schema, cache)
    parent = {key: key for key, source in block_sources.items() if not source.opaque}

    def root(key: str) -> str:
        while parent[key] != key:
            key = parent[key]
        return key

    def union(*keys: str) -> None:
        roots = [root(key) for key in keys if key in parent]
        for key in roots[1:]:
            parent[key] = roots[0]

    seen = []
    for item, join in source_items(block):
        key = _item_key(item)
        if join is not None and key in parent:
            if (join.args.get("kind") or "").upper() == "CROSS":
                findings.codes.add("cartesian_join")
                return
            if (join.args.get("method") or "").upper() == "NATURAL" or join.args.get("using"):
                union(key, *seen)
        if key in parent:
            seen.append(key)
    predicates = [join.args["on"] for join in joins if join.args.get("on") is not None]
    where = block.args.get("where")
    if where is not None:
        predicates.append(where.this)
    for predicate in predicates:
        for comparison in [predicate, *own_nodes(predicate, COMPARISONS)]:
            if not isinstance(comparison, COMPARISONS):
                continue
            columns = own_columns(comparison)
            if len(columns) < 2:
                continue
            keys = set()
            for column in columns:
                resolved_block, source = resolve(column, schema, cache)
                if resolved_block is block:
                    keys.add(source)
            if None in keys:
                union(*parent)  # cannot tell which tables it relates: assume it links them
            else:
                union(*keys)
    if len({root(key) for key in parent}) > 1:
        findings.codes.add("cartesian_join")


def _item_key(item):
    if isinstance(item, exp.Table):
        return (item.alias or item.name).lower()
    return (item.alias_or_name or "?").lower() if hasattr(item, "alias_or_name") else "?"


def _scalar_context(subquery):
    """In a select list, or an operand of a WHERE comparison (not EXISTS, IN, ANY, ALL)."""
    compared = False
    child, parent = subquery, subquery.parent
    while parent is not None:
        if isinstance(parent, (exp.Exists, exp.In, exp.Any, exp.All)):
            return False
        if isinstance(parent, exp.Where):
            return compared
        if isinstance(parent, COMPARISONS):
            compared = True
        if isinstance(parent, (exp.Select, exp.Update, exp.Delete, exp.Insert, exp.Subquery, exp.SetOperation,
                               exp.Join, exp.From, exp.Having, exp.Order, exp.Group)):
            return isinstance(parent, exp.Select) and child.arg_key == "expressions"
        child, parent = parent, parent.parent
    return False


def _subqueries(tree, schema, cache, findings):
    for subquery in tree.find_all(exp.Subquery):
        if not isinstance(subquery.this, (exp.Select, exp.SetOperation)) or not _scalar_context(subquery):
            continue
        for column in subquery.this.find_all(exp.Column):
            if isinstance(column.this, exp.Star):
                continue
            block, _ = resolve(column, schema, cache)
            if block is not None and not is_within(block, subquery):
                findings.codes.add("correlated_subquery")
                return


def _order_by_random(tree, findings):
    for order in tree.find_all(exp.Order):
        for ordered in order.expressions:
            for node in ordered.walk():
                if isinstance(node, exp.Rand) or (
                        isinstance(node, exp.Anonymous) and str(node.this).upper() in ("RANDOM", "RAND")):
                    findings.codes.add("order_by_random")
                    return
