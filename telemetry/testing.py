"""Helpers for the tests of projects that install telemetry (and for telemetry's own), as
django-prometheus ships ``testutils``.

- :func:`reset` empties the in-process tables and caches of this process between tests;
- :class:`Samples` reads metric values after applying the buffered events, and deltas.

Import it from tests, after ``django.setup()`` (pytest-django does that first): it
imports telemetry's models.
"""

from collections.abc import Callable, Mapping

from prometheus_client import REGISTRY

from telemetry import api
from telemetry.core import labels, organization, recorder
from telemetry.http import views
from telemetry.queries import advice, explain
from telemetry.queries import stats as querystats
from telemetry.tracing import logs, processor
from telemetry.usage import activity, releases, rollups, traffic


def reset() -> None:
    """Empties every in-process telemetry table and cache of this process: the label caps
    and the caches derived from them, the imported organization resolver, pending query
    statistics and findings with the findings' rate limits, the EXPLAIN queue with its
    rate limits and HypoPG's back-off, the usage tables, release latency, active users, the
    log rows' rate limits and cached health results; events recorded and not yet applied,
    and spans and log records waiting for the trace store, are dropped.

    Counters of this process stay (prometheus-client's registry, drop totals): assert
    deltas (:class:`Samples`).
    """
    recorder.reset()
    processor.reset()
    labels.caps.reset()
    organization.resolver.reset()
    querystats.statistics.reset()
    explain.queue.reset()
    advice.reset()
    rollups.usage_tables.reset()
    releases.latency.reset()
    traffic.traffic.reset()
    activity.active_users.reset()
    logs.rate_limit.reset()
    views.reset_health()


class Samples:
    """Metric samples of this process's registry, read after applying buffered events
    (``telemetry.api.flush()``)."""

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """The sample ``name`` with exactly ``labels`` (0 when absent)."""
        api.flush()
        return REGISTRY.get_sample_value(name, dict(labels or {})) or 0.0

    def snapshot(self, name: str, labels: Mapping[str, str] | None = None) -> Callable[[], float]:
        """A function returning how much the sample grew since this call."""
        before = self.value(name, labels)
        return lambda: self.value(name, labels) - before
