"""Bounded label values: every open-ended value passes through here before it
becomes a label, so the number of series stays within the configured caps."""

import threading
from collections.abc import Callable

from telemetry import conf

OTHER = "other"
UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


class CappedValues:
    """Admits the first ``limit`` distinct values; later ones become ``other``."""

    def __init__(self, limit_setting: str, default_limit: int) -> None:
        self._limit_setting = limit_setting
        self._default_limit = default_limit
        self._admitted: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value) -> str:
        if value is None or value == "":
            return ""
        value = str(value)
        if value in self._admitted:
            return value
        with self._lock:
            if len(self._admitted) < conf.get(self._limit_setting, self._default_limit):
                self._admitted.add(value)
                return value
        return OTHER

    def reset(self) -> None:
        with self._lock:
            self._admitted.clear()


class LabelCaps:
    """The capped labels of this process, and the caches of values derived from them
    (emptied with them, so no cache keeps a value the caps would now map differently)."""

    def __init__(self) -> None:
        self.organization = CappedValues("MAX_ORGANIZATIONS", 200)
        self.app = CappedValues("MAX_APPS", 500)
        self.query_name = CappedValues("MAX_QUERY_NAMES", 500)
        self.query_pattern = CappedValues("MAX_QUERY_PATTERNS", 200)
        self.route = CappedValues("MAX_ROUTES", 500)
        self.table = CappedValues("MAX_TABLES", 500)
        self._derived_caches: list[Callable[[], None]] = []

    def on_reset(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs on :meth:`reset`: for caches of label values."""
        if callback not in self._derived_caches:
            self._derived_caches.append(callback)

    def reset(self) -> None:
        """Admits values anew (``telemetry.testing.reset``)."""
        for capped in (self.organization, self.app, self.query_name, self.query_pattern, self.route, self.table):
            capped.reset()
        for callback in self._derived_caches:
            callback()


#: This process's caps; callers use the names below.
caps = LabelCaps()
organization = caps.organization
app = caps.app
query_name = caps.query_name
query_pattern = caps.query_pattern
route = caps.route
table = caps.table
on_reset = caps.on_reset


def method(value: str | None) -> str:
    value = (value or "").upper()
    return value if value in KNOWN_METHODS else OTHER


def status_class(status_code: int | str | None) -> str:
    return f"{int(status_code) // 100}xx" if status_code else "unknown"


def count_bucket(count: int) -> str:
    """Counts as label values: ``0``, ``1``, ``2-5``, ``6-20``, ``>20``."""
    if count <= 1:
        return "0" if count <= 0 else "1"
    if count <= 5:
        return "2-5"
    if count <= 20:
        return "6-20"
    return ">20"
