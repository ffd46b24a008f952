"""The embedded trace store: tail sampling and batched writes off the request thread.

``submit`` (a span processor's ``on_end``, or the flusher building spans from events)
appends to a bounded queue. A daemon writer thread per process drains it every
``FLUSH_INTERVAL_SECONDS`` (a tick): spans wait, per trace, until their local root span
arrives; the root decides the trace (every error, every slow root, ``TRACE_SAMPLE_RATE``
of the rest, deterministic on the trace id so processes of one trace agree); spans that
arrive later follow the remembered decision. Kept spans go to the OTLP exporter (when
configured) at once and wait for the store's next write: every
``TRACE_WRITE_INTERVAL_SECONDS`` (a write's fixed cost is paid once for several ticks), or
sooner when ``WRITE_EARLY_ROWS`` rows wait; an explicit :meth:`TraceStore.flush` (tests,
``telemetry.api.flush``, process exit) writes at once. A write is one transaction per
batch, to ``Trace``/``Span`` rows on the telemetry alias. A failed batch is retried a few
times, then dropped and counted; a circuit breaker stops writing to a store that keeps
failing (:class:`StoreBreaker`), so a dead or hung store costs no write per batch.
Everything is bounded; nothing raises into the caller.

The state lives in one :class:`TraceStore` per process (``trace_store``); its writer
is a :class:`~telemetry.core.background.BackgroundWorker`.
"""

import json
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from telemetry import conf
from telemetry.adapters.opentelemetry import span_fields
from telemetry.core import guard, recorder, routers
from telemetry.core.background import BackgroundWorker, BoundedQueue, reuse_connections, store_deadlines
from telemetry.core.context import OWN_TASK_PREFIX
from telemetry.core.routers import telemetry_alias
from telemetry.metrics import internal
from telemetry.tracing import state as tracing_state
from telemetry.tracing.sanitize import clean, clean_json, clean_text, sanitize

try:
    import psycopg
except ImportError:  # PostgreSQL through psycopg2 (no server-side binding), or no PostgreSQL
    psycopg = None  # type: ignore[assignment]

MAX_PENDING_TRACES = 5000
MAX_SPANS_PER_PENDING_TRACE = 1000
PENDING_TTL_SECONDS = 120.0
MAX_DECISIONS = 50_000
MAX_ATTEMPTS = 3
MAX_FAILED_BATCHES = 20
#: Kept span and log rows that make a periodic tick write before ``TRACE_WRITE_INTERVAL_SECONDS``.
#: A write's fixed cost (~250 k instructions) is small beside what a batch of hundreds of
#: rows costs to encode and insert: waiting longer would save next to nothing and only hold
#: more memory and more of what a killed process loses. Reached only by bursts (error
#: storms, tracing at a high sample rate); the span queue itself is drained at every tick,
#: so ``TRACE_QUEUE_MAX`` bounds one tick's arrivals as before.
WRITE_EARLY_ROWS = 1000
_RATIO_MASK = (1 << 64) - 1

#: The attribute the Celery instrumentation puts the task's name in, on its publish
#: (``apply_async/<task>``) and run (``run/<task>``) spans.
CELERY_TASK_NAME = "celery.task_name"


class StoreSpanProcessor(SpanProcessor):
    """Spans ended through the SDK (business, plugin, Celery, psycopg2, requests, redis).
    The spans of telemetry's own tasks (run by the worker, published by beat) are not
    stored: the store holds the host's work, not telemetry's housekeeping."""

    def on_start(self, span, parent_context=None):
        pass

    def on_end(self, span):
        if not tracing_state["on"]:  # TRACES_ENABLED turned off after the provider was installed
            return
        if str(span.attributes.get(CELERY_TASK_NAME, "")).startswith(OWN_TASK_PREFIX):
            return
        submit(span)

    def shutdown(self):
        flush()

    def force_flush(self, timeout_millis=30000):
        flush()
        return True


class DeferredTrace:
    """Stands for a local trace whose root will drop it (OK, fast, not in the sampled
    share): ``build()`` makes its spans only if a span already waiting for the trace
    failed, so every error trace is still kept."""

    __slots__ = ("trace_id", "build")

    def __init__(self, trace_id, build):
        self.trace_id = trace_id
        self.build = build


def sampled_by_ratio(trace_id, settings):
    """The share of OK, fast traces kept: deterministic on the trace id, so every process
    of one trace agrees."""
    return (trace_id & _RATIO_MASK) < settings["TRACE_SAMPLE_RATE"] * (1 << 64)



