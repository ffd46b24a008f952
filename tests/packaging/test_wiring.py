"""The wiring a host relies on, in the platform's own process: telemetry's beat entries
land in a host's Celery app (the host's own entry of the same name wins), the platform
copies none of them, and a missing extra is named by its system check."""

from celery import Celery

from config.celery import app as platform_app
from telemetry import checks, extras
from telemetry.tasks import schedule


def test_beat_entries_are_added_to_a_host_app_whose_own_entries_win():
    app = Celery("host", set_as_current=False)
    app.conf.beat_schedule = {"telemetry-purge-traces": {"task": "telemetry.purge_traces", "schedule": 60.0},
                              "host-report": {"task": "host.report", "schedule": 10.0}}
    schedule.add_to(app)
    schedule.add_to(app)
    entries = app.conf.beat_schedule
    assert set(entries) == {*schedule.BEAT_SCHEDULE, "host-report"}
    assert entries["telemetry-purge-traces"]["schedule"] == 60.0
    assert entries["telemetry-slow-query-report"] == schedule.BEAT_SCHEDULE["telemetry-slow-query-report"]


def test_the_platform_app_gets_every_entry_without_copying_them(settings):
    assert not getattr(settings, "CELERY_BEAT_SCHEDULE", None)
    assert set(schedule.BEAT_SCHEDULE) <= set(platform_app.conf.beat_schedule)


def test_every_extra_is_installed_for_the_platform_and_no_check_warns():
    assert all(extras.installed(extra) for extra in extras.EXTRAS)
    assert checks.check_extras(None) == []


def test_a_missing_extra_is_named_with_how_to_install_it(monkeypatch):
    missing = extras.Extra("reports", ("no_such_module_of_telemetry",), "the nightly reports", "telemetry.W099")
    monkeypatch.setattr(extras, "EXTRAS", (*extras.EXTRAS, missing))
    (warning,) = checks.check_extras(None)
    assert warning.id == "telemetry.W099"
    assert "[reports]" in warning.msg and "the nightly reports" in warning.msg
    assert 'pip install "django-telemetry-lowcode[reports]"' in warning.hint
