"""Per-request state, held in a contextvar so it works for sync and async views, and
per-thread suppression: telemetry's own statements are not recorded."""

import threading
from contextvars import ContextVar

#: Queries kept per request for per-request analysis; beyond it they are counted only.
MAX_QUERIES_PER_REQUEST = 1000


class RequestContext:
    __slots__ = (
        "started", "queries", "query_count", "db_time", "external_time", "route", "active_key",
        "statements_seen", "call_sites_found", "suppressed_before", "trace",
    )

    def __init__(self, started):
        self.started = started
        self.queries = []
        self.query_count = 0
        self.db_time = 0.0
        self.external_time = 0.0
        self.route = None
        self.active_key = None
        #: Statement text -> its call site, found at its first repeat (None until then).
        self.statements_seen: dict[str, str | None] = {}
        self.call_sites_found = 0
        #: Set when the request is one of telemetry's own views: the thread's suppression
        #: before the view, restored when the request ends (None: not suppressed by it).
        self.suppressed_before: bool | None = None
        #: The middleware's ``RequestTrace`` while a traced request runs, else None.
        self.trace = None


current_request = ContextVar("telemetry_request", default=None)


def add_external_time(seconds: float) -> None:
    """Adds time spent waiting on an external system (plugin, webhook) to the request."""
    context = current_request.get()
    if context is not None:
        context.external_time += seconds


class _Suppression(threading.local):
    #: True in a thread whose statements the execute wrapper skips. A class attribute, so
    #: that a thread that never set it reads False without a failed lookup (on a
    #: ``threading.local`` that costs an ``AttributeError`` built and discarded).
    active = False


suppression = _Suppression()


class _Scraping(threading.local):
    #: True in a thread serving a ``/metrics`` scrape: the periodic work it runs (the
    #: sample, queued EXPLAINs) leaves every database alone, so a scrape never waits on one.
    active = False


scraping = _Scraping()


#: Names of telemetry's own Celery tasks start with this: nothing they run is recorded
#: (``telemetry.tasks.base.OwnTask``) and their spans are not stored.
OWN_TASK_PREFIX = "telemetry."


def suppress() -> bool:
    """Suppresses this thread's statements; returns the previous state for :func:`restore`."""
    previous = suppression.active
    suppression.active = True
    return previous


def restore(previous: bool) -> None:
    suppression.active = previous


class suppressed:
    """Statements run inside this block (telemetry's own writes) are not recorded."""

    def __enter__(self):
        self.previous = suppress()

    def __exit__(self, *exc_info):
        restore(self.previous)


def suppress_in_this_thread() -> None:
    """For telemetry's own threads (flusher, trace store writer): nothing they run is recorded."""
    suppression.active = True
