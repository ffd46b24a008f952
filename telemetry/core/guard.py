"""Fail-open guard: telemetry never breaks the code it observes.

Errors inside telemetry are counted in ``telemetry_internal_errors_total{component}``
and logged once per component and error type, never raised.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def guarded(component: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # noqa: BLE001
        report(component, exc)


def internal_error_count(component: str) -> float:
    """Current count for a component (tests and the health page)."""
    return REGISTRY.get_sample_value("telemetry_internal_errors_total", {"component": component}) or 0.0
