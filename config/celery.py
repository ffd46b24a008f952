"""Celery application, as in Celery's Django example."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_process_init.connect
def _start_telemetry_in_child(**kwargs):
    """Prefork children: tracing is installed once per process (idempotent; its threads
    start lazily after the fork)."""
    from telemetry import tracing

    tracing.setup()


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _flush_telemetry(**kwargs):
    """Prefork children leave through os._exit: atexit does not run there."""
    from telemetry import api

    api.flush()


@app.task(bind=True, ignore_result=False)
def ping(self):
    """A trivial task for health checks and tests: proves a worker consumes the broker."""
    return {"pong": True, "hostname": self.request.hostname}
