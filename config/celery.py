"""Celery application, as in Celery's Django example."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(bind=True, ignore_result=False)
def ping(self):
    """A trivial task for health checks and tests: proves a worker consumes the broker."""
    return {"pong": True, "hostname": self.request.hostname}
