"""Neutral defaults for a library: a fresh project exports the HTTP, database, jobs and
``telemetry_*`` families under a neutral namespace, and a platform-only domain once the host
reports into it; the platform's own /metrics keeps the seed inventory; the usage page and
the organization filters appear only in a project with organizations."""

import json
import os
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from telemetry import conf
from telemetry.admin.traces import OrganizationFilter
from telemetry.conf import DEFAULTS
from tests.live import ROOT, database_url

from .test_inventory import SEED_METRICS

FRESH_HOST = r"""
import json
import django
django.setup()
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from telemetry import api
from telemetry.metrics import families
from telemetry.core import recorder

recorder.run_in_foreground()


def rendered():
    api.flush()
    response = Client().get("/metrics")
    assert response.status_code == 200, response.status_code
    return sorted(family.name for family in text_string_to_metric_families(response.content.decode()))


assert Client().get("/page").status_code == 200
optional = sorted(family.name for group in vars(families()).values() for family in vars(group).values()
                  if family.domain is not None)
fresh = rendered()
api.record_plugin_run("sqlite", None, "success", "success", 0.01, {"execute": 0.01})
after_plugin_run = rendered()
# A domain switched on after requests of a route were applied: that route's next request
# is observed in the domain's families too (the flusher's cached shapes are rebuilt).
from telemetry.metrics import switch_on
from prometheus_client import REGISTRY
switch_on("benchmarks")
assert Client().get("/page").status_code == 200
api.flush()
benchmarked = sum(sample.value for metric in REGISTRY.collect() for sample in metric.samples
                  if sample.name == "django_benchmark_duration_seconds_count"
                  and sample.labels["http_route"] == "/page")
print(json.dumps({"optional": optional, "fresh": fresh, "after_plugin_run": after_plugin_run,
                  "benchmarked_after_switch": benchmarked}))
"""


# Transactional: what the subprocess writes to the test databases (its trace, at exit) is
# emptied after the test instead of reaching later tests.
@pytest.mark.django_db(databases=["default", "telemetry"], transaction=True)
def test_a_fresh_project_exports_no_platform_family_until_it_reports_into_the_domain(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TEST_DB_SUFFIX"}
    env.update(DJANGO_SETTINGS_MODULE="tests.telemetry.fresh_host_settings", VAR_DIR=str(tmp_path),
               DATABASE_URL=database_url("default"), TELEMETRY_DATABASE_URL=database_url("telemetry"))
    completed = subprocess.run([sys.executable, "-c", FRESH_HOST], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    optional, fresh = set(result["optional"]), set(result["fresh"])
    assert len(optional) == 22  # plugins 9, datasources 2, apps 5, benchmarks 5, storage 1
    assert not fresh & optional
    assert {"http_server_request_duration_seconds", "http_server_requests", "db_client_operation_duration_seconds",
            "django_task_executions", "django_health_checks", "django_db_query_pattern"} <= fresh
    assert not any(name.startswith("tooljet_") for name in fresh)
    plugins = {name for name in optional if name.startswith("django_plugin_")}
    assert len(plugins) == 9
    # The first plugin run through telemetry.api switches its domains on: plugins and the
    # external operations (datasources); the app builder's and the benchmarks' stay off.
    after = set(result["after_plugin_run"])
    assert plugins | {"django_api_external_operation_duration_seconds", "datasource_connections_active"} \
        == after & optional
    assert result["benchmarked_after_switch"] == 1


def test_the_library_default_namespace_is_neutral_and_the_platform_keeps_its_own():
    assert DEFAULTS["NAMESPACE"] == "django"
    assert DEFAULTS["METRIC_DOMAINS"] == []
    assert conf.get("NAMESPACE") == "tooljet"


def test_the_platforms_metrics_render_the_seed_inventory(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    rendered = {family.name for family in text_string_to_metric_families(response.content.decode())}
    expected = {name.format(ns="tooljet").removesuffix("_total") for name, _kind, _labels in SEED_METRICS}
    assert len(expected) == 45
    assert expected <= rendered


@pytest.fixture
def without_organizations(settings):
    settings.TELEMETRY = {key: value for key, value in settings.TELEMETRY.items()
                          if not key.endswith("ORGANIZATION_RESOLVER")}


def _trace_list(admin_client):
    response = admin_client.get("/admin/telemetry/trace/")
    assert response.status_code == 200
    changelist = response.context_data["cl"]
    return "organization" in changelist.list_display, OrganizationFilter in changelist.list_filter


@pytest.mark.django_db(databases=["default", "telemetry"])
def test_a_project_without_organizations_has_no_usage_page_nor_organization_filter(admin_client,
                                                                                    without_organizations):
    assert not conf.organizations_configured()
    assert b"organizationusage" not in admin_client.get("/admin/").content
    assert admin_client.get("/admin/telemetry/organizationusage/").status_code == 403
    assert admin_client.get("/admin/telemetry/organizationusage/organization/1/").status_code == 403
    assert _trace_list(admin_client) == (False, False)


@pytest.mark.django_db(databases=["default", "telemetry"])
def test_the_platform_with_its_user_organization_resolver_keeps_its_usage_pages(admin_client):
    assert conf.organizations_configured()
    assert b"/admin/telemetry/organizationusage/" in admin_client.get("/admin/").content
    assert admin_client.get("/admin/telemetry/organizationusage/").status_code == 200
    assert admin_client.get("/admin/telemetry/organizationusage/organization/1/").status_code == 200
    assert _trace_list(admin_client) == (True, True)


@pytest.mark.django_db(databases=["default", "telemetry"])
def test_a_request_resolver_of_the_projects_own_also_counts_as_organizations(admin_client, settings,
                                                                             without_organizations):
    settings.TELEMETRY = {**settings.TELEMETRY, "ORGANIZATION_RESOLVER": "tests.telemetry.test_fail_open_events."
                                                                         "broken_resolver"}
    assert conf.organizations_configured()
    assert admin_client.get("/admin/telemetry/organizationusage/").status_code == 200
