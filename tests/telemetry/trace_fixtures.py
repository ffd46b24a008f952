"""Shared helpers of the trace tests: a clean trace store state per test."""

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from telemetry import api
from telemetry.core import recorder
from telemetry.tracing import processor

TRACE_DATABASES = ["default", "telemetry"]


def reset_trace_state():
    """Forgets what earlier tests left queued or decided in this process."""
    recorder.flush()
    processor.reset()


@pytest.fixture
def trace_settings(settings):
    """trace_settings(**overrides): TELEMETRY overrides for a test; every trace kept by default."""

    def apply(**overrides):
        settings.TELEMETRY = {**settings.TELEMETRY, "TRACE_SAMPLE_RATE": 1.0, **overrides}

    reset_trace_state()
    apply()
    yield apply
    reset_trace_state()


def stored_spans(trace_id):
    from telemetry.models import Span

    return list(Span.objects.filter(trace_id=trace_id).order_by("start_ns"))


def flush():
    api.flush()


@contextmanager
def otlp_receiver():
    """A local OTLP/HTTP receiver: (endpoint, received), ``received`` holding (path,
    content type, decoded ``ExportTraceServiceRequest``) of each export."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            message = ExportTraceServiceRequest()
            message.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers.get("Content-Type"), message))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
