"""Fault injection: telemetry's PostgreSQL store, the OTLP endpoint and the platform's
Redis (cache and Celery broker) fail (refused, black-holed, slow) behind loopback proxies
while real traffic runs through gunicorn (2 workers x 4 threads), with a prober calling
/health and a scraper reading /metrics. For each fault: every user request succeeds, its
p99 stays within 2x the no-fault p99 of the same test, probes and scrapes keep answering
(readiness turns 503 only for the host's own dependency, Redis), and what the fault
stopped (stored traces, exported traces) flows again soon after it ends. Counts, never a
throughput in a time box."""

import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import psycopg
import pytest
import requests

from tests.faults import FaultProxy
from tests.live import ROOT, embedded_env, gunicorn, wait_until

ROUTE = "/admin/login/"
REQUESTS = 60
#: Scrapes of /metrics that each fault lasts for (one a second): longer than a flush and a
#: sample of telemetry's flusher, so its threads meet the fault too.
SCRAPES_PER_FAULT = 12
#: The shared 2-core machine adds jitter of its own: a p99 within 2x or within this many
#: seconds of the no-fault p99 passes.
JITTER_SECONDS = 0.25
#: Seconds after a fault ends by which a new request's trace must be stored: the breaker's
#: cool-down or, with the breaker closed, the writer's interval (TRACE_WRITE_INTERVAL_SECONDS,
#: 5 s each), with room for a loaded machine.
RECOVERY_SECONDS = 15.0
#: Readiness answers in a row that make a Redis fault recovered.
READY_IN_A_ROW = 8


def _postgres_url():
    return os.environ.get("DATABASE_URL", "postgres://tooljet:tooljet@127.0.0.1:5432/tooljet")


@pytest.fixture(scope="module")
def store_database(tmp_path_factory):
    """A telemetry store of its own, migrated: (database name, admin connection)."""
    name = f"test_faults_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(_postgres_url().replace("postgres://", "postgresql://"), autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(_postgres_url())
    url = f"postgres://{parts.username}:{parts.password}@{parts.hostname}:{parts.port or 5432}/{name}"
    env = embedded_env(tmp_path_factory.mktemp("migrate"), TELEMETRY_DATABASE_URL=url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--database", "telemetry", "-v", "0"], cwd=ROOT, env=env,
                   check=True, timeout=300)
    store = psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True)
    yield name, store
    store.close()
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


