"""Durations and times as every admin page writes them."""

from datetime import UTC, datetime, timedelta

from telemetry.admin.formatting import duration, timestamp, when


def test_durations_carry_their_unit_ms_below_a_second_and_s_above():
    assert [duration(value) for value in (None, 0.4249, 12.34, 254.6, 999.4, 1240.0, 75_240.0)] == [
        "—", "0.42 ms", "12.3 ms", "255 ms", "999 ms", "1.24 s", "75.2 s"]


def test_timestamps_are_iso_with_seconds_and_zone_and_lists_add_the_age(settings):
    settings.TIME_ZONE = "UTC"
    moment = datetime(2026, 12, 3, 2, 41, 7, 512_000, tzinfo=UTC)
    assert timestamp(moment) == "2026-12-03 02:41:07+00:00"
    html = when(moment, now=moment + timedelta(minutes=5, seconds=3))
    assert html == ('<time datetime="2026-12-03T02:41:07.512000+00:00">2026-12-03 02:41:07+00:00</time>'
                    ' <span class="age">· 5\xa0minutes ago</span>')
