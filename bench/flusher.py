"""The flusher's work per request, alone and deterministic: the events of 10 requests of
the overhead bench's view (3 ORM queries) are recorded once, then replayed through the
recorder's drain, ``--per`` requests per drain (10: a tick at 10 requests/s), under
callgrind in two runs of N1 and N2 requests; (total2 - total1) / (N2 - N1) of the
replaying thread is the handlers' and the drains' cost per request, without the request
thread, the trace store writer (the spans the flusher hands it are discarded), the
database or any other thread in the count. Prints one figure per configuration of
``bench/overhead_settings.py`` (``metrics``, ``everything``, ``tracing``).

    DATABASE_URL=postgres://... .venv/bin/python bench/flusher.py [--per 10]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import callgrind, child_env, child_script  # noqa: E402 - run as a script

CHILD = r"""
import random
from bench.child import freeze_heap, setup_django
random.seed(0)
setup_django()
from django.core import signals
from django.db import close_old_connections
from django.test import Client
from telemetry.core import recorder
from telemetry.core.context import suppress_in_this_thread
from telemetry.tracing import processor

signals.request_finished.disconnect(close_old_connections)
client = Client()
recorder.run_in_foreground()
for index in range(30):  # warm-up: analyses cached, shapes built, the first sample taken
    client.get(f"/api/items/{{index}}/view")
recorder.flush(sample=True)
for index in range(10):
    client.get(f"/api/items/{{index}}/view")
events = list(recorder.event_buffer.queue.items)
recorder.flush()
suppress_in_this_thread()
per = {per}


def replay(requests):
    for _ in range(requests // per):
        for _ in range(per // 10):
            recorder.event_buffer.queue.items.extend(events)
        recorder.event_buffer._drain(False)
        processor.trace_store.spans.clear()  # taken by the trace store writer, not counted here


replay(per)
freeze_heap()
replay(int(sys.argv[1]))
"""


def collected(config: str, requests: int, script: str) -> int:
    """Instructions of the replaying (main) thread alone: telemetry's own threads (the SQL
    budget's watchdog, a store deadline) run on their own clocks and would add noise. With
    ``BENCH_CALLGRIND`` the settings scale the time thresholds (the analysis budget, slow
    requests) to callgrind's slowdown, so a statement is not cached as unparsed, or a trace
    kept as slow, by the luck of the machine's load in warm-up."""
    env = child_env(config, BENCH_BATCHED="1", BENCH_CALLGRIND="1")
    return callgrind([script, str(requests)], env, per_thread=True).threads[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per", type=int, default=10, help="requests per drain (a multiple of 10)")
    parser.add_argument("--n1", type=int, default=200)
    parser.add_argument("--n2", type=int, default=1200)
    parser.add_argument("--configs", default="metrics,everything,tracing")
    options = parser.parse_args()
    with child_script(CHILD, per=options.per) as script:
        print(f"The flusher's work per request, {options.per} requests per drain "
              f"(callgrind, N={options.n1} and {options.n2}):")
        for config in options.configs.split(","):
            first, second = (collected(config, count, script) for count in (options.n1, options.n2))
            print(f"  {config:<12} {(second - first) / (options.n2 - options.n1) / 1e3:8.1f} k instructions")


if __name__ == "__main__":
    main()