class Receiver:
    """A local OTLP/HTTP endpoint: counts the export requests it answered."""

    def __init__(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.exports += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.exports = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def platform(store_database, tmp_path_factory):
    """gunicorn whose telemetry store, OTLP endpoint and Redis (cache and broker) are each
    reached through a fault proxy."""
    name, store = store_database
    parts = urlsplit(_postgres_url())
    redis = urlsplit(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    receiver = Receiver()
    proxies = {"store": FaultProxy(parts.hostname, parts.port or 5432),
               "otlp": FaultProxy("127.0.0.1", receiver.port),
               "redis": FaultProxy(redis.hostname, redis.port or 6379)}
    var_dir = tmp_path_factory.mktemp("faults")
    (var_dir / "prom").mkdir()
    redis_url = f"redis://127.0.0.1:{proxies['redis'].port}{redis.path or '/15'}"
    env = embedded_env(
        var_dir, PROMETHEUS_MULTIPROC_DIR=var_dir / "prom", TELEMETRY_TRACE_SAMPLE_RATE="1.0",
        TELEMETRY_DATABASE_URL=f"postgres://{parts.username}:{parts.password}@127.0.0.1:{proxies['store'].port}/{name}",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{proxies['otlp'].port}", OTEL_EXPORTER_OTLP_TIMEOUT="2",
        OTEL_BSP_SCHEDULE_DELAY="500", CACHE_URL=redis_url, CELERY_BROKER_URL=redis_url,
        CELERY_RESULT_BACKEND=redis_url,
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    with gunicorn(env, workers=2, threads=4, log_path=var_dir / "gunicorn.log") as (base_url, _):
        yield base_url, proxies, store, receiver
    for proxy in proxies.values():
        proxy.close()
    receiver.close()


class Probes:
    """/health every 0.5 s and /metrics every second, in the background: each answer's
    status, or the error that replaced it."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.answers = []
        #: The bodies of readiness answers that were not 200: which check failed, and how.
        self.unready = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(path, period), daemon=True)
                         for path, period in (("/health", 0.5), ("/metrics", 1.0))]

    def _loop(self, path, period):
        while not self._stop.wait(period):
            try:
                response = requests.get(self.base_url + path, timeout=15)
            except requests.RequestException as exc:
                self.answers.append((path, type(exc).__name__))
                continue
            self.answers.append((path, response.status_code))
            if path == "/health" and response.status_code != 200:
                self.unready.append(response.text[:600])

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def _measure(base_url, count):
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = requests.get(base_url + ROUTE, timeout=30, headers={"Connection": "close"})
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return latencies


#: What telemetry counts when it loses or fails something: drops by reason, its own errors by
#: component, the store breaker's transitions.
COUNTED = ("telemetry_trace_dropped_total", "telemetry_internal_errors_total",
           "telemetry_trace_store_breaker_transitions_total")


def _counted(base_url):
    """Telemetry's loss and failure counters from /metrics (every process's files), by series."""
    counts = {}
    for line in requests.get(base_url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(COUNTED):
            series, value = line.rsplit(" ", 1)
            counts[series.removeprefix("telemetry_")] = float(value)
    return counts


def _p99(latencies):
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _stored_since(store, since):
    return store.execute("SELECT count(*) FROM telemetry_trace WHERE route = %s AND start >= to_timestamp(%s)",
                         (ROUTE, since)).fetchone()[0]


def _flowing_again(base_url, target, store, receiver, since, exports_before):
    """Whether what the fault stopped flows again: traces stored, exports received, or
    (Redis, the host's own dependency) readiness answering 200 again."""
    if target == "store":
        return _stored_since(store, since) > 0
    if target == "otlp":
        return receiver.exports > exports_before
    # Each gunicorn worker keeps its own readiness state: several answers in a row on new
    # connections, so both workers have seen the host's Redis back.
    return all(requests.get(base_url + "/health", timeout=15, headers={"Connection": "close"}).status_code == 200
               for _ in range(READY_IN_A_ROW))


@pytest.mark.parametrize("target", ["store", "otlp", "redis"])
@pytest.mark.parametrize("fault", ["refuse", "blackhole", "slow"])
def test_user_requests_do_not_feel_a_failing_dependency(platform, target, fault):
    base_url, proxies, store, receiver = platform
    proxy = proxies[target]
    baseline = _measure(base_url, REQUESTS)
    counted_before = _counted(base_url)
    with Probes(base_url) as probes:
        proxy.mode = fault
        faulty = []
        try:
            deadline = time.monotonic() + 120  # a cap on a hang, not a throughput
            while len(faulty) < REQUESTS or (
                    sum(path == "/metrics" for path, _ in probes.answers) < SCRAPES_PER_FAULT
                    and time.monotonic() < deadline):
                faulty += _measure(base_url, 1)
                time.sleep(0.05)  # a steady trickle of users, not a load test
        finally:
            proxy.mode = "pass"
            ended = time.time()
            exports_before = receiver.exports
    recovered = wait_until(
        lambda: (_measure(base_url, 1) and _flowing_again(base_url, target, store, receiver, ended, exports_before))
        and time.time(),
        timeout=RECOVERY_SECONDS + 20, interval=0.5, message=f"nothing flowed to {target} again")
    health = {status for path, status in probes.answers if path == "/health"}
    counted_after = _counted(base_url)
    counted = {series: value - counted_before.get(series, 0.0) for series, value in counted_after.items()
               if value != counted_before.get(series, 0.0)}
    print(f"\n{target} {fault}: {len(faulty)} requests, 0 errors, p99 {_p99(baseline) * 1000:.0f} ms without, "
          f"{_p99(faulty) * 1000:.0f} ms with; probes {len(probes.answers)} answered, /health {sorted(health)}; "
          f"flowing again after {recovered - ended:.1f} s; counted {counted or 'nothing'}")
    if target in ("store", "otlp") and fault != "slow":
        assert counted, "a failing telemetry dependency left no count"
    if target == "store" and fault == "blackhole":
        # Connections are kept between writes: a statement stalls mid-way and only the
        # store deadline ends it.
        assert any("store_timeout" in series for series in counted), counted
    assert _p99(faulty) <= max(2 * _p99(baseline), _p99(baseline) + JITTER_SECONDS)
    unanswered = [answer for answer in probes.answers if not isinstance(answer[1], int)]
    assert not unanswered, unanswered
    assert {status for path, status in probes.answers if path == "/metrics"} == {200}
    # Telemetry's store and exporter only degrade readiness; Redis is the host's own dependency.
    assert health == {200} if target != "redis" else health <= {200, 503}, probes.unready
    assert recovered - ended <= RECOVERY_SECONDS
