"""Per-request overhead of our metrics against bare Django and django-prometheus.

Counts instructions under callgrind (see shared BENCHMARKING.md): for each configuration
two runs of N1 and N2 requests after the same warm-up; (total2 - total1) / (N2 - N1) is
the per-request cost with start-up cancelled out. Then an interleaved wall-clock run
(A B C A B C ...) for microseconds. Needs PostgreSQL (DATABASE_URL) and
``pip install -r bench/requirements.txt``.

    DATABASE_URL=postgres://... .venv/bin/python bench/overhead.py [--n1 20 --n2 120]

``BENCH_BATCHED=1`` drains buffered telemetry every 100 requests (``BENCH_DRAIN_EVERY``)
and at the end of a run, in a thread of its own as the flusher runs in a server: what a
one-second drain does at 100 requests/s per process, its fixed cost spread over the
requests it covers (``BENCH_DRAIN_EVERY=20`` shows the cost at lighter load). The figure
is the whole CPU cost, request thread and flusher. ``BENCH_NO_DRAIN=1`` never drains:
the request thread's share alone.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("off", "metrics", "everything", "tracing", "django_prometheus", "plain_otel")
WARMUP = 10

CHILD = r"""
import os, random, sys, time
sys.path.insert(0, {root!r})
# Trace ids come from ``random``: seeded, both runs keep the same traces (the sampled
# share is decided on the low 64 bits of the id); a salt in the high 64 bits keeps the
# ids of this run apart from those the store holds from earlier runs.
random.seed(0)
_salt, _getrandbits = int.from_bytes(os.urandom(8), "big") << 64, random.getrandbits
random.getrandbits = lambda bits: _getrandbits(bits) ^ _salt if bits == 128 else _getrandbits(bits)
import django
from bench import overhead_settings
overhead_settings.before_setup()
django.setup()
from django.test import Client
client = Client()
DRAIN_EVERY = int(os.environ.get("BENCH_DRAIN_EVERY") or 0)
def drain_now():
    try:
        from telemetry import tracing
        from telemetry.core import recorder
        recorder.flush()
        tracing.flush()
    except ImportError:
        pass
def drainer(asked, done):
    # The flusher's own thread, as in a server: its database connections persist (a
    # request's end closes the request thread's connections when CONN_MAX_AGE is 0).
    try:
        from telemetry.core.context import suppress_in_this_thread
        suppress_in_this_thread()
    except ImportError:
        pass
    while True:
        asked.get()
        drain_now()
        done.put(None)
import queue, threading
asked, done = queue.Queue(), queue.Queue()
threading.Thread(target=drainer, args=(asked, done), daemon=True).start()
def drain():
    if os.environ.get("BENCH_NO_DRAIN"):
        return
    asked.put(None)
    done.get()
def run(count):
    for index in range(count):
        response = client.get(f"/api/items/{{index}}/view")
        assert response.status_code == 200, response.status_code
        if DRAIN_EVERY and (index + 1) % DRAIN_EVERY == 0:
            drain()
    drain()
run({warmup})
# A full collection of the long-lived heap (Django, sqlglot, OpenTelemetry modules) costs
# tens of millions of instructions and lands in one run and not the other: freeze that
# heap after warm-up so the difference of two runs is per-request work only.
import gc
gc.collect()
gc.freeze()
mode = sys.argv[1]
if mode == "count":
    run(int(sys.argv[2]))
else:
    rounds = []
    for _ in range(int(sys.argv[3])):
        started = time.perf_counter()
        run(int(sys.argv[2]))
        rounds.append((time.perf_counter() - started) / int(sys.argv[2]))
    print(" ".join(f"{{value:.9f}}" for value in rounds))
if os.environ.get("BENCH_NO_DRAIN"):
    os._exit(0)  # no drain at exit either: the request thread's share alone
from prometheus_client import REGISTRY
stored = REGISTRY.get_sample_value("telemetry_trace_spans_stored_total")
print(f"spans_stored={{int(stored or 0)}}", file=sys.stderr)
"""


VAR_DIR = tempfile.TemporaryDirectory(prefix="bench-var-")


def child_env(config):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.overhead_settings", "BENCH_CONFIG": config,
           "PYTHONHASHSEED": "0"}
    env.setdefault("VAR_DIR", VAR_DIR.name)
    if env.get("BENCH_BATCHED"):
        env.setdefault("BENCH_DRAIN_EVERY", "100")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def instructions(config, requests_count, script):
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, script, "count",
         str(requests_count)],
        cwd=ROOT, env=child_env(config), capture_output=True, text=True, check=True,
    )
    match = re.search(r"Collected\s*:\s*(\d+)", result.stderr)
    stored = re.search(r"spans_stored=(\d+)", result.stderr)
    return int(match.group(1)), int(stored.group(1)) if stored else 0


def wall_clock(config, requests_count, rounds, script):
    result = subprocess.run([sys.executable, script, "time", str(requests_count), str(rounds)],
                            cwd=ROOT, env=child_env(config), capture_output=True, text=True, check=True)
    return [float(value) for value in result.stdout.split()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n1", type=int, default=20)
    parser.add_argument("--n2", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    args = parser.parse_args()
    configs = tuple(args.configs.split(","))
    for database in ("default", "telemetry"):
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0", "--database", database], cwd=ROOT,
                       env=child_env("off"), check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(CHILD.format(root=str(ROOT), warmup=WARMUP))
        script = handle.name

    print(f"Realistic view: 3 ORM queries on {os.environ.get('DATABASE_URL', 'SQLite').split('@')[-1]}")
    if not args.no_callgrind:
        per_request = {}
        for config in configs:
            first, first_spans = instructions(config, args.n1, script)
            second, second_spans = instructions(config, args.n2, script)
            per_request[config] = (second - first) / (args.n2 - args.n1)
            stored = (f", {second_spans - first_spans} spans stored in the {args.n2 - args.n1} requests between"
                      if second_spans else "")
            print(f"  {config}: {per_request[config] / 1e6:.3f} M instructions/request{stored}", flush=True)
        bare = per_request.get("off", 0.0)
        print(f"\nInstructions per request (callgrind, N={args.n1} and {args.n2}):")
        print(f"{'configuration':<22}{'instr/request':>15}{'overhead':>12}{'vs django-prometheus':>24}")
        peer = per_request.get("django_prometheus", bare) - bare
        for config in configs:
            overhead = per_request[config] - bare
            ratio = f"{overhead / peer:.2f}x" if config != "off" and peer > 0 else "-"
            print(f"{config:<22}{per_request[config] / 1e6:>13.3f} M{overhead / 1e3:>+10.0f} k{ratio:>24}")

    samples = {config: [] for config in configs}
    for _ in range(args.rounds):
        for config in configs:
            samples[config].extend(wall_clock(config, 200, 1, script))
    if args.rounds < 1:
        return
    bare = statistics.median(samples["off"])
    print(f"\nWall clock, interleaved, {args.rounds} rounds of 200 requests (median, min-max):")
    for config in configs:
        values = samples[config]
        median = statistics.median(values)
        print(f"{config:<22}{median * 1e6:>9.0f} us  ({min(values) * 1e6:.0f}-{max(values) * 1e6:.0f})"
              f"  overhead {(median - bare) * 1e6:+.0f} us  ratio {median / bare:.3f}")


if __name__ == "__main__":
    main()
