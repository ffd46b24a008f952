"""Batched increment-upserts into the telemetry database.

Counts that admin pages show are aggregated in process and written here in one
statement per batch: ``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``
(``ON DUPLICATE KEY UPDATE`` on MySQL), so they stay exact with any number of
processes writing the same rows. Telemetry's own statements are not instrumented.
"""

from django.db import connections

from telemetry.core.context import suppressed
from telemetry.core.routers import telemetry_alias


def increment(model, rows, key_fields, sum_fields, max_fields=(), min_fields=(), set_fields=(), insert_fields=(),
              chunk_size=500):
    """Upserts ``rows`` (dicts holding every named field): keys identify a row, sums add
    up, maxima and minima keep the extreme, ``set_fields`` take the new value,
    ``insert_fields`` are written by the insert only (an existing row keeps its own)."""
    if not rows:
        return
    alias = telemetry_alias()
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    fields = [*key_fields, *sum_fields, *max_fields, *min_fields, *set_fields, *insert_fields]
    model_fields = [model._meta.get_field(name) for name in fields]
    columns = [field.column for field in model_fields]
    column_of = dict(zip(fields, columns))
    vendor = connection.vendor
    if vendor == "mysql":
        new = "VALUES({})".format
        greatest, least = "GREATEST", "LEAST"
    else:
        new = "EXCLUDED.{}".format
        greatest, least = ("MAX", "MIN") if vendor == "sqlite" else ("GREATEST", "LEAST")
    updates = []
    for name in sum_fields:
        column = quote(column_of[name])
        updates.append(f"{column} = {table}.{column} + {new(column)}")
    for name, function in [*((n, greatest) for n in max_fields), *((n, least) for n in min_fields)]:
        column = quote(column_of[name])
        updates.append(f"{column} = {function}({table}.{column}, {new(column)})")
    for name in set_fields:
        column = quote(column_of[name])
        updates.append(f"{column} = {new(column)}")
    if vendor == "mysql":
        updates = [update.replace(f"{table}.", "") for update in updates]
        conflict = "ON DUPLICATE KEY UPDATE " + ", ".join(updates)
    else:
        keys = ", ".join(quote(column_of[name]) for name in key_fields)
        conflict = f"ON CONFLICT ({keys}) DO UPDATE SET " + ", ".join(updates)
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    column_list = ", ".join(quote(column) for column in columns)
    prepared = [[field.get_db_prep_save(row[name], connection) for name, field in zip(fields, model_fields)]
                for row in rows]
    with suppressed(), connection.cursor() as cursor:
        for start in range(0, len(prepared), chunk_size):
            chunk = prepared[start:start + chunk_size]
            sql = (f"INSERT INTO {table} ({column_list}) VALUES "
                   + ", ".join([placeholders] * len(chunk)) + f" {conflict}")
            cursor.execute(sql, [value for row in chunk for value in row])