class StoreBatch(NamedTuple):
    """One drain's worth for the store: kept spans, their traces' summaries (trace id ->
    ``Trace`` row fields), log rows."""

    spans: list
    summaries: dict
    logs: list


class _PendingTrace:
    """Spans of a trace waiting for its local root, since ``first_seen`` (monotonic)."""

    __slots__ = ("first_seen", "spans")

    def __init__(self, first_seen: float) -> None:
        self.first_seen = first_seen
        self.spans: list = []


class _Unwritten:
    """Kept spans, their traces' summaries and log rows decided since the last write, in
    the order decided: the next write's batch."""

    __slots__ = ("spans", "summaries", "logs")

    def __init__(self) -> None:
        self.spans: list = []
        self.summaries: dict = {}
        self.logs: list = []

    def add(self, spans: list, summaries: dict, logs: list) -> None:
        self.spans.extend(spans)
        self.logs.extend(logs)
        for trace_id, summary in summaries.items():
            earlier = self.summaries.setdefault(trace_id, summary)
            if earlier is not summary:
                # A second local root of a trace whose decision was forgotten since (more than
                # MAX_DECISIONS later): merged as the store merges two batches' summaries, the
                # first's fields and the worse status ("error" sorts first).
                earlier["status"] = min(earlier["status"], summary["status"])

    def rows(self) -> int:
        return len(self.spans) + len(self.logs)

    def take(self) -> StoreBatch | None:
        """The batch to write (None when nothing waits); this is left empty."""
        if not (self.spans or self.summaries or self.logs):
            return None
        batch = StoreBatch(self.spans, self.summaries, self.logs)
        self.spans, self.summaries, self.logs = [], {}, []
        return batch


class _FailedBatch:
    """A batch whose write failed ``attempts`` times, waiting for the next flush."""

    __slots__ = ("attempts", "batch")

    def __init__(self, batch: StoreBatch) -> None:
        self.attempts = 0
        self.batch = batch


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class StoreBreaker:
    """The trace store writer's circuit breaker, used under the writer's lock.

    Closed: writes go ahead. ``TRACE_STORE_BREAKER_FAILURES`` consecutive failed writes
    open it: for ``TRACE_STORE_BREAKER_SECONDS`` nothing is written (the writer drops its
    new batches, counted). Then half-open: the next write is a probe; its success closes
    the breaker, its failure opens it again. Each change of state is counted in
    ``telemetry_trace_store_breaker_transitions_total{state}`` and logged once, never raising.
    """

    __slots__ = ("state", "failures", "opened_at")

    def __init__(self) -> None:
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0

    def allows_write(self, settings: dict[str, Any]) -> bool:
        """Whether a write may be tried now; past the cool-down an open breaker turns half-open."""
        if self.state == OPEN:
            if time.monotonic() - self.opened_at < settings["TRACE_STORE_BREAKER_SECONDS"]:
                return False
            self._change(HALF_OPEN)
        return True

    def succeeded(self) -> None:
        self.failures = 0
        if self.state != CLOSED:
            self._change(CLOSED)

    def failed(self, settings: dict[str, Any]) -> bool:
        """Counts a failed write; returns whether it opened the breaker."""
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= settings["TRACE_STORE_BREAKER_FAILURES"]:
            self.opened_at = time.monotonic()
            self._change(OPEN)
            return True
        return False

    def _change(self, state: str) -> None:
        self.state = state
        with guard.guarded("trace_store_breaker"):
            internal.trace_store_breaker_transitions().labels(state).inc()
            if state == OPEN:
                guard.logger.warning(
                    "telemetry trace store breaker open after %d consecutive failed writes: no write for "
                    "TRACE_STORE_BREAKER_SECONDS, kept spans and log records dropped (store_unavailable)",
                    self.failures)
            else:
                guard.logger.info("telemetry trace store breaker %s", state.replace("_", "-"))


class ExportHealth:
    """What this process's OTLP exports did lately, for readiness: failures in a row (reset
    by a success) and when the last success was. Written by the SDK's export thread."""

    __slots__ = ("failures_in_a_row", "last_success")

    def __init__(self) -> None:
        self.failures_in_a_row = 0
        self.last_success: float | None = None

    def record(self, succeeded: bool) -> None:
        if succeeded:
            self.failures_in_a_row, self.last_success = 0, time.monotonic()
        else:
            self.failures_in_a_row += 1

    def report(self) -> dict[str, Any]:
        since = None if self.last_success is None else round(time.monotonic() - self.last_success, 1)
        return {"status": "failing" if self.failures_in_a_row else "up",
                "failures_in_a_row": self.failures_in_a_row, "seconds_since_success": since}


