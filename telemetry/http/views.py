"""``/metrics`` (Prometheus text or OpenMetrics), readiness (``/health``, ``/health/ready``)
and liveness (``/health/live``)."""

import gzip
import hmac
import ipaddress
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder, gzip_accepted

from telemetry import conf, extras
from telemetry.core import guard, recorder
from telemetry.core.bus import emit
from telemetry.core.context import suppressed
from telemetry.core.routers import telemetry_alias
from telemetry.http import exposition
from telemetry.metrics import multiprocess
from telemetry.pipeline import sampler
from telemetry.tracing import export, processor

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


#: The longest a scrape waits for a drain in progress in the flusher thread.
METRICS_FLUSH_WAIT_SECONDS = 1.0
#: gzip level of a scrape that accepts it (Prometheus does): level 1 takes a tenth of the
#: time of the default 9 for a scrape ~15% larger, still a tenth of the text.
METRICS_GZIP_LEVEL = 1
#: Headers a reverse proxy adds: a request carrying one came through a proxy.
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def _address(text):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _client_ip(request):
    """The scraper's address. Behind a trusted proxy (``METRICS_TRUSTED_PROXIES``) it is the
    nearest untrusted address of ``X-Forwarded-For``; a request that carries forwarding
    headers from any other peer has no known client (a proxy on the same host would
    otherwise make every scraper look like loopback)."""
    peer = _address(request.META.get("REMOTE_ADDR", ""))
    proxied = any(header in request.META for header in FORWARDING_HEADERS)
    if peer is None or not proxied:
        return peer
    trusted = _networks(conf.get("METRICS_TRUSTED_PROXIES") or [])
    if not any(peer in network for network in trusted):
        return None
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _address(hop)
        if address is None:
            return None
        if not any(address in network for network in trusted):
            return address
    return None


def _networks(entries):
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            guard.report("metrics_allowlist", ValueError(f"bad network entry {entry!r}"))
    return networks


def metrics_access(request: HttpRequest) -> HttpResponse | None:
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
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = metrics_access(request)
    if refusal is not None:
        return refusal
    # This process's buffered events and gauges, applied first: never the store's writes,
    # and never longer than a second behind a flusher stuck on a hung store.
    with guard.guarded("metrics_flush"), sampler.store_untouched():
        recorder.flush(sample=True, wait=METRICS_FLUSH_WAIT_SECONDS)
    encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
    path = multiprocess.directory()
    if path:
        with multiprocess.locked(path, exclusive=False):
            # Exemplars exist in OpenMetrics only.
            output = encoder(multiprocess.collect_registry(with_exemplars=content_type.startswith(
                "application/openmetrics-text")))
    elif exposition.renders(encoder):
        output = exposition.render(REGISTRY, encoder)  # the same bytes, faster
    else:
        output = encoder(REGISTRY)
    if not gzip_accepted(request.META.get("HTTP_ACCEPT_ENCODING", "")):
        return HttpResponse(output, content_type=content_type)
    response = HttpResponse(gzip.compress(output, compresslevel=METRICS_GZIP_LEVEL), content_type=content_type)
    response["Content-Encoding"] = "gzip"
    response["Vary"] = "Accept-Encoding"
    return response


def _check_databases():
    """The host's databases: every alias but telemetry's own store."""
    store = telemetry_alias()
    try:
        for alias in connections:
            if alias != store or alias == "default":
                with connections[alias].cursor() as cursor:
                    cursor.execute("SELECT 1")
    finally:
        connections.close_all()  # this thread's own connections


def _check_store():
    try:
        with suppressed(), connections[telemetry_alias()].cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connections.close_all()


def _celery_app():
    """The host's Celery app (only called when Celery is installed: :func:`_broker_configured`)."""
    from celery import current_app  # the [celery] extra: imported only when it is installed

    return current_app._get_current_object()


def _check_broker(app):
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)


def _check_cache():
    key = "telemetry:health"
    cache.set(key, "ok", 10)
    if cache.get(key) != "ok":
        raise RuntimeError("cache did not return what was stored")


def _broker_configured():
    if not extras.installed(extras.CELERY):
        return False
    setting = conf.get("HEALTH_CHECK_BROKER")
    if setting is None:
        return bool(getattr(settings, "CELERY_BROKER_URL", None) or os.environ.get("CELERY_BROKER_URL"))
    return bool(setting)


