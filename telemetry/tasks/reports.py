"""Celery tasks of query intelligence: the slow-query and optimization reports.

Arguments are plain values (a period length in hours, an ISO end time); rebuilding a
period replaces its report, so a retried or duplicated run is harmless. With
``QUERY_STATS_ENABLED`` off they build nothing and ask the database nothing.
"""

from datetime import datetime
from typing import Any

from celery import shared_task
from django.utils.dateparse import parse_datetime

from telemetry import conf
from telemetry.queries import reports
from telemetry.tasks.base import OwnTask

__all__ = ["build_optimization_report", "build_slow_query_report"]


def _end(end):
    return parse_datetime(end) if isinstance(end, str) else end


@shared_task(base=OwnTask, name="telemetry.build_slow_query_report",
             time_limit=300, soft_time_limit=240, ignore_result=False)
def build_slow_query_report(hours: float | None = None, end: str | datetime | None = None) -> dict[str, Any]:
    if not conf.get("QUERY_STATS_ENABLED"):
        return {"skipped": "QUERY_STATS_ENABLED is off"}
    report = reports.build_slow_query_report(hours, _end(end))
    return {"report_id": report.pk, "fingerprints": report.data["totals"]["fingerprints"]}


@shared_task(base=OwnTask, name="telemetry.build_optimization_report",
             time_limit=600, soft_time_limit=540, ignore_result=False)
def build_optimization_report(hours: float | None = None, end: str | datetime | None = None) -> dict[str, Any]:
    if not conf.get("QUERY_STATS_ENABLED"):  # no statistics to rank, no plans or indexes to look at
        return {"skipped": "QUERY_STATS_ENABLED is off"}
    report = reports.build_optimization_report(hours, _end(end))
    return {"report_id": report.pk, "suggestions": report.data["suggestions"]}
