"""Complexity score of a parsed statement: a rough, additive measure of how much work
the planner and the reader face, comparable across statements (not a cost estimate).

    score = 2   x joins (explicit or comma)
          + 2 x depth, for every nested SELECT (depth 1 directly inside the statement,
                2 inside that, ...; CTE bodies and derived tables count as nested)
          + 2   x set operations (UNION, INTERSECT, EXCEPT)
          + 2   x window functions
          + 1   x aggregate functions
          + 1   for GROUP BY, + 1 for HAVING, + 1 for ORDER BY, + 1 for DISTINCT (each block)
          + 1   x wildcards (``*`` projections, LIKE patterns with a leading ``%`` or ``_``)
          + 0.5 x predicates in WHERE, JOIN ON and HAVING (comparisons, IN, LIKE,
                BETWEEN, IS, EXISTS)

Classes: ``low`` below 5, ``medium`` below 15, ``high`` from 15. A primary-key look-up
scores 0.5, a two-table join with a filter and a sort 3.5, a three-table report with
grouping and aggregates 12, a five-table one with a window, nested subqueries and a
UNION 26.
"""

from sqlglot import exp

from telemetry.queries.sql.scopes import clause
from telemetry.queries.sql.suggestions import Findings

LOW_BELOW = 5.0
MEDIUM_BELOW = 15.0

_PREDICATES = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ, exp.In,
               exp.Like, exp.ILike, exp.Between, exp.Is, exp.Exists)


def score(tree: exp.Expr, findings: Findings) -> float:
    total = 0.0
    for node in tree.walk():
        if isinstance(node, exp.Join):
            total += 2
        elif isinstance(node, exp.Select):
            total += 2 * sum(1 for ancestor in _ancestors(node) if isinstance(ancestor, exp.Select))
            args = node.args
            total += sum(1 for name in ("group", "having", "order", "distinct") if args.get(name))
        elif isinstance(node, exp.SetOperation):
            total += 2
        elif isinstance(node, exp.Window):
            total += 2
        elif isinstance(node, exp.AggFunc):
            total += 1
        elif isinstance(node, _PREDICATES) and clause(node)[0] in ("where", "on", "having"):
            total += 0.5
    total += findings.star_projections + findings.literal_leading_wildcards
    return total


def classify(value: float | None) -> str:
    if value is None:
        return "unknown"
    if value < LOW_BELOW:
        return "low"
    return "medium" if value < MEDIUM_BELOW else "high"


def _ancestors(node):
    node = node.parent
    while node is not None:
        yield node
        node = node.parent
