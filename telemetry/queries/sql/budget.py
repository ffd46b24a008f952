"""A time budget for the analysis of one statement, that no ``except`` inside the parser
can swallow.

The budget is CPU time of the calling thread (its POSIX thread CPU clock), not wall
time: what a statement costs, the same on an idle machine and on one whose cores are
shared, so the same statements are analysed whatever the load.

:func:`run` calls a function in the calling thread; past its budget a watchdog thread
raises :class:`BudgetSpent` in the calling thread (``PyThreadState_SetAsyncExc``), where
it surfaces at the next Python instruction the thread runs. ``BudgetSpent`` derives from
``BaseException``, so sqlglot's broad ``except Exception`` blocks (it retries and falls
back on errors) let it through, and :func:`run` turns it into :class:`Exceeded`. The
parser is pure Python, so the exception lands within a few instructions; only a long
call into C (a regular expression over a huge text) would delay it, which is why the
text is bounded in size before it gets here.

Why not the alternatives: ``signal.alarm`` reaches only the main thread (analysis runs in
the flusher and the trace store writer); a process per parse costs more than most
parses; a trace function slows every parse several times over.

An exception can still be lost where the interpreter only reports it: delivered inside a
weakref callback or a ``__del__`` that the garbage collector runs in the middle of the
parse, it is handed to ``sys.unraisablehook`` and the parse goes on. So the watchdog fires
again every :data:`REFIRE_SECONDS` of CPU time until the thread leaves :func:`run`, which
both catches what it fires and clears an exception fired but not yet delivered, so
``BudgetSpent`` never escapes :func:`run`. The one lost that way is expected, not an error
of the application's: :func:`run` keeps a filter in front of ``sys.unraisablehook`` that
drops it (and passes everything else on), so it is not printed as "Exception ignored" (nor
failed on by a test runner that treats those as errors). The function run must not take locks it would not release on an
exception (sqlglot and our rules hold none). One daemon thread per process, started on
first use (again in a forked child).
"""

import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")

#: CPU time after which the watchdog fires again at a thread that is still within :func:`run`.
REFIRE_SECONDS = 0.005

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc


class BudgetSpent(BaseException):
    """Raised by the watchdog in a thread whose budget is spent; never leaves :func:`run`."""


class Exceeded(Exception):
    """The function given to :func:`run` did not finish within its budget."""


class _Watchdog:
    """Deadlines of the threads inside :func:`run`, and the thread that enforces them."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        #: thread ident -> (its CPU clock, the clock's deadline, whether it fired already),
        #: while it runs within a budget.
        self.deadlines: dict[int, tuple[int, float, bool]] = {}
        self.pid: int | None = None

    def arm(self, ident: int, seconds: float) -> None:
        with self.condition:
            if self.pid != os.getpid():  # first use in this process (threads do not survive a fork)
                self.pid = os.getpid()
                self.deadlines.clear()
                threading.Thread(target=self._watch, name="telemetry-sql-budget", daemon=True).start()
            clock = time.pthread_getcpuclockid(ident)
            self.deadlines[ident] = (clock, time.clock_gettime(clock) + seconds, False)
            self.condition.notify()

    def disarm(self, ident: int) -> None:
        """Ends the budget of ``ident``; an exception fired but not yet delivered is cleared."""
        with self.condition:
            entry = self.deadlines.pop(ident, None)
            if entry is None or entry[2]:
                _set_async_exc(ctypes.c_ulong(ident), None)

    def _watch(self) -> None:
        with self.condition:
            while True:
                # A thread's CPU clock runs at most as fast as the wall clock: sleeping for
                # the least CPU time left never oversleeps a deadline.
                wait: float | None = None
                for ident, (clock, deadline, _) in list(self.deadlines.items()):
                    now = time.clock_gettime(clock)
                    left = deadline - now
                    if left <= 0:
                        # Again after REFIRE_SECONDS if this one is swallowed; disarm clears
                        # whichever is still pending.
                        self.deadlines[ident] = (clock, now + REFIRE_SECONDS, True)
                        _set_async_exc(ctypes.c_ulong(ident), ctypes.py_object(BudgetSpent))
                        left = REFIRE_SECONDS
                    wait = left if wait is None else min(wait, left)
                self.condition.wait(wait)


_watchdog = _Watchdog()


class _DropSpent:
    """``sys.unraisablehook`` in front of the one it found: drops a :class:`BudgetSpent` that
    landed in a weakref callback or ``__del__`` (the watchdog fires again), passes on the rest."""

    def __init__(self, previous: Callable[..., object]) -> None:
        self.previous = previous

    def __call__(self, unraisable: "sys.UnraisableHookArgs") -> None:
        if unraisable.exc_type is not BudgetSpent:
            self.previous(unraisable)


def _filter_unraisable() -> None:
    # Checked on every run: whoever replaced the hook since (a test runner per session) is
    # wrapped in turn.
    if type(sys.unraisablehook) is not _DropSpent:
        sys.unraisablehook = _DropSpent(sys.unraisablehook)


def run(seconds: float, function: Callable[..., Result], *args: object) -> Result:
    """``function(*args)``, or :class:`Exceeded` once it has used ``seconds`` of CPU time."""
    ident = threading.get_ident()
    _filter_unraisable()
    try:
        _watchdog.arm(ident, seconds)
        try:
            return function(*args)
        finally:
            _watchdog.disarm(ident)
    except BudgetSpent:
        # Delivered inside the function, or inside the disarm above before it took the
        # lock: nothing is pending any more, disarming again only forgets the deadline.
        _watchdog.disarm(ident)
        raise Exceeded(f"over its budget of {seconds * 1000:.0f} ms") from None
