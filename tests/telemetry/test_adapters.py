"""The third-party internals telemetry relies on still behave as its adapters assume.

Telemetry is fail-open: were an upgrade of prometheus-client or the OpenTelemetry SDK to
rename a private it uses, requests would go on and metrics or spans would be lost
silently. These tests are where such an upgrade fails instead: each adapter's
``verify()``, the same internals driven end to end with real objects (histograms read
back through the exposition, worker processes writing a multiprocess directory, spans
from an SDK tracer provider), and a simulated upgrade showing ``verify()`` does fail.
This module alone, besides the adapters, names the libraries' privates: to simulate it.
"""

import bisect
import math
import os
import random
import re
import subprocess
import sys
import threading

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, SpanProcessor, TracerProvider
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.openmetrics.exposition import generate_latest

from telemetry.adapters import IncompatibleLibrary
from telemetry.adapters import opentelemetry as otel_adapter
from telemetry.adapters import prometheus as prometheus_adapter
from telemetry.metrics.base import DURATION_BUCKETS
from telemetry.metrics.multiprocess import merge_dead_process


def test_prometheus_client_internals_are_as_the_adapter_relies_on():
    prometheus_adapter.verify()


def test_opentelemetry_internals_are_as_the_adapter_relies_on():
    otel_adapter.verify()


# ---------------------------------------------------------------------------- prometheus-client


def _exposition(registry):
    """OpenMetrics text without what differs between two identical runs: creation times
    and exemplar timestamps."""
    text = generate_latest(registry).decode()
    text = "\n".join(line for line in text.splitlines() if "_created" not in line)
    return re.sub(r"(# \{[^}]*\} \S+) \S+$", r"\1", text, flags=re.MULTILINE)


def test_bucket_counts_added_per_drain_expose_what_observing_each_value_does():
    """The flusher adds one drain's observations per bucket; Prometheus must read the same
    buckets, count, sum and exemplar as if each value had been observed."""
    generator = random.Random(7)
    values = [generator.choice(DURATION_BUCKETS) for _ in range(50)] + [generator.expovariate(10) for _ in range(500)]
    values.append(60.0)  # past the last bound: the +Inf bucket
    exemplar = {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
    observed_registry, added_registry = CollectorRegistry(), CollectorRegistry()
    observed = Histogram("adapter_duration_seconds", "Duration.", ["route"], buckets=DURATION_BUCKETS,
                         registry=observed_registry)
    added = Histogram("adapter_duration_seconds", "Duration.", ["route"], buckets=DURATION_BUCKETS,
                      registry=added_registry)

    bounds = prometheus_adapter.upper_bounds(added)
    assert bounds == [*DURATION_BUCKETS, math.inf]
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
        observed.labels("/apps/").observe(value, exemplar if value == values[-2] else None)
    child = added.labels("/apps/")
    prometheus_adapter.add_observations(child, counts, sum(values))
    prometheus_adapter.set_bucket_exemplar(child, bisect.bisect_left(bounds, values[-2]), exemplar, values[-2])

    assert _exposition(added_registry) == _exposition(observed_registry)
    assert f'adapter_duration_seconds_count{{route="/apps/"}} {len(values)}.0' in _exposition(added_registry)
    assert 'trace_id="4bf92f3577b34da6a3ce929d0e0e4736"' in _exposition(added_registry)


WORKER = r"""
import os, sys
from prometheus_client import Counter, Gauge, Histogram

jobs = Counter("adapter_jobs", "Jobs run.", ["queue"])
seconds = Histogram("adapter_job_seconds", "Job durations.", ["queue"], buckets=(0.1, 1.0))
busy = Gauge("adapter_workers_busy", "Busy workers.", multiprocess_mode="livesum")
peak = Gauge("adapter_peak_jobs", "Most jobs run by one worker.", multiprocess_mode="max")
for index in range(int(sys.argv[1])):
    jobs.labels("default").inc()
    seconds.labels("default").observe(0.05 if index % 2 else 0.5)
busy.set(1)
peak.set(int(sys.argv[1]))
print(os.getpid())
"""


def _run_worker(directory, jobs):
    """A process writing its metrics in ``directory`` as a worker does; it has exited on return."""
    result = subprocess.run([sys.executable, "-c", WORKER, str(jobs)], check=True, capture_output=True, text=True,
                            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)})
    return int(result.stdout)


def _collected(directory):
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect() for sample in family.samples}


def _counts(collected):
    return {key: value for key, value in collected.items() if key[0].startswith(("adapter_jobs_", "adapter_job_"))}


