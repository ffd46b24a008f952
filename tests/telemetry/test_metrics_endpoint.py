"""Access to /metrics and its formats."""

import gzip

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db

BASE = {"METRICS_ENABLED": True}


def test_loopback_may_scrape_when_nothing_is_configured(client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"http_server_request_duration_seconds" in response.content


def test_other_addresses_are_refused_by_default(client):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


@override_settings(TELEMETRY={**BASE, "METRICS_TOKEN": "s3cret-token"})
def test_token_is_required_when_configured(client):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    wrong = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    right = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert right.status_code == 200


@override_settings(TELEMETRY={**BASE, "METRICS_ALLOWED_IPS": ["10.0.0.0/8", "192.0.2.7"]})
def test_allowlist_admits_listed_networks_only(client):
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.8").status_code == 403
    # An explicit allowlist replaces the loopback default.
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_openmetrics_when_the_scraper_asks_for_it(client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1",
                          HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


def test_gzip_when_the_scraper_accepts_it(client):
    """Prometheus sends Accept-Encoding: gzip; the scrape on the wire is a tenth of the text."""
    client.get("/metrics", REMOTE_ADDR="127.0.0.1")  # a request of its own in what follows
    plain = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    packed = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_ACCEPT_ENCODING="deflate, gzip;q=1.0")
    assert "Content-Encoding" not in plain
    assert packed["Content-Encoding"] == "gzip"
    assert packed["Vary"] == "Accept-Encoding"
    text = gzip.decompress(packed.content)
    assert text.startswith(b"# HELP") and b"http_server_request_duration_seconds_bucket" in text
    assert len(packed.content) * 4 < len(text)


def test_no_created_series_by_default(client, settings):
    """Each ``*_created`` sample is one more series in Prometheus' text format."""
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content
    assert b"http_server_requests_total{" in body
    assert b"_created{" not in body
    settings.TELEMETRY = {**settings.TELEMETRY, "METRICS_CREATED_SERIES": True}
    assert b"http_server_requests_created{" in client.get("/metrics", REMOTE_ADDR="127.0.0.1").content


def test_metrics_stays_reachable_behind_login_required_middleware(client, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/admin/password_change/").status_code == 302


@pytest.mark.django_db(databases="__all__")
def test_health_reports_each_dependency(client, samples):
    checks = samples.snapshot("tooljet_health_checks_total", {"service": "database", "status": "up"})
    response = client.get("/health")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body["checks"]) == {"database", "broker", "cache"}
    assert all(check["status"] == "up" for check in body["checks"].values())
    assert checks() == 1
    assert samples.value("tooljet_health_dependency_status", {"dependency": "database"}) == 1
