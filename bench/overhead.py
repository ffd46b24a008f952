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

Without ``BENCH_BATCHED``, the default timers are measured as deployed too, on a virtual
clock (under callgrind Python runs ~50x slower, so wall-clock pacing cannot reach 100
requests/s): at R requests/s the flusher's tick runs every R x ``FLUSH_INTERVAL_SECONDS``
(the default, 1) requests in a thread of its own and the trace store writer's periodic tick
(``TraceStore.tick``) in another, and every tenth tick samples
(``SAMPLE_INTERVAL_SECONDS=10``), database connections and all. The writer's tick decides
every time and writes every fifth (``TRACE_WRITE_INTERVAL_SECONDS=5``, counted in ticks);
each run ends with an explicit flush that writes what is left. At 10 requests/s the two
runs differ by exactly 100 requests, 10 ticks, two of the writer's writes and one sample.
At 100 requests/s by 100 requests and one tick, which does not reach a write (one per 500
requests: its fixed ~250 k instructions, ~0.5 k per request, are not in that figure); a
third run adds one sample, charged at a tenth (one sample per 1,000 requests). The two
runs always differ by whole ticks (N2 grows to the next multiple of a tick's requests), and
the intervals follow the defaults of ``telemetry.conf``. Both modes
are printed side by side; the configurations without telemetry have no timers and are
measured once.

``--view n-plus-one`` requests an N+1 of 50 instead of the 3-query view (the content type
of each of 50 permissions: 51 statements per request).

``--threads`` splits each figure between the request thread and the others (the flusher's
and the trace store writer's ticks, the drain at a run's end), by callgrind
``--separate-threads``.
"""

import argparse
import math
import os
import re
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import callgrind, child_env, child_script, migrate, run_child  # noqa: E402
from telemetry.conf import DEFAULTS  # noqa: E402 - a dict: importing it configures nothing

CONFIGS = ("off", "metrics", "everything", "tracing", "django_prometheus", "plain_otel")
WARMUP = 10
#: The views of ``bench/urls.py`` a run can request (``--view``), by their last path segment.
VIEWS = {"view": "3 ORM queries", "n-plus-one": "an N+1 of 50 (51 statements)"}

CHILD = r"""
import os, time
from bench.child import Worker, freeze_heap, seed_trace_ids, setup_django, telemetry_thread
seed_trace_ids()
import threading
setup_django()
from django.test import Client
from django.db.backends.signals import connection_created
connects = []
connection_created.connect(lambda sender, connection, **kwargs: connects.append(
    f"{{connection.alias}}@{{threading.current_thread().name}}"), weak=False)
client = Client()
DRAIN_EVERY = int(os.environ.get("BENCH_DRAIN_EVERY") or 0)
def drain_now():
    from telemetry import tracing
    from telemetry.core import recorder
    recorder.flush()
    tracing.flush()
# The flusher's own thread, as in a server: its database connections persist (a request's
# end closes the request thread's connections when CONN_MAX_AGE is 0).
drainer = Worker("bench-drain")
drainer(telemetry_thread)
def drain():
    if os.environ.get("BENCH_NO_DRAIN"):
        return
    drainer(drain_now)
class Timer:
    # A telemetry thread's tick run on demand in a thread of its own, only once telemetry
    # started that thread in this process.
    def __init__(self, worker, tick, name):
        self.worker, self.tick, self.thread = worker, tick, Worker(name)
        self.thread(telemetry_thread)
    def __call__(self, work=None):
        # ``work``: something else to run in the tick's thread (its first write, in warm-up).
        if self.worker.started:
            self.thread(work or self.tick)
PACE = int(os.environ.get("BENCH_PACE") or 0)
if PACE:
    from telemetry.core import recorder
    from telemetry.tracing import processor
    flusher_tick = Timer(recorder.event_buffer.worker, recorder.event_buffer._tick, "bench-flusher-tick")
    writer_tick = Timer(processor.trace_store.worker, processor.trace_store.tick, "bench-writer-tick")
def tick(sample):
    # The virtual clock decides the sample: the recorder samples when its last sample is
    # SAMPLE_INTERVAL_SECONDS old.
    recorder.event_buffer._last_sample = float("-inf") if sample else time.monotonic()
    flusher_tick()
    # In warm-up the writer's thread writes what its tick decided: it writes at every fifth
    # tick only, and its first write (its connection's first statement of the kind) would
    # otherwise land in one run's counted requests and not in the other's.
    writer_tick(processor.trace_store.flush if WARMING else None)
def run(count, samples_at=()):
    for index in range(count):
        response = client.get(f"/api/items/{{index}}/{view}")
        assert response.status_code == 200, response.status_code
        if DRAIN_EVERY and (index + 1) % DRAIN_EVERY == 0:
            drain()
        if PACE and (index + 1) % PACE == 0:
            tick(index + 1 in samples_at)
    drain()
WARMING = True
run({warmup})
WARMING = False
if PACE:
    tick(True)  # the first sample opens the flusher's connections, before anything is counted
freeze_heap()
mode = sys.argv[1]
if mode == "count":
    run(int(sys.argv[2]), {{int(value) for value in sys.argv[3:]}})
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
print(f"connects={{sorted(connects)}}", file=sys.stderr)
"""


VAR_DIR = tempfile.TemporaryDirectory(prefix="bench-var-")


#: Spread of a figure's repeats, as a share of the figure, above which the bench warns: runs of
#: one configuration on a quiet machine agree within ~0.5 % (four bare runs of 220 requests of
#: the 3-query view within 3.7 M instructions in all, ~20 k per request), while a run beside a
#: loaded machine (CI, a test suite) has moved a bare figure by ~6 % (~240 k per request).
SPREAD_WARNING = 0.01

#: Configurations without telemetry: no timers of ours, measured once for every mode.
BASELINES = ("off", "django_prometheus", "plain_otel")
#: The two ways telemetry's deferred work is charged: drained every 100 requests with no
#: sample (BENCH_BATCHED), or the default timers at a paced rate on a virtual clock.
#: The flusher's tick by default: at R requests/s a tick comes every R * TICK_SECONDS requests.
TICK_SECONDS = DEFAULTS["FLUSH_INTERVAL_SECONDS"]
#: A sample every this many ticks (SAMPLE_INTERVAL_SECONDS over FLUSH_INTERVAL_SECONDS, the defaults).
SAMPLE_EVERY_TICKS = max(1, round(DEFAULTS["SAMPLE_INTERVAL_SECONDS"] / TICK_SECONDS))


def _paced(rate):
    return {"BENCH_PACE": str(max(1, round(rate * TICK_SECONDS)))}


MODES = {"batched drain": {"BENCH_BATCHED": "1"}, "timers at 10 req/s": _paced(10),
         "timers at 100 req/s": _paced(100)}


def config_env(config, mode_env=None):
    """The child's environment: ``config`` in a mode (``mode_env`` in place of the caller's
    mode variables)."""
    env = child_env(config)
    if mode_env is not None:
        for name in ("BENCH_BATCHED", "BENCH_PACE", "BENCH_DRAIN_EVERY", "BENCH_NO_DRAIN"):
            env.pop(name, None)
        env.update(mode_env)
    env.setdefault("VAR_DIR", VAR_DIR.name)
    if env.get("BENCH_BATCHED"):
        env.setdefault("BENCH_DRAIN_EVERY", "100")
    return env


#: Database connections a configuration's run opens (the first run's), to flag a run that reconnected.
EXPECTED_CONNECTS: dict[tuple[str, str], int] = {}


def instructions(config, requests_count, script, mode_env=None, samples_at=(), threads=False):
    """(instructions, spans stored, {thread name: instructions} with ``threads``) of one
    child run; ``samples_at``: request counts after which a paced tick samples."""
    counted = callgrind([script, "count", str(requests_count), *(str(index) for index in samples_at)],
                        {**config_env(config, mode_env), "BENCH_CALLGRIND": "1"}, per_thread=threads)
    stored = re.search(r"spans_stored=(\d+)", counted.stderr)
    connects = re.search(r"connects=(.*)", counted.stderr)
    opened = connects.group(1).count("@") if connects else 0
    if opened != EXPECTED_CONNECTS.setdefault((config, str(mode_env)), opened):
        # A reconnect costs ~55 M instructions (SCRAM): one in one run only swamps the figure.
        listed = connects.group(1) if connects else "[]"
        print(f"  warning: {config} opened {listed} in its run of {requests_count}", flush=True)
    # Callgrind reuses the number of a thread that ended, so only the first, the main thread
    # (which serves the requests), is told apart: the others are the flusher's and the
    # writer's ticks, the drain, and telemetry's own threads.
    per_thread = counted.by_name(("request thread",), "other threads") if threads else {}
    return counted.total, int(stored.group(1)) if stored else 0, per_thread


def _difference(second, first, requests, sampled=None, period=1):
    """Per request: ``(second - first) / requests`` (+ ``(sampled - second) / period``), of
    totals or of {thread: total} dicts alike."""
    if isinstance(second, dict):
        names = set(first) | set(second) | set(sampled or ())
        return {name: _difference(second.get(name, 0), first.get(name, 0), requests,
                                  None if sampled is None else sampled.get(name, 0), period) for name in names}
    cost = (second - first) / requests
    return cost if sampled is None else cost + (sampled - second) / period


def per_request(config, mode_env, n1, n2, script, threads=False):
    """(instructions per request, spans stored between the runs, {thread: instructions per
    request} with ``threads``) of a configuration in a mode."""
    first, first_spans, first_threads = instructions(config, n1, script, mode_env, threads=threads)
    pace = int(mode_env.get("BENCH_PACE") or 0)
    if not pace or config in BASELINES:
        second, second_spans, second_threads = instructions(config, n2, script, mode_env, threads=threads)
        return (_difference(second, first, n2 - n1), second_spans - first_spans,
                _difference(second_threads, first_threads, n2 - n1))
    # The runs differ by whole ticks: N2 grows to the next multiple of a tick's requests.
    n2 = n1 + math.lcm(n2 - n1, pace)
    period = pace * SAMPLE_EVERY_TICKS
    if (n2 - n1) % period == 0 and (n1 + period) % pace == 0:
        samples_at = range(n1 + period, n2 + 1, period)
        second, second_spans, second_threads = instructions(config, n2, script, mode_env, samples_at, threads)
        return (_difference(second, first, n2 - n1), second_spans - first_spans,
                _difference(second_threads, first_threads, n2 - n1))
    # Otherwise the sample is charged apart: a third run samples at its last tick.
    ticks = [count for count in range(n1 + 1, n2 + 1) if count % pace == 0]
    second, second_spans, second_threads = instructions(config, n2, script, mode_env, threads=threads)
    sampled, _, sampled_threads = instructions(config, n2, script, mode_env, [ticks[-1]], threads)
    return (_difference(second, first, n2 - n1, sampled, period), second_spans - first_spans,
            _difference(second_threads, first_threads, n2 - n1, sampled_threads, period))


def wall_clock(config, requests_count, rounds, script):
    result = run_child([script, "time", str(requests_count), str(rounds)], config_env(config))
    return [float(value) for value in result.stdout.split()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n1", type=int, default=20)
    parser.add_argument("--n2", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs side by side")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure, the median printed")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES))
    parser.add_argument("--view", choices=tuple(VIEWS), default="view",
                        help="the view requested: " + "; ".join(f"{name}: {text}" for name, text in VIEWS.items()))
    parser.add_argument("--threads", action="store_true",
                        help="also print the request thread's share of each figure and the other threads' "
                             "(callgrind --separate-threads)")
    args = parser.parse_args()
    configs = tuple(args.configs.split(","))
    modes = tuple(args.modes.split(","))
    migrate(config_env("off"))
    with child_script(CHILD, warmup=WARMUP, view=args.view) as script:
        measure(args, configs, modes, script)


def measure(args, configs, modes, script):
    """Prints the figures of ``configs`` in ``modes``, the child being ``script``."""
    print(f"View: {VIEWS[args.view]} on {os.environ.get('DATABASE_URL', 'SQLite').split('@')[-1]}")
    if not args.no_callgrind:
        costs = {mode: {} for mode in modes}
        # Instruction counts do not depend on the machine's load: the runs of every
        # configuration and mode go side by side, ``--jobs`` at a time.
        cells = [(config, mode) for config in configs for mode in modes if config not in BASELINES or mode == modes[0]]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {cell: [pool.submit(per_request, cell[0], MODES[cell[1]], args.n1, args.n2, script,
                                          args.threads) for _ in range(args.repeat)] for cell in cells}
            for (config, mode), repeats in futures.items():
                results = [future.result() for future in repeats]
                cost = statistics.median(cost for cost, _, _ in results)
                spans = statistics.median(spans for _, spans, _ in results)
                costs[mode][config] = cost
                stored = f", {spans:.0f} spans stored in the {args.n2 - args.n1} requests between" if spans else ""
                lowest, highest = min(c for c, _, _ in results), max(c for c, _, _ in results)
                spread = (f" (median of {args.repeat}: {lowest / 1e6:.3f}-{highest / 1e6:.3f})"
                          if args.repeat > 1 else "")
                print(f"  {config}, {mode}: {cost / 1e6:.3f} M instructions/request{spread}{stored}", flush=True)
                if highest - lowest > SPREAD_WARNING * cost:
                    print(f"  warning: {config}'s runs spread over {SPREAD_WARNING:.0%} of the figure; "
                          "the median holds only if most of them agree", flush=True)
                if args.threads:
                    names = sorted({name for _, _, shares in results for name in shares})
                    shares = {name: statistics.median(share.get(name, 0.0) for _, _, share in results)
                              for name in names}
                    print("    " + ", ".join(f"{name} {share / 1e3:.1f} k" for name, share in shares.items()),
                          flush=True)
        for config in BASELINES:
            for mode in modes[1:]:
                if config in costs[modes[0]]:
                    costs[mode][config] = costs[modes[0]][config]
        print(f"\nInstructions per request, whole CPU cost (callgrind, N={args.n1} and {args.n2}); "
              "overhead over bare and its ratio to django-prometheus's:")
        print(f"{'configuration':<20}" + "".join(f"{mode:>30}" for mode in modes))
        for config in configs:
            cells = []
            for mode in modes:
                bare = costs[mode].get("off", 0.0)
                peer = costs[mode].get("django_prometheus", bare) - bare
                overhead = costs[mode][config] - bare
                ratio = f"{overhead / peer:.2f}x" if config != "off" and peer > 0 else "-"
                cells.append(f"{costs[mode][config] / 1e6:.3f} M {overhead / 1e3:+6.0f} k {ratio:>6}")
            print(f"{config:<20}" + "".join(f"{cell:>30}" for cell in cells))

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
