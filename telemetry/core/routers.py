"""Database router: the telemetry app's models live on their own alias."""

from typing import Any

from django.conf import settings
from django.db.models import Model

from telemetry import conf

APP_LABEL = "telemetry"


def telemetry_alias() -> str:
    alias = conf.get("DATABASE_ALIAS")
    return alias if alias in settings.DATABASES else "default"


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
