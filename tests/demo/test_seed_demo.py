"""seed_demo: idempotent, complete, it prints the logins it made, and its data sources read
sample databases only: never the platform's own database, credentials or a superuser."""

import io
import sqlite3
from pathlib import Path

import psycopg2
import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command

import plugins
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
    settings.PLUGINS = {**settings.PLUGINS, "SQLITE_DIRECTORY": str(tmp_path / "datasources")}
    return tmp_path


def on_postgresql(settings):
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


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
    assert source.options["path"] == str(demo_var_dir / "datasources" / demo_data.SAMPLE_DATABASE_NAME)
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


def test_no_data_source_has_the_platforms_database_credentials_or_a_superuser(settings):
    _seed()
    platform = settings.DATABASES["default"]
    platform_files = {str(Path(database["NAME"]).resolve()) for database in settings.DATABASES.values()
                      if database["ENGINE"].endswith("sqlite3")}
    sources = list(DataSource.objects.all())
    assert {source.kind for source in sources} >= {"sqlite", "restapi"}
    for source in sources:
        options = source.connection_options()
        if platform.get("PASSWORD"):
            assert platform["PASSWORD"] not in {str(value) for value in options.values()}, source.name
        if source.kind == "sqlite":
            assert str(Path(options["path"]).resolve()) not in platform_files
        if source.kind == "postgresql":
            assert options["user"] != platform["USER"] and options["database"] != platform["NAME"]
            role = psycopg2.connect(host=options["host"], port=options["port"], dbname=options["database"],
                                    user=options["user"], password=options["password"])
            try:
                with role.cursor() as cursor:
                    cursor.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles "
                                   "WHERE rolname = current_user")
                    assert cursor.fetchone() == (False, False, False, False)
                    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                        cursor.execute("CREATE TABLE planted (id int)")
            finally:
                role.close()
    assert DataSource.objects.filter(kind="postgresql").exists() == on_postgresql(settings)
    assert not DataSource.objects.filter(name=demo_data.LEGACY_POSTGRES_SOURCE_NAME).exists()


def test_the_postgresql_sample_is_reached_through_the_demo_allowlist_and_the_platform_is_not(settings):
    if not on_postgresql(settings):
        pytest.skip("the PostgreSQL sample exists when the platform runs on PostgreSQL")
    _seed()
    source = DataSource.objects.get(organization__slug="acme", kind="postgresql")
    options = source.connection_options()
    settings.PLUGINS = {**settings.PLUGINS, "EGRESS_ALLOWLIST": [
        f"{options['host']}:{options['port']}/{settings.DEMO_SAMPLE_DATABASE}"]}  # what `make demo` allows
    query = DataQuery.objects.get(app__organization=source.organization, name="orders_per_status")
    result = plugins.run_query(data_source_id=source.pk, kind="postgresql", options=options, query=query.options)
    assert sum(row[1] for row in result.rows) == demo_data.SAMPLE_ORDERS
    platform = settings.DATABASES["default"]
    with pytest.raises(plugins.EgressDenied) as caught:
        plugins.test_connection(kind="postgresql", options={
            "host": options["host"], "port": options["port"], "database": platform["NAME"],
            "user": platform["USER"], "password": platform["PASSWORD"]})
    assert caught.value.rule == "platform_database"


def test_a_source_an_earlier_seed_gave_the_platforms_credentials_loses_them(settings):
    platform = settings.DATABASES["default"]
    organization = Organization.objects.create(slug="acme", name="Acme Corp")
    DataSource.objects.create(organization=organization, kind="postgresql", name=demo_data.LEGACY_POSTGRES_SOURCE_NAME,
                              options={"host": "127.0.0.1", "database": platform["NAME"],
                                       "user": platform.get("USER") or "admin"},
                              secrets={"password": platform.get("PASSWORD") or "platform-password"})
    _seed()
    repointed = DataSource.objects.get(organization=organization, kind="postgresql")
    assert repointed.name == demo_data.POSTGRES_SOURCE_NAME
    assert repointed.options.get("database") != platform["NAME"]
    assert repointed.secrets.get("password") != (platform.get("PASSWORD") or "platform-password")


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
