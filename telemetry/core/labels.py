"""Bounded label values: every open-ended value passes through here before it
becomes a label, so the number of series stays within the configured caps."""

import threading

OTHER = "other"
UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


class CappedValues:
    """Admits the first ``limit`` distinct values; later ones become ``other``."""

    def __init__(self, limit_setting, default_limit):
        self._limit_setting = limit_setting
        self._default_limit = default_limit
        self._admitted = set()
        self._lock = threading.Lock()

    def __call__(self, value):
        if value is None or value == "":
            return ""
        value = str(value)
        if value in self._admitted:
            return value
        from telemetry import conf

        with self._lock:
            if len(self._admitted) < conf.get(self._limit_setting, self._default_limit):
                self._admitted.add(value)
                return value
        return OTHER

    def reset(self):
        with self._lock:
            self._admitted.clear()


organization = CappedValues("MAX_ORGANIZATIONS", 200)
app = CappedValues("MAX_APPS", 500)
query_name = CappedValues("MAX_QUERY_NAMES", 500)
query_pattern = CappedValues("MAX_QUERY_PATTERNS", 200)
route = CappedValues("MAX_ROUTES", 500)
table = CappedValues("MAX_TABLES", 500)


def method(value):
    value = (value or "").upper()
    return value if value in KNOWN_METHODS else OTHER


def status_class(status_code):
    return f"{int(status_code) // 100}xx" if status_code else "unknown"


def count_bucket(count):
    """Counts as label values: ``0``, ``1``, ``2-5``, ``6-20``, ``>20``."""
    if count <= 1:
        return "0" if count <= 0 else "1"
    if count <= 5:
        return "2-5"
    if count <= 20:
        return "6-20"
    return ">20"


_reset_callbacks = []


def on_reset(callback):
    """``callback()`` runs on :func:`reset_all`: for caches of label values."""
    _reset_callbacks.append(callback)


def reset_all():
    for capped in (organization, app, query_name, query_pattern, route, table):
        capped.reset()
    for callback in _reset_callbacks:
        callback()
