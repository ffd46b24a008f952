"""Size and time of one ``/metrics`` scrape of the demo, ours beside django-prometheus's.

Each configuration runs in a child process of its own, one process as the target says:
the platform on its embedded defaults (SQLite, a fresh ``VAR_DIR``), seeded as ``make
demo`` seeds it, served by a threaded WSGI server, and driven by ``manage.py
demo_traffic`` (the demo's own client, seeded, no think time) for ``--requests`` requests
in two halves. The sample lines after each half show whether the label sets have stopped
growing (the demo's label sets saturate within minutes; the figure to compare with is the
demo's scrape after an hour, which ``--requests`` stands in for). Then the parent scrapes
the children alternately (A B A B ...) over HTTP: plain text, gzip-accepted text, and as
Prometheus asks (OpenMetrics first, gzip: what a real scrape renders). It prints medians
and ratios, our largest families in the text (bytes, lines, series, buckets per series and
the labels that multiply them) and the targets of issue 14 beside the figures. Never asserted.

    .venv/bin/python bench/scrape.py [--requests 4000 --rounds 15] [--save DIR]
    .venv/bin/python bench/scrape.py --saved DIR --without '*:organization_id'

``--without FAMILY:LABEL`` prints what the text would weigh with a label of the seed
inventory removed (its series summed), for the size target's trade-off against the labels.

Needs ``pip install -r bench/requirements.txt`` (django-prometheus).
"""

import argparse
import collections
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"ours": "/metrics", "django_prometheus": "/django-prometheus/metrics"}
#: Issue 14's targets for the demo's scrape in one process: plain text, and time to answer.
TARGET_KB = 300
TARGET_MS = 100
#: Request headers of each way of scraping.
ENCODINGS = {
    "text": {},
    "gzip": {"Accept-Encoding": "gzip"},
    # Prometheus 2's Accept header: prometheus-client answers it with OpenMetrics.
    "prometheus": {"Accept-Encoding": "gzip", "Accept": "application/openmetrics-text;version=1.0.0,"
                   "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"},
}
#: Families listed in the breakdown, largest first.
TOP_FAMILIES = 12

CHILD = r"""
import io, json, sys, threading
sys.path.insert(0, {root!r})
import django
django.setup()
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application

class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass

server = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=Server, handler_class=QuietHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{{server.server_port}}"

def series():
    from django.test import Client
    body = Client().get({path!r}, REMOTE_ADDR="127.0.0.1").content
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))

counts = []
for seed in (1, 2):
    call_command("demo_traffic", url=url, seconds=86400, max_requests={half}, concurrency=2, pause=0,
                 seed=seed, summary_seconds=3600, stdout=io.StringIO())
    counts.append(series())
print(json.dumps({{"url": url + {path!r}, "series": counts}}), flush=True)
sys.stdin.read()  # serves until the parent closes stdin
"""


