import pytest

from apps_builder.models import App, AppTemplate, AppVersion, DataQuery, DataSource


def apps_for_the_overview(org, count=6):
    """``count`` apps of ``org``, each with a version and a query on one data source: the
    apps overview reads them one by one (the platform's planted N+1)."""
    source = DataSource.objects.create(organization=org, kind="sqlite", name="Sample")
    for number in range(count):
        app = App.objects.create(organization=org, name=f"App {number}", slug=f"app-{number}")
        AppVersion.objects.create(app=app, name="v1")
        DataQuery.objects.create(app=app, data_source=source, name="q", options={})


@pytest.fixture
def world(org, other_org, make_member, sample_sqlite, allow_egress):
    """Two organizations, each with an app (released), a SQLite data source with a
    secret, and queries; members of each role in ``org``. The spare REST source points
    at a closed loopback port the egress policy allows, so its runs fail to connect."""
    allow_egress("127.0.0.1:9")
    objects = {}
    for key, organization in (("own", org), ("other", other_org)):
        source = DataSource.objects.create(organization=organization, kind="sqlite", name="Sample",
                                           options={"path": sample_sqlite}, secrets={"password": "s3cr3t-value"})
        app = App.objects.create(organization=organization, name=f"{key} app", slug=f"{key}-app",
                                 definition={"pages": [{"name": "home", "components": [{"type": "table"}]}]})
        version = AppVersion.objects.create(app=app, name="v1", definition=app.definition)
        version.release()
        listing = DataQuery.objects.create(app=app, data_source=source, name="customers", run_on_page_load=True,
                                           options={"query": "SELECT id, name FROM customers WHERE city = :city "
                                                             "ORDER BY id LIMIT 5"})
        broken = DataQuery.objects.create(app=app, data_source=source, name="broken", run_on_page_load=True,
                                          options={"query": "SELECT * FROM no_such_table"})
        spare = DataSource.objects.create(organization=organization, kind="restapi", name="Spare",
                                          options={"base_url": "http://127.0.0.1:9"})
        objects[key] = {"org": organization, "source": source, "app": app, "version": version,
                        "query": listing, "broken": broken, "spare": spare}
    objects["users"] = {role: make_member(org, role) for role in ("viewer", "builder", "admin")}
    AppTemplate.objects.create(name="CRM", slug="crm", definition={"pages": [{"name": "crm"}]},
                               queries=[{"name": "all", "kind": "sqlite", "options": {"query": "SELECT 1"}}])
    return objects