class TraceStore:
    """The trace store writer of this process: its two queues (spans, log rows), the
    spans waiting for their root, the decisions taken, what was kept and waits for the
    next write, the batches to retry, and its writer (a :class:`BackgroundWorker` calling
    :meth:`tick`, that runs in the foreground when the recorder's flusher does) and its
    :class:`StoreBreaker`. A forked child forgets what its parent queued, waited for and
    failed to write, and keeps its breaker (the store is the same)."""

    def __init__(self) -> None:
        #: Bounds ``TRACE_QUEUE_MAX`` and ``LOG_QUEUE_MAX``, read by :meth:`read_settings`
        #: (called by ``conf.on_change`` whenever the settings change).
        self.spans = BoundedQueue(50_000, "queue_full")
        self.logs = BoundedQueue(10_000, "log_queue_full")
        self.worker = BackgroundWorker(
            "telemetry-trace-store", self.tick, internal.DropCounter(internal.trace_dropped, labelled=True),
            at_exit=self._flush_at_exit, after_fork=self._after_fork, follows=recorder.event_buffer.worker)
        self._pending: OrderedDict[int, _PendingTrace] = OrderedDict()
        #: trace id -> kept_because, or "" for a dropped trace.
        self._decisions: OrderedDict[int, str] = OrderedDict()
        self._unwritten = _Unwritten()
        self._ticks_since_write = 0
        #: ``write_every_ticks()``, read by :meth:`read_settings`.
        self._write_every = 1
        self._failed: deque[_FailedBatch] = deque()
        self._breaker = StoreBreaker()
        self._export_processor: Any = None
        self._export_checked = False
        self.export_health = ExportHealth()
        #: Builds the OTLP span processor (or None when export is not configured); set by
        #: ``telemetry.tracing.provider.setup``, called on the first export.
        self.export_factory: Callable[[], Any] | None = None

    def submit(self, span: "ReadableSpan | DeferredTrace") -> None:
        """Never blocks, never raises; a full queue drops and counts."""
        self.worker.submit(self.spans, span)

    def submit_log(self, row: dict) -> None:
        self.worker.submit(self.logs, row)

    def read_settings(self) -> None:
        self.spans.limit = conf.get("TRACE_QUEUE_MAX")
        self.logs.limit = conf.get("LOG_QUEUE_MAX")
        self._write_every = write_every_ticks()

    def flush(self) -> None:
        """Decides what is queued and writes it with everything kept before, then retries
        failed batches. Safe from any thread."""
        with self.worker.lock:
            with guard.guarded("trace_store"):
                self._flush_locked(write=True)

    def tick(self) -> None:
        """The writer thread's work every ``FLUSH_INTERVAL_SECONDS``: decides what is queued
        and exports what it keeps, as :meth:`flush` does, but writes only at every
        ``TRACE_WRITE_INTERVAL_SECONDS``, counted in ticks since the last write (so a
        virtual clock drives it), or sooner: when ``WRITE_EARLY_ROWS`` rows wait, when
        failed batches wait for their retry or the breaker is open (its probe and the
        retries keep their schedule)."""
        with self.worker.lock:
            with guard.guarded("trace_store"):
                self._flush_locked(write=False)

    def run_in_foreground(self) -> None:
        """No writer thread in this process: spans wait for :meth:`flush` (test processes)."""
        self.worker.run_in_foreground()

    def reset(self) -> None:
        """Forgets queued spans and log rows, traces waiting for their root, decisions
        taken, what waits for a write and failed batches, without writing them, and closes
        the breaker silently (tests)."""
        with self.worker.lock:
            self.spans.clear()
            self.logs.clear()
            self._pending.clear()
            self._decisions.clear()
            self._unwritten = _Unwritten()
            self._ticks_since_write = 0
            self._failed.clear()
            self._breaker = StoreBreaker()

    def forget_decisions(self) -> None:
        """Forgets the decisions taken, as another process would not know them (tests)."""
        with self.worker.lock:
            self._decisions.clear()

    def failed_batches(self) -> int:
        """Batches waiting to be written again."""
        return len(self._failed)

    def breaker_state(self) -> str:
        """``closed``, ``open`` or ``half_open``: whether the writer tries the store."""
        return self._breaker.state

    def count_dropped(self, reason: str, amount: int = 1) -> None:
        self.worker.dropped.count(reason, amount)

    def dropped(self, reason: str) -> int:
        """Spans (or log records) dropped for ``reason`` in this process so far."""
        return self.worker.dropped.total(reason)

    def reset_export(self) -> None:
        """Reads the ``OTEL_EXPORTER_OTLP_*`` environment again on the next export (tests)."""
        with self.worker.lock:
            processor = self._export_processor
            self._export_processor = None
            self._export_checked = False
            self.export_health = ExportHealth()
        if processor is not None:
            with guard.guarded("otlp_shutdown"):
                processor.shutdown()

    def export_processor(self) -> Any:
        """The OTLP span processor kept traces go to, or None (not configured, or no export yet)."""
        return self._export_processor

    def writer_health(self) -> dict[str, Any]:
        """For readiness: the breaker's state and the batches waiting to be written again."""
        return {"breaker": self._breaker.state, "batches_waiting": len(self._failed)}

    def _flush_locked(self, write: bool) -> None:
        """Decides what is queued; writes what waits when ``write`` or :meth:`_write_due`."""
        settings = conf.get_settings()
        spans = self.spans.drain()
        logs = self.logs.drain()
        kept, summaries = self._decide(spans, settings)
        capture_sql = settings["TRACE_CAPTURE_SQL"]
        kept = [sanitize(span, capture_sql) for span in kept]
        if kept:
            self._export_spans(kept)
        self._unwritten.add(kept, summaries, logs)
        self._ticks_since_write += 1
        if write or self._write_due():
            self._ticks_since_write = 0
            batch = self._unwritten.take()
            if batch is not None or self._failed:
                if self._breaker.allows_write(settings):
                    self._write(batch, settings)
                elif batch is not None:
                    # The store is given up on for now: the batch is not kept for later.
                    self._count_lost(batch, "store_unavailable")
        self.worker.dropped.report()

    def _write_due(self) -> bool:
        """Whether this tick writes (see :meth:`tick`)."""
        return (self._ticks_since_write >= self._write_every or self._unwritten.rows() >= WRITE_EARLY_ROWS
                or bool(self._failed) or self._breaker.state == OPEN)

    def _write(self, batch: StoreBatch | None, settings: dict[str, Any]) -> None:
        """Writes the batches that failed before, then ``batch``; one that fails again waits
        for the next flush, at most ``MAX_ATTEMPTS`` times. The breaker opening stops the
        writes: the rest wait for its probe."""
        failed, breaker = self._failed, self._breaker
        if routers.migrations_pending():
            # Telemetry's migrations have not run yet: nowhere to write, nothing to report.
            if batch is not None:
                self._count_lost(batch, "store_unavailable")
            return
        if batch is not None:
            failed.append(_FailedBatch(batch))
        while len(failed) > MAX_FAILED_BATCHES:
            self._count_lost(failed.popleft().batch, "store_failed")
        # The writer's connection persists between writes (closed only after a failed
        # one), checked here as Django's CONN_HEALTH_CHECKS would before a request.
        with guard.guarded("trace_store_connection"):
            reuse_connections(telemetry_alias())
        for _ in range(len(failed)):
            entry = failed.popleft()
            try:
                with store_deadlines.bounded(telemetry_alias(), settings["STORE_TIMEOUT_SECONDS"]):
                    self._write_isolating(entry.batch)
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unavailable
                guard.report("trace_store_write", exc)
                self._close_connection()
                entry.attempts += 1
                if entry.attempts >= MAX_ATTEMPTS:
                    self._count_lost(entry.batch, "store_failed")
                else:
                    failed.append(entry)
                if breaker.failed(settings):
                    return
            else:
                breaker.succeeded()

    def _write_isolating(self, batch: StoreBatch) -> None:
        """Writes ``batch``. When the store rejects rows of it (a data error: the store
        answers, a value does not fit), its halves are written instead, down to the single
        rows it rejects, which are dropped and counted as ``store_rejected`` (their log
        rows as ``log_store_rejected``): one bad row costs ~2 log2(n) writes, not n rows.
        Any other error is raised, and the whole batch waits for a retry (its rows stored
        meanwhile are skipped then, and counted once)."""
        try:
            write_batch(*batch)
        except Exception as exc:  # noqa: BLE001 - sorted below
            if not _rejects_rows(exc):
                raise
            if len(batch.spans) + len(batch.logs) <= 1:
                guard.report("trace_store_rejected", exc)
                self._count_lost(batch, "store_rejected")
                return
            for half in _halves(batch):
                self._write_isolating(half)

    def _count_lost(self, batch: StoreBatch, reason: str) -> None:
        """Counts the batch's spans as dropped for ``reason``, its log records for ``log_<reason>``."""
        self.worker.dropped.count(reason, len(batch.spans))
        self.worker.dropped.count(f"log_{reason}", len(batch.logs))

    def _decide(self, spans, settings):
        """Returns (kept spans, {trace id: Trace row fields}) for this drain."""
        pending, decisions, dropped = self._pending, self._decisions, self.worker.dropped
        kept = []
        summaries = {}
        now = time.monotonic()
        queue = deque(spans)
        while queue:
            span = queue.popleft()
            if type(span) is DeferredTrace:
                waiting = pending.get(span.trace_id)
                if waiting and any(child.status.status_code is StatusCode.ERROR for child in waiting.spans):
                    queue.extendleft(reversed(span.build()))
                else:
                    pending.pop(span.trace_id, None)
                    decisions[span.trace_id] = ""
                    if len(decisions) > MAX_DECISIONS:
                        decisions.popitem(last=False)
                continue
            trace_id = span.context.trace_id
            decision = decisions.get(trace_id)
            if decision is not None:
                if decision:
                    kept.append(span)
                continue
            if _is_local_root(span):
                entry = pending.pop(trace_id, None)
                group = entry.spans if entry else []
                group.append(span)
                if span.parent is None and span.kind in (SpanKind.CLIENT, SpanKind.PRODUCER):
                    # A client call outside any trace (a broker poll, the exporter's own
                    # request): not a trace anyone asked for. No decision is kept: a task it
                    # published and this process runs (a solo worker) decides its own trace.
                    continue
                reason = _reason(span, group, settings)
                decisions[trace_id] = reason
                if len(decisions) > MAX_DECISIONS:
                    decisions.popitem(last=False)
                if reason:
                    kept.extend(group)
                    summaries[trace_id] = _summary(span, group, reason, settings)
                continue
            entry = pending.get(trace_id)
            if entry is None:
                if len(pending) >= MAX_PENDING_TRACES:
                    dropped.count("pending_full")
                    continue
                entry = pending[trace_id] = _PendingTrace(now)
            if len(entry.spans) < MAX_SPANS_PER_PENDING_TRACE:
                entry.spans.append(span)
            else:
                dropped.count("pending_full")
        while pending:
            trace_id, entry = next(iter(pending.items()))
            if now - entry.first_seen < PENDING_TTL_SECONDS:
                break
            del pending[trace_id]
            dropped.count("expired", len(entry.spans))
        return kept, summaries

    def _close_connection(self) -> None:
        if self.worker.foreground:
            return  # the test's own connection, inside its transaction
        with guard.guarded("trace_store_close"):
            from django.db import connections

            connections[telemetry_alias()].close()

    def _export_spans(self, kept) -> None:
        """OTLP gets the kept traces (sampling is decided here, before export)."""
        if not self._export_checked:
            self._export_checked = True
            self._export_processor = self.export_factory() if self.export_factory is not None else None
        processor = self._export_processor
        if processor is not None:
            for span in kept:
                processor.on_end(span)

    def _after_fork(self) -> None:
        self.spans.clear()
        self.logs.clear()
        self._pending.clear()
        self._unwritten = _Unwritten()
        self._ticks_since_write = 0
        self._failed.clear()

    def _flush_at_exit(self) -> None:
        if self.worker.started_here():
            with guard.guarded("flush_at_exit"):
                recorder.flush()  # the last requests' DB and server spans first
            self.flush()
            processor = self._export_processor
            if processor is not None:
                with guard.guarded("otlp_flush_at_exit"):
                    processor.force_flush(5000)


