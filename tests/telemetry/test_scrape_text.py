"""What a scraper reads from ``/metrics`` in one process: the fast text rendering is
byte for byte prometheus-client's, and the bucket layouts answer what the platform's
alert and API read from them."""

import math

import pytest
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families

from telemetry import api
from telemetry.adapters import prometheus
from telemetry.api.views import quantile
from telemetry.core.bus import emit
from telemetry.http import exposition
from telemetry.metrics import families

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])

#: What scrapers send: none (curl), Prometheus 2's and 3's, an OpenMetrics client's.
ACCEPT_HEADERS = [
    "",
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    "application/openmetrics-text",
]


def same_as_prometheus_client(registry):
    """The fast rendering equals prometheus-client's for every scraper that the view sends
    through it; every Accept header above is."""
    for accept in ACCEPT_HEADERS:
        encoder, _ = choose_encoder(accept)
        assert exposition.renders(encoder), accept
        assert exposition.render(registry, encoder) == encoder(registry), accept


def telemetry_registry():
    """The default registry's collectors but prometheus-client's process, platform and GC
    ones, whose values change from one read to the next."""
    registry = CollectorRegistry()
    for collector in prometheus.collectors(REGISTRY):
        if collector not in (GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR):
            registry.register(collector)
    return registry


def test_the_scrape_of_real_traffic_is_what_prometheus_client_renders(client, django_user_model):
    """Requests, statements, logins and the process gauges through the real pipeline:
    the text equals ``generate_latest`` of the same registry, on the first scrape (line
    heads built) and on later ones (heads kept, values changed, new series added)."""
    django_user_model.objects.create_user("scraper", password="pw-scraper")
    for _ in range(2):
        client.get("/api/apps/", REMOTE_ADDR="127.0.0.1")
        client.post("/api/auth/login", {"username": "scraper", "password": "wrong"}, REMOTE_ADDR="127.0.0.1")
        client.get("/health/live", REMOTE_ADDR="127.0.0.1")
        api.flush(sample=True)
        same_as_prometheus_client(telemetry_registry())
    assert b"http_server_request_duration_seconds_bucket{" in exposition.render(REGISTRY, generate_latest)
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert {family.name for family in text_string_to_metric_families(response.content.decode())} >= {
        "http_server_request_duration_seconds", "db_client_operation_duration_seconds", "http_server_requests"}


def test_awkward_names_values_and_collectors_render_as_prometheus_client_does():
    registry = CollectorRegistry()
    counter = Counter("awkward_events", 'Help with a \\ backslash,\na newline and "quotes".', ["name", "kind"],
                      registry=registry)
    gauge = Gauge("awkward_level", "Levels.", ["kind"], registry=registry)
    histogram = Histogram("awkward_seconds", "Latency.", ["route"], buckets=(0.001, 0.25, 1e6), registry=registry)
    Counter("awkward_unlabelled", "No labels.", registry=registry).inc(3)
    Summary("awkward_summary", "A summary.", ["route"], registry=registry).labels("/s").observe(2.5)
    counter.labels('quote " slash \\ newline \n', "ünïcødé").inc(1e21, {"trace_id": 'a"b\\c'})
    counter.labels("", "empty").inc(0)
    for kind, value in (("nan", math.nan), ("inf", math.inf), ("minus_inf", -math.inf), ("negative_zero", -0.0),
                        ("tiny", 1e-9), ("big", 123456789.0)):
        gauge.labels(kind).set(value)
    gauge.labels("function").set_function(lambda: 0.1 + 0.2)
    for value in (0.0005, 0.1, 0.2, 7.0, 2e6, math.inf):
        histogram.labels("/a").observe(value)
    histogram.labels("/a").observe(0.2, {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
    histogram.labels("/never-observed")
    Counter("awkward:colon", "A colon in the name.", ["kind"], registry=registry).labels("x").inc()
    Histogram("awkward_bytes", "With a unit.", ["kind"], unit="bytes", registry=registry).labels("x").observe(3)
    same_as_prometheus_client(registry)
    counter.remove("", "empty")
    histogram.labels("/a").observe(0.3)
    same_as_prometheus_client(registry)
    prometheus.created_series(True)
    try:
        same_as_prometheus_client(registry)
    finally:
        prometheus.created_series(False)


def route_p95(route):
    """The SLO alert's ``histogram_quantile(0.95, ...)`` of ``route``, from the scrape."""
    api.flush()
    text = exposition.render(REGISTRY, generate_latest).decode()
    [family] = [family for family in text_string_to_metric_families(text)
                if family.name == "http_server_request_duration_seconds"]
    buckets = {}
    for sample in family.samples:
        if sample.name.endswith("_bucket") and sample.labels["http_route"] == route:
            bound = float(sample.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return quantile(0.95, sorted(buckets.items()))


@pytest.mark.parametrize(("seconds", "pages"), [(1.5, False), (1.9, False), (2.2, True), (4.0, True)])
def test_the_slow_route_alert_pages_for_a_p95_over_two_seconds_and_not_under(seconds, pages):
    """``SlowRoute`` (platform/alerts.yml): p95 per route above 2 s. With a bound at 2 s a
    route of steady 1.5 s requests is not paged for (it was, read as 2.4 s, when the
    bounds around 2 s were 1 and 2.5)."""
    route = f"/probe/slo-{seconds}"
    for _ in range(40):
        emit("observe", ("http", "request_duration"), ("GET", route, "200", ""), seconds)
    assert (route_p95(route) > 2.0) is pages


def test_each_layout_keeps_the_resolution_its_readers_need():
    """The bounds the dashboards, alert and API read: the HTTP SLO layout resolves a fast
    route's p50 (5 ms) and the alert's 2 s; statements still start at 1 ms; every layout
    ends in +Inf."""
    metrics = families()
    http_bounds = metrics.http.request_duration.upper_bounds
    assert {0.005, 1.0, 2.0, 5.0} <= set(http_bounds)
    assert metrics.db.operation_duration.upper_bounds[0] == 0.001
    for group in vars(metrics).values():
        for family in vars(group).values():
            if family.kind == "histogram":
                assert family.upper_bounds[-1] == math.inf
