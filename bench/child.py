"""What the benches' child scripts share: seeded trace ids, Django on
``bench/overhead_settings.py``, a thread of its own for a tick or a drain (as a server's
telemetry thread), and the heap frozen after warm-up.

Imported by a child only (see ``bench/harness.py``): importing it reads the child's
settings from its environment. Nothing here starts a thread, so a child that numbers its
threads (callgrind's ``--separate-threads``) starts them in the order it means.
"""

import gc
import os
import queue
import random
import threading
from collections.abc import Callable

import django
from django.db import connections

from bench import overhead_settings
from telemetry.core.context import suppress_in_this_thread
from telemetry.core.routers import telemetry_alias


def seed_trace_ids() -> None:
    """Trace ids come from ``random``: seeded, runs of one configuration keep the same
    traces (the sampled share is decided on the low 64 bits of an id); a salt in the high
    64 bits keeps this run's ids apart from those the store holds from earlier runs."""
    random.seed(0)
    salt, getrandbits = int.from_bytes(os.urandom(8), "big") << 64, random.getrandbits
    random.getrandbits = lambda bits: getrandbits(bits) ^ salt if bits == 128 else getrandbits(bits)


def setup_django() -> None:
    """``django.setup()`` on ``bench/overhead_settings.py``, its configuration's own
    instrumentation (``before_setup``) installed first."""
    overhead_settings.before_setup()
    django.setup()


def telemetry_thread() -> None:
    """Makes the calling thread one of telemetry's own as in a server: suppressed, and its
    store connection open from long before. Opened before anything is counted, or a run whose
    thread happens to write first inside the counted work pays a SCRAM handshake (~55 M
    instructions) that the other run does not."""
    suppress_in_this_thread()
    connections[telemetry_alias()].ensure_connection()


def freeze_heap() -> None:
    """After warm-up: a full collection of the long-lived heap (Django, sqlglot,
    OpenTelemetry modules) costs tens of millions of instructions and lands in one run and
    not the other; collected and frozen, the difference of two runs is the measured work only."""
    gc.collect()
    gc.freeze()


class Worker:
    """A thread of its own, started at once, that runs the work handed to it one piece at
    a time, the caller waiting for each. Its database connections persist from piece to
    piece, as a server's telemetry thread's do."""

    __slots__ = ("asked", "done")

    def __init__(self, name: str) -> None:
        self.asked: queue.Queue[Callable[[], object]] = queue.Queue()
        self.done: queue.Queue[None] = queue.Queue()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            self.asked.get()()
            self.done.put(None)

    def __call__(self, work: Callable[[], object]) -> None:
        self.asked.put(work)
        self.done.get()
