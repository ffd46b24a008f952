"""Batched increment-upserts into the telemetry database.

Counts that admin pages show are aggregated in process and written here in one
statement per batch: ``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``
(``ON DUPLICATE KEY UPDATE`` on MySQL), so they stay exact with any number of
processes writing the same rows. Telemetry's own statements are not instrumented.
:class:`IncrementTable` is the in-process table such counts are aggregated in.

The flusher writes these tables every sample, so the statement of a table is built once
per process (:func:`_upsert_of`). On PostgreSQL the rows travel as one JSON parameter
(``jsonb_array_elements``): the statement's text is the same whatever the number of rows,
so the driver parses it once and quotes no value, where a ``VALUES`` list of a hundred
placeholders was parsed and every value quoted as a literal on each write.
"""

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model

from telemetry.core.context import suppressed
from telemetry.core.routers import telemetry_alias
from telemetry.metrics.internal import DropCounter

#: Field types whose stored value PostgreSQL reads from a JSON scalar's text as the field
#: would prepare it (``int`` first for the integers: a float or a bool would not read).
_JSON_READABLE = {"CharField": None, "TextField": None, "FloatField": None, "DateTimeField": None,
                  "BooleanField": None, "IntegerField": int, "BigIntegerField": int, "SmallIntegerField": int,
                  "PositiveIntegerField": int, "PositiveBigIntegerField": int, "PositiveSmallIntegerField": int}


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not written as JSON")


_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=_json_value).encode


class _Upsert:
    """The increment-upsert of one model and field set on one database, built once.

    :meth:`statements` gives ``(sql, params)`` for rows given as lists in :attr:`fields`
    order: on PostgreSQL one statement with the rows as a JSON array when every field reads
    from JSON (``json_sql``), else (and for a value JSON cannot carry: NaN, infinity) a
    ``VALUES`` list of prepared values per chunk."""

    __slots__ = ("fields", "model_fields", "head", "placeholders", "conflict", "json_sql", "json_converters")

    def __init__(self, model: type[Model], alias: str, key_fields: tuple[str, ...], sum_fields: tuple[str, ...],
                 max_fields: tuple[str, ...], min_fields: tuple[str, ...], set_fields: tuple[str, ...],
                 insert_fields: tuple[str, ...]) -> None:
        connection = connections[alias]
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        fields = (*key_fields, *sum_fields, *max_fields, *min_fields, *set_fields, *insert_fields)
        # Any: get_field() is typed as a union with relations and generic keys; these are concrete fields.
        model_fields: list[Any] = [model._meta.get_field(name) for name in fields]
        column_of = {name: quote(field.column) for name, field in zip(fields, model_fields, strict=True)}
        vendor = connection.vendor
        if vendor == "mysql":
            new = "VALUES({})".format
            greatest, least = "GREATEST", "LEAST"
        else:
            new = "EXCLUDED.{}".format
            greatest, least = ("MAX", "MIN") if vendor == "sqlite" else ("GREATEST", "LEAST")
        updates = []
        for name in sum_fields:
            column = column_of[name]
            updates.append(f"{column} = {table}.{column} + {new(column)}")
        for name, function in [*((n, greatest) for n in max_fields), *((n, least) for n in min_fields)]:
            column = column_of[name]
            updates.append(f"{column} = {function}({table}.{column}, {new(column)})")
        for name in set_fields:
            column = column_of[name]
            updates.append(f"{column} = {new(column)}")
        if vendor == "mysql":
            updates = [update.replace(f"{table}.", "") for update in updates]
            conflict = "ON DUPLICATE KEY UPDATE " + ", ".join(updates)
        else:
            keys = ", ".join(column_of[name] for name in key_fields)
            conflict = f"ON CONFLICT ({keys}) DO UPDATE SET " + ", ".join(updates)
        column_list = ", ".join(column_of.values())
        self.fields = fields
        self.model_fields = tuple(model_fields)
        self.head = f"INSERT INTO {table} ({column_list}) VALUES "
        self.placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
        self.conflict = conflict
        self.json_sql: str | None = None
        self.json_converters: tuple[Callable[[Any], Any] | None, ...] = ()
        types = [field.get_internal_type() for field in model_fields]
        if vendor == "postgresql" and all(kind in _JSON_READABLE for kind in types):
            # Text as it comes (a value too long for its column fails as it would in VALUES).
            selected = ", ".join(
                f"item->>{index}" if kind in ("CharField", "TextField")
                else f"(item->>{index})::{field.cast_db_type(connection)}"
                for index, (field, kind) in enumerate(zip(model_fields, types, strict=True)))
            self.json_sql = (f"INSERT INTO {table} ({column_list}) SELECT {selected} "
                             f"FROM jsonb_array_elements(%s::jsonb) AS item {conflict}")
            self.json_converters = tuple(None if field.null else _JSON_READABLE[kind]
                                         for field, kind in zip(model_fields, types, strict=True))

    def statements(self, values: list[list[Any]], connection: Any,
                   chunk_size: int) -> list[tuple[str, list[Any]]]:
        if self.json_sql is not None:
            converting = [(index, convert) for index, convert in enumerate(self.json_converters) if convert]
            for row in values:
                for index, convert in converting:
                    row[index] = convert(row[index])
            try:
                return [(self.json_sql, [_dumps(values)])]
            except (ValueError, TypeError):
                pass  # NaN, infinity, a type of its own: written as prepared values below
        prepared = [[field.get_db_prep_save(value, connection)
                     for field, value in zip(self.model_fields, row, strict=True)]
                    for row in values]
        return [(self.head + ", ".join([self.placeholders] * len(chunk)) + " " + self.conflict,
                 [value for row in chunk for value in row])
                for chunk in (prepared[start:start + chunk_size] for start in range(0, len(prepared), chunk_size))]


