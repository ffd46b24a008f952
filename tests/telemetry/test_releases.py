"""Release comparison drives the benchmark metrics from stored per-release latency."""

import io
import random
from datetime import datetime, timedelta, timezone

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from prometheus_client import REGISTRY

from telemetry.models import ReleaseRouteStats
from telemetry.usage import releases

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def store(release, route, durations, hour):
    target = 0.5
    ReleaseRouteStats.objects.using("telemetry").create(
        release=release, route=route, hour=hour, count=len(durations), total_seconds=sum(durations),
        total_squares=sum(d * d for d in durations), satisfied=sum(d <= target for d in durations),
        tolerating=sum(target < d <= 4 * target for d in durations), max_seconds=max(durations))


def latencies(mean, count=200, seed=1):
    generator = random.Random(seed)
    return [max(generator.gauss(mean, mean / 10), 0.0001) for _ in range(count)]


@override_settings(RELEASE_VERSION="2.1.0")
def test_a_slower_release_is_a_significant_regression_and_scores_lower(samples):
    store("2.0.5", "/api/apps", latencies(0.10), START)
    store("2.0.5", "/api/stable", latencies(0.05, seed=3), START)
    store("2.1.0", "/api/apps", latencies(0.16, seed=2), START + timedelta(days=1))
    store("2.1.0", "/api/stable", latencies(0.05, seed=3), START + timedelta(days=1))
    comparisons = {verdict: samples.snapshot("tooljet_benchmark_comparison_total", {
        "tooljet_release_current": "2.1.0", "tooljet_release_previous": "2.0.5",
        "tooljet_comparison_significance": verdict}) for verdict in ("regression", "no_change", "improvement")}
    regressions = samples.snapshot("tooljet_benchmark_regression_detected_total",
                                   {"tooljet_release_current": "2.1.0", "tooljet_regression_type": "severe"})
    summary = releases.compare()
    assert summary["routes"] == {"/api/apps": "regression", "/api/stable": "no_change"}
    assert (comparisons["regression"](), comparisons["no_change"](), comparisons["improvement"]()) == (1, 1, 0)
    assert regressions() == 1  # 60 % slower
    assert samples.value("tooljet_benchmark_performance_score", {"tooljet_release_version": "2.1.0"}) == 100
    trend = samples.value("tooljet_benchmark_trend_coefficient",
                          {"tooljet_release_version": "2.1.0", "http_route": "/api/apps"})
    assert 0.4 < trend < 0.5  # slope 0.06 over mean 0.13


def test_significance_needs_enough_samples_and_a_real_difference():
    def row(durations):
        return {"count": len(durations), "total": sum(durations), "squares": sum(d * d for d in durations)}

    assert releases.significance(row(latencies(0.1)), row(latencies(0.1, seed=9))) == "no_change"
    assert releases.significance(row(latencies(0.1)), row(latencies(0.05, seed=9))) == "improvement"
    assert releases.significance(row(latencies(0.1, count=5)), row(latencies(0.5, count=5))) == "insufficient_data"


def test_score_is_apdex_times_100():
    stats = {"/a": {"count": 4, "satisfied": 2, "tolerating": 2}}
    assert releases.performance_score(stats) == 75.0


def test_requests_are_aggregated_per_release_and_written_in_one_upsert(client, settings):
    settings.RELEASE_VERSION = "9.9.9"
    from telemetry import api

    for _ in range(3):
        client.get("/health")
    api.flush(sample=True)
    row = ReleaseRouteStats.objects.using("telemetry").get(release="9.9.9", route="/health")
    assert row.count == 3


