"""Celery task metrics from Celery's signals: executions by status, run time, queue wait
(from a publish timestamp put in the message headers), tasks running now. Prefork
children install tracing when they start (its threads start lazily after the fork); worker
processes flush metrics and spans at shutdown (prefork children leave through
``os._exit``, so atexit does not run there) and fold their multiprocess files into the
archive."""

import os
import time
from typing import Any

from celery import signals

from telemetry import tracing
from telemetry.core import guard, recorder
from telemetry.core.bus import emit
from telemetry.metrics import multiprocess

PUBLISHED_HEADER = "telemetry_published_at"
_started: dict[str | None, float] = {}


def _task_name(sender=None, task=None, headers=None):
    if task is not None:
        return task.name
    if headers and "task" in headers:
        return headers["task"]
    return getattr(sender, "name", None) or str(sender)


def on_publish(sender: Any = None, headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    with guard.guarded("celery_publish"):
        if headers is not None:
            headers[PUBLISHED_HEADER] = time.time()


def on_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    with guard.guarded("celery_prerun"):
        _started[task_id] = time.perf_counter()
        name = task.name
        emit("add", ("jobs", "tasks_active"), (name,), 1)
        published = getattr(task.request, PUBLISHED_HEADER, None)
        if published is None and isinstance(getattr(task.request, "headers", None), dict):
            published = task.request.headers.get(PUBLISHED_HEADER)
        if published:
            emit("observe", ("jobs", "task_queue_wait"), (name,), max(time.time() - float(published), 0.0))


def on_postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any) -> None:
    with guard.guarded("celery_postrun"):
        name = task.name
        started = _started.pop(task_id, None)
        emit("add", ("jobs", "tasks_active"), (name,), -1)
        if started is not None:
            emit("observe", ("jobs", "task_duration"), (name,), time.perf_counter() - started)
        emit("inc", ("jobs", "task_executions"), (name, (state or "unknown").lower()), 1)


def on_process_init(**kwargs: Any) -> None:
    with guard.guarded("celery_process_init"):
        tracing.setup()


def on_worker_shutdown(**kwargs: Any) -> None:
    with guard.guarded("celery_shutdown"):
        recorder.flush(sample=False)
        tracing.flush()


def on_process_shutdown(**kwargs: Any) -> None:
    on_worker_shutdown()
    with guard.guarded("celery_shutdown"):
        multiprocess.merge_dead_process(os.getpid())


def connect() -> None:
    signals.before_task_publish.connect(on_publish, dispatch_uid="telemetry.publish", weak=False)
    signals.task_prerun.connect(on_prerun, dispatch_uid="telemetry.prerun", weak=False)
    signals.task_postrun.connect(on_postrun, dispatch_uid="telemetry.postrun", weak=False)
    signals.worker_process_init.connect(on_process_init, dispatch_uid="telemetry.process_init", weak=False)
    signals.worker_process_shutdown.connect(on_process_shutdown, dispatch_uid="telemetry.shutdown", weak=False)
    signals.worker_shutdown.connect(on_worker_shutdown, dispatch_uid="telemetry.worker_shutdown", weak=False)
