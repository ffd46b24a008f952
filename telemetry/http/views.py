"""``/metrics`` (Prometheus text or OpenMetrics) and ``/health``."""

import hmac
import ipaddress

import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import connections
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from telemetry import conf
from telemetry.core import guard, recorder
from telemetry.metrics import multiprocess
from telemetry.core.bus import emit

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _client_ip(request):
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return None


def _networks(entries):
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            guard.report("metrics_allowlist", ValueError(f"bad METRICS_ALLOWED_IPS entry {entry!r}"))
    return networks


def metrics_access(request):
    """``None`` when the scraper may read ``/metrics``, else the refusal response.

    A valid bearer token or an allowlisted address is enough; with neither configured,
    only loopback may scrape. A missing or wrong token is 401, a refused address 403.
    """
    token = conf.get("METRICS_TOKEN")
    allowed = _networks(conf.get("METRICS_ALLOWED_IPS") or [])
    address = _client_ip(request)
    if token:
        given = request.META.get("HTTP_AUTHORIZATION", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode()):
            return None
    networks = allowed if (token or allowed) else list(LOOPBACK)
    if address is not None and any(address in network for network in networks):
        return None
    if token:
        response = HttpResponse("A valid bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse("This address may not read /metrics.\n", status=403, content_type="text/plain")


@login_not_required
@require_GET
def metrics(request):
    refusal = metrics_access(request)
    if refusal is not None:
        return refusal
    with guard.guarded("metrics_flush"):
        recorder.flush(sample=True)
    encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
    path = multiprocess.directory()
    if path:
        with multiprocess.locked(path, exclusive=False):
            output = encoder(multiprocess.collect_registry())
    else:
        output = encoder(REGISTRY)
    return HttpResponse(output, content_type=content_type)


def _check_databases():
    for alias in connections:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")


def _check_broker():
    from celery import current_app

    with current_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)


def _check_cache():
    key = "telemetry:health"
    cache.set(key, "ok", 10)
    if cache.get(key) != "ok":
        raise RuntimeError("cache did not return what was stored")


CHECKS = {"database": _check_databases, "broker": _check_broker, "cache": _check_cache}


@login_not_required
@require_GET
def health(request):
    """Checks each dependency; 200 when all are up, else 503. Errors show their class only."""
    results = {}
    for service, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            results[service] = {"status": "up"}
        except Exception as exc:  # noqa: BLE001 - a failing dependency is a result, not an error
            results[service] = {"status": "down", "error": type(exc).__name__}
        seconds = time.perf_counter() - started
        results[service]["seconds"] = round(seconds, 4)
        up = results[service]["status"] == "up"
        emit("inc", ("jobs", "health_checks"), (service, "up" if up else "down"), 1)
        emit("observe", ("jobs", "health_check_duration"), (service,), seconds)
        emit("set", ("jobs", "dependency_status"), (service,), 1 if up else 0)
    healthy = all(result["status"] == "up" for result in results.values())
    body = {"status": "ok" if healthy else "degraded", "release": getattr(settings, "RELEASE_VERSION", ""),
            "checks": results}
    return JsonResponse(body, status=200 if healthy else 503, json_dumps_params={"indent": None})