def start(config: str, requests: int, var_dir: str) -> subprocess.Popen:
    with socket.socket() as probe:  # the demo's REST endpoint, allowlisted as `make demo` does
        probe.bind(("127.0.0.1", 0))
        rest_port = probe.getsockname()[1]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.scrape_settings", "BENCH_CONFIG": config,
           "VAR_DIR": var_dir, "PYTHONPATH": str(ROOT), "DEMO_REST_PORT": str(rest_port),
           "TELEMETRY_SLOW_QUERY_MS": "50"}
    for name in ("DATABASE_URL", "TELEMETRY_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "CELERY_BROKER_URL"):
        env.pop(name, None)  # the embedded defaults, as `make demo`
    # Seeded with the platform's own settings: django-prometheus's database wrapper fails
    # on the seed's executemany of a generator.
    seed = {**env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    for command in (["migrate", "--database", "telemetry"], ["migrate"], ["seed_demo"]):
        subprocess.run([sys.executable, "manage.py", *command, "-v", "0"], env=seed, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    code = CHILD.format(root=str(ROOT), path=CONFIGS[config], half=requests // 2)
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def scrape(url: str, encoding: str) -> tuple[float, bytes]:
    headers = ENCODINGS[encoding]
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=120) as response:
        body = response.read()
    return time.perf_counter() - started, body


class FamilyText(NamedTuple):
    """One family's share of a text scrape."""

    name: str
    size: int
    lines: int
    series: int
    buckets_per_series: float
    never_observed: int
    label_values: dict[str, int]


def breakdown(text: str) -> list[FamilyText]:
    """The families of a text scrape, largest first: bytes and sample lines of each, its
    series (label sets without ``le``), buckets per series (+Inf included), histogram series
    with a count of 0 and distinct values per label."""
    blocks: dict[str, list[str]] = collections.defaultdict(list)
    name = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
        blocks[name].append(line)
    families = []
    for name, lines in blocks.items():
        series, buckets, never_observed, values = set(), 0, 0, collections.defaultdict(set)
        for family in text_string_to_metric_families("".join(lines)):
            for sample in family.samples:
                labels = tuple(sorted((key, value) for key, value in sample.labels.items() if key != "le"))
                series.add(labels)
                buckets += sample.name.endswith("_bucket")
                never_observed += sample.name.endswith("_count") and family.type == "histogram" and not sample.value
                for key, value in labels:
                    values[key].add(value)
        families.append(FamilyText(name, len("".join(lines).encode()), sum(not line.startswith("#") for line in lines),
                                   len(series), buckets / len(series) if series else 0.0, never_observed,
                                   {key: len(found) for key, found in sorted(values.items())}))
    return sorted(families, key=lambda family: -family.size)


def print_breakdown(text: str) -> None:
    families = breakdown(text)
    total = sum(family.size for family in families)
    print(f"ours, the largest of {len(families)} families of the text "
          f"({sum(family.series for family in families)} series):")
    for family in families[:TOP_FAMILIES]:
        multipliers = " ".join(f"{key}={count}" for key, count in family.label_values.items())
        print(f"  {family.size / 1024:6.1f} KiB {family.size / total:4.0%} {family.lines:5} lines "
              f"{family.series:4} series {family.buckets_per_series:4.1f} buckets/series "
              f"{family.never_observed:3} never observed  {family.name}  [{multipliers}]")


def _rendered_size(text: str, without: dict[str, set[str]]) -> int:
    """Bytes of the sample lines of ``text`` written again with the labels ``without``
    ({family: labels}) removed, the series they told apart summed into one."""
    size = 0
    for family in text_string_to_metric_families(text):
        dropped = without.get(family.name, set())
        summed: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for sample in family.samples:
            labels = tuple((key, value) for key, value in sample.labels.items() if key not in dropped)
            summed[(sample.name, labels)] = summed.get((sample.name, labels), 0.0) + sample.value
        for (name, labels), value in summed.items():
            written = ",".join(f'{key}="{value}"' for key, value in labels)
            size += len(f"{name}{{{written}}} {value!r}\n" if labels else f"{name} {value!r}\n")
    return size


def print_without(text: str, folds: list[str]) -> None:
    """What the text would weigh with fewer labels (``FAMILY:LABEL``; ``*:LABEL`` in every
    family): the seed inventory's labels against issue 14's size target."""
    without: dict[str, set[str]] = collections.defaultdict(set)
    for fold in folds:
        family, label = fold.split(":", 1)
        for found in text_string_to_metric_families(text) if family == "*" else ():
            if any(label in sample.labels for sample in found.samples):
                without[found.name].add(label)
        if family != "*":
            without[family].add(label)
    # Written the same way with and without: the difference holds whatever the writer's format.
    folded = len(text.encode()) - _rendered_size(text, {}) + _rendered_size(text, without)
    print(f"ours without {', '.join(folds)}: {folded / 1024:.1f} KiB of text "
          f"({folded / 1000:.0f} KB; target < {TARGET_KB} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="demo traffic requests per configuration")
    parser.add_argument("--rounds", type=int, default=15, help="scrapes per configuration and encoding")
    parser.add_argument("--save", metavar="DIR", help="write each configuration's last text scrape there")
    parser.add_argument("--without", action="append", default=[], metavar="FAMILY:LABEL",
                        help="also print the text's size with LABEL removed from FAMILY (* for every family), "
                             "its series summed; repeat it to remove several at once")
    parser.add_argument("--saved", metavar="DIR", help="no run: the breakdown (and --without) of the text scrape "
                        "--save wrote to DIR")
    options = parser.parse_args()
    if options.saved:
        text = Path(options.saved, "ours.txt").read_text()
        print_breakdown(text)
        if options.without:
            print_without(text, options.without)
        return

    children, ready = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as base:
        try:
            for config in CONFIGS:  # one after the other: two seeds at once would only slow both
                children[config] = start(config, options.requests, os.path.join(base, config))
                ready[config] = json.loads(children[config].stdout.readline())
            timings = {(config, encoding): [] for config in CONFIGS for encoding in ENCODINGS}
            sizes, texts = {}, {}
            for _ in range(options.rounds):
                for key in timings:
                    seconds, body = scrape(ready[key[0]]["url"], key[1])
                    timings[key].append(seconds)
                    sizes[key] = len(body)
                    if key[1] == "text":
                        texts[key[0]] = body
            if options.save:
                for config, body in texts.items():
                    Path(options.save, f"{config}.txt").write_bytes(body)
        finally:
            for child in children.values():
                child.stdin.close()
                child.wait(timeout=60)

    print(f"/metrics of the demo in one process after {options.requests} demo_traffic requests, "
          f"{options.rounds} interleaved scrapes each (median, min-max):")
    reference = statistics.median(timings[("django_prometheus", "text")])
    for (config, encoding), values in timings.items():
        median = statistics.median(values)
        grown = " -> ".join(str(count) for count in ready[config]["series"])
        print(f"  {config:<18} {encoding:<10} {sizes[(config, encoding)] / 1024:8.1f} KiB "
              f"{median * 1e3:7.1f} ms ({min(values) * 1e3:.1f}-{max(values) * 1e3:.1f})  "
              f"lines after each half: {grown}  time ratio to django-prometheus text: {median / reference:.2f}x")
    ours, size = statistics.median(timings[("ours", "text")]), sizes[("ours", "text")]
    print(f"targets (issue 14), ours in one process: text {size / 1000:.0f} KB "
          f"(target < {TARGET_KB} KB: {'holds' if size < TARGET_KB * 1000 else 'missed'}), "
          f"render {ours * 1e3:.0f} ms over HTTP (target < {TARGET_MS} ms: "
          f"{'holds' if ours * 1e3 < TARGET_MS else 'missed'}; django-prometheus {reference * 1e3:.0f} ms "
          f"in the same run, load average {os.getloadavg()[0]:.1f})")
    print_breakdown(texts["ours"].decode())
    if options.without:
        print_without(texts["ours"].decode(), options.without)


if __name__ == "__main__":
    main()