def test_the_pending_table_is_bounded_and_what_it_holds_is_written():
    class Batch:
        hour = START
        settings = {"APDEX_TARGET_SECONDS": 0.5}

    dropped = {"table": "releases"}
    before = REGISTRY.get_sample_value("telemetry_table_dropped_total", dropped) or 0.0
    latency = releases.ReleaseLatency(max_keys=2)
    for route, seconds in (("/a", 0.1), ("/b", 1.0), ("/c", 0.1), ("/a", 3.0)):
        latency.add(Batch, route, [seconds])
    latency.write_pending()
    stored = {row.route: (row.count, row.satisfied, row.tolerating, row.max_seconds)
              for row in ReleaseRouteStats.objects.using("telemetry").filter(hour=START)}
    assert stored == {"/a": (2, 1, 0, 3.0), "/b": (1, 0, 1, 1.0)}
    assert REGISTRY.get_sample_value("telemetry_table_dropped_total", dropped) - before == 1


def plant(previous_mean_apps, current_mean_apps):
    """2.0.5 then 2.1.0: /api/apps at the given means, /api/stable unchanged."""
    store("2.0.5", "/api/apps", latencies(previous_mean_apps), START)
    store("2.0.5", "/api/stable", latencies(0.05, seed=3), START)
    store("2.1.0", "/api/apps", latencies(current_mean_apps, seed=2), START + timedelta(days=1))
    store("2.1.0", "/api/stable", latencies(0.05, seed=3), START + timedelta(days=1))


def release_check(*arguments):
    """(exit code, stdout, stderr) of ``manage.py telemetry_release_check``."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("telemetry_release_check", *arguments, stdout=out, stderr=err)
    except SystemExit as exit_:
        return exit_.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@override_settings(RELEASE_VERSION="2.1.0")
def test_release_check_fails_a_deploy_on_a_significant_regression():
    plant(0.10, 0.16)  # +60 %: severe
    code, out, err = release_check()
    assert code == 1
    assert "/api/apps" in err and "/api/stable" not in err
    assert "release 2.1.0 against 2.0.5" in out
    assert "regression (severe)  /api/apps: " in out and "no change            /api/stable: " in out
    # Compared the other way round, the same data is an improvement: nothing fails.
    code, out, _ = release_check("--release", "2.0.5", "--against", "2.1.0")
    assert code == 0 and "improvement" in out


@override_settings(RELEASE_VERSION="2.1.0")
def test_release_check_passes_unchanged_routes_and_milder_classes_than_asked():
    plant(0.10, 0.13)  # +30 %: moderate
    assert release_check()[0] == 1  # the default fails on moderate
    assert release_check("--fail-on", "severe")[0] == 0
    with override_settings(TELEMETRY={"RELEASE_CHECK_FAIL_ON": "severe"}):
        assert release_check()[0] == 0
    ReleaseRouteStats.objects.using("telemetry").filter(route="/api/apps").delete()
    code, out, _ = release_check()
    assert code == 0 and "no change            /api/stable" in out and "/api/apps" not in out


def test_release_check_without_history_or_with_an_unknown_release():
    assert release_check()[0] == 0  # nothing stored: nothing is known to be worse
    store("1.0.0", "/api/apps", latencies(0.1), START)
    code, out, _ = release_check()
    assert code == 0 and "no earlier release" in out
    with pytest.raises(CommandError, match="no latency stored for release '0.9'"):
        call_command("telemetry_release_check", "--against", "0.9", stdout=io.StringIO())


@override_settings(RELEASE_VERSION="2.1.0")
def test_releases_admin_page_marks_the_regressed_route(admin_client):
    plant(0.10, 0.16)
    page = admin_client.get("/admin/telemetry/releaseroutestats/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="release-row failing" data-route="/api/apps"' in html
    assert 'class="release-row" data-route="/api/stable"' in html
    assert "regression (severe)" in html and "no change" in html
    assert '<strong id="failing-count">1</strong>' in html
    # The page compares whichever two releases are chosen.
    swapped = admin_client.get("/admin/telemetry/releaseroutestats/", {"release": "2.0.5", "against": "2.1.0"})
    assert "failing" not in swapped.content.decode().split('id="release-routes"')[1]
    assert admin_client.get("/admin/telemetry/releaseroutestats/add/").status_code == 403
