"""The distribution as a stranger meets it: the wheel holds ``telemetry`` only; installed
in a new virtualenv (with every extra, then the core only) into a fresh
``django-admin startproject`` by the README's own recipe, it migrates without a
traceback, serves under gunicorn, fills ``/metrics``, answers readiness without Celery,
shows the project's own view in the admin's traces and fingerprints, and its periodic
work builds reports and deletes old rows. The core alone says which extras are missing
and still serves every request.

Figures (wheel size, dependencies per extra, seconds from ``pip install`` to the first
trace in the admin) are written to ``tests/artifacts/packaging.json``.
"""

import json
import os
import sys
import time
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from selenium.webdriver.common.by import By

from telemetry import __version__
from tests.live import ROOT, wait_until
from tests.packaging.recipe import SUPERUSER, Project, constraints_file, run

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]

ARTIFACTS = ROOT / "tests" / "artifacts"
PLATFORM_PACKAGES = ("config/", "apps_builder/", "plugins/", "tests/", "bench/", "platform/")


def record(**figures):
    """Adds figures to tests/artifacts/packaging.json."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "packaging.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**known, **figures}, indent=2))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(directory), str(ROOT)], ROOT,
        os.environ.copy())
    (built,) = directory.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def constraints(tmp_path_factory) -> Path:
    return constraints_file(tmp_path_factory.mktemp("constraints"))


def scrape(base_url):
    """{(sample name, frozenset of labels): value} of one scrape of /metrics."""
    text = requests.get(base_url + "/metrics", timeout=10).text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def total(samples, name, **labels):
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and wanted <= sample_labels)


def serve_the_view(base_url, times=5):
    for _ in range(times):
        response = requests.get(base_url + "/hello/", timeout=10)
        assert response.status_code == 200 and response.json() == {"users": 0}


def assert_ready_without_celery(base_url):
    response = requests.get(base_url + "/health", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and "broker" not in body["checks"], body
    assert requests.get(base_url + "/health/live", timeout=10).status_code == 200


def request_and_db_families(base_url, requests_seen):
    """/metrics once the view's requests (counted on the request thread) and its
    statements (applied by the flusher within a second) are in."""
    def seen():
        samples = scrape(base_url)
        served = total(samples, "http_server_requests_total", http_route="/hello/", http_response_status_code="200")
        statements = total(samples, "db_client_operation_count_total", db_collection_name="auth_user")
        return samples if served >= requests_seen and statements > 0 else None

    return wait_until(seen, timeout=30, message="the view's requests and statements never reached /metrics")


#: Families only the platform drives (plugins, datasources, apps, benchmarks, storage:
#: ``telemetry.metrics.OPTIONAL_DOMAINS``) and its ``tooljet_`` namespace: a fresh project
#: reports into none of them.
PLATFORM_ONLY = ("tooljet_", "datasource_connections", "user_feature_usage", "app_load_time", "app_query_execution",
                 "app_errors", "storage_usage", "django_plugin_", "django_benchmark_", "django_app_builder",
                 "django_api_external_operation")


def assert_no_platform_family(samples):
    names = {name for name, _ in samples}
    assert not {name for name in names if name.startswith(PLATFORM_ONLY)}, sorted(names)
    assert any(name.startswith("django_") for name in names), sorted(names)  # the neutral namespace


def assert_no_traceback(text, where):
    assert "Traceback" not in text, f"traceback in {where}:\n{text[-5000:]}"


def test_the_wheel_holds_telemetry_only_with_templates_and_migrations(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = Parser().parsestr(archive.read(f"django_telemetry_lowcode-{__version__}.dist-info/METADATA")
                                     .decode())
    assert wheel.name == f"django_telemetry_lowcode-{__version__}-py3-none-any.whl"
    assert all(name.startswith(("telemetry/", "django_telemetry_lowcode-")) for name in names), names
    assert not [name for name in names if name.startswith(PLATFORM_PACKAGES)]
    assert "telemetry/templates/admin/telemetry/trace/waterfall.html" in names
    assert "telemetry/migrations/0001_initial.py" in names
    requires = metadata.get_all("Requires-Dist")
    per_extra: dict[str, list[str]] = {}
    for requirement in requires:
        name, _, marker = requirement.partition(";")
        extra = marker.split("extra ==")[1].strip().strip("\"'") if "extra ==" in marker else "core"
        per_extra.setdefault(extra, []).append(name.strip())
    assert set(per_extra) == {"core", "tracing", "celery", "api", "postgres", "all"}, per_extra
    assert any(requirement.startswith("Django>=") for requirement in per_extra["core"])
    assert not [requirement for requirement in per_extra["core"]
                if requirement.startswith(("celery", "djangorestframework", "opentelemetry-exporter"))]
    record(wheel=wheel.name, wheel_bytes=wheel.stat().st_size, requires=per_extra)


def test_the_readme_recipe_with_every_extra(wheel, constraints, tmp_path, browser):
    project = Project(tmp_path, wheel, constraints, "all")
    project.apply_recipe()
    migrate = project.outputs[-1]
    assert "Applying telemetry.0001_initial... OK" in migrate
    assert_no_traceback(migrate, "migrate")
    check = project.manage("check")
    assert "telemetry.W00" not in check, check
    project.create_superuser()

    with project.gunicorn() as (base_url, log_path):
        serve_the_view(base_url)
        assert_ready_without_celery(base_url)
        assert_no_platform_family(request_and_db_families(base_url, requests_seen=5))

        username, password = SUPERUSER
        browser.get(base_url + "/admin/login/")
        browser.find_element(By.NAME, "username").send_keys(username)
        browser.find_element(By.NAME, "password").send_keys(password)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        browser.find_element(By.ID, "user-tools")

        def trace_listed():
            browser.get(base_url + "/admin/telemetry/trace/")
            links = [link for link in browser.find_elements(By.CSS_SELECTOR, "#result_list a")
                     if "hello/" in link.text]
            return links[0].get_attribute("href") if links else None

        trace_url = wait_until(trace_listed, timeout=60, interval=1, message="no trace of GET hello/ in admin")
        record(seconds_from_pip_install_to_first_trace=round(time.monotonic() - project.installed_at, 1))
        browser.get(trace_url)
        waterfall = browser.find_element(By.TAG_NAME, "body").text
        assert "/hello/" in waterfall and "auth_user" in waterfall, waterfall[:2000]
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "recipe_trace.png"))

        def fingerprint_listed():
            browser.get(base_url + "/admin/telemetry/querystat/")
            return "first_name" in browser.page_source

        wait_until(fingerprint_listed, timeout=60, interval=1, message="the view's statement has no fingerprint")
    assert_no_traceback(log_path.read_text(), "the gunicorn log")

    # Beat's work, run as its tasks: a report of the stored statistics; retention deletes
    # traces older than TRACE_RETENTION_DAYS and keeps the fresh ones.
    beat = project.manage("shell", "-c", BEAT_RUN)
    result = json.loads(beat.strip().splitlines()[-1])
    assert result["report_fingerprints"] >= 1, result
    assert result["aged"] >= 1 and result["purged"] == result["aged"], result
    assert result["left"] == result["fresh"], result

    # A host's Celery app (made before Django loads, as `celery -A proj beat` does) gets
    # telemetry's periodic entries without copying them.
    entries = run([str(project.venv / "bin" / "python"), "-c", SCHEDULE_OF_A_HOST_APP], project.root, project.env)
    assert {"telemetry-purge-traces", "telemetry-slow-query-report", "telemetry-compare-releases"} <= set(
        json.loads(entries.strip().splitlines()[-1])), entries


def test_the_core_alone_names_each_missing_extra_and_serves(wheel, constraints, tmp_path):
    project = Project(tmp_path, wheel, constraints, "")
    project.apply_recipe()
    assert_no_traceback(project.outputs[-1], "migrate")
    check = project.manage("check")
    for check_id, extra in (("telemetry.W004", "[tracing]"), ("telemetry.W005", "[celery]"),
                            ("telemetry.W006", "[api]")):
        assert check_id in check and extra in check, check
    installed = run([str(project.venv / "bin" / "pip"), "list"], project.root, project.env).lower()
    assert "celery" not in installed and "djangorestframework" not in installed

    # Before telemetry's migrations have run (a project's first migrate on a slow
    # database), its samplers and writers stay quiet: nothing logged, nothing counted.
    (project.package / "settings_unmigrated.py").write_text(UNMIGRATED_SETTINGS)
    quiet = project.manage("shell", "-c", BEFORE_MIGRATIONS, DJANGO_SETTINGS_MODULE="proj.settings_unmigrated")
    assert quiet.strip().splitlines()[-1] == "internal errors: 0", quiet
    assert_no_traceback(quiet, "telemetry's work before its migrations")

    with project.gunicorn() as (base_url, log_path):
        serve_the_view(base_url)
        assert_ready_without_celery(base_url)
        assert_no_platform_family(request_and_db_families(base_url, requests_seen=5))
        assert requests.get(base_url + "/telemetry/api/traces", timeout=10).status_code == 404
        assert requests.get(base_url + "/admin/login/", timeout=10).status_code == 200
    assert_no_traceback(log_path.read_text(), "the gunicorn log")


UNMIGRATED_SETTINGS = """
from proj.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "unmigrated.sqlite3"}}  # noqa: F405
"""

#: A request and a statement, then a flush with a sample and a trace store write, on a
#: database without telemetry's tables; the console shows whatever telemetry logs.
BEFORE_MIGRATIONS = """
import logging, sys

