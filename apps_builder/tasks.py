"""The platform's background work on Celery: app exports and imports asked for through the
API, and scheduled data query runs.

Exports and imports are ``BackgroundTask`` rows run by :func:`export_app` and
:func:`import_app`; each is enqueued by the request that created the row, whose trace the
worker's task span joins (telemetry instruments Celery's publish and run). Schedules are
run by beat → :func:`run_due_schedules` (every ``DISPATCH_INTERVAL_SECONDS``, registered
below, not in the project's ``CELERY_BEAT_SCHEDULE``) → one :func:`run_scheduled_query`
per due schedule, each a trace of its own → the data source's plugin, through
``services.run_query``.

Every task takes ids and has a time limit. Exports, imports and dispatches are idempotent:
a row is claimed by one conditional update, so a redelivered message finds it claimed and
does nothing; a redelivered scheduled run runs once more (one more run record).
"""

import logging
from datetime import timedelta
from time import perf_counter

from celery import current_app, shared_task
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError
from opentelemetry import context, trace

from . import bundles, services
from .models import App, BackgroundTask, QuerySchedule, ScheduledRun
from .serializers import unique_slug

logger = logging.getLogger(__name__)

DISPATCH_INTERVAL_SECONDS = 10.0
#: Schedules one dispatch enqueues at most (the most overdue first); the rest wait for the next.
DISPATCH_BATCH = 1000
#: What a caller reads when a task failed in an unexpected way (the details are logged).
INTERNAL_ERROR = "The task failed unexpectedly; try again later."
QUEUE_UNAVAILABLE = "The task queue is unavailable; try again later."


def enqueue(task, background_task: BackgroundTask) -> None:
    """Publishes ``task(background_task.id)``, with that id as the Celery task id too,
    once the current transaction commits (at once outside one), in the calling request's
    trace. When the broker refuses it, the task is marked failed (its status says so)."""
    task_id = str(background_task.pk)

    def publish():
        try:
            task.apply_async((task_id,), task_id=task_id)
        except OperationalError:
            logger.warning("The broker refused background task %s", task_id, exc_info=True)
            _finish(background_task, error=QUEUE_UNAVAILABLE)

    transaction.on_commit(publish)


def _claim(task_id) -> BackgroundTask | None:
    """The pending task, now marked running; None when it is gone or was claimed already."""
    claimed = BackgroundTask.objects.filter(pk=task_id, status=BackgroundTask.Status.PENDING).update(
        status=BackgroundTask.Status.RUNNING, started_at=timezone.now())
    return BackgroundTask.objects.get(pk=task_id) if claimed else None


def _finish(background_task, *, result=None, error=""):
    background_task.status = BackgroundTask.Status.FAILED if error else BackgroundTask.Status.SUCCEEDED
    background_task.result = result
    background_task.error = error
    background_task.finished_at = timezone.now()
    background_task.payload = {}  # an import's bundle is not kept once it ran
    background_task.save(update_fields=["status", "result", "error", "finished_at", "payload"])


def _run(task_id, work) -> str | None:
    """Claims the task and stores what ``work(background_task)`` returns as its result.
    A ``BundleRejected`` is a failure the caller reads; anything else is stored as an
    internal error and raised again, so Celery counts the task as failed."""
    background_task = _claim(task_id)
    if background_task is None:
        return None
    try:
        result = work(background_task)
    except bundles.BundleRejected as rejected:
        _finish(background_task, error=str(rejected))
    except Exception:
        _finish(background_task, error=INTERNAL_ERROR)
        raise
    else:
        _finish(background_task, result=result)
    return background_task.status


def _export(background_task):
    app = App.objects.filter(pk=background_task.app_id, organization_id=background_task.organization_id).first()
    if app is None:
        raise bundles.BundleRejected("The app no longer exists.")
    return bundles.build(app)


def _import(background_task):
    payload = background_task.payload
    slug = payload.get("slug")
    if slug and App.objects.filter(slug=slug).exists():
        raise bundles.BundleRejected(f"An app with the slug {slug!r} exists.")
    app = bundles.install(payload["bundle"], background_task.organization_id, payload["name"],
                          slug or unique_slug(payload["name"]), background_task.created_by_id)
    BackgroundTask.objects.filter(pk=background_task.pk).update(app=app)
    return {"app": app.slug}


