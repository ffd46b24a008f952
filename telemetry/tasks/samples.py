"""Periodic telemetry tasks (beat schedule in the project's settings)."""

from typing import Any

from celery import current_app, shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.module_loading import import_string

from telemetry import conf
from telemetry.core import guard, labels, recorder
from telemetry.core.bus import emit
from telemetry.metrics import switch_on
from telemetry.tasks.base import OwnTask
from telemetry.usage import releases
from telemetry.usage import rollups as usage
from telemetry.usage.auth import SESSION_LOGIN_KEY, record_session_end


@shared_task(base=OwnTask, name="telemetry.sample_storage_usage",
             time_limit=120, soft_time_limit=100, ignore_result=True)
def sample_storage_usage() -> int:
    """Sets ``storage_usage_bytes`` from the project's provider (``STORAGE_USAGE_PROVIDER``,
    ``callable() -> [(type, organization_id, bytes), ...]``), never at scrape time, and
    the hour's ``storage_bytes`` of the usage rollups."""
    path = conf.get("STORAGE_USAGE_PROVIDER")
    if not path:
        return 0
    switch_on("storage")  # the host's provider is its report into the storage domain
    rows = list(import_string(path)())
    for storage_type, organization_id, size_bytes in rows:
        emit("set", ("business", "storage_usage"), (storage_type, labels.organization(organization_id)), size_bytes)
    with guard.guarded("usage:storage"):
        usage.write_storage(rows)
    recorder.flush()
    return len(rows)


@shared_task(base=OwnTask, name="telemetry.sample_queue_depth", time_limit=60, soft_time_limit=50, ignore_result=True)
def sample_queue_depth() -> dict[str, int]:
    """Sets ``<namespace>_queue_depth{queue}`` for the configured queues (bounded list)."""
    queues = conf.get("QUEUE_DEPTH_QUEUES") or [current_app.conf.task_default_queue]
    depths = {}
    with current_app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in queues[:50]:
            with guard.guarded("queue_depth"):
                depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
    for queue, depth in depths.items():
        emit("set", ("jobs", "queue_depth"), (queue,), depth)
    recorder.flush()
    return depths


@shared_task(base=OwnTask, name="telemetry.record_expired_sessions",
             time_limit=300, soft_time_limit=280, ignore_result=True)
def record_expired_sessions(batch_size: int = 500) -> int:
    """Observes the length of sessions that expired without a logout, then deletes them
    (what ``clearsessions`` does), in batches over the indexed ``expire_date``."""
    # Imported here: a project may run without django.contrib.sessions.
    from django.contrib.sessions.models import Session

    if "django.contrib.sessions" not in settings.INSTALLED_APPS:
        return 0
    now = timezone.now()
    recorded = 0
    user_model = get_user_model()
    while True:
        expired = list(Session.objects.filter(expire_date__lt=now).order_by("expire_date")[:batch_size])
        if not expired:
            break
        for session in expired:
            with guard.guarded("expired_sessions"):
                # Any: the user id may be absent, and a pk lookup of None matches no user.
                data: Any = session.get_decoded()
                login_at = data.get(SESSION_LOGIN_KEY)
                if login_at is not None:
                    user = user_model.objects.filter(pk=data.get("_auth_user_id")).first()
                    record_session_end(user, session.expire_date.timestamp() - float(login_at))
                    recorded += 1
        Session.objects.filter(pk__in=[session.pk for session in expired]).delete()
    recorder.flush()
    return recorded


@shared_task(base=OwnTask, name="telemetry.compare_releases", time_limit=300, soft_time_limit=280, ignore_result=True)
def compare_releases() -> dict[str, Any]:
    """Release comparison: drives the ``<namespace>_benchmark_*`` metrics."""
    summary = releases.compare()
    recorder.flush()
    return summary

