"""The ORM change that removes an N+1 or a duplicate query, named from the models.

An ``n_plus_one`` finding is one statement run once per item of a loop. The statement says
which table it reads and by which column; the app registry (``telemetry.queries.schema`` and
each model's ``_meta``) says which relation that column is, hence which queryset call folds
the loop into the query that listed the items:

- the table read by the column a foreign key or one-to-one points at (its primary key): the
  loop follows a forward relation, ``select_related("<field>")`` on the queryset of the model
  that holds it, that model being the one the nearest earlier statement of the request reads;
- the table read by one of its own foreign keys: a reverse relation,
  ``prefetch_related("<accessor>")`` on the queryset of the model the key points at
  (``select_related`` for a reverse one-to-one);
- a many-to-many through table read by one side: ``prefetch_related("<field or accessor>")``;
- a ``COUNT(*)`` or an ``EXISTS``-style ``SELECT 1 ... LIMIT 1`` per item:
  ``annotate(<name>=Count("<relation>"))`` or ``annotate(<name>=Exists(...))``; the first row
  of an ordered list per item (``first()``, ``latest()``): ``annotate(<name>=Subquery(...))``.

A loop inside a loop gives one path on the outer queryset (``prefetch_related("apps__queries")``).
When the relation or the queryset cannot be told, the remedy says so instead of guessing. A
``duplicate_query`` (the same statement and parameters) is cached or hoisted out of the loop.

Runs on the flusher thread only (``stats.detect``), never on a request's. What a statement reads
is resolved once per fingerprint (a bounded cache); a request then costs a short backward scan
over its own statements.
"""

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from django.apps import apps
from django.db import models
from sqlglot import exp, parse_one

from telemetry.core import guard
from telemetry.core.events import QueryExecuted
from telemetry.queries import schema
from telemetry.queries.sql import DIALECTS, QueryAnalysis

#: Statements resolved and kept (one per repeated fingerprint).
CACHE_SIZE = 1024
#: How many earlier statements of the request are searched for the query that listed the items.
LOOKBACK = 200

HOIST = {"kind": "hoist", "model": "", "queryset": "", "call": "",
         "text": "cache or hoist the call out of the loop"}


class Relation(NamedTuple):
    """One way from a model's rows to the repeated statement's rows."""

    #: The model whose queryset takes the call.
    model: type[models.Model]
    #: The name ``select_related``/``prefetch_related``/``Count`` take on ``model``.
    accessor: str
    #: The filter name from the repeated statement's model back to ``model`` (for ``Exists``).
    lookup: str


class Shape(NamedTuple):
    """What one repeated statement reads, resolved against the models (cached per fingerprint)."""

    #: ``rows``, ``count`` (``COUNT(*)``), ``exists`` (``SELECT 1 ... LIMIT 1``) or ``first``
    #: (``ORDER BY ... LIMIT``: ``first()``, ``latest()``, ``[:1]``).
    aggregate: str
    #: ``select_related`` (forward or reverse one-to-one) or ``prefetch_related``.
    method: str
    #: A forward relation: the model holding it is found among the request's earlier statements.
    forward: bool
    #: The model the statement reads per item.
    child: type[models.Model] | None
    relations: tuple[Relation, ...]
    #: The statement has conditions besides the relation's (they belong in the Prefetch / Count).
    filtered: bool
    #: Why no relation fits ("" when one does).
    problem: str = ""
    #: ``order_by`` arguments of a ``first`` (``("-created_at",)``).
    order: tuple[str, ...] = ()


def _unresolved(problem: str) -> Shape:
    return Shape("rows", "", False, None, (), False, problem)


def _name(model: type[models.Model] | None) -> str:
    return (model._meta.object_name or model.__name__) if model is not None else ""


