"""Metric families grouped by domain, created once per process on first use."""

import threading
from types import SimpleNamespace

from telemetry import conf
from telemetry.metrics import analytics, business, db, http, jobs, plugins

_lock = threading.Lock()
_families: SimpleNamespace | None = None


def families() -> SimpleNamespace:
    """All families: ``families().http.request_duration``, ``families().db...``."""
    global _families
    if _families is None:
        with _lock:
            if _families is None:
                namespace = conf.get("NAMESPACE")
                _families = SimpleNamespace(
                    http=http.define(namespace),
                    db=db.define(namespace),
                    plugins=plugins.define(namespace),
                    business=business.define(namespace),
                    analytics=analytics.define(namespace),
                    jobs=jobs.define(namespace),
                )
    return _families
