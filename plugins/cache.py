"""A per-process cache of open datasource connections.

Connections are keyed by ``(data_source_id, hash of the options)`` and checked out
exclusively: two threads never share one (a second concurrent run opens its own). A
connection is closed when it is older than the TTL, idle longer than the idle limit,
evicted least-recently-used past the size cap, broken by a failed run, or when its data
source's options changed (a new hash for the same id). Network I/O (connect, close)
never happens under the lock.
"""

import hashlib
import itertools
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from . import conf


def options_hash(options):
    """A digest of the options (secrets included, so a new password is a new key)."""
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(eq=False)
class _Entry:
    id: int
    data_source_id: object
    options_hash: str
    generation: int
    plugin: object
    connection: object
    created_at: float
    last_used_at: float
    organization_id: object = None

    def __repr__(self):
        return f"<cached {self.plugin.kind} connection #{self.id} of data source {self.data_source_id!r}>"


@dataclass(eq=False)
class Lease:
    """A checked-out connection. ``connect_seconds`` is set when it was opened for this
    checkout, None when it came from the cache."""

    entry: _Entry
    checked_out_at: float
    connect_seconds: float = None
    cached: bool = True

    @property
    def connection(self):
        return self.entry.connection


class ConnectionCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._idle = OrderedDict()  # entry id -> _Entry, least recently used first
        self._active = {}  # entry id -> _Entry
        self._options_hashes = {}  # data_source_id -> hash of its current options
        self._generation = 0
        self._ids = itertools.count(1)

    def checkout(self, data_source_id, plugin, options, deadline, organization_id=None):
        """A ``Lease`` on an idle connection of this data source and options, or on a new
        one. ``data_source_id=None`` opens an uncached connection, closed at checkin."""
        digest = options_hash([plugin.kind, options])
        now = time.monotonic()
        stale = []
        lease = None
        with self._lock:
            if data_source_id is not None:
                if self._options_hashes.get(data_source_id) != digest:
                    self._options_hashes[data_source_id] = digest
                    stale += self._pop_idle_locked(lambda entry: entry.data_source_id == data_source_id)
                stale += self._pop_expired_locked(now)
                for entry in reversed(self._idle.values()):
                    if entry.data_source_id == data_source_id and entry.options_hash == digest:
                        del self._idle[entry.id]
                        self._active[entry.id] = entry
                        lease = Lease(entry, now)
                        break
        self._close(stale)
        if lease is not None:
            return lease
        started = time.perf_counter()
        connection = plugin.connect(options, deadline)
        connect_seconds = time.perf_counter() - started
        now = time.monotonic()
        with self._lock:
            entry = _Entry(next(self._ids), data_source_id, digest, self._generation, plugin, connection, now, now,
                           organization_id)
            if data_source_id is not None:
                self._active[entry.id] = entry
        return Lease(entry, now, connect_seconds, cached=data_source_id is not None)

    def checkin(self, lease, *, broken=False):
        """Returns the connection to the cache, or closes it (broken, stale, expired or
        over the size cap). Returns the seconds it was checked out."""
        entry = lease.entry
        now = time.monotonic()
        to_close = []
        with self._lock:
            self._active.pop(entry.id, None)
            if (
                broken
                or not lease.cached
                or entry.generation != self._generation
                or self._options_hashes.get(entry.data_source_id) != entry.options_hash
                or now - entry.created_at >= conf.get("CONNECTION_CACHE_TTL_SECONDS")
            ):
                to_close.append(entry)
            else:
                entry.last_used_at = now
                self._idle[entry.id] = entry
                to_close += self._pop_expired_locked(now)
                while self._idle and len(self._idle) + len(self._active) > conf.get("CONNECTION_CACHE_MAX_SIZE"):
                    to_close.append(self._idle.popitem(last=False)[1])
        self._close(to_close)
        return now - lease.checked_out_at

    def invalidate(self, data_source_id):
        """Closes the idle connections of a data source; checked-out ones are closed at
        checkin. Call it when the data source's options change or it is deleted."""
        with self._lock:
            self._options_hashes.pop(data_source_id, None)
            stale = self._pop_idle_locked(lambda entry: entry.data_source_id == data_source_id)
        self._close(stale)

    def clear(self):
        """Closes every idle connection; checked-out ones are closed at checkin."""
        with self._lock:
            self._generation += 1
            self._options_hashes.clear()
            stale = self._pop_idle_locked(lambda entry: True)
        self._close(stale)

    def sweep(self):
        """Closes expired idle connections now (they are also swept at every checkout)."""
        with self._lock:
            stale = self._pop_expired_locked(time.monotonic())
        self._close(stale)

    def stats(self):
        """``{"total": n, "kinds": {kind: {"active": checked out, "idle": cached}},
        "organizations": {(kind, organization id): connections}}``."""
        kinds = {}
        organizations = {}
        with self._lock:
            for state, entries in (("active", self._active), ("idle", self._idle)):
                for entry in entries.values():
                    counts = kinds.setdefault(entry.plugin.kind, {"active": 0, "idle": 0})
                    counts[state] += 1
                    key = (entry.plugin.kind, entry.organization_id)
                    organizations[key] = organizations.get(key, 0) + 1
            total = len(self._active) + len(self._idle)
        return {"total": total, "kinds": kinds, "organizations": organizations}

    def _pop_idle_locked(self, predicate):
        popped = [entry for entry in self._idle.values() if predicate(entry)]
        for entry in popped:
            del self._idle[entry.id]
        return popped

    def _pop_expired_locked(self, now):
        ttl = conf.get("CONNECTION_CACHE_TTL_SECONDS")
        idle_limit = conf.get("CONNECTION_CACHE_IDLE_SECONDS")
        return self._pop_idle_locked(
            lambda entry: now - entry.created_at >= ttl or now - entry.last_used_at >= idle_limit
        )

    @staticmethod
    def _close(entries):
        for entry in entries:
            entry.plugin.close_quietly(entry.connection)