#: One statement per model, field set and database for the life of the process.
_upsert_of = lru_cache(maxsize=64)(_Upsert)


def increment(model: type[Model], rows: Sequence[Mapping[str, Any]], key_fields: Sequence[str],
              sum_fields: Sequence[str], max_fields: Sequence[str] = (), min_fields: Sequence[str] = (),
              set_fields: Sequence[str] = (), insert_fields: Sequence[str] = (), chunk_size: int = 500) -> None:
    """Upserts ``rows`` (dicts holding every named field): keys identify a row, sums add
    up, maxima and minima keep the extreme, ``set_fields`` take the new value,
    ``insert_fields`` are written by the insert only (an existing row keeps its own)."""
    if not rows:
        return
    alias = telemetry_alias()
    connection = connections[alias]
    upsert = _upsert_of(model, alias, tuple(key_fields), tuple(sum_fields), tuple(max_fields), tuple(min_fields),
                        tuple(set_fields), tuple(insert_fields))
    names = upsert.fields
    values = [[row[name] for name in names] for row in rows]
    with suppressed(), connection.cursor() as cursor:
        for sql, params in upsert.statements(values, connection, chunk_size):
            cursor.execute(sql, params)


class Row:
    """A row of an :class:`IncrementTable`: a ``__slots__`` class (or a dataclass with
    ``slots=True``) whose slots are the stored fields; :meth:`fields` gives them to the
    upsert. A row that holds more than its stored fields overrides :meth:`fields`."""

    __slots__: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


RowType = TypeVar("RowType", bound=Row)


class IncrementTable(Generic[RowType]):
    """An in-process table flushed by one increment-upsert into ``model``.

    Keys are tuples of the ``key_fields`` values; the flusher thread adds through
    :meth:`row` (a dict look-up, no lock: adds and writes both run under the flusher's
    drain). At most ``max_keys`` keys are held between two writes: a new key beyond them is
    dropped and counted in ``drops`` (as ``drop_reason`` when it is labelled), reported on
    each :meth:`write`. :meth:`take` swaps the table for an empty one under a lock, so
    any thread may write.
    """

    __slots__ = ("model", "row_type", "key_fields", "sum_fields", "max_fields", "min_fields", "set_fields",
                 "max_keys", "drops", "drop_reason", "_rows", "_lock")

    def __init__(self, model: type[Model], row_type: Callable[..., RowType], key_fields: Sequence[str],
                 sum_fields: Sequence[str], max_fields: Sequence[str] = (), min_fields: Sequence[str] = (),
                 set_fields: Sequence[str] = (), *, max_keys: int, drops: DropCounter,
                 drop_reason: str = "") -> None:
        self.model = model
        self.row_type = row_type
        self.key_fields = tuple(key_fields)
        self.sum_fields = tuple(sum_fields)
        self.max_fields = tuple(max_fields)
        self.min_fields = tuple(min_fields)
        self.set_fields = tuple(set_fields)
        self.max_keys = max_keys
        self.drops = drops
        self.drop_reason = drop_reason
        self._rows: dict[tuple, RowType] = {}
        self._lock = threading.Lock()

    def row(self, key: tuple, *arguments: Any, weight: int = 1) -> RowType | None:
        """The row of ``key`` to add to; a new key gets ``row_type(*arguments)``. None when
        the table is full: the ``weight`` events that would have been added are counted
        as dropped."""
        row = self._rows.get(key)
        if row is None:
            if len(self._rows) >= self.max_keys:
                self.drops.count(self.drop_reason, weight)
                return None
            row = self._rows[key] = self.row_type(*arguments)
        return row

    def __len__(self) -> int:
        return len(self._rows)

    def take(self) -> dict[tuple, RowType]:
        """Everything added since the last take, leaving the table empty."""
        with self._lock:
            rows, self._rows = self._rows, {}
        return rows

    def write(self, rows: dict[tuple, RowType] | None = None) -> None:
        """Upserts ``rows`` (by default what :meth:`take` returns) in one increment-upsert
        and reports the drops counted so far."""
        if rows is None:
            rows = self.take()
        self.drops.report()
        increment(self.model,
                  [{**dict(zip(self.key_fields, key, strict=True)), **row.fields()} for key, row in rows.items()],
                  key_fields=self.key_fields, sum_fields=self.sum_fields, max_fields=self.max_fields,
                  min_fields=self.min_fields, set_fields=self.set_fields)

    def reset(self) -> None:
        """Forgets what is pending (tests: ``telemetry.testing.reset``)."""
        self.take()
