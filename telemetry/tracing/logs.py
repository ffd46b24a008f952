"""Structured logs: JSON lines carrying ``trace_id``/``span_id``, and a handler that keeps
warnings and errors (``LOG_STORE_LEVEL``) with their trace in the store (``LogEntry``),
batched and bounded by the trace store writer like spans.

Both are configured from ``LOGGING`` before apps are ready, so neither imports models
or reads settings until a record arrives.
"""

import json
import logging
from datetime import datetime, timezone

from opentelemetry.trace import get_current_span

_hot = {"on": True, "level": logging.WARNING}


def read_settings():
    from telemetry import conf

    _hot["on"] = bool(conf.get("LOGS_ENABLED"))
    level = conf.get("LOG_STORE_LEVEL")
    _hot["level"] = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
    if not isinstance(_hot["level"], int):
        _hot["level"] = logging.WARNING


def _ids():
    context = get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``trace_id`` and ``span_id`` are always present
    (empty outside a trace)."""

    def format(self, record):
        trace_id, span_id = _ids()
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "trace_id": trace_id, "span_id": span_id,
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, default=str)


class TraceStoreHandler(logging.Handler):
    """Queues records at ``LOG_STORE_LEVEL`` and above for the trace store; never blocks."""

    def emit(self, record):
        if not _hot["on"] or record.levelno < _hot["level"]:
            return
        try:
            from telemetry.tracing import processor

            trace_id, span_id = _ids()
            attributes = {"module": record.module, "line": record.lineno}
            if record.exc_info and record.exc_info[0] is not None:
                attributes["exception.type"] = record.exc_info[0].__name__
            processor.submit_log({
                "time": datetime.fromtimestamp(record.created, tz=timezone.utc),
                "level": record.levelname[:16], "level_number": record.levelno, "logger": record.name[:255],
                "message": record.getMessage()[:10_000], "trace_id": trace_id, "span_id": span_id,
                "attributes": attributes,
            })
        except Exception:  # noqa: BLE001 - logging must never fail the caller
            self.handleError(record)
