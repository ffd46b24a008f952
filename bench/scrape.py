"""Size and time of one ``/metrics`` scrape of the demo, ours beside django-prometheus's.

Each configuration runs in a child process of its own, one process as the target says:
the platform on its embedded defaults (SQLite, a fresh ``VAR_DIR``), seeded as ``make
demo`` seeds it, served by a threaded WSGI server, and driven by ``manage.py
demo_traffic`` (the demo's own client, seeded, no think time) for ``--requests`` requests
in two halves. The series count after each half shows whether the label sets have stopped
growing (the demo's label sets saturate within minutes; the figure to compare with is the
demo's series count after an hour, which ``--requests`` stands in for). Then the parent
scrapes the children alternately (A B A B ...), as Prometheus would over HTTP, plain and
gzip-accepted, and prints medians and ratios. Never asserted.

    .venv/bin/python bench/scrape.py [--requests 4000 --rounds 15]

Needs ``pip install -r bench/requirements.txt`` (django-prometheus).
"""

import argparse
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

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"ours": "/metrics", "django_prometheus": "/django-prometheus/metrics"}

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


def scrape(url: str, gzip: bool) -> tuple[float, bytes]:
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=120) as response:
        body = response.read()
    return time.perf_counter() - started, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="demo traffic requests per configuration")
    parser.add_argument("--rounds", type=int, default=15, help="scrapes per configuration and encoding")
    parser.add_argument("--save", metavar="DIR", help="write each configuration's last text scrape there")
    options = parser.parse_args()

    children, ready = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as base:
        try:
            for config in CONFIGS:  # one after the other: two seeds at once would only slow both
                children[config] = start(config, options.requests, os.path.join(base, config))
                ready[config] = json.loads(children[config].stdout.readline())
            timings = {(config, gzip): [] for config in CONFIGS for gzip in (False, True)}
            sizes = {}
            for _ in range(options.rounds):
                for key in timings:
                    seconds, body = scrape(ready[key[0]]["url"], key[1])
                    timings[key].append(seconds)
                    sizes[key] = len(body)
                    if options.save and not key[1]:
                        Path(options.save, f"{key[0]}.txt").write_bytes(body)
        finally:
            for child in children.values():
                child.stdin.close()
                child.wait(timeout=60)

    print(f"/metrics of the demo in one process after {options.requests} demo_traffic requests, "
          f"{options.rounds} interleaved scrapes each (median, min-max):")
    reference = statistics.median(timings[("django_prometheus", False)])
    for (config, gzip), values in timings.items():
        median = statistics.median(values)
        grown = " -> ".join(str(count) for count in ready[config]["series"])
        print(f"  {config:<18} {'gzip' if gzip else 'text':<4} {sizes[(config, gzip)] / 1024:8.1f} KiB "
              f"{median * 1e3:7.1f} ms ({min(values) * 1e3:.1f}-{max(values) * 1e3:.1f})  "
              f"series after each half: {grown}  time ratio to django-prometheus text: {median / reference:.2f}x")


if __name__ == "__main__":
    main()
