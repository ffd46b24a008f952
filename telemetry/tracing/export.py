"""OTLP export (http/protobuf) of the kept traces, when ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set. The exporter reads every standard
``OTEL_EXPORTER_OTLP_*`` variable itself; nothing here overrides them. The SDK's batch
processor gives it its own bounded queue and thread (restarted after a fork), so a slow
or unreachable collector never holds the store writer; failed exports are counted.
"""

import os
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from telemetry import extras
from telemetry.tracing import processor


def otlp_endpoint_configured() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def build_processor() -> BatchSpanProcessor | None:
    """The OTLP batch processor, or None without an endpoint or without the [tracing]
    extra (system check telemetry.W004 says so)."""
    if not otlp_endpoint_configured() or not extras.installed(extras.TRACING):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    class CountingExporter(OTLPSpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            try:
                result = super().export(spans)
            except Exception:  # noqa: BLE001 - counted like any failed export
                result = SpanExportResult.FAILURE
            processor.trace_store.export_health.record(result is SpanExportResult.SUCCESS)
            if result is not SpanExportResult.SUCCESS:
                processor.count_dropped("export_failed", len(spans))
            return result

    return BatchSpanProcessor(CountingExporter())
