"""Which Django model and field own a table and a column, from the app registry.

The advice built from statements (N+1 remedies, index migrations) names tables and
columns; a Django team writes its fix against models and fields. This reads only
``apps.get_models()`` and each model's ``_meta``: never the host's views or querysets.
Built once per process, after the registry is ready (empty before).
"""

from functools import cache

from django.apps import apps
from django.db import models


@cache
def _tables() -> dict[str, type[models.Model]]:
    # Auto-created many-to-many tables are included: an M2M's N+1 reads its through table.
    found: dict[str, type[models.Model]] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy:
            continue
        found.setdefault(meta.db_table.lower(), model)
    return found


def model_for_table(table: str) -> type[models.Model] | None:
    """The concrete model stored in ``table`` (``None`` when no installed model is)."""
    if not apps.ready:
        return None
    return _tables().get(table.strip('"').lower())


def field_for_column(model: type[models.Model], column: str) -> models.Field | None:
    """The concrete field of ``model`` stored in ``column`` (a foreign key for ``*_id``)."""
    column = column.strip('"').lower()
    for field in model._meta.concrete_fields:
        if field.column and field.column.lower() == column:
            return field
    return None


def reset() -> None:
    """Forgets the table map (tests that install models after the first lookup)."""
    _tables.cache_clear()
