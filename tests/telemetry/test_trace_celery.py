"""A task enqueued by a request joins the request's trace in a real Celery worker over
Redis, and the worker's spans reach the store from the worker process."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.http import JsonResponse
from django.urls import path

from telemetry.models import Span, Trace
from tests.live import database_url

from .trace_fixtures import TRACE_DATABASES, flush, trace_settings  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
_broker = {}


def enqueue(request):
    from celery import Celery

    client = Celery("config", broker=_broker["url"], backend=_broker["url"])
    result = client.send_task("config.celery.ping", queue=_broker["queue"])
    return JsonResponse({"task_id": result.id})


urlpatterns = [path("enqueue", enqueue)]


@pytest.fixture
def traced_worker(redis_url, tmp_path):
    """A worker on its own queue: other test runs may share the Redis database."""
    queue = f"trace-celery-{uuid.uuid4().hex[:8]}"
    env = {key: value for key, value in os.environ.items() if key != "TEST_DB_SUFFIX"}
    env.update(CELERY_BROKER_URL=redis_url, CELERY_RESULT_BACKEND=redis_url, VAR_DIR=str(tmp_path),
               DATABASE_URL=database_url("default"), TELEMETRY_DATABASE_URL=database_url("telemetry"),
               TELEMETRY_TRACE_SAMPLE_RATE="1.0")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--concurrency=1",
         "-Q", queue, "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    _broker.update(url=redis_url, queue=queue)
    yield worker
    worker.terminate()
    worker.wait(timeout=20)


@pytest.mark.urls(__name__)
@pytest.mark.django_db(databases=TRACE_DATABASES, transaction=True)
def test_task_enqueued_by_a_request_joins_its_trace_in_the_worker(traced_worker, trace_settings, client):
    assert client.get("/enqueue").status_code == 200
    flush()
    trace = Trace.objects.get()
    spans = {span.name: span for span in Span.objects.filter(trace_id=trace.trace_id)}
    publish = spans["apply_async/config.celery.ping"]
    assert publish.parent_span_id == next(s for s in spans.values() if s.kind == "server").span_id
    deadline = time.monotonic() + 150  # a loaded machine starts a worker slowly
    while not Span.objects.filter(trace_id=trace.trace_id, name="run/config.celery.ping").exists():
        assert traced_worker.poll() is None, traced_worker.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the worker's task span never reached the store"
        time.sleep(0.3)
    task_span = Span.objects.get(trace_id=trace.trace_id, name="run/config.celery.ping")
    assert task_span.parent_span_id == publish.span_id and task_span.kind == "consumer"
    trace.refresh_from_db()
    assert trace.span_count == Span.objects.filter(trace_id=trace.trace_id).count()