@lru_cache(maxsize=CACHE_SIZE)
def statement_shape(fingerprint: str, vendor: str) -> Shape:
    """The relation a repeated statement follows, from its fingerprint (never raises)."""
    try:
        tree = parse_one(fingerprint, dialect=DIALECTS.get(vendor))
    except Exception:  # noqa: BLE001 - a statement sqlglot rejects has no remedy
        return _unresolved("the statement could not be parsed")
    if not isinstance(tree, exp.Select) or tree.args.get("from_") is None:
        return _unresolved("the statement is not a single SELECT")
    aliases = {}
    for table in [tree.args["from_"].this, *(join.this for join in tree.args.get("joins") or ())]:
        if isinstance(table, exp.Table):
            aliases[table.alias_or_name.lower()] = table.name.lower()
    main_table = next(iter(aliases.values()), "")
    terms = _conjuncts(tree.args["where"].this) if tree.args.get("where") else []
    equalities = []
    for term in terms:
        if isinstance(term, exp.EQ):
            column, value = (term.this, term.expression) if isinstance(term.this, exp.Column) \
                else (term.expression, term.this)
            if isinstance(column, exp.Column) and isinstance(value, exp.Placeholder):
                equalities.append((aliases.get(column.table.lower(), column.table.lower()) if column.table
                                   else main_table, column.name))
    if not equalities:
        return _unresolved("the statement filters on no column equal to a parameter")
    aggregate = _aggregate(tree)
    filtered = len(terms) > 1
    problem = ""
    for table, column in equalities:
        model = schema.model_for_table(table)
        field = schema.field_for_column(model, column) if model is not None else None
        if model is None or field is None:
            problem = problem or f"no installed model stores {table}.{column}"
            continue
        shape = _through(model, field, aggregate, filtered) or _reverse(model, field, aggregate, filtered) \
            or _forward(model, field, aggregate, filtered)
        if not shape.problem:
            return _first(tree, aliases, shape)
        problem = problem or shape.problem
    return _unresolved(problem)


def _first(tree: exp.Select, aliases: dict[str, str], shape: Shape) -> Shape:
    """``shape`` as a ``first`` when the statement takes the first rows of an ordered list of the
    child's (one per item: a Subquery, not a prefetch of every row)."""
    if shape.aggregate != "rows" or shape.method != "prefetch_related" or not tree.args.get("limit") \
            or not tree.args.get("order") or shape.child is None:
        return shape
    order = []
    for ordered in tree.args["order"].expressions:
        column = ordered.this
        if not isinstance(column, exp.Column):
            return shape
        table = aliases.get(column.table.lower(), column.table.lower()) if column.table else ""
        field = schema.field_for_column(shape.child, column.name)
        if field is None or (table and table != shape.child._meta.db_table.lower()):
            return shape
        order.append(("-" if ordered.args.get("desc") else "") + field.name)
    return shape._replace(aggregate="first", order=tuple(order))


def _conjuncts(condition: exp.Expression) -> list[exp.Expression]:
    while isinstance(condition, exp.Paren):
        condition = condition.this
    if isinstance(condition, exp.And):
        return [term for part in (condition.this, condition.expression) for term in _conjuncts(part)]
    return [condition]


def _aggregate(tree: exp.Select) -> str:
    selected = [item.this if isinstance(item, exp.Alias) else item for item in tree.expressions]
    if len(selected) == 1 and isinstance(selected[0], exp.Count):
        return "count"
    if len(selected) == 1 and isinstance(selected[0], (exp.Literal, exp.Placeholder)) and tree.args.get("limit"):
        return "exists"
    return "rows"


def _through(model: type[models.Model], field: models.Field, aggregate: str, filtered: bool) -> Shape | None:
    """A many-to-many's through table read by one of its two keys."""
    m2m: Any  # ManyToManyField, loosely typed by the stubs
    for candidate in apps.get_models():
        for m2m in candidate._meta.local_many_to_many:
            if m2m.remote_field.through is not model:
                continue
            if field.name == m2m.m2m_field_name():
                relation = Relation(m2m.model, m2m.name, m2m.related_query_name())
                child = m2m.related_model
            elif field.name == m2m.m2m_reverse_field_name():
                accessor = m2m.remote_field.get_accessor_name()
                if m2m.remote_field.hidden or not accessor:
                    return _unresolved(f"{_name(m2m.model)}.{m2m.name} has no reverse accessor (related_name '+')")
                relation = Relation(m2m.related_model, accessor, m2m.name)
                child = m2m.model
            else:
                continue
            return Shape(aggregate, "prefetch_related", False, child, (relation,), filtered)
    return None