class Check:
    """One dependency check, run in a daemon thread of its own so that a probe waits at
    most ``HEALTH_CHECK_TIMEOUT_SECONDS`` however the dependency fails (refused, hung, slow).
    One run per check is in flight: concurrent probes share it, and its result serves the
    probes of the next ``HEALTH_CACHE_SECONDS``, so probes cannot pile up threads or
    connections on a dependency that hangs. A run still hanging after
    ``STALE_AFTER_SECONDS`` is given up (at most ``MAX_STUCK`` of them linger), so a
    dependency that recovers is seen as up again."""

    STALE_AFTER_SECONDS = 10.0
    MAX_STUCK = 3

    def __init__(self, service, function):
        self.service = service
        self.function = function
        self._lock = threading.Lock()
        self._done = None  # threading.Event of the run in flight, or of the last run
        self._started_at = 0.0
        self._stuck = 0
        self._result = None
        self._finished_at = -1e9

    def _run(self, done, args):
        started = time.perf_counter()
        try:
            self.function(*args)
            result = {"status": "up"}
        except Exception as exc:  # noqa: BLE001 - a failing dependency is a result, not an error
            result = {"status": "down", "error": type(exc).__name__}
        result["seconds"] = round(time.perf_counter() - started, 4)
        with self._lock:
            if done is self._done:
                self._result, self._finished_at = result, time.monotonic()
            else:
                self._stuck -= 1  # a run given up earlier ended at last
        done.set()

    def _start(self, args):
        self._done = threading.Event()
        self._started_at = time.monotonic()
        threading.Thread(target=self._run, args=(self._done, args), name=f"telemetry-health-{self.service}",
                         daemon=True).start()

    def result(self, timeout: float, max_age: float, args: tuple[Any, ...] = ()) -> tuple[dict[str, Any], bool]:
        """(result dict, whether it comes from a run this call waited for); ``args`` go to
        the check function."""
        now = time.monotonic()
        with self._lock:
            if self._done is None:
                self._start(args)
            elif self._done.is_set():
                if self._result is not None and now - self._finished_at < max_age:
                    return self._result, False
                self._start(args)
            elif now - self._started_at > self.STALE_AFTER_SECONDS and self._stuck < self.MAX_STUCK:
                self._stuck += 1
                self._start(args)
            done = self._done
        if not done.wait(timeout):
            return {"status": "down", "error": "Timeout", "seconds": round(timeout, 4)}, True
        with self._lock:
            return self._result, True

    def reset(self) -> None:
        with self._lock:
            self._result, self._finished_at = None, -1e9


#: Checks of the host: a failing one makes readiness fail.
HOST_CHECKS = {"database": Check("database", _check_databases), "broker": Check("broker", _check_broker),
               "cache": Check("cache", _check_cache)}
#: Telemetry's own store: reported, never failing readiness.
STORE_CHECK = Check("telemetry_store", _check_store)


def reset_health() -> None:
    """Forgets cached check results (tests)."""
    for check in (*HOST_CHECKS.values(), STORE_CHECK):
        check.reset()


def _observe(service, result):
    up = result["status"] == "up"
    emit("inc", ("jobs", "health_checks"), (service, "up" if up else "down"), 1)
    emit("observe", ("jobs", "health_check_duration"), (service,), result["seconds"])
    emit("set", ("jobs", "dependency_status"), (service,), 1 if up else 0)


def _run_checks(checks):
    timeout = conf.get("HEALTH_CHECK_TIMEOUT_SECONDS")
    max_age = conf.get("HEALTH_CACHE_SECONDS")
    # Celery's current app is per thread: the check thread gets this thread's.
    arguments = {"broker": (_celery_app(),)} if "broker" in checks else {}
    results = {}
    for name, check in checks.items():
        result, ran = check.result(timeout, max_age, arguments.get(name, ()))
        results[name] = dict(result)
        if ran:
            _observe(check.service, result)
    return results


def _telemetry_health() -> dict[str, Any]:
    """Telemetry's own parts: the store (a check), this process's store writer (its
    breaker) and OTLP exporter (``off`` when not configured). Never fail readiness."""
    store = _run_checks({"store": STORE_CHECK})["store"]
    store["writer"] = processor.writer_health()
    exporter = processor.trace_store.export_health.report() if export.otlp_endpoint_configured() else {
        "status": "off"}
    return {"store": store, "exporter": exporter}


@login_not_required
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Checks nothing, so a slow dependency never gets a
    healthy process restarted."""
    return JsonResponse({"status": "ok"})


@login_not_required
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the host's databases (every alias but telemetry's store), the
    cache and, when Celery is configured, the broker are up, else 503. Telemetry's own
    store, its writer's breaker and the OTLP exporter are reported under ``telemetry`` and
    only ever make the status ``degraded``.
    Errors show their class only."""
    checks = {name: check for name, check in HOST_CHECKS.items() if name != "broker" or _broker_configured()}
    results = _run_checks(checks)
    ready = all(result["status"] == "up" for result in results.values())
    own = _telemetry_health()
    healthy = own["store"]["status"] == "up" and own["store"]["writer"]["breaker"] == "closed" and (
        own["exporter"]["status"] in ("up", "off"))
    status = "down" if not ready else "ok" if healthy else "degraded"
    body = {"status": status, "release": getattr(settings, "RELEASE_VERSION", ""), "checks": results,
            "telemetry": own}
    return JsonResponse(body, status=200 if ready else 503, json_dumps_params={"indent": None})
