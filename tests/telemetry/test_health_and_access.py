"""Readiness and liveness that telemetry's store cannot fail, probes that cannot pile up
on a hung dependency, /metrics behind a reverse proxy, and the telemetry API's own
permissions whatever the host's DRF defaults."""

import socket
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connections
from django.test import override_settings

from telemetry.http import views
from tests.live import wait_until

pytestmark = pytest.mark.django_db(databases="__all__")

BASE = {"METRICS_ENABLED": True, "HEALTH_CACHE_SECONDS": 0}


class BlackHole:
    """A TCP server that accepts connections and never answers: a hung dependency."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.accepted = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self):
        self.server.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def black_hole():
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def hung_broker(black_hole):
    """Celery's broker pointed at a server that never answers."""
    from celery import current_app

    previous = current_app.conf.broker_url, current_app.conf.broker_transport
    # The URL's scheme names the transport (the embedded broker sets one explicitly).
    current_app.conf.broker_url, current_app.conf.broker_transport = f"redis://127.0.0.1:{black_hole.port}/0", None
    yield black_hole
    current_app.conf.broker_url, current_app.conf.broker_transport = previous


@pytest.fixture
def hung_store(black_hole):
    """Telemetry's database alias pointed at a server that never answers (new
    connections only: the health check opens its own, in a thread of its own)."""
    settings_dict = connections.settings["telemetry"]
    saved = {key: settings_dict.get(key) for key in ("HOST", "PORT")}
    settings_dict.update(HOST="127.0.0.1", PORT=str(black_hole.port))
    yield black_hole
    settings_dict.update(saved)


def _health_threads(service):
    return [thread for thread in threading.enumerate() if thread.name == f"telemetry-health-{service}"]


def test_liveness_checks_nothing(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@override_settings(TELEMETRY=BASE)
def test_readiness_reports_the_store_without_failing_on_it(client):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["telemetry"]["store"]["status"] == "up"
    assert set(body["checks"]) == {"database", "broker", "cache"}


@override_settings(TELEMETRY={**BASE, "HEALTH_CHECK_TIMEOUT_SECONDS": 0.5})
def test_a_hung_store_leaves_readiness_up_and_probes_do_not_pile_up(client, hung_store):
    bodies = [client.get("/health") for _ in range(5)]
    assert all(response.status_code == 200 for response in bodies)
    stores = [response.json()["telemetry"]["store"] for response in bodies]
    for response in bodies:
        body = response.json()
        assert body["status"] == "degraded"
        assert all(check["status"] == "up" for check in body["checks"].values())
    # A probe waits 0.5 s at most; the connection attempt itself gives up after the
    # alias's connect timeout (2 s), and only then may a new one start.
    assert {store["error"] for store in stores} <= {"Timeout", "OperationalError"}
    assert all(store["status"] == "down" and store["seconds"] <= 2.5 for store in stores)
    assert len(_health_threads("telemetry_store")) <= 1
    finished_runs = sum(store["error"] == "OperationalError" for store in stores)
    assert len(hung_store.accepted) <= 1 + finished_runs


@override_settings(TELEMETRY={**BASE, "HEALTH_CHECK_TIMEOUT_SECONDS": 0.5})
def test_a_hung_broker_fails_readiness_within_the_timeout(client, hung_broker):
    responses = [client.get("/health") for _ in range(3)]
    assert [response.status_code for response in responses] == [503, 503, 503], responses[0].json()
    assert responses[0].json()["checks"]["broker"]["error"] == "Timeout"
    assert len(_health_threads("broker")) <= 1


@override_settings(TELEMETRY={**BASE, "HEALTH_CHECK_TIMEOUT_SECONDS": 0.5})
def test_readiness_recovers_when_a_hung_broker_is_back(client, black_hole, monkeypatch):
    from celery import current_app

    monkeypatch.setattr(views.Check, "STALE_AFTER_SECONDS", 1.0)
    previous = current_app.conf.broker_url, current_app.conf.broker_transport
    current_app.conf.broker_url, current_app.conf.broker_transport = f"redis://127.0.0.1:{black_hole.port}/0", None
    try:
        assert client.get("/health").status_code == 503
    finally:
        current_app.conf.broker_url, current_app.conf.broker_transport = previous
    # The hung run is still waiting on the black hole; once it is stale a new run sees the broker.
    wait_until(lambda: client.get("/health").status_code == 200, timeout=30, message="readiness never recovered")


@override_settings(TELEMETRY={**BASE, "HEALTH_CHECK_BROKER": False})
def test_the_broker_is_not_checked_when_celery_is_not_used(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert set(response.json()["checks"]) == {"database", "cache"}


@override_settings(TELEMETRY={**BASE, "HEALTH_CACHE_SECONDS": 60})
def test_probes_within_the_cache_period_share_one_check(client, samples):
    views.reset_health()
    runs = samples.snapshot("tooljet_health_checks_total", {"service": "database", "status": "up"})
    for _ in range(4):
        assert client.get("/health").status_code == 200
    assert runs() <= 1


def test_a_proxied_request_is_not_loopback(client):
    """A proxy on the same host connects from 127.0.0.1: its forwarded scrapers are not."""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    proxied = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert proxied.status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="127.0.0.1").status_code == 403


@override_settings(TELEMETRY={**BASE, "METRICS_TRUSTED_PROXIES": ["127.0.0.1"],
                              "METRICS_ALLOWED_IPS": ["10.1.2.0/24"]})
def test_a_trusted_proxy_forwards_the_real_scraper(client):
    allowed = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert allowed.status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert refused.status_code == 403
    # A client's own X-Forwarded-For entry cannot vouch for it: the nearest untrusted hop counts.
    spoofed = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.1.2.3, 203.0.113.9")
    assert spoofed.status_code == 403
    untrusted_peer = client.get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert untrusted_peer.status_code == 403


@override_settings(REST_FRAMEWORK={"DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]})
def test_the_telemetry_api_is_closed_to_anonymous_callers_whatever_the_host_default(client):
    for path in ("/telemetry/api/traces", "/telemetry/api/logs", "/telemetry/api/traces/" + "0" * 32,
                 "/telemetry/api/metrics"):
        assert client.get(path).status_code in (401, 403), path


@override_settings(USE_X_FORWARDED_HOST=True)
def test_a_system_check_warns_of_metrics_behind_a_proxy_without_a_token():
    with pytest.raises(SystemCheckError, match="telemetry.W003"):
        call_command("check", "--fail-level", "WARNING", "--tag", "security")
    with override_settings(TELEMETRY={**BASE, "METRICS_TOKEN": "t0ken"}):
        call_command("check", "--fail-level", "WARNING", "--tag", "security")


def test_a_scrape_touches_no_database_and_does_not_wait_on_a_stuck_flusher(client, django_assert_num_queries):
    from django.db import connections as all_connections

    from telemetry.core import recorder

    client.get("/api/templates/")  # something buffered to apply
    with django_assert_num_queries(0, connection=all_connections["telemetry"]), \
            django_assert_num_queries(0, connection=all_connections["default"]):
        assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    # A flusher stuck in a store write holds the drain lock: the scrape answers anyway.
    lock = recorder.event_buffer.worker.lock
    held = threading.Event()
    release = threading.Event()

    def stuck_flusher():
        with lock:
            held.set()
            release.wait(60)

    thread = threading.Thread(target=stuck_flusher, daemon=True)
    thread.start()
    held.wait(10)
    try:
        response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    finally:
        release.set()
        thread.join(10)
    assert response.status_code == 200
    assert b"http_server_request_duration_seconds" in response.content