def _reverse(model: type[models.Model], field: models.Field, aggregate: str, filtered: bool) -> Shape | None:
    """The table read by its own foreign key or one-to-one: the relation seen from the other side."""
    if not (field.is_relation and (field.many_to_one or field.one_to_one)):
        return None
    remote: Any = field.remote_field
    accessor = remote.get_accessor_name()
    if remote.hidden or not accessor:
        return _unresolved(f"{_name(model)}.{field.name} has no reverse accessor (related_name '+')")
    method = "select_related" if field.one_to_one else "prefetch_related"
    return Shape(aggregate, method, False, model, (Relation(remote.model, accessor, field.name),), filtered)


def _forward(model: type[models.Model], field: models.Field, aggregate: str, filtered: bool) -> Shape:
    """The table read by the column foreign keys point at: every model holding one is a candidate."""
    found = []
    relation: Any  # a ForeignKey or OneToOneField (target_field), loosely typed by the stubs
    for holder in apps.get_models():
        for relation in holder._meta.local_concrete_fields:
            if (relation.is_relation and (relation.many_to_one or relation.one_to_one)
                    and relation.related_model is model and relation.target_field.column == field.column):
                found.append(Relation(holder, relation.name, ""))
    relations = tuple(found)
    if not relations:
        return _unresolved(f"no foreign key points at {model._meta.db_table}.{field.column}")
    if aggregate != "rows":
        return _unresolved(f"a {aggregate} of {_name(model)} by the column foreign keys point at")
    return Shape(aggregate, "select_related", True, model, relations, filtered)


def _remedy(kind: str, model: type[models.Model] | None, call: str, text: str) -> dict[str, str]:
    return {"kind": kind, "model": model._meta.label if model else "", "queryset": _name(model) if model else "",
            "call": call, "text": text}


def unidentified(reason: str) -> dict[str, str]:
    """A remedy that says why none is named."""
    return _remedy("unidentified", None, "", f"no remedy named: {reason}")


class _Loop(NamedTuple):
    """A resolved N+1 of one request, as an outer loop's remedy extends into an inner one."""

    remedy: dict[str, str]
    #: The remedy's queryset model, its path and method (for an inner loop to extend).
    model: type[models.Model] | None = None
    path: str = ""
    method: str = ""
    #: The model whose rows the loop reads.
    child: type[models.Model] | None = None