def write_every_ticks() -> int:
    """Ticks of the writer thread (one every ``FLUSH_INTERVAL_SECONDS``) from one periodic
    write to the next: ``TRACE_WRITE_INTERVAL_SECONDS`` rounded up to whole ticks, at least one."""
    tick_seconds = conf.seconds("FLUSH_INTERVAL_SECONDS")
    if tick_seconds <= 0:
        return 1
    # Rounded first: float division makes 0.9 / 0.3 a hair over 3, which would round up to 4.
    return max(1, math.ceil(round(conf.seconds("TRACE_WRITE_INTERVAL_SECONDS") / tick_seconds, 9)))


def _rejects_rows(exc: Exception) -> bool:
    """Whether a failed write failed on its rows (the store answered and refused a value),
    not on the store: data and integrity errors, Django's and the driver's own (psycopg's
    server-side binding is not wrapped by Django), and values the driver cannot send."""
    from django.db import DataError, IntegrityError, connections

    database = getattr(connections[telemetry_alias()], "Database", None)  # the driver's module
    driver_errors = (database.DataError, database.IntegrityError) if database is not None else ()
    return isinstance(exc, (DataError, IntegrityError, *driver_errors, ValueError, TypeError, ArithmeticError))


def _halves(batch: StoreBatch) -> tuple[StoreBatch, StoreBatch]:
    """``batch`` cut in two (its spans, then its log rows, in order); each half carries the
    summaries of its spans' traces (a trace cut in two gets its counts from both halves,
    as from two batches), the first also those of traces without a span in the batch."""
    items = [*batch.spans, *batch.logs]
    middle = len(items) // 2
    spans_count = len(batch.spans)
    halves = []
    for start, end in ((0, middle), (middle, len(items))):
        spans = items[start:min(end, spans_count)]
        logs = items[max(start, spans_count):end]
        trace_ids = {span.context.trace_id for span in spans}
        summaries = {trace_id: summary for trace_id, summary in batch.summaries.items() if trace_id in trace_ids}
        halves.append(StoreBatch(spans, summaries, logs))
    with_spans = {span.context.trace_id for span in batch.spans}
    halves[0].summaries.update(
        (trace_id, summary) for trace_id, summary in batch.summaries.items() if trace_id not in with_spans)
    return halves[0], halves[1]