from django.db import connection
from django.test import Client
from prometheus_client import REGISTRY

from telemetry import tracing
from telemetry.core import recorder

logging.getLogger("telemetry").addHandler(logging.StreamHandler(sys.stdout))
Client().get("/health/live", HTTP_HOST="localhost")
with connection.cursor() as cursor:
    cursor.execute("SELECT 1")
recorder.flush(sample=True)
tracing.flush()
errors = sum(sample.value for metric in REGISTRY.collect() for sample in metric.samples
             if sample.name == "telemetry_internal_errors_total")
print(f"internal errors: {errors:g}")
"""

BEAT_RUN = """
import json
from datetime import timedelta

from django.utils import timezone

from telemetry.models import Trace
from telemetry.tasks import build_slow_query_report, purge_traces

fresh = Trace.objects.count()
old = list(Trace.objects.order_by("start").values_list("pk", flat=True)[:max(1, fresh // 2)])
Trace.objects.filter(pk__in=old).update(start=timezone.now() - timedelta(days=30))
report = build_slow_query_report()
purged = purge_traces()
print(json.dumps({"report_fingerprints": report["fingerprints"], "aged": len(old), "purged": purged,
                  "fresh": fresh - len(old), "left": Trace.objects.count()}))
"""

SCHEDULE_OF_A_HOST_APP = """
import json, os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
app = Celery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")

import django

django.setup()
print(json.dumps(sorted(app.conf.beat_schedule)))
"""
