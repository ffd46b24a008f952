"""Runtime detectors and per-fingerprint statistics through real views on PostgreSQL."""

from datetime import datetime, timezone

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.http import JsonResponse
from django.urls import path
from prometheus_client import REGISTRY

from telemetry import api
from telemetry.models import QueryFinding, QueryStat
from telemetry.queries import stats as querystats
from telemetry.queries.sql import analyze

pytestmark = [pytest.mark.django_db(databases=["default", "telemetry"]), pytest.mark.urls(__name__)]


def n_plus_one(request):
    names = []
    for group in Group.objects.order_by("id"):
        names.append([permission.codename for permission in group.permissions.all()])
    return JsonResponse({"groups": names})


def prefetched(request):
    groups = Group.objects.order_by("id").prefetch_related("permissions")
    return JsonResponse({"groups": [[p.codename for p in group.permissions.all()] for group in groups]})


def duplicated(request):
    first = Group.objects.filter(name="g1").count()
    second = Group.objects.filter(name="g1").count()
    return JsonResponse({"counts": [first, second]})


def many_rows(request):
    return JsonResponse({"count": len(list(Permission.objects.all()))})


def slow(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [0.25])
    return JsonResponse({})


urlpatterns = [
    path("groups/n-plus-one", n_plus_one),
    path("groups/prefetched", prefetched),
    path("groups/duplicated", duplicated),
    path("permissions", many_rows),
    path("slow", slow),
]


@pytest.fixture
def groups():
    permissions = list(Permission.objects.all()[:3])
    for index in range(8):
        group = Group.objects.create(name=f"g{index}")
        group.permissions.set(permissions)
    QueryFinding.objects.using("telemetry").all().delete()


def findings(code):
    api.flush(sample=True)
    return list(QueryFinding.objects.using("telemetry").filter(code=code))


def test_n_plus_one_is_reported_with_its_call_site(client, groups):
    client.get("/groups/n-plus-one")
    found = findings("n_plus_one")
    assert len(found) == 1
    assert found[0].repetitions == 8
    assert found[0].route == "/groups/n-plus-one"
    assert found[0].call_site.startswith("tests/telemetry/test_query_detectors.py:")
    assert found[0].call_site.endswith("in n_plus_one")
    assert "auth_group_permissions" in found[0].fingerprint
    assert "%s" not in found[0].fingerprint


def test_the_prefetched_version_is_not_an_n_plus_one(client, groups):
    client.get("/groups/prefetched")
    assert findings("n_plus_one") == []
    assert findings("duplicate_query") == []


def test_the_same_statement_with_the_same_parameters_is_a_duplicate(client, groups):
    client.get("/groups/duplicated")
    found = findings("duplicate_query")
    assert [finding.repetitions for finding in found] == [2]
    assert findings("n_plus_one") == []


def test_select_without_limit_returning_many_rows(client, settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "ADD_LIMIT_ROWS": 10}
    QueryFinding.objects.using("telemetry").all().delete()
    client.get("/permissions")
    found = findings("add_limit_clause")
    assert len(found) == 1 and found[0].rows > 10


def test_slow_statements_are_sampled_without_parameter_values(client):
    QueryFinding.objects.using("telemetry").all().delete()
    client.get("/slow")
    found = findings("slow")
    assert len(found) == 1
    assert found[0].duration_ms >= 250
    assert "0.25" not in found[0].fingerprint
    assert found[0].call_site.endswith("in slow")


def test_statistics_are_exact_per_fingerprint(client, groups):
    QueryStat.objects.using("telemetry").all().delete()
    for _ in range(3):
        client.get("/groups/n-plus-one")
    api.flush(sample=True)
    stat = QueryStat.objects.using("telemetry").get(fingerprint__contains='"auth_permission"."name"',
                                                    fingerprint__icontains="join \"auth_group_permissions\"")
    assert stat.calls == 24
    assert stat.rows == 24 * 3
    assert stat.min_ms <= stat.mean_ms <= stat.max_ms
    assert sum(getattr(stat, field) for field in QueryStat.bucket_fields()) == 24


def test_statistics_and_findings_are_bounded_and_drops_are_counted():
    class Batch:
        hour = now = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)

    def dropped(table):
        return REGISTRY.get_sample_value("telemetry_table_dropped_total", {"table": table}) or 0.0

    before = {table: dropped(table) for table in ("query_stats", "query_findings")}
    statistics = querystats.QueryStatistics(max_keys=1)
    analyses = [analyze(f"SELECT id FROM bounded_{index} WHERE id = %s", [1], "postgresql")
                for index in range(querystats.MAX_PENDING_FINDINGS + 1)]
    for analysis in analyses[:2]:
        statistics.observe(Batch, analysis, "default", 0.004, 1)
        statistics.observe(Batch, analysis, "default", 0.002, 1)
    for analysis in analyses:
        statistics.finding("slow", analysis, "default", "/r", "", "", 0.3)
    statistics.write_pending()
    [row] = QueryStat.objects.using("telemetry").filter(hour=Batch.hour)
    assert (row.fingerprint_id, row.calls, row.min_ms, row.max_ms) == (analyses[0].fingerprint_id, 2, 2.0, 4.0)
    assert QueryFinding.objects.filter(fingerprint__contains="bounded_").count() == querystats.MAX_PENDING_FINDINGS
    assert {table: dropped(table) - before[table] for table in before} == {"query_stats": 2, "query_findings": 1}


def test_query_statistics_off_means_no_detectors_and_no_plans(client, groups, settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "QUERY_STATS_ENABLED": False, "SLOW_QUERY_MS": 100}
    stats_before = QueryStat.objects.using("telemetry").count()
    client.get("/groups/n-plus-one")
    client.get("/slow")
    api.flush(sample=True)
    assert QueryFinding.objects.using("telemetry").count() == 0
    assert QueryStat.objects.using("telemetry").count() == stats_before
    from telemetry.models import QueryPlan

    assert not QueryPlan.objects.using("telemetry").exists()
