"""Per-request state, held in a contextvar so it works for sync and async views."""

from contextvars import ContextVar

#: Queries kept per request for per-request analysis; beyond it they are counted only.
MAX_QUERIES_PER_REQUEST = 1000


class RequestContext:
    __slots__ = (
        "started", "queries", "query_count", "db_time", "external_time", "route", "active_key",
        "statements_seen",
    )

    def __init__(self, started):
        self.started = started
        self.queries = []
        self.query_count = 0
        self.db_time = 0.0
        self.external_time = 0.0
        self.route = None
        self.active_key = None
        self.statements_seen = set()


current_request = ContextVar("telemetry_request", default=None)


def add_external_time(seconds):
    """Adds time spent waiting on an external system (plugin, webhook) to the request."""
    context = current_request.get()
    if context is not None:
        context.external_time += seconds
