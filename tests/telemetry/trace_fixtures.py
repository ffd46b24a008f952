"""Shared helpers of the trace tests: a clean trace store state per test."""

import pytest

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
