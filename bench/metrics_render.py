"""/metrics render time: 10,000 series in one process, and in multiprocess mode with
4 live workers, with 200 dead workers' files left beside them (prometheus-client's
default), and with those 200 merged into the archive (what our gunicorn hook does).

Interleaved rounds, medians and ratios; never asserted.

    .venv/bin/python bench/metrics_render.py
"""

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

SERIES_CHILDREN = 590  # x 17 samples (14 buckets + +Inf, count, sum) ~ 10,000 series
ROUNDS = 5


def fill(registry=None, observations=3):
    histogram = Histogram("bench_request_duration_seconds", "bench", ["route", "status"], registry=registry,
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
    for index in range(SERIES_CHILDREN):
        child = histogram.labels(f"/api/route/{index}", "200")
        for value in range(observations):
            child.observe(0.01 * value)


def write_process_files(directory, pid):
    previous = values.ValueClass
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: pid)
    try:
        fill(CollectorRegistry())
    finally:
        values.ValueClass = previous
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def render_multiprocess(directory):
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    started = time.perf_counter()
    output = generate_latest(registry)
    return time.perf_counter() - started, output.count(b"\n")


def main():
    from telemetry.metrics.multiprocess import merge_dead_process

    single = CollectorRegistry()
    fill(single)
    base = tempfile.mkdtemp(prefix="bench-metrics-")
    dirs = {name: os.path.join(base, name) for name in ("live4", "dead200", "merged200")}
    for directory in dirs.values():
        os.makedirs(directory)
        for pid in range(1, 5):
            write_process_files(directory, pid)
    for pid in range(1000, 1200):
        write_process_files(dirs["dead200"], pid)
        write_process_files(dirs["merged200"], pid)
        merge_dead_process(pid, dirs["merged200"])

    timings = {"single": [], "live4": [], "dead200": [], "merged200": []}
    lines = {}
    for _ in range(ROUNDS):
        started = time.perf_counter()
        output = generate_latest(single)
        timings["single"].append(time.perf_counter() - started)
        lines["single"] = output.count(b"\n")
        for name, directory in dirs.items():
            seconds, lines[name] = render_multiprocess(directory)
            timings[name].append(seconds)
    shutil.rmtree(base)

    live = statistics.median(timings["live4"])
    print(f"/metrics render time, {ROUNDS} interleaved rounds (median, min-max):")
    labels = {"single": "one process", "live4": "multiprocess, 4 live workers",
              "dead200": "4 live + 200 dead files (unmerged)", "merged200": "4 live + 200 dead merged (ours)"}
    for name, values_ in timings.items():
        median = statistics.median(values_)
        print(f"  {labels[name]:<38} {median * 1e3:8.1f} ms ({min(values_) * 1e3:.1f}-{max(values_) * 1e3:.1f})"
              f"  {lines[name]:>6} lines  ratio to 4 live: {median / live:.2f}x")


if __name__ == "__main__":
    main()
