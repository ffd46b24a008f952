"""seed_demo: idempotent, complete, and it prints the logins it made."""

import io
import sqlite3

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command

from apps_builder import demo_data
from apps_builder.models import App, AppVersion, AuditEvent, DataQuery, DataSource, Membership, Organization

pytestmark = pytest.mark.django_db(databases=["default", "telemetry"])


def _row_counts():
    return {model._meta.label: model.objects.count() for model in apps.get_models()
            if model._meta.app_label in {"apps_builder", "auth", "authtoken"}}


def _seed(audit_events=3000):
    output = io.StringIO()
    call_command("seed_demo", stdout=output, audit_events=audit_events)
    return output.getvalue()


@pytest.fixture(autouse=True)
def demo_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def test_second_run_creates_nothing_new():
    _seed()
    counts_after_first_run = _row_counts()
    _seed()
    assert _row_counts() == counts_after_first_run
    assert counts_after_first_run["apps_builder.Organization"] == 3


def test_prints_the_admin_url_and_logins_that_work(monkeypatch):
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "s3cret-for-test")
    output = _seed()
    assert "http://127.0.0.1:8123/admin/" in output
    assert "login: admin / s3cret-for-test" in output
    assert "acme-builder / demo-password" in output and "acme-viewer / demo-password" in output
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("s3cret-for-test")
    assert get_user_model().objects.get(username="acme-viewer").check_password(demo_data.MEMBER_PASSWORD)


def test_every_organization_has_each_role_environments_and_released_apps():
    _seed()
    for organization in Organization.objects.all():
        assert set(Membership.objects.filter(organization=organization).values_list("role", flat=True)) == {
            "admin", "builder", "viewer"}
        assert set(organization.environments.values_list("name", flat=True)) == {
            "development", "staging", "production"}
        organization_apps = App.objects.filter(organization=organization)
        assert organization_apps.count() >= 6  # the apps overview's N+1 needs N_PLUS_ONE_THRESHOLD apps
        assert all(app.released_version_id for app in organization_apps)
        queries = DataQuery.objects.filter(app__organization=organization)
        assert queries.filter(run_on_page_load=True).exists()
        assert queries.filter(name__in=demo_data.FAILING_QUERY_NAMES).exists()
        assert queries.filter(name__in=demo_data.SLOW_QUERY_NAMES).exists()
        assert all(query.data_source.organization_id == organization.id for query in queries)
    assert AppVersion.objects.filter(released_at__isnull=False).count() == App.objects.count()


def test_sample_database_has_thousands_of_rows_and_an_unindexed_filter(demo_var_dir):
    _seed()
    source = DataSource.objects.filter(kind="sqlite").first()
    assert source.options["path"] == str(demo_var_dir / demo_data.SAMPLE_DATABASE_NAME)
    connection = sqlite3.connect(source.options["path"])
    try:
        counts = {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                  for table in ("customers", "orders", "products")}
        plan = " ".join(row[-1] for row in connection.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM orders WHERE status = 'paid'"))
    finally:
        connection.close()
    assert counts["customers"] >= 1000 and counts["orders"] >= 10_000 and counts["products"] >= 100
    assert "SCAN" in plan


def test_platform_postgresql_is_a_data_source_when_the_platform_runs_on_it(settings):
    _seed()
    postgres_sources = DataSource.objects.filter(kind="postgresql")
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        source = postgres_sources.get(organization__slug="acme")
        assert source.options["database"] == settings.DATABASES["default"]["NAME"]
        assert "password" not in source.options and "password" in source.secrets
    else:
        assert not postgres_sources.exists()


def test_audit_events_are_seeded_once_over_every_organization_and_many_subjects():
    assert "3000 audit events added" in _seed(audit_events=3000)
    assert "0 audit events added" in _seed(audit_events=3000)
    assert AuditEvent.objects.count() == 3000
    per_organization = {organization.slug: organization.audit_events.count()
                        for organization in Organization.objects.all()}
    assert per_organization == {"acme": 1000, "globex": 1000, "initech": 1000}
    subjects = set(AuditEvent.objects.values_list("subject", flat=True))
    assert demo_data.audit_subject(1) in subjects and len(subjects) >= 1000
    assert not AuditEvent.objects.filter(actor__isnull=False).exists()
