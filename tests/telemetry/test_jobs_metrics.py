"""Celery task, queue, beat, throttle and periodic-sample families."""

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery.beat import ScheduleEntry
from django.urls import path
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView

from telemetry.http.throttling import ScopedRateThrottle
from telemetry.tasks.beat import TelemetryScheduler, missed_runs
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]


class Limited(APIView):
    permission_classes = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "limited"

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path("limited", Limited.as_view())]


def scraped(path_dir, name, labels):
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path_dir))
    return registry.get_sample_value(name, labels) or 0.0


def test_task_metrics_from_a_real_worker_over_redis(redis_url, tmp_path):
    queue = f"jobs-test-{uuid.uuid4().hex[:8]}"  # other test runs may share the Redis database
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {**os.environ, "CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url,
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "VAR_DIR": str(tmp_path)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue,
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        from celery import Celery

        client = Celery("config", broker=redis_url, backend=redis_url)
        from telemetry.tasks import receivers as jobs

        jobs.connect()  # the publishing side stamps the enqueue time
        ok = [client.send_task("config.celery.ping", queue=queue) for _ in range(3)]
        bad = client.send_task("config.celery.ping", args=("unexpected",), queue=queue)
        for result in ok:
            assert result.get(timeout=60)["pong"] is True
        with pytest.raises(TypeError):
            bad.get(timeout=60, propagate=True)
        success = {"task": "config.celery.ping", "status": "success"}
        failure = {"task": "config.celery.ping", "status": "failure"}
        deadline = time.monotonic() + 20
        while scraped(metrics_dir, "tooljet_task_executions_total", success) < 3:
            assert time.monotonic() < deadline, "worker did not flush its task metrics"
            time.sleep(0.3)
        assert scraped(metrics_dir, "tooljet_task_executions_total", success) == 3
        assert scraped(metrics_dir, "tooljet_task_executions_total", failure) == 1
        assert scraped(metrics_dir, "tooljet_task_duration_seconds_count", {"task": "config.celery.ping"}) == 4
        assert scraped(metrics_dir, "tooljet_task_queue_wait_seconds_count", {"task": "config.celery.ping"}) == 4
        assert scraped(metrics_dir, "tooljet_tasks_active", {"task": "config.celery.ping"}) == 0
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_queue_depth_is_sampled_from_the_broker(redis_url, samples, settings):
    from celery import current_app
    from kombu import Connection

    queue = f"depth-{os.getpid()}"
    previous = current_app.conf.broker_url
    current_app.conf.broker_url = redis_url
    try:
        with Connection(redis_url) as connection:
            connection.default_channel.client.delete(queue)
            connection.default_channel.client.rpush(queue, *[b"{}"] * 3)
        settings.TELEMETRY = {**settings.TELEMETRY, "QUEUE_DEPTH_QUEUES": [queue]}
        from telemetry.tasks import sample_queue_depth

        assert sample_queue_depth() == {queue: 3}
        assert samples.value("tooljet_queue_depth", {"queue": queue}) == 3
    finally:
        current_app.conf.broker_url = previous
        with Connection(redis_url) as connection:
            connection.default_channel.client.delete(queue)


def test_missed_beat_runs_are_counted(redis_url, tmp_path, samples):
    from celery import Celery
    from celery.schedules import schedule

    app = Celery("beat-test", broker=redis_url)
    scheduler = TelemetryScheduler(app=app, schedule_filename=str(tmp_path / "beat"), lazy=True)
    entry = ScheduleEntry(name="every-minute", task="config.celery.ping", schedule=schedule(timedelta(minutes=1)),
                          last_run_at=app.now() - timedelta(minutes=10, seconds=5), app=app)
    on_time = ScheduleEntry(name="on-time", task="config.celery.ping", schedule=schedule(timedelta(minutes=1)),
                            last_run_at=app.now() - timedelta(minutes=1, seconds=5), app=app)
    assert missed_runs(entry, app.now()) == 9
    assert missed_runs(on_time, app.now()) == 0
    delta = samples.snapshot("tooljet_beat_missed_runs_total", {"entry": "every-minute"})
    on_time_delta = samples.snapshot("tooljet_beat_missed_runs_total", {"entry": "on-time"})
    scheduler.apply_entry(entry)
    scheduler.apply_entry(on_time)
    assert delta() == 9
    assert on_time_delta() == 0


def test_a_run_beat_cannot_send_while_the_broker_is_down_is_missed(tmp_path, samples):
    from celery import Celery
    from celery.beat import ScheduleEntry
    from celery.schedules import schedule

    app = Celery("beat-test", broker=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    app.conf.broker_connection_retry = False
    app.conf.broker_connection_max_retries = 0
    app.conf.broker_transport_options = {"max_retries": 0}
    scheduler = TelemetryScheduler(app=app, schedule_filename=str(tmp_path / "beat"), lazy=True)
    entry = ScheduleEntry(name="broker-down", task="config.celery.ping", schedule=schedule(timedelta(minutes=1)),
                          last_run_at=app.now() - timedelta(minutes=1, seconds=1), app=app)
    missed = samples.snapshot("tooljet_beat_missed_runs_total", {"entry": "broker-down"})
    scheduler.apply_entry(entry)  # beat logs the failure and goes on
    assert missed() == 1


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_throttle_decisions_are_counted(client, samples, settings):
    from django.core.cache import cache

    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"limited": "2/min", "anon": None, "user": None}}
    from rest_framework.settings import api_settings

    api_settings.reload()
    Limited.throttle_classes = [ScopedRateThrottle]
    ScopedRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    requests = samples.snapshot("tooljet_rate_limit_requests_total", {"endpoint": "/limited", "authenticated": "false"})
    allowed = samples.snapshot("tooljet_rate_limit_allowed_total", {"scope": "limited"})
    rejected = samples.snapshot("tooljet_rate_limit_rejected_total", {"scope": "limited"})
    statuses = [client.get("/limited").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert (requests(), allowed(), rejected()) == (3, 2, 1)


@pytest.mark.django_db
def test_storage_usage_is_computed_by_the_periodic_task(samples, org):
    from apps_builder.models import App
    from telemetry.tasks import sample_storage_usage

    App.objects.create(organization=org, name="a", slug="a", definition={"pages": ["x" * 1000]})
    assert sample_storage_usage() >= 1
    first = samples.value("storage_usage_bytes", {"type": "app_definitions", "organization_id": str(org.pk)})
    assert first > 1000
    App.objects.create(organization=org, name="b", slug="b", definition={"pages": ["y" * 500]})
    sample_storage_usage()
    second = samples.value("storage_usage_bytes", {"type": "app_definitions", "organization_id": str(org.pk)})
    assert second - first > 500


@pytest.mark.django_db
def test_sessions_that_expire_without_logout_are_measured_and_removed(samples, django_user_model):
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    from telemetry.tasks import record_expired_sessions
    from telemetry.usage.auth import SESSION_LOGIN_KEY

    user = django_user_model.objects.create_user("sessioned", password="x" * 12)
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store[SESSION_LOGIN_KEY] = time.time() - 3600
    store.create()
    Session.objects.filter(pk=store.session_key).update(expire_date=timezone.now() - timedelta(seconds=1))
    delta = samples.snapshot("user_session_duration_seconds_count", {"organization_id": ""})
    assert record_expired_sessions() == 1
    assert delta() == 1
    assert not Session.objects.filter(pk=store.session_key).exists()