class RequestRemedies:
    """The remedies of one request's N+1s: ``for_loop(index)`` of each repeated statement's
    first run. ``loops`` maps the fingerprint ids of the request's N+1s to their first index, so
    an inner loop's remedy is one path on the outer loop's queryset."""

    def __init__(self, analysed: Sequence[tuple[QueryExecuted, QueryAnalysis]], loops: dict[str, int]) -> None:
        self.analysed = analysed
        self.loops = loops
        self._resolved: dict[str, _Loop | None] = {}

    def for_loop(self, index: int) -> dict[str, str]:
        """The remedy of the N+1 whose first run is ``analysed[index]`` (never raises)."""
        try:
            return self._resolve(index).remedy
        except Exception as exc:  # noqa: BLE001 - a remedy must never cost the request's other telemetry
            guard.report("query_remedy", exc)
            return unidentified("resolving it failed (telemetry_internal_errors_total{component=\"query_remedy\"})")

    def _resolve(self, index: int) -> _Loop:
        event, analysis = self.analysed[index]
        key = analysis.fingerprint_id
        known = self._resolved.get(key)
        if known is not None:
            return known
        self._resolved[key] = _Loop(unidentified("a loop over its own results"))  # a cycle stops here
        loop = self._resolved[key] = self._loop(index, statement_shape(analysis.fingerprint, event.vendor))
        return loop

    def _loop(self, index: int, shape: Shape) -> _Loop:
        if shape.problem:
            return _Loop(unidentified(shape.problem))
        holder_index, relations = self._holder(index, shape)
        if shape.forward:
            if not relations:
                return _Loop(unidentified(
                    f"no statement before the loop reads a model with a foreign key to {_name(shape.child)}"))
            if len(relations) > 1:
                names = ", ".join(relation.accessor for relation in relations)
                return _Loop(unidentified(f"{_name(relations[0].model)} has {len(relations)} foreign keys to "
                                          f"{_name(shape.child)} ({names}): the loop follows one of them"))
        relation = relations[0] if relations else shape.relations[0]
        if shape.aggregate != "rows":
            return _Loop(_annotation(shape, relation))
        path, method = relation.accessor, shape.method
        model: type[models.Model] | None = relation.model
        if holder_index is not None and not shape.filtered:
            outer = self._outer(holder_index, relation.model)
            if outer is not None:
                path = f"{outer.path}__{path}"
                model = outer.model
                if outer.method != "select_related":
                    method = "prefetch_related"
        if shape.filtered and method == "prefetch_related":
            call = (f'prefetch_related(Prefetch("{path}", queryset={_name(shape.child)}.objects.filter(...)))')
            text = (f"add {call} to the {_name(model)} queryset (with the loop's other conditions in the "
                    "Prefetch queryset)")
        else:
            call = f'{method}("{path}")'
            text = f"add {call} to the {_name(model)} queryset"
        return _Loop(_remedy(method, model, call, text), model, path, method, shape.child)

    def _holder(self, index: int, shape: Shape) -> tuple[int | None, tuple[Relation, ...]]:
        """The nearest earlier statement that lists rows of a model of ``shape``'s relations (more
        than one row, when the driver says, or an outer loop's), and those relations of it."""
        own = self.analysed[index][1].fingerprint_id
        tables = {relation.model._meta.db_table.lower() for relation in shape.relations}
        for earlier in range(index - 1, max(index - LOOKBACK, 0) - 1, -1):
            event, analysis = self.analysed[earlier]
            if analysis.fingerprint_id == own or analysis.operation != "select" or not analysis.tables:
                continue
            if 0 <= event.rowcount < 2 and analysis.fingerprint_id not in self.loops:
                continue  # a single row (a permission check, a get()) lists nothing to loop over
            if analysis.tables[0] in tables:
                return earlier, tuple(relation for relation in shape.relations
                                      if relation.model._meta.db_table.lower() == analysis.tables[0])
        return None, ()

    def _outer(self, holder_index: int, model: type[models.Model]) -> _Loop | None:
        """The outer loop's remedy when the statement that read ``model`` is itself an N+1
        whose rows are ``model``'s."""
        first = self.loops.get(self.analysed[holder_index][1].fingerprint_id)
        if first is None:
            return None
        outer = self._resolve(first)
        return outer if outer.child is model and outer.path else None


def _annotation(shape: Shape, relation: Relation) -> dict[str, str]:
    child = _name(shape.child)
    condition = ' (with the loop\'s other conditions as filter=Q(...))' if shape.filtered else ""
    if shape.aggregate == "count":
        call = f'annotate({relation.accessor}_count=Count("{relation.accessor}"))'
    elif shape.aggregate == "first":
        order = ", ".join(f'"{name}"' for name in shape.order)
        call = (f'annotate(first_{child.lower()}=Subquery({child}.objects.filter({relation.lookup}=OuterRef("pk"))'
                f'.order_by({order}).values("pk")[:1]))')
    else:
        call = (f'annotate(has_{relation.accessor}=Exists({child}.objects.filter('
                f'{relation.lookup}=OuterRef("pk"))))')
    return _remedy("annotate", relation.model, call,
                   f"add {call} to the {_name(relation.model)} queryset{condition}")


def describe(remedy: dict[str, Any], call_site: str) -> str:
    """The remedy as one sentence, with the call site's ``path:line`` when there is one."""
    text = (remedy or {}).get("text", "")
    where = (call_site or "").split(" in ")[0]
    if text and where and remedy.get("kind") != "unidentified":
        return f"{text} at {where}"
    return text


def reset() -> None:
    """Forgets the resolved statements (tests that install models after the first lookup)."""
    statement_shape.cache_clear()
