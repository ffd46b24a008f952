"""Database router: the telemetry app's models live on their own alias."""

import time
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connections
from django.db.models import Model

from telemetry import conf

APP_LABEL = "telemetry"
#: While telemetry's tables are missing, how long the answer of :func:`tables_ready` is reused.
TABLES_RECHECK_SECONDS = 5.0
_tables: dict[str, Any] = {"ready": False, "checked_at": -1e9}


def telemetry_alias() -> str:
    alias = conf.get("DATABASE_ALIAS")
    return alias if alias in settings.DATABASES else "default"


def tables_ready() -> bool:
    """True once every table of telemetry's models exists on its alias (its migrations have
    run). Remembered once true; while false, looked up again at most every
    ``TABLES_RECHECK_SECONDS``. The caller runs it under ``core.context.suppressed()``."""
    if _tables["ready"]:
        return True
    now = time.monotonic()
    if now - _tables["checked_at"] >= TABLES_RECHECK_SECONDS:
        _tables["checked_at"] = now
        wanted = {model._meta.db_table for model in apps.get_app_config(APP_LABEL).get_models()}
        _tables["ready"] = wanted <= set(connections[telemetry_alias()].introspection.table_names())
    return _tables["ready"]


class TelemetryRouter:
    """Sends the telemetry app's reads, writes and migrations to its alias, and keeps
    every other app's tables off that alias."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        if model._meta.app_label == APP_LABEL:
            return telemetry_alias()
        return None

    db_for_write = db_for_read

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        first, second = obj1._meta.app_label == APP_LABEL, obj2._meta.app_label == APP_LABEL
        if first or second:
            return first and second
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        alias = telemetry_alias()
        if app_label == APP_LABEL:
            return db == alias
        if alias != "default" and db == alias:
            return False
        return None
