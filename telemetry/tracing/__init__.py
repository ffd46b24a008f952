"""Traces: OpenTelemetry spans kept in the embedded store (and exported over OTLP).

Cheap by construction: the request thread makes no SDK span for the request or its
queries. The middleware puts a bare span context in the OpenTelemetry context (so
Celery publish, requests, psycopg2 and business spans become its children) and the
execute wrapper notes the current span context on each query event; the server span and
the DB spans are built from those events in the flusher thread (:mod:`.spans`). Every
finished span then goes through one bounded queue to the store writer (:mod:`.processor`),
which decides per trace when its local root ends (errors, slow, a share of the rest).
"""

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import trace as trace_api

# For the execute wrapper: the current span is ``current_context_var.get().get(span_key)``,
# one context-variable lookup per query instead of four calls.
from telemetry.adapters.opentelemetry import SPAN_KEY as span_key  # noqa: F401
from telemetry.adapters.opentelemetry import current_context_var as current_context_var

#: Hot-path switch read by the middleware and the execute wrapper: True once the
#: provider is installed in this process and ``TRACES_ENABLED`` is on.
state: dict[str, Any] = {"on": False, "excluded_paths": ()}

_tracer: list[trace_api.Tracer] = []
_clients_instrumented = [False]


def enabled() -> bool:
    return state["on"]


def tracer() -> trace_api.Tracer:
    if not _tracer:
        _tracer.append(trace_api.get_tracer("telemetry"))
    return _tracer[0]


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """A business or plugin span (a context manager); a no-op context when tracing is off,
    so callers pay nothing then. The first one instruments the plugins' clients."""
    if not state["on"]:
        return nullcontext()
    if not _clients_instrumented[0]:
        from telemetry.tracing import instrument

        instrument.install_clients()
        _clients_instrumented[0] = True
    return tracer().start_as_current_span(name, attributes=attributes or None)


def setup() -> None:
    """Installs the provider and instrumentations once per process (``AppConfig.ready``)."""
    from telemetry.tracing import provider

    provider.setup()


def flush() -> None:
    """Decides and writes every finished span and log record now (tests, process exit)."""
    from telemetry.tracing import processor

    processor.flush()


def run_in_foreground() -> None:
    """No writer thread in this process: spans wait for :func:`flush` (test processes)."""
    from telemetry.tracing import processor

    processor.run_in_foreground()
