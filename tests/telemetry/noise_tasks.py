"""A task of the host's (not telemetry's) that runs the statements of telemetry's
``sample_storage_usage``: the worker in ``test_self_noise`` imports it (``--include``)."""

from celery import shared_task
from django.utils.module_loading import import_string

from telemetry import conf


@shared_task(name="tests.noise.storage_usage", ignore_result=False)
def storage_usage_as_a_host_task() -> int:
    return len(list(import_string(conf.get("STORAGE_USAGE_PROVIDER"))()))
