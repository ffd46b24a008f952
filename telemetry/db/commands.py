"""Management commands' statements are not recorded by default: ``migrate``'s DDL, a data
seed's bulk inserts or a maintenance command would otherwise fill the fingerprints,
findings, reports and traces with work that is not the application's. The setting
``QUERY_STATS_MANAGEMENT_COMMANDS`` records them as any other statement.

Django sends no signal around a command, so :func:`install` wraps ``BaseCommand.execute``
(what ``manage.py`` and ``call_command`` both run), once per process. The check is one
settings lookup per command; the statements then meet the execute wrapper's per-thread
suppression. Threads a command starts (``runserver``'s request threads) are not
suppressed.
"""

from functools import wraps
from typing import Any

from django.core.management.base import BaseCommand

from telemetry import conf
from telemetry.core.context import suppressed


def install() -> None:
    """Idempotent: a second call does nothing."""
    original = BaseCommand.execute
    if getattr(original, "telemetry_wrapped", False):
        return

    @wraps(original)
    def execute(self: BaseCommand, *args: Any, **options: Any) -> Any:
        if conf.get("QUERY_STATS_MANAGEMENT_COMMANDS"):
            return original(self, *args, **options)
        with suppressed():
            return original(self, *args, **options)

    execute.telemetry_wrapped = True  # type: ignore[attr-defined]
    BaseCommand.execute = execute  # type: ignore[method-assign]
