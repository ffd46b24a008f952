"""Everything telemetry stores is bounded: query statistics, findings, plans, reports,
release statistics and user activity by age and by count (``telemetry.purge_stored``),
log records by count (``telemetry.purge_traces``)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from telemetry.models import (
    LogEntry,
    QueryFinding,
    QueryPlan,
    QueryReport,
    QueryStat,
    QuerySuggestion,
    ReleaseRouteStats,
    RouteStat,
    UserActivity,
)
from telemetry.tasks import purge_stored, purge_traces

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])


def _ago(days, hours=0):
    return timezone.now() - timedelta(days=days, hours=hours)


def _stat(index, age_days):
    hour = _ago(age_days).replace(minute=0, second=0, microsecond=0)
    return QueryStat.objects.using("telemetry").create(
        fingerprint_id=f"fp{index}", alias="default", hour=hour, fingerprint="SELECT 1", first_seen=hour,
        last_seen=hour)


def _finding(index, age_days):
    return QueryFinding.objects.using("telemetry").create(
        code="slow", fingerprint_id=f"fp{index}", fingerprint="SELECT 1", alias="default",
        created_at=_ago(age_days))


def _report(index, age_days):
    end = _ago(age_days)
    report = QueryReport.objects.using("telemetry").create(
        kind="optimization", period_start=end - timedelta(hours=24), period_end=end, built_at=end)
    QuerySuggestion.objects.using("telemetry").create(report=report, rank=1, code="missing_index",
                                                      source="plan")
    return report


def test_each_table_is_trimmed_by_age(settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "QUERY_STATS_RETENTION_DAYS": 10, "QUERY_FINDINGS_RETENTION_DAYS": 10,
                          "QUERY_PLANS_RETENTION_DAYS": 10, "QUERY_REPORTS_RETENTION_DAYS": 10,
                          "RELEASE_STATS_RETENTION_DAYS": 10, "USER_ACTIVITY_RETENTION_DAYS": 1,
                          "ROUTE_STATS_RETENTION_DAYS": 10}
    kept = {"stat": _stat(1, 9).pk, "finding": _finding(1, 9).pk, "report": _report(1, 9).pk}
    _stat(2, 11), _finding(2, 11), _report(2, 11)
    QueryPlan.objects.using("telemetry").create(fingerprint_id="new", alias="default", fingerprint="x",
                                                captured_at=_ago(9))
    QueryPlan.objects.using("telemetry").create(fingerprint_id="old", alias="default", fingerprint="x",
                                                captured_at=_ago(11))
    for release, age in (("1.0", 11), ("2.0", 9)):
        ReleaseRouteStats.objects.using("telemetry").create(release=release, route="/x", hour=_ago(age))
        RouteStat.objects.using("telemetry").create(route=f"/{release}", hour=_ago(age))
    UserActivity.objects.using("telemetry").create(user_id=1, last_seen=_ago(0, hours=1))
    UserActivity.objects.using("telemetry").create(user_id=2, last_seen=_ago(2))

    deleted = purge_stored(batch_size=1)

    assert deleted == {"querystat": 1, "queryfinding": 1, "queryplan": 1, "queryreport": 1,
                       "releaseroutestats": 1, "routestat": 1, "useractivity": 1}
    assert list(QueryStat.objects.using("telemetry").values_list("pk", flat=True)) == [kept["stat"]]
    assert list(QueryFinding.objects.using("telemetry").values_list("pk", flat=True)) == [kept["finding"]]
    assert list(QueryReport.objects.using("telemetry").values_list("pk", flat=True)) == [kept["report"]]
    assert list(QuerySuggestion.objects.using("telemetry").values_list("report_id", flat=True)) == [kept["report"]]
    assert list(QueryPlan.objects.using("telemetry").values_list("fingerprint_id", flat=True)) == ["new"]
    assert list(ReleaseRouteStats.objects.using("telemetry").values_list("release", flat=True)) == ["2.0"]
    assert list(UserActivity.objects.using("telemetry").values_list("user_id", flat=True)) == [1]
    assert list(RouteStat.objects.using("telemetry").values_list("route", flat=True)) == ["/2.0"]


def test_the_oldest_rows_beyond_the_count_are_deleted(settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "QUERY_FINDINGS_MAX_ROWS": 3}
    findings = [_finding(index, age_days=index) for index in range(7)]  # index 0 is the newest

    assert purge_stored(batch_size=2)["queryfinding"] == 4

    remaining = set(QueryFinding.objects.using("telemetry").values_list("pk", flat=True))
    assert remaining == {finding.pk for finding in findings[:3]}


def test_log_records_are_bounded_by_count(settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "LOG_RETENTION_MAX_ROWS": 5}
    LogEntry.objects.using("telemetry").bulk_create([
        LogEntry(time=_ago(0, hours=index), level="ERROR", level_number=40, logger="flood", message=f"m{index}")
        for index in range(12)
    ])
    purge_traces(batch_size=4)
    assert sorted(LogEntry.objects.using("telemetry").values_list("message", flat=True)) == [
        f"m{index}" for index in range(5)]
