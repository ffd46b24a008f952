"""Fail-open guard: telemetry never breaks the code it observes.

Errors inside telemetry are counted in ``telemetry_internal_errors_total{component}``
and logged once per component and error type, never raised.
"""

import logging
from types import TracebackType

from django.db import DatabaseError
from prometheus_client import REGISTRY

from telemetry.core import routers
from telemetry.metrics import internal

logger = logging.getLogger("telemetry")
_logged: set[tuple[str, str]] = set()


def report(component: str, exc: BaseException) -> None:
    try:
        if isinstance(exc, DatabaseError) and routers.migrations_pending():
            # Telemetry's migrations have not run yet: expected, neither counted nor logged. The
            # sampler and the trace store ask before writing; this covers any other write.
            return
        internal.internal_errors().labels(component).inc()
        key = (component, type(exc).__name__)
        if key not in _logged:
            _logged.add(key)
            logger.warning("telemetry %s failed (logged once): %r", component, exc, exc_info=exc)
    except Exception:  # noqa: BLE001 - the guard itself must never raise
        pass


class guarded:  # noqa: N801 - used as a function: ``with guard.guarded("component"):``
    """Reports an ``Exception`` raised inside the block and swallows it.

    A class rather than ``@contextmanager``: it is entered on hot paths (the writer's
    tick, each of the sampler's writes), and a generator per entry costs several times
    as much as these two methods."""

    __slots__ = ("component",)

    def __init__(self, component: str) -> None:
        self.component = component

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        report(self.component, exc)
        return True


def internal_error_count(component: str) -> float:
    """Current count for a component (tests and the health page)."""
    return REGISTRY.get_sample_value("telemetry_internal_errors_total", {"component": component}) or 0.0