def test_dead_workers_files_fold_into_the_archive_without_losing_or_doubling_a_count(tmp_path):
    first, second = _run_worker(tmp_path, 3), _run_worker(tmp_path, 4)
    before = _collected(tmp_path)
    assert before[("adapter_jobs_total", (("queue", "default"),))] == 7
    assert before[("adapter_job_seconds_bucket", (("le", "0.1"), ("queue", "default")))] == 3

    merge_dead_process(first, str(tmp_path))
    assert not list(tmp_path.glob(f"*_{first}.db"))
    assert _counts(_collected(tmp_path)) == _counts(before)

    merge_dead_process(second, str(tmp_path))
    third = _run_worker(tmp_path, 1)  # a worker alive beside the archive
    after = _collected(tmp_path)
    assert sorted(path.name for path in tmp_path.glob("*.db")) == sorted(
        ["counter_archive.db", "histogram_archive.db", f"counter_{third}.db", f"histogram_{third}.db",
         f"gauge_livesum_{third}.db", f"gauge_max_{third}.db"])
    assert after[("adapter_jobs_total", (("queue", "default"),))] == 8
    assert after[("adapter_job_seconds_count", (("queue", "default"),))] == 8
    assert after[("adapter_job_seconds_sum", (("queue", "default"),))] == pytest.approx(3 * 0.05 + 5 * 0.5)
    # The dead workers' gauges are gone, whatever their mode: only the live worker's remain.
    assert after[("adapter_workers_busy", ())] == 1
    assert after[("adapter_peak_jobs", ())] == 1


# ---------------------------------------------------------------------------- OpenTelemetry


class _Finished(SpanProcessor):
    def __init__(self):
        self.spans = []

    def on_end(self, span):
        self.spans.append(span)


@pytest.fixture
def sdk_tracer():
    """A tracer of a provider of its own (the global one stays as it is) and its finished spans."""
    finished = _Finished()
    provider = TracerProvider(resource=Resource.create({"service.name": "adapter-test"}), shutdown_on_exit=False)
    provider.add_span_processor(finished)
    yield provider.get_tracer("adapter-test"), finished.spans
    provider.shutdown()


def _current_span():
    return otel_adapter.current_context_var.get().get(otel_adapter.SPAN_KEY)


def test_the_current_span_read_through_the_adapter_is_the_sdks_current_span(sdk_tracer):
    tracer, _ = sdk_tracer
    assert _current_span() is None
    in_thread = []
    with tracer.start_as_current_span("parent") as parent:
        assert _current_span() is parent is trace_api.get_current_span()
        with tracer.start_as_current_span("child") as child:
            assert _current_span() is child
        assert _current_span() is parent
        # A new thread starts with an empty context, as the public API says.
        thread = threading.Thread(target=lambda: in_thread.append(_current_span()))
        thread.start()
        thread.join()
    assert in_thread == [None]
    assert _current_span() is None


def test_a_finished_sdk_span_is_read_and_rewritten_through_the_adapter(sdk_tracer):
    tracer, finished = sdk_tracer
    with tracer.start_as_current_span("GET /apps/", kind=trace_api.SpanKind.SERVER) as root:
        with tracer.start_as_current_span("postgresql.query", kind=trace_api.SpanKind.CLIENT,
                                          attributes={"db.statement": "SELECT 1 WHERE id = 7"}) as query:
            query.record_exception(ValueError("row 7 is invalid"))
            query.set_status(Status(StatusCode.ERROR, "ValueError: row 7 is invalid"))
    span, root_span = finished
    name, context, parent, kind, start, end, attributes, events, status, resource = otel_adapter.span_fields(span)
    assert (name, context, parent, kind) == ("postgresql.query", query.get_span_context(),
                                             root.get_span_context(), trace_api.SpanKind.CLIENT)
    assert (start, end) == (span.start_time, span.end_time) and root_span.start_time <= start <= end
    assert dict(attributes) == {"db.statement": "SELECT 1 WHERE id = 7"}
    assert [event.name for event in events] == ["exception"]
    assert events[0].attributes["exception.message"] == "row 7 is invalid"
    assert (status.status_code, status.description) == (StatusCode.ERROR, "ValueError: row 7 is invalid")
    assert resource.attributes["service.name"] == "adapter-test"

    safe_event = Event("exception", {"exception.type": "ValueError"}, events[0].timestamp)
    otel_adapter.rewrite_span(span, attributes={"db.statement": "SELECT ? WHERE id = ?"}, events=(safe_event,),
                              status=Status(StatusCode.ERROR, "ValueError"))
    assert dict(span.attributes) == {"db.statement": "SELECT ? WHERE id = ?"}
    assert span.events == (safe_event,) and span.status.description == "ValueError"
    assert dict(query.attributes) == {"db.statement": "SELECT 1 WHERE id = 7"}  # the live span is untouched


# ---------------------------------------------------------------------------- a simulated upgrade


def test_verify_fails_loudly_when_prometheus_client_renames_an_internal(monkeypatch):
    prepare_buckets = Histogram._prepare_buckets

    def renamed(self, buckets):  # as if a release kept the bounds under another name
        prepare_buckets(self, buckets)
        self._bounds = self.__dict__.pop("_upper_bounds")

    monkeypatch.setattr(Histogram, "_prepare_buckets", renamed)
    with pytest.raises(IncompatibleLibrary, match=r"prometheus-client 0\.26\.0 \(adapter checked with .*_upper_bounds"):
        prometheus_adapter.verify()


def test_verify_fails_loudly_when_opentelemetry_moves_the_current_context(monkeypatch):
    # As if a release made its runtime context another way: the variable read per query
    # would never see a current span again.
    monkeypatch.setattr(otel_context, "_RUNTIME_CONTEXT", ContextVarsRuntimeContext())
    with pytest.raises(IncompatibleLibrary, match=r"opentelemetry-sdk .*_current_context"):
        otel_adapter.verify()
