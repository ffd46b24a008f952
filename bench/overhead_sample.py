"""Instructions of one periodic sample (resources, gauges, active users, the in-process
tables' increment-upserts) as the flusher takes it every ``SAMPLE_INTERVAL_SECONDS``.

Two runs under callgrind of the same child, everything on (``BENCH_CONFIG=tracing``):
after the same warm-up, K rounds of 10 requests and a flusher tick in the flusher's own
thread; in one run every tick samples, in the other none does. The difference / K is the
cost of a sample over the rows 10 requests leave (a few rows per table, as at any rate:
rows are per statement, route and organization and hour, not per request). Two runs of
one side agree within a few thousand instructions. Needs PostgreSQL (DATABASE_URL).

    DATABASE_URL=postgres://... .venv/bin/python bench/overhead_sample.py [--rounds 10]
"""

import argparse
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from overhead import ROOT, child_env

CHILD = r"""
import gc, queue, random, sys, threading, time
sys.path.insert(0, {root!r})
random.seed(0)
import django
django.setup()
from django.test import Client
from telemetry.core import recorder
from telemetry.core.context import suppress_in_this_thread
from telemetry.tracing import processor
client = Client()
asked, done = queue.Queue(), queue.Queue()
def flusher():
    suppress_in_this_thread()
    while True:
        asked.get()()
        done.put(None)
threading.Thread(target=flusher, daemon=True).start()
def tick(sample):
    def work():
        recorder.event_buffer._last_sample = float("-inf") if sample else time.monotonic()
        recorder.event_buffer._tick()
        processor.trace_store.flush()
    asked.put(work)
    done.get()
def run(count, start):
    for index in range(start, start + count):
        assert client.get(f"/api/items/{{index}}/view").status_code == 200
run(30, 0)
tick(True)  # opens the flusher's connections and writes the warm-up's rows
run(10, 30)
tick(False)
gc.collect()
gc.freeze()
sampling = sys.argv[1] == "1"
for round_index in range(int(sys.argv[2])):
    run(10, 100 + round_index * 10)
    tick(sampling)
"""


def collected(script: str, sampling: bool, rounds: int) -> int:
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, script,
         "1" if sampling else "0", str(rounds)],
        cwd=ROOT, env={**child_env("tracing", {"BENCH_PACE": "10"}), "BENCH_CALLGRIND": "1"},
        capture_output=True, text=True, check=True)
    return int(re.search(r"Collected\s*:\s*(\d+)", result.stderr).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(CHILD.format(root=str(ROOT)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        without, with_samples = pool.map(lambda sampling: collected(handle.name, sampling, args.rounds), (False, True))
    per_sample = (with_samples - without) / args.rounds
    print(f"One sample: {per_sample / 1e6:.2f} M instructions ({args.rounds} samples against {args.rounds} "
          f"ticks without); at 10 requests/s (a sample per 100 requests) {per_sample / 100 / 1e3:.0f} k per request")


if __name__ == "__main__":
    main()
