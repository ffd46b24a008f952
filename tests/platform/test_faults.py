"""Fault injection: telemetry's PostgreSQL store and the OTLP endpoint fail (refused,
black-holed, slow) behind a loopback proxy while real traffic runs through gunicorn
(2 workers x 4 threads), with a prober calling /health and a scraper reading /metrics.
For each fault: every user request succeeds, its p99 stays within 2x the no-fault p99 of
the same test, probes and scrapes keep answering, and kept traces reach the store again
soon after the fault ends. Counts, never a throughput in a time box."""

import os
import subprocess
import sys
import threading
import time
import uuid
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
#: Seconds after a fault ends by which a new request's trace must be stored.
RECOVERY_SECONDS = 10.0


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


@pytest.fixture(scope="module")
def platform(store_database, tmp_path_factory):
    """gunicorn whose telemetry store is reached through a fault proxy."""
    name, store = store_database
    parts = urlsplit(_postgres_url())
    proxy = FaultProxy(parts.hostname, parts.port or 5432)
    var_dir = tmp_path_factory.mktemp("faults")
    (var_dir / "prom").mkdir()
    env = embedded_env(
        var_dir, PROMETHEUS_MULTIPROC_DIR=var_dir / "prom", TELEMETRY_TRACE_SAMPLE_RATE="1.0",
        TELEMETRY_DATABASE_URL=f"postgres://{parts.username}:{parts.password}@127.0.0.1:{proxy.port}/{name}",
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    with gunicorn(env, workers=2, threads=4, log_path=var_dir / "gunicorn.log") as (base_url, _):
        yield base_url, proxy, store
    proxy.close()


class Probes:
    """/health every 0.5 s and /metrics every second, in the background: each answer's
    status, or the error that replaced it."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.answers = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(path, period), daemon=True)
                         for path, period in (("/health", 0.5), ("/metrics", 1.0))]

    def _loop(self, path, period):
        while not self._stop.wait(period):
            try:
                self.answers.append((path, requests.get(self.base_url + path, timeout=15).status_code))
            except requests.RequestException as exc:
                self.answers.append((path, type(exc).__name__))

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


def _p99(latencies):
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _stored_since(store, since):
    return store.execute("SELECT count(*) FROM telemetry_trace WHERE route = %s AND start >= to_timestamp(%s)",
                         (ROUTE, since)).fetchone()[0]


@pytest.mark.parametrize("fault", ["refuse", "blackhole", "slow"])
def test_user_requests_do_not_feel_a_failing_store(platform, fault):
    base_url, proxy, store = platform
    baseline = _measure(base_url, REQUESTS)
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
    recovered = wait_until(
        lambda: (_measure(base_url, 1) and _stored_since(store, ended) > 0) and time.time(),
        timeout=RECOVERY_SECONDS + 20, interval=0.5, message="kept traces never reached the store again")
    print(f"\nfault={fault}: {len(faulty)} requests, 0 errors, p99 {_p99(baseline) * 1000:.0f} ms without, "
          f"{_p99(faulty) * 1000:.0f} ms with; probes {len(probes.answers)}; "
          f"store again after {recovered - ended:.1f} s")
    assert _p99(faulty) <= max(2 * _p99(baseline), _p99(baseline) + JITTER_SECONDS)
    unanswered = [answer for answer in probes.answers if not isinstance(answer[1], int)]
    assert not unanswered, unanswered
    assert {status for path, status in probes.answers if path == "/metrics"} == {200}
    assert {status for path, status in probes.answers if path == "/health"} == {200}  # the store only degrades
    assert recovered - ended <= RECOVERY_SECONDS
