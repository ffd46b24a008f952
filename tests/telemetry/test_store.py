"""Increment-upserts stay exact with several processes writing the same rows."""

import os
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
from django.core.management import call_command
from django.db import connections

from telemetry.core import routers
from telemetry.core.upsert import increment
from telemetry.models import ReleaseRouteStats
from tests.live import ROOT

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"], transaction=True)
HOUR = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)

WRITER = """
import django, sys
from datetime import datetime, timezone
django.setup()
from telemetry.models import ReleaseRouteStats
from telemetry.core.upsert import increment
hour = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
for step in range(int(sys.argv[1])):
    rows = [{"release": "1.0", "route": f"/r{index}", "hour": hour, "count": 1, "total_seconds": 0.5,
             "total_squares": 0.25, "satisfied": 1, "tolerating": 0, "max_seconds": step / 1000}
            for index in range(3)]
    increment(ReleaseRouteStats, rows, key_fields=("release", "route", "hour"),
              sum_fields=("count", "total_seconds", "total_squares", "satisfied", "tolerating"),
              max_fields=("max_seconds",))
"""


def test_two_processes_incrementing_the_same_rows_give_exact_totals():
    settings_dict = connections["telemetry"].settings_dict
    assert settings_dict["ENGINE"].endswith("postgresql"), "tests run the telemetry alias on PostgreSQL"
    url = (f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD']}@{settings_dict['HOST']}:"
           f"{settings_dict['PORT']}/{settings_dict['NAME']}")
    env = {**os.environ, "TELEMETRY_DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, "200"], cwd=ROOT, env=env) for _ in range(2)]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    rows = {row.route: row for row in ReleaseRouteStats.objects.using("telemetry").filter(release="1.0")}
    assert set(rows) == {"/r0", "/r1", "/r2"}
    for row in rows.values():
        assert row.count == 400
        assert row.total_seconds == pytest.approx(200.0)
        assert row.satisfied == 400
        assert row.max_seconds == pytest.approx(0.199)


def test_maxima_keep_the_extreme_and_new_keys_insert():
    keys = {"release": "2.0", "hour": HOUR}
    fields = dict(key_fields=("release", "route", "hour"), sum_fields=("count",), max_fields=("max_seconds",))
    increment(ReleaseRouteStats, [{**keys, "route": "/a", "count": 2, "max_seconds": 0.9}], **fields)
    increment(ReleaseRouteStats, [{**keys, "route": "/a", "count": 3, "max_seconds": 0.1},
                                  {**keys, "route": "/b", "count": 1, "max_seconds": 0.2}], **fields)
    stored = ReleaseRouteStats.objects.using("telemetry").filter(release="2.0")
    assert (stored.get(route="/a").count, stored.get(route="/a").max_seconds) == (5, 0.9)
    assert stored.get(route="/b").count == 1


def test_a_value_json_cannot_carry_is_written_all_the_same():
    # On PostgreSQL rows travel as one JSON document; an infinite maximum (which JSON has no
    # word for) takes the VALUES statement instead, with the other rows of its write.
    keys = {"release": "3.0", "hour": HOUR}
    fields = dict(key_fields=("release", "route", "hour"), sum_fields=("count",), max_fields=("max_seconds",))
    increment(ReleaseRouteStats, [{**keys, "route": "/a", "count": 1, "max_seconds": float("inf")},
                                  {**keys, "route": "/b", "count": 2, "max_seconds": 0.5}], **fields)
    increment(ReleaseRouteStats, [{**keys, "route": "/b", "count": 1.0, "max_seconds": 0.25}], **fields)
    stored = ReleaseRouteStats.objects.using("telemetry").filter(release="3.0")
    assert stored.get(route="/a").max_seconds == float("inf")
    assert (stored.get(route="/b").count, stored.get(route="/b").max_seconds) == (3, 0.5)


def test_a_pending_migrations_check_made_during_migrate_is_not_kept_after_it():
    """A sampler that asked while the first ``migrate`` ran must not keep the store's writes
    quiet for the recheck interval once ``migrate`` has finished."""
    routers._migrations.update(applied=False, pending=True, checked_at=time.monotonic())
    assert routers.migrations_pending() is True
    call_command("migrate", database="telemetry", verbosity=0)
    assert routers.migrations_pending() is False
