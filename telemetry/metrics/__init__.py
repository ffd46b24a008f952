"""Metric families grouped by domain, created once per process on first use.

Families that only a low-code platform drives belong to an optional domain
(:data:`OPTIONAL_DOMAINS`) and are exported once it is on (``metrics.base.Domains``): a
fresh project exports the HTTP, database, jobs and ``telemetry_*`` families only.
"""

import threading
from types import SimpleNamespace

from telemetry import conf
from telemetry.metrics import analytics, business, db, http, jobs, plugins
from telemetry.metrics.base import domains

#: Families of the optional domains: a whole group, or ``group.family``.
OPTIONAL_DOMAINS: dict[str, tuple[str, ...]] = {
    "plugins": ("plugins",),
    "datasources": ("business.datasource_connections", "analytics.external_operation"),
    "apps": ("business.feature_usage", "business.app_load_time", "business.app_query_execution",
             "business.app_errors", "analytics.app_builder_viewer"),
    "benchmarks": ("analytics.benchmark_duration", "analytics.benchmark_comparison", "analytics.benchmark_regression",
                   "analytics.benchmark_score", "analytics.benchmark_trend"),
    "storage": ("business.storage_usage",),
}
_domain_of = {member: domain for domain, members in OPTIONAL_DOMAINS.items() for member in members}

_lock = threading.Lock()
_families: SimpleNamespace | None = None


def families() -> SimpleNamespace:
    """All families: ``families().http.request_duration``, ``families().db...``."""
    global _families
    if _families is None:
        with _lock:
            if _families is None:
                namespace = conf.get("NAMESPACE")
                defined = SimpleNamespace(
                    http=http.define(namespace),
                    db=db.define(namespace),
                    plugins=plugins.define(namespace),
                    business=business.define(namespace),
                    analytics=analytics.define(namespace),
                    jobs=jobs.define(namespace),
                )
                conf.on_change(_switch_on_listed)
                for group, members in vars(defined).items():
                    for name, family in vars(members).items():
                        domains.add(family, _domain_of.get(f"{group}.{name}", _domain_of.get(group)))
                _families = defined
    return _families


def _switch_on_listed() -> None:
    for domain in conf.get("METRIC_DOMAINS") or ():
        switch_on(domain)


def switch_on(domain: str) -> None:
    """Exports ``domain``'s families from now on in this process (``telemetry.api`` calls
    it when a host reports into the domain). Unknown names are ignored."""
    domains.switch_on(domain)
