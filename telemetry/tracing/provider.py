"""The process's tracer provider: service name and version, the store processor, OTLP.

Fork-safe without ceremony: the provider holds no thread; the store writer and the
OTLP batch processor start their threads lazily and again after a fork, so gunicorn
``--preload`` and Celery prefork children need nothing special.
"""

from typing import TYPE_CHECKING, Any

from django.conf import settings

from telemetry import conf
from telemetry.core import guard
from telemetry.tracing import export, instrument, processor

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

_installed: dict[str, Any] = {"provider": None, "resource": None}


def resource() -> "Resource":
    """Service name and version from the ``OTEL_*`` environment when set (never
    overridden), else from ``TELEMETRY["SERVICE_NAME"]`` and ``RELEASE_VERSION``."""
    if _installed["resource"] is None:
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource

        ours = {"service.name": conf.get("SERVICE_NAME") or "django",
                "service.version": getattr(settings, "RELEASE_VERSION", "") or "unknown"}
        _installed["resource"] = Resource.create(ours).merge(OTELResourceDetector().detect())
    return _installed["resource"]


def service_name() -> str:
    return str(resource().attributes.get("service.name", ""))


def _update_switch():
    from telemetry.tracing import state

    state["on"] = bool(conf.get("TRACES_ENABLED")) and _installed["provider"] is not None
    state["excluded_paths"] = tuple(conf.get("TRACE_EXCLUDED_PATHS") or ())


def setup() -> None:
    """Idempotent. With ``TRACES_ENABLED`` off nothing is installed at all."""
    if _installed["provider"] is not None or not conf.get("TRACES_ENABLED"):
        conf.on_change(_update_switch)
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=resource())
        trace.set_tracer_provider(provider)
    provider.add_span_processor(processor.StoreSpanProcessor())
    _installed["provider"] = provider
    conf.on_change(_update_switch)
    processor.trace_store.export_factory = export.build_processor
    with guard.guarded("trace_instrument"):
        instrument.install()