def _is_local_root(span):
    parent = span.parent
    return parent is None or parent.is_remote



def _status_code(span):
    value = span.attributes.get("http.response.status_code", span.attributes.get("http.status_code"))
    return value if isinstance(value, int) else None


def _reason(root, group, settings):
    status_code = _status_code(root)
    if (status_code is not None and status_code >= 500) or any(
            span.status.status_code is StatusCode.ERROR for span in group):
        return "error"
    if (root.end_time - root.start_time) / 1e6 >= settings["TRACE_SLOW_MS"]:
        return "slow"
    if sampled_by_ratio(root.context.trace_id, settings):
        return "sampled"
    return ""


def _summary(root, group, reason, settings):
    attributes = root.attributes
    error = reason == "error"
    duration_ms = (root.end_time - root.start_time) / 1e6
    return {
        "trace_id": f"{root.context.trace_id:032x}", "root_name": root.name[:255],
        "service": str(root.resource.attributes.get("service.name", ""))[:128],
        "route": str(attributes.get("http.route", ""))[:255],
        "method": str(attributes.get("http.request.method", attributes.get("http.method", "")))[:16],
        "status_code": _status_code(root), "status": "error" if error else "ok",
        "organization_id": str(attributes.get("organization.id", ""))[:64],
        "start": datetime.fromtimestamp(root.start_time / 1e9, tz=timezone.utc), "duration_ms": duration_ms,
        "span_count": 0, "is_slow": duration_ms >= settings["TRACE_SLOW_MS"], "kept_because": reason,
    }


