"""One pattern for background work: a thread per process that drains bounded queues.

:class:`BackgroundWorker` is what the recorder's flusher and the trace store writer
share: producers append to a :class:`BoundedQueue` through :meth:`BackgroundWorker.submit`
(never blocks, never raises; a full queue drops and counts), the first submit in a
process starts a daemon thread that calls the owner's ``tick`` every
``FLUSH_INTERVAL_SECONDS``, a forked child starts its own thread on its first submit
(threads do not survive a fork), and the owner's ``at_exit`` runs when the process
exits. In test processes the worker runs in the foreground: no thread, the owner
flushes explicitly.

Their database connections are the thread's own and kept open between ticks
(:func:`reuse_connections`): opening one per tick costs a PostgreSQL SCRAM handshake,
far more than the work it serves.

Imports nothing of telemetry above ``conf`` and ``metrics.internal``.
"""

import atexit
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from django.db import connections

from telemetry import conf
from telemetry.core.context import suppress_in_this_thread
from telemetry.metrics import internal
from telemetry.metrics.internal import DropCounter


class BoundedQueue:
    """A deque that :meth:`BackgroundWorker.submit` keeps under ``limit`` items; what is
    dropped beyond it is counted under ``drop_reason``."""

    __slots__ = ("items", "limit", "drop_reason")

    def __init__(self, limit: int, drop_reason: str = "") -> None:
        self.items: deque[Any] = deque()
        self.limit = limit
        self.drop_reason = drop_reason

    def drain(self) -> list[Any]:
        """Everything queued now, oldest first; safe while producers append."""
        items = []
        popleft = self.items.popleft
        while True:
            try:
                items.append(popleft())
            except IndexError:
                return items

    def clear(self) -> None:
        self.items.clear()


class BackgroundWorker:
    """A thread per process calling ``tick()`` every ``FLUSH_INTERVAL_SECONDS``.

    - Starts lazily, on the first :meth:`submit` in this process (again in a forked child).
    - ``lock`` is the owner's drain lock: the owner holds it while it drains, and the
      worker while it starts; a child gets a new one (a fork may copy it held).
    - ``after_fork`` runs in a forked child (the owner forgets what its parent queued);
      ``at_exit`` runs at interpreter exit.
    - ``dropped`` counts what full queues refused (reported by the owner's flush).
    - :meth:`run_in_foreground` (test processes): no thread, the owner flushes
      explicitly; a worker that ``follows`` another runs in the foreground when that one
      does.

    One instance per owner, for the life of the process: it registers its fork and exit
    hooks when made.
    """

    def __init__(self, thread_name: str, tick: Callable[[], None], dropped: DropCounter, *,
                 at_exit: Callable[[], None], after_fork: Callable[[], None] | None = None,
                 follows: "BackgroundWorker | None" = None) -> None:
        self.thread_name = thread_name
        self.dropped = dropped
        self.lock = threading.Lock()
        #: Hot-path flag: whether this process has started (or foregrounded) the worker.
        self.started = False
        self.pid: int | None = None
        self.thread: threading.Thread | None = None
        self.wake: threading.Event | None = None
        self.foreground = False
        self._tick = tick
        self._after_fork = after_fork
        self._follows = follows
        os.register_at_fork(after_in_child=self._after_fork_in_child)
        atexit.register(at_exit)

    def submit(self, queue: BoundedQueue, item: Any, allowance: int = 1) -> bool:
        """Appends ``item`` unless ``queue`` holds ``allowance`` times its limit already;
        returns whether it was kept. Never blocks, never raises."""
        items = queue.items
        if len(items) >= queue.limit * allowance:
            self.dropped.count(queue.drop_reason)
            return False
        items.append(item)
        if not self.started:
            self.start()
        return True

    def start(self) -> None:
        """Starts the thread in this process, once (again after a fork)."""
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            self.started = True
            if self._follows is not None and self._follows.in_foreground():
                self.foreground = True
                return
            wake = threading.Event()
            self.wake = wake
            self.thread = threading.Thread(target=self._run, args=(wake,), name=self.thread_name, daemon=True)
            self.thread.start()

    def run_in_foreground(self) -> None:
        """No thread in this process: queued items wait for the owner's explicit flush."""
        self.pid = os.getpid()
        self.foreground = True
        self.started = True

    def in_foreground(self) -> bool:
        return self.foreground and self.pid == os.getpid()

    def has_thread(self) -> bool:
        """Whether this process runs the worker's thread (started, not in the foreground)."""
        return self.thread is not None and self.pid == os.getpid()

    def started_here(self) -> bool:
        return self.pid == os.getpid()

    def _run(self, wake: threading.Event) -> None:
        suppress_in_this_thread()
        while True:
            wake.wait(conf.get("FLUSH_INTERVAL_SECONDS"))
            wake.clear()
            self._tick()

    def _after_fork_in_child(self) -> None:
        self.lock = threading.Lock()
        self.pid = self.thread = self.wake = None
        self.foreground = False
        self.started = False
        if self._after_fork is not None:
            self._after_fork()


