"""Database router: the telemetry app's models live on their own alias."""

import time
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Model

from telemetry import conf
from telemetry.core.context import suppressed

APP_LABEL = "telemetry"
#: While telemetry's migrations are pending, how long the answer of :func:`migrations_pending` is reused.
MIGRATIONS_RECHECK_SECONDS = 5.0
_migrations: dict[str, Any] = {"applied": False, "pending": False, "checked_at": -1e9}


def telemetry_alias() -> str:
    alias = conf.get("DATABASE_ALIAS")
    return alias if alias in settings.DATABASES else "default"


def recheck_migrations(**kwargs: Any) -> None:
    """``post_migrate`` receiver: the next :func:`migrations_pending` asks the store again,
    instead of remembering "pending" from a check made while ``migrate`` was running."""
    _migrations["checked_at"] = -1e9


def migrations_pending() -> bool:
    """True while telemetry's migrations have not all been applied on its alias (the
    project's first ``migrate`` may be running): its samplers and writers have nowhere to
    write yet and stay quiet. False once they have (remembered), and when the store cannot
    be asked (unreachable: a failure like any other). While pending, looked up again at
    most every ``MIGRATIONS_RECHECK_SECONDS``."""
    if _migrations["applied"]:
        return False
    now = time.monotonic()
    if now - _migrations["checked_at"] >= MIGRATIONS_RECHECK_SECONDS:
        _migrations["checked_at"] = now
        directory = Path(apps.get_app_config(APP_LABEL).path) / "migrations"
        on_disk = {path.stem for path in directory.glob("[0-9][0-9][0-9][0-9]_*.py")}
        try:
            with suppressed():
                recorded = MigrationRecorder(connections[telemetry_alias()]).applied_migrations()
        except Exception:  # noqa: BLE001 - unreachable store: not known to be pending
            _migrations["pending"] = False
        else:
            _migrations["applied"] = on_disk <= {name for app, name in recorded if app == APP_LABEL}
            _migrations["pending"] = not _migrations["applied"]
    return _migrations["pending"]


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