_KIND_NAMES = {kind: kind.name.lower() for kind in SpanKind}
_STATUS_NAMES = {code: code.name.lower() for code in StatusCode}
_stdlib_encode = json.JSONEncoder(default=str, ensure_ascii=False).encode


def _encode_json(value):
    """JSON text of rows for the store, without NUL characters or lone surrogates (see
    ``sanitize.clean``): orjson is ~8x faster than the standard library here, and encoding
    is most of what writing a kept span costs the writer; it refuses lone surrogates, so
    text is cleaned value by value only when it did, and escaped NULs are replaced in the
    JSON text after one search for them."""
    try:
        return clean_json(orjson.dumps(value, default=str).decode())
    except TypeError:  # a lone surrogate, or an integer beyond 64 bits
        pass
    value = clean(value)
    try:
        return clean_json(orjson.dumps(value, default=str).decode())
    except TypeError:  # an integer beyond 64 bits (or an object whose str() is unclean)
        return clean_json(clean_text(_stdlib_encode(value)))


#: (resource, its service name): spans of one process share one resource.
_service = [None, ""]

SPAN_COLUMNS = ("trace_id", "span_id", "parent_span_id", "name", "kind", "service", "start_ns", "end_ns",
                "duration_ms", "status", "status_message", "attributes", "events")
TRACE_COLUMNS = ("trace_id", "root_name", "service", "route", "method", "status_code", "status", "organization_id",
                 "start", "duration_ms", "span_count", "is_slow", "kept_because")
