"""A Celery task run by a real worker over Redis."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Variables that would take a process off the embedded broker and database.
EMBEDDED_OVERRIDES = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DATABASE_URL")


@pytest.fixture
def redis_worker(redis_url, tmp_path):
    """A worker on a queue of its own: other test runs may share the Redis database."""
    queue = f"celery-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url,
           "VAR_DIR": str(tmp_path), "TEST_QUEUE": queue}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue,
         "--concurrency=1", "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    yield env
    worker.terminate()
    worker.wait(timeout=20)


def test_task_runs_on_a_real_worker_over_redis(redis_worker, redis_url):
    from celery import Celery

    client = Celery("config", broker=redis_url, backend=redis_url)
    result = client.send_task("config.celery.ping", queue=redis_worker["TEST_QUEUE"])
    assert result.get(timeout=60)["pong"] is True


def test_worker_and_beat_start_on_the_embedded_file_broker(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_OVERRIDES}
    env["VAR_DIR"] = str(tmp_path)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        code = (
            "import config.celery as c, json; r=c.ping.delay(); print(json.dumps(r.get(timeout=60)))"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=90)
        assert '"pong": true' in out.stdout, out.stderr
        deadline = time.monotonic() + 30
        while not (tmp_path / "celerybeat-schedule").exists() and not list(tmp_path.glob("celerybeat-schedule*")):
            assert time.monotonic() < deadline, "beat did not start"
            assert beat.poll() is None, beat.stdout.read()
            time.sleep(0.2)
    finally:
        for proc in (worker, beat):
            proc.terminate()
            proc.wait(timeout=20)


def test_a_broken_message_on_the_embedded_broker_does_not_stop_the_worker(tmp_path):
    """A message file that is not JSON (kombu's own filesystem transport died on one read
    half-written) is skipped; the worker goes on with the next message."""
    env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_OVERRIDES}
    env["VAR_DIR"] = str(tmp_path)
    queue = tmp_path / "celery" / "broker" / "queue"
    queue.mkdir(parents=True)
    (queue / "0_broken.celery.msg").write_text('{"body": "half-writ')
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        code = "import config.celery as c, json; r=c.ping.delay(); print(json.dumps(r.get(timeout=60)))"
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=90)
        assert '"pong": true' in out.stdout, out.stderr
        assert worker.poll() is None, worker.stdout.read()
        assert not list(queue.glob(".partial-*")), "a message was left half-written"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
