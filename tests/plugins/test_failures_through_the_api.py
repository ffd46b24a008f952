"""Failing datasources seen through the API, against the real servers: wrong credentials
and a hung server end in a structured 502 (never a 500), the hung one by the run's
deadline, with no secret in the response and nothing stored changed."""

from urllib.parse import urlsplit

import pytest

from apps_builder.models import App, DataQuery, DataSource

pytestmark = pytest.mark.django_db

WRONG_PASSWORD = "Wrong-Pa55word-9f3k"


@pytest.fixture
def server_options(postgres_plugin_url, mysql_url, redis_url):
    """kind -> (options without the password, a query) for each real database server."""
    postgres, mysql, redis = urlsplit(postgres_plugin_url), urlsplit(mysql_url), urlsplit(redis_url)
    return {
        "postgresql": ({"host": postgres.hostname, "port": postgres.port or 5432,
                        "database": postgres.path.lstrip("/"), "user": postgres.username}, {"query": "SELECT 1"}),
        "mysql": ({"host": mysql.hostname, "port": mysql.port or 3306, "database": mysql.path.lstrip("/"),
                   "user": mysql.username}, {"query": "SELECT 1"}),
        "redis": ({"host": redis.hostname, "port": redis.port or 6379, "db": redis.path.lstrip("/"),
                   "username": "nobody"}, {"command": "PING"}),
    }


@pytest.fixture
def admin(org, make_member, api_client_for):
    return api_client_for(make_member(org, "admin"))


def make_query(org, kind, options, query, secrets=None):
    source = DataSource.objects.create(organization=org, kind=kind, name=f"{kind} source", options=options,
                                       secrets=secrets or {})
    app = App.objects.create(organization=org, name=f"{kind} app", slug=f"{kind}-app-{org.pk}")
    return DataQuery.objects.create(app=app, data_source=source, name="probe", options=query)


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "redis"])
def test_wrong_credentials_are_a_structured_502_without_the_password(kind, org, admin, server_options):
    options, query_options = server_options[kind]
    query = make_query(org, kind, options, query_options, secrets={"password": WRONG_PASSWORD})
    stored = DataSource.objects.values().get(pk=query.data_source_id)
    tested = admin.post(f"/api/data-sources/{query.data_source_id}/test", format="json")
    run = admin.post(f"/api/data-queries/{query.pk}/run", {}, format="json")
    for response in (tested, run):
        assert response.status_code == 502, response.content
        assert response.json()["error"]["code"] == "connection_failed"
        assert WRONG_PASSWORD not in response.content.decode()
    assert DataSource.objects.values().get(pk=query.data_source_id) == stored


@pytest.mark.parametrize("kind", ["postgresql", "restapi"])
def test_a_hung_server_cannot_hold_the_request_past_the_run_timeout(kind, org, admin, silent_server, settings):
    settings.PLUGINS = {**settings.PLUGINS, "RUN_TIMEOUT_SECONDS": 1.0}
    host, port = silent_server
    if kind == "restapi":
        query = make_query(org, kind, {"base_url": f"http://{host}:{port}"}, {"method": "GET", "path": "/"})
    else:
        query = make_query(org, kind, {"host": host, "port": port, "database": "x", "user": "x"},
                           {"query": "SELECT 1"}, secrets={"password": WRONG_PASSWORD})
    response = admin.post(f"/api/data-queries/{query.pk}/run", {}, format="json")
    # The run's deadline ended it: the silent server never answers on its own.
    assert response.status_code == 502, response.content
    body = response.json()
    assert (body["status"], body["error"]["code"]) == ("error", "timeout")
    assert WRONG_PASSWORD not in response.content.decode()