_TRACE_INSERT_ONLY = tuple(column for column in TRACE_COLUMNS if column not in ("trace_id", "span_count", "status"))
_statements: dict[str, str] = {}


def _service_name(resource):
    if resource is not _service[0]:
        _service[:] = [resource, str(resource.attributes.get("service.name", ""))[:128]]
    return _service[1]


def span_row(span):
    """The ``Span`` row of ``span``: a dict of ``SPAN_COLUMNS``, built without a model
    instance. Reads ``ReadableSpan``'s fields as held (through the adapter): its properties
    copy (attributes, events) or cost a call each, and this runs for every stored span."""
    name, context, parent, kind, start, end, attributes, events, status, resource = span_fields(span)
    if type(attributes) is not dict:  # the SDK's BoundedAttributes; JSON writes tuples as lists
        attributes = dict(attributes or {})
    return {
        "trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else "", "name": name[:255],
        "kind": _KIND_NAMES[kind],
        "service": _service_name(resource),
        "start_ns": start, "end_ns": end, "duration_ms": (end - start) / 1e6,
        "status": _STATUS_NAMES[status.status_code], "status_message": (status.description or "")[:255],
        "attributes": attributes,
        "events": [{"name": event.name, "time_ns": event.timestamp, "attributes": dict(event.attributes or {})}
                   for event in events] if events else [],
    }


def write_batch(kept, summaries, logs):
    """Stores one batch (the fields of a :class:`StoreBatch`): span rows, trace summaries
    with their span counts, log rows.
    Span rows stored already are skipped (a batch retried after its commit was lost); a
    trace stored already (its other local root, in a worker, came first, or its root was
    written by an earlier batch) keeps its fields, gets the new spans added to its count
    and turns "error" when one of them failed. Every text written is cleaned of NUL
    characters and lone surrogates (``sanitize.clean``)."""
    from django.db import connections, transaction

    from telemetry.core.context import suppressed
    from telemetry.core.routers import telemetry_alias
    from telemetry.models import LogEntry

    alias = telemetry_alias()
    connection = connections[alias]
    rows = [span_row(span) for span in kept]
    traces = list(summaries.values())
    # On PostgreSQL one statement writes spans and traces: it needs no transaction around
    # it, unless the caller's (a test's) is open, which a failure must not abort.
    single_statement = connection.vendor == "postgresql" and not logs and not connection.in_atomic_block
    with suppressed(), nullcontext() if single_statement else transaction.atomic(using=alias):
        if rows or traces:
            if connection.vendor == "postgresql":
                _write_postgresql(connection, rows, traces)  # cleaned as it is encoded
            else:
                _write_any(connection, clean(rows), clean(traces))
        if logs:
            LogEntry.objects.using(alias).bulk_create([LogEntry(**clean(row)) for row in logs], batch_size=500)
    internal.trace_spans_stored().inc(len(rows))


