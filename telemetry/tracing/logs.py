"""Structured logs: JSON lines carrying ``trace_id``/``span_id``, and a handler that keeps
warnings and errors (``LOG_STORE_LEVEL``) with their trace in the store (``LogEntry``),
batched and bounded by the trace store writer like spans. A flood is rate-limited: at most
``LOG_RATE_LIMIT_PER_MINUTE`` rows per logger and message template a minute; the records
folded meanwhile are counted (``telemetry_trace_dropped_total{reason="log_rate_limited"}``)
and the next stored row of that message says how many (``attributes.repeated``). The
OpenTelemetry SDK's own records are never stored; its export queue's drops are counted
(``reason="export_queue_full"``).

Both are configured from ``LOGGING`` before apps are ready, so neither imports models
or reads settings until a record arrives.
"""

import json
import logging
import threading
import time
from datetime import datetime, timezone

from opentelemetry.trace import get_current_span

_hot = {"on": True, "level": logging.WARNING, "per_minute": 10}
#: Distinct (logger, message template) keys rate-limited at once; beyond it, records of new
#: keys are folded too.
MAX_RATE_KEYS = 1000


def read_settings() -> None:
    from telemetry import conf

    _hot["on"] = bool(conf.get("LOGS_ENABLED"))
    level = conf.get("LOG_STORE_LEVEL")
    _hot["level"] = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
    if not isinstance(_hot["level"], int):
        _hot["level"] = logging.WARNING
    _hot["per_minute"] = int(conf.get("LOG_RATE_LIMIT_PER_MINUTE"))


class RateLimit:
    """Per (logger, message template): how many rows the current minute stored, and how
    many records were folded since the last stored row."""

    def __init__(self):
        self._lock = threading.Lock()
        self._windows = {}  # key -> [minute started (monotonic), stored, folded]

    def admit(self, key: tuple[str, str], per_minute: int) -> int | None:
        """``None`` when the record is folded, else how many were folded before it."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) >= MAX_RATE_KEYS:
                    self._windows = {key: entry for key, entry in self._windows.items() if now - entry[0] < 60.0}
                    if len(self._windows) >= MAX_RATE_KEYS:
                        return None
                window = self._windows[key] = [now, 0, 0]
            elif now - window[0] >= 60.0:
                window[0], window[1] = now, 0
            if window[1] >= per_minute:
                window[2] += 1
                return None
            window[1] += 1
            folded, window[2] = window[2], 0
            return folded

    def reset(self) -> None:
        with self._lock:
            self._windows = {}


rate_limit = RateLimit()


def _ids():
    context = get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``trace_id`` and ``span_id`` are always present
    (empty outside a trace)."""

    def format(self, record: logging.LogRecord) -> str:
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

    def emit(self, record: logging.LogRecord) -> None:
        if not _hot["on"] or record.levelno < _hot["level"]:
            return
        try:
            from telemetry.tracing import processor  # LOGGING configures this before apps are ready

            if record.name.startswith("opentelemetry"):
                # The SDK's own warnings (a full export queue, exporter retries) are about
                # telemetry, not the application: counted, never stored.
                if str(record.msg).startswith("Queue full, dropping"):
                    processor.count_dropped("export_queue_full")
                return
            folded = rate_limit.admit((record.name, str(record.msg)), _hot["per_minute"])
            if folded is None:
                processor.count_dropped("log_rate_limited")
                return
            trace_id, span_id = _ids()
            attributes = {"module": record.module, "line": record.lineno}
            if folded:
                attributes["repeated"] = folded
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
