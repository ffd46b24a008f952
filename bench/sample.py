"""The periodic sample's and the trace store writer's tick's own cost, alone and deterministic.

Each cycle serves 10 requests of the overhead bench's view (3 ORM queries; the
``tracing`` configuration of ``bench/overhead_settings.py``: everything on) and drains
them on the request thread, then runs, each in a thread of its own as in a server
(connections kept from cycle to cycle, ``suppress_in_this_thread``):

- ``sample``: the flusher's tick with its sample (``SAMPLE_INTERVAL_SECONDS``, every tenth
  tick by default: here every cycle), on an empty queue: the connection check, the
  resource and pool gauges, and the store's writes of the in-process tables (active
  users, releases, route traffic, query statistics, usage), each under its store deadline;
- ``writer``: the trace store writer's tick (``TraceStore.tick``): decides the spans of
  the cycle's traces, writes every fifth tick (``TRACE_WRITE_INTERVAL_SECONDS`` over
  ``FLUSH_INTERVAL_SECONDS``).

Two runs of N1 and N2 cycles (multiples of 5) under callgrind with ``--separate-threads``,
after the same warm-up, the cyclic garbage collector off; each thread's difference over
N2 - N1 is its cost per sample or per tick; the store deadline's watchdog thread is printed
apart (with ``STORE_TIMEOUT_SECONDS`` scaled for callgrind no deadline passes in a run, so
it wakes only when a deadline earlier than its own is armed), "other" is every thread
started after it. The request thread and the database server are not counted. The
settings are those of the overhead bench's paced timers (``BENCH_PACE``), thresholds
scaled for callgrind (``BENCH_CALLGRIND``). ``--statements`` runs once without callgrind and prints the statements each
thread sends per cycle (each a round trip).

    DATABASE_URL=postgres://... TELEMETRY_DATABASE_URL=postgres://... \\
        .venv/bin/python bench/sample.py [--n1 5 --n2 25] [--statements]
"""

import argparse
import ast
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import callgrind, child_env, child_script, run_child  # noqa: E402 - run as a script

#: Callgrind's thread numbers (from 1) in the child; the threads started later are "other".
THREADS = ("main", "sample", "writer", "watchdog")

CHILD = r"""
import collections, gc, os, threading
from bench.child import Worker, freeze_heap, seed_trace_ids, setup_django, telemetry_thread
seed_trace_ids()
# Callgrind numbers threads by slot, and a slot is reused once its thread exits (Django's
# start-up runs a short-lived pool): the measured threads start first, before anything else
# can, so they are threads 2, 3 (and the watchdog 4).
sample, writer = Worker("sample"), Worker("writer")
from telemetry.core.background import store_deadlines
store_deadlines._disarm(store_deadlines._arm(None, 3600))  # starts the watchdog thread
setup_django()
from django.core import signals
from django.db import close_old_connections
from django.test import Client
from telemetry.core import recorder
from telemetry.tracing import processor

STATEMENTS = collections.Counter()
if sys.argv[1] == "statements":
    import psycopg
    for _cursor in (psycopg.Cursor, psycopg.ClientCursor):
        for _name in ("execute", "executemany"):
            if _name not in vars(_cursor):
                continue  # inherited: counted where it is defined
            def _counted(self, *args, _original=getattr(_cursor, _name), **kwargs):
                STATEMENTS[threading.current_thread().name] += 1
                if os.environ.get("BENCH_SHOW_STATEMENTS"):
                    print(threading.current_thread().name, str(args[0])[:160], file=sys.stderr)
                return _original(self, *args, **kwargs)
            setattr(_cursor, _name, _counted)

signals.request_finished.disconnect(close_old_connections)
recorder.run_in_foreground()  # no timer threads: the cycles below run the ticks
client = Client()


def sample_tick():
    recorder.event_buffer._last_sample = float("-inf")  # the tick samples
    recorder.event_buffer._tick()


sample(telemetry_thread)
writer(telemetry_thread)
served = 0


def cycles(count):
    global served
    for _ in range(count):
        for _ in range(10):
            assert client.get(f"/api/items/{{served}}/view").status_code == 200
            served += 1
        recorder.flush()  # the drain, on the request thread: not counted
        sample(sample_tick)
        writer(processor.trace_store.tick)


cycles(5)
writer(processor.trace_store.flush)  # the next write is five ticks away in both runs
STATEMENTS.clear()
freeze_heap()
gc.disable()
cycles(int(sys.argv[2]))
print(f"statements={{dict(STATEMENTS)}}", file=sys.stderr)
os._exit(0)
"""

#: The settings of the overhead bench's paced timers, thresholds scaled for callgrind.
ENV = child_env("tracing", BENCH_PACE="10", BENCH_CALLGRIND="1")


def thread_totals(script: str, cycles: int) -> dict[str, int]:
    """{thread name: instructions} of a run of ``cycles`` under callgrind."""
    return callgrind([script, "count", str(cycles)], ENV, per_thread=True).by_name(THREADS, "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n1", type=int, default=5, help="cycles of the first run (a multiple of 5)")
    parser.add_argument("--n2", type=int, default=25, help="cycles of the second run (a multiple of 5)")
    parser.add_argument("--statements", action="store_true", help="count statements per cycle instead")
    options = parser.parse_args()
    with child_script(CHILD) as script:
        if options.statements:
            result = run_child([script, "statements", str(options.n2)], ENV)
            counted = ast.literal_eval(re.search(r"statements=(.*)", result.stderr).group(1))
            print(f"Statements per cycle ({options.n2} cycles):")
            for name in ("sample", "writer"):
                print(f"  {name:<8} {counted.get(name, 0) / options.n2:6.2f}")
            return
        first, second = (thread_totals(script, cycles) for cycles in (options.n1, options.n2))
        print(f"Instructions per cycle (callgrind, {options.n1} and {options.n2} cycles of 10 requests):")
        for name in (*THREADS[1:], "other"):
            cost = (second.get(name, 0) - first.get(name, 0)) / (options.n2 - options.n1)
            print(f"  {name:<26} {cost / 1e3:9.1f} k")


if __name__ == "__main__":
    main()