def _write_postgresql(connection, rows, traces):
    """One statement, one round trip. Both row sets travel as one JSON parameter each
    (encoded in C, expanded by ``json_populate_recordset`` on the server): cheaper on the
    writer's CPU than bulk_create (psycopg quotes its UNNEST arrays value by value), a
    multi-row VALUES list (its placeholders are parsed again every time) or COPY (two
    round trips per table and no way to skip a stored row). Span counts are those of the
    rows actually inserted, so a retried batch counts nothing twice."""
    statement = _statements.get("postgresql")
    if statement is None:
        from telemetry.models import Span, Trace

        quote = connection.ops.quote_name
        span_table, trace_table = quote(Span._meta.db_table), quote(Trace._meta.db_table)
        span_columns = ", ".join(quote(column) for column in SPAN_COLUMNS)
        trace_id, count, status = quote("trace_id"), quote("span_count"), quote("status")
        trace_columns = [quote(column) for column in TRACE_COLUMNS]
        selected = ", ".join("COALESCE(counts.n, 0)" if column == count else f"summary.{column}"
                             for column in trace_columns)
        statement = _statements["postgresql"] = (
            f"WITH spans AS (INSERT INTO {span_table} ({span_columns}) SELECT {span_columns} "
            f"FROM json_populate_recordset(NULL::{span_table}, %s::json) ON CONFLICT DO NOTHING "
            f"RETURNING {trace_id}, {status}), "
            # "error" sorts before "ok" and "unset": the least status is the worst one.
            f"counts AS (SELECT {trace_id}, count(*) AS n, min({status}) AS worst FROM spans GROUP BY {trace_id}), "
            f"summaries AS (INSERT INTO {trace_table} ({', '.join(trace_columns)}) SELECT {selected} "
            f"FROM json_populate_recordset(NULL::{trace_table}, %s::json) AS summary "
            f"LEFT JOIN counts ON counts.{trace_id} = summary.{trace_id} "
            f"ON CONFLICT ({trace_id}) DO UPDATE SET {count} = {trace_table}.{count} + EXCLUDED.{count}, "
            f"{status} = LEAST({trace_table}.{status}, EXCLUDED.{status}) RETURNING {trace_id}) "
            # Spans of traces whose summary was written by an earlier batch.
            f"UPDATE {trace_table} SET {count} = {trace_table}.{count} + counts.n, "
            f"{status} = CASE WHEN counts.worst = 'error' THEN 'error' ELSE {trace_table}.{status} END "
            f"FROM counts WHERE {trace_table}.{trace_id} = counts.{trace_id} "
            f"AND counts.{trace_id} NOT IN (SELECT {trace_id} FROM summaries)"
        )
    rows_json, traces_json = _encode_json(rows), _encode_json(traces)
    with connection.cursor() as cursor:  # through Django: its connection handling applies
        raw_connection = cursor.cursor.connection
        if hasattr(raw_connection, "pgconn"):
            # psycopg 3 with server-side binding: the JSON travels as it is, where Django's
            # client-side binding escapes it byte by byte into the statement. Not prepared,
            # so a transaction-pooling proxy in front of PostgreSQL is no problem.
            with psycopg.Cursor(raw_connection) as binding:
                binding.execute(statement, (rows_json, traces_json), prepare=False)
        else:
            cursor.execute(statement, [rows_json, traces_json])


def _write_any(connection, rows, traces):
    """SQLite, MySQL: ``executemany`` of one INSERT that skips stored span rows, the
    increment-upsert of the summaries, then the counts of traces summarised earlier."""
    from django.db.models import F
    from django.db.models.constants import OnConflict

    from telemetry.core.upsert import increment
    from telemetry.models import Span, Trace

    per_trace = {}
    errors = set()
    for row in rows:
        trace_id = row["trace_id"]
        per_trace[trace_id] = per_trace.get(trace_id, 0) + 1
        if row["status"] == "error":
            errors.add(trace_id)
    for summary in traces:
        trace_id = summary["trace_id"]
        summary["span_count"] = per_trace.pop(trace_id, 0)
        if trace_id in errors:
            summary["status"] = "error"
            errors.discard(trace_id)
    if rows:
        ops = connection.ops
        fields = [Span._meta.get_field(column) for column in SPAN_COLUMNS]
        sql = "{} {} ({}) VALUES ({}){}".format(
            ops.insert_statement(on_conflict=OnConflict.IGNORE), ops.quote_name(Span._meta.db_table),
            ", ".join(ops.quote_name(field.column) for field in fields), ", ".join(["%s"] * len(fields)),
            ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None) or "",
        )
        values = [[_encode_json(row[column]) if column in ("attributes", "events") else row[column]
                   for column in SPAN_COLUMNS] for row in rows]
        with connection.cursor() as cursor:
            cursor.executemany(sql, values)
    # "error" sorts before "ok": the least status is the worse one.
    increment(Trace, traces, key_fields=("trace_id",), sum_fields=("span_count",), min_fields=("status",),
              insert_fields=_TRACE_INSERT_ONLY)
    # What is left: spans following a decision of an earlier batch.
    by_count = {}
    for trace_id, count in per_trace.items():
        by_count.setdefault(count, []).append(trace_id)
    trace_rows = Trace.objects.using(connection.alias)
    for count, trace_ids in by_count.items():
        trace_rows.filter(trace_id__in=trace_ids).update(span_count=F("span_count") + count)
    if errors:
        trace_rows.filter(trace_id__in=errors).update(status="error")


#: This process's trace store writer; the module-level names below are its methods.
trace_store = TraceStore()
submit = trace_store.submit
submit_log = trace_store.submit_log
read_settings = trace_store.read_settings
flush = trace_store.flush
run_in_foreground = trace_store.run_in_foreground
reset = trace_store.reset
forget_decisions = trace_store.forget_decisions
failed_batches = trace_store.failed_batches
breaker_state = trace_store.breaker_state
count_dropped = trace_store.count_dropped
dropped = trace_store.dropped
reset_export = trace_store.reset_export
export_processor = trace_store.export_processor
writer_health = trace_store.writer_health