def reuse_connections(alias: str | None = None) -> None:
    """Makes the calling thread's open connections (of ``alias``, or all) safe to use
    again, as Django's ``CONN_HEALTH_CHECKS`` would before a request: a connection whose
    last use raised a database error, or that the server closed while it sat idle, is
    closed (the next statement reconnects) and counted in
    ``telemetry_internal_errors_total{component="stale_connection"}``; a healthy one is
    kept, whatever ``CONN_MAX_AGE`` says (that setting is about request threads).

    Cheap on the healthy path: an idle PostgreSQL connection is checked by polling its
    socket (a server that terminated the backend has sent its goodbye), and only a
    readable socket or an earlier error costs a round trip (``is_usable()``). Connections
    inside a transaction (a test's) are left alone.
    """
    wrappers = [connections[alias]] if alias is not None else connections.all(initialized_only=True)
    for wrapper in wrappers:
        if wrapper.connection is None or wrapper.in_atomic_block:
            continue
        if not wrapper.errors_occurred and not _has_unread_input(wrapper):
            continue
        if wrapper.is_usable():
            wrapper.errors_occurred = False
            continue
        internal.internal_errors().labels("stale_connection").inc()
        try:
            wrapper.close()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail; it is gone either way
            wrapper.connection = None


def _has_unread_input(wrapper: Any) -> bool:
    """Whether an idle connection's socket has something to read: nothing is expected
    between statements (telemetry never LISTENs), so it is the server closing it. Other
    vendors than PostgreSQL, or a driver whose socket is not reachable: checked by a round
    trip."""
    if wrapper.vendor != "postgresql":
        return True
    raw = wrapper.connection
    try:
        descriptor = raw.pgconn.socket if hasattr(raw, "pgconn") else raw.fileno()
        readable, _, _ = select.select([descriptor], [], [], 0)
    except Exception:  # noqa: BLE001 - a closed socket: unusable, the round trip says so
        return True
    return bool(readable)


class StatementDeadlines:
    """Bounds how long a telemetry thread waits on its own store.

    A connection kept between writes meets a hung store (a stopped server, a network path
    that swallows packets) mid-statement: the driver waits for a reply that never comes, and
    no timeout of the driver or of TCP ends that wait (the server's kernel still
    acknowledges). Inside :meth:`bounded`, a watchdog thread shuts the socket of the
    calling thread's connection down once ``seconds`` have passed: the blocked read fails
    at once, the statement raises, and the caller's usual failure path counts it (the trace
    store writer's breaker, a sample's guard). Counted as
    ``telemetry_internal_errors_total{component="store_timeout"}``. Connections without a
    socket (SQLite) are left alone."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        #: id of an armed entry -> (monotonic deadline, the thread's connection wrapper)
        self.armed: dict[int, tuple[float, Any]] = {}
        self.pid: int | None = None
        self._next = 0
        #: When the watchdog wakes next on its own: an entry due before it wakes it early.
        self._wakes_at = float("inf")

    def bounded(self, alias: str, seconds: float) -> "_Bounded":
        return _Bounded(self, alias, seconds)

    def _arm(self, wrapper: Any, seconds: float) -> int:
        with self.condition:
            if self.pid != os.getpid():  # first use in this process (threads do not survive a fork)
                self.pid = os.getpid()
                self.armed.clear()
                self._wakes_at = float("inf")
                threading.Thread(target=self._watch, name="telemetry-store-deadline", daemon=True).start()
            self._next += 1
            deadline = time.monotonic() + seconds
            self.armed[self._next] = (deadline, wrapper)
            # A sample arms one entry per write, each due after the one the watchdog already
            # waits for: waking it (a thread switch) for those would change nothing.
            if deadline < self._wakes_at:
                self._wakes_at = deadline
                self.condition.notify()
            return self._next

    def _disarm(self, key: int) -> None:
        with self.condition:
            self.armed.pop(key, None)

    def _watch(self) -> None:
        with self.condition:
            while True:
                now = time.monotonic()
                for key, (deadline, wrapper) in list(self.armed.items()):
                    if deadline <= now:
                        del self.armed[key]
                        _shut_down(wrapper)
                self._wakes_at = min((deadline for deadline, _ in self.armed.values()), default=now + 3600)
                self.condition.wait(max(self._wakes_at - now, 0.01))


def _shut_down(wrapper: Any) -> None:
    """Shuts the socket of a connection down (the descriptor stays its driver's)."""
    raw = wrapper.connection
    try:
        descriptor = raw.pgconn.socket if hasattr(raw, "pgconn") else raw.fileno()
        with socket.fromfd(descriptor, socket.AF_INET, socket.SOCK_STREAM) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except Exception:  # noqa: BLE001 - no socket (SQLite), or already closed: nothing to end
        return
    internal.internal_errors().labels("store_timeout").inc()


class _Bounded:
    __slots__ = ("deadlines", "alias", "seconds", "key")

    def __init__(self, deadlines: StatementDeadlines, alias: str, seconds: float) -> None:
        self.deadlines, self.alias, self.seconds, self.key = deadlines, alias, seconds, 0

    def __enter__(self) -> None:
        self.key = self.deadlines._arm(connections[self.alias], self.seconds)

    def __exit__(self, *exc_info: object) -> None:
        self.deadlines._disarm(self.key)


#: The process's watchdog of telemetry's store statements.
store_deadlines = StatementDeadlines()
