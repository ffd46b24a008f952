"""Celery task metrics from Celery's signals: executions by status, run time, queue wait
(from a publish timestamp put in the message headers), tasks running now. Worker
processes flush at shutdown and fold their multiprocess files into the archive."""

import os
import time

from celery import signals

from telemetry.core import guard, recorder
from telemetry.metrics import multiprocess
from telemetry.api import _emit

PUBLISHED_HEADER = "telemetry_published_at"
_started = {}


def _task_name(sender=None, task=None, headers=None):
    if task is not None:
        return task.name
    if headers and "task" in headers:
        return headers["task"]
    return getattr(sender, "name", None) or str(sender)


def on_publish(sender=None, headers=None, **kwargs):
    with guard.guarded("celery_publish"):
        if headers is not None:
            headers[PUBLISHED_HEADER] = time.time()


def on_prerun(task_id=None, task=None, **kwargs):
    with guard.guarded("celery_prerun"):
        _started[task_id] = time.perf_counter()
        name = task.name
        _emit("add", ("jobs", "tasks_active"), (name,), 1)
        published = getattr(task.request, PUBLISHED_HEADER, None)
        if published is None and isinstance(getattr(task.request, "headers", None), dict):
            published = task.request.headers.get(PUBLISHED_HEADER)
        if published:
            _emit("observe", ("jobs", "task_queue_wait"), (name,), max(time.time() - float(published), 0.0))


def on_postrun(task_id=None, task=None, state=None, **kwargs):
    with guard.guarded("celery_postrun"):
        name = task.name
        started = _started.pop(task_id, None)
        _emit("add", ("jobs", "tasks_active"), (name,), -1)
        if started is not None:
            _emit("observe", ("jobs", "task_duration"), (name,), time.perf_counter() - started)
        _emit("inc", ("jobs", "task_executions"), (name, (state or "unknown").lower()), 1)


def on_process_shutdown(**kwargs):
    with guard.guarded("celery_shutdown"):
        recorder.flush(sample=False)
        multiprocess.merge_dead_process(os.getpid())


def connect():
    signals.before_task_publish.connect(on_publish, dispatch_uid="telemetry.publish", weak=False)
    signals.task_prerun.connect(on_prerun, dispatch_uid="telemetry.prerun", weak=False)
    signals.task_postrun.connect(on_postrun, dispatch_uid="telemetry.postrun", weak=False)
    signals.worker_process_shutdown.connect(on_process_shutdown, dispatch_uid="telemetry.shutdown", weak=False)