@shared_task(name="apps_builder.export_app", time_limit=120, soft_time_limit=100, ignore_result=True)
def export_app(task_id: str) -> str | None:
    """Builds the bundle of the task's app into the task's result."""
    return _run(task_id, _export)


@shared_task(name="apps_builder.import_app", time_limit=120, soft_time_limit=100, ignore_result=True)
def import_app(task_id: str) -> str | None:
    """Installs the task's bundle as a new app of its organization; the result names its slug."""
    return _run(task_id, _import)


@shared_task(name="apps_builder.run_scheduled_query", time_limit=120, soft_time_limit=100, ignore_result=True)
def run_scheduled_query(schedule_id: int) -> str | None:
    """Runs the schedule's query once through its plugin and keeps the outcome as a
    ``ScheduledRun`` (the latest ``ScheduledRun.MAX_PER_SCHEDULE`` of the schedule). A
    failing data source is a run with the plugin's error; an unexpected exception is kept
    as an ``internal_error`` run, then raised so Celery counts the task as failed."""
    schedule = (QuerySchedule.objects.select_related("data_query__data_source", "data_query__app")
                .filter(pk=schedule_id).first())
    if schedule is None:
        return None  # deleted since it was dispatched
    span_context = trace.get_current_span().get_span_context()
    run = ScheduledRun(schedule=schedule, started_at=timezone.now(), status=ScheduledRun.Status.ERROR,
                       trace_id=f"{span_context.trace_id:032x}" if span_context.is_valid else "")
    started = perf_counter()
    try:
        outcome = services.run_query(schedule.data_query, schedule.parameters)
    except Exception:
        run.error_code, run.error_message = "internal_error", INTERNAL_ERROR
        _keep_run(run, perf_counter() - started)
        raise
    if outcome.ok:
        run.status = ScheduledRun.Status.OK
        run.row_count, run.result_bytes = outcome.data["row_count"], outcome.data["bytes"]
    else:
        run.error_code, run.error_message = outcome.error.code, outcome.error.message
    _keep_run(run, perf_counter() - started)
    return run.status


def _keep_run(run: ScheduledRun, seconds: float) -> None:
    """Stores the run and deletes the schedule's runs beyond the latest ``MAX_PER_SCHEDULE``."""
    run.duration_ms = seconds * 1000
    with transaction.atomic():
        run.save()
        QuerySchedule.objects.filter(pk=run.schedule_id).update(last_run_at=run.started_at)
        stale = list(ScheduledRun.objects.filter(schedule_id=run.schedule_id)
                     .values_list("pk", flat=True)[ScheduledRun.MAX_PER_SCHEDULE:])
        if stale:
            ScheduledRun.objects.filter(pk__in=stale).delete()


@shared_task(name="apps_builder.run_due_schedules", time_limit=60, soft_time_limit=50, ignore_result=True)
def run_due_schedules() -> int:
    """Enqueues one run of every due schedule and moves it to its next time (claimed by a
    conditional update, so two dispatchers never run a schedule twice); deletes finished
    background tasks older than ``BackgroundTask.RETENTION``. Returns the runs enqueued."""
    now = timezone.now()
    enqueued = 0
    due = (QuerySchedule.objects.filter(next_run_at__lte=now).order_by("next_run_at")
           .values_list("pk", "next_run_at", "interval_seconds"))
    for schedule_id, next_run_at, interval_seconds in due[:DISPATCH_BATCH]:
        if QuerySchedule.objects.filter(pk=schedule_id, next_run_at=next_run_at).update(
                next_run_at=now + timedelta(seconds=interval_seconds)):
            # Published outside this dispatcher's trace: each run is a trace of its own,
            # kept or dropped on its own outcome (a failed run always kept).
            detached = context.attach(context.Context())
            try:
                run_scheduled_query.delay(schedule_id)
            finally:
                context.detach(detached)
            enqueued += 1
    BackgroundTask.objects.filter(finished_at__lt=now - BackgroundTask.RETENTION).delete()
    return enqueued


current_app.add_periodic_task(DISPATCH_INTERVAL_SECONDS, run_due_schedules.s(), name="apps_builder-run-due-schedules")
