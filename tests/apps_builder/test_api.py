"""Validation, secrets, viewer load, query runs, templates, releases, login, schema."""

import json

import pytest
from django.contrib.auth.signals import user_logged_in, user_login_failed

from apps_builder.models import App, AppVersion, DataQuery, DataSource

pytestmark = pytest.mark.django_db


@pytest.fixture
def builder(world, api_client_for):
    return api_client_for(world["users"]["builder"])


@pytest.fixture
def admin(world, api_client_for):
    return api_client_for(world["users"]["admin"])


def test_invalid_input_is_a_400_naming_the_field(world, builder):
    response = builder.post("/api/apps/", {"organization": world["own"]["org"].pk, "name": "",
                                           "slug": "not a slug!"}, format="json")
    assert response.status_code == 400
    assert {"name", "slug"} <= set(response.json())
    response = builder.post("/api/apps/", {"organization": world["own"]["org"].pk, "name": "x",
                                           "definition": ["not", "an", "object"]}, format="json")
    assert response.status_code == 400 and "definition" in response.json()
    assert App.objects.count() == 2


def test_a_query_on_another_organizations_data_source_is_refused(world, builder):
    response = builder.post("/api/data-queries/", {"app": "own-app", "data_source": world["other"]["source"].pk,
                                                   "name": "sneaky", "options": {}}, format="json")
    assert response.status_code == 400 and "data_source" in response.json()
    assert not DataQuery.objects.filter(name="sneaky").exists()


def test_secrets_never_appear_in_any_response(world, admin, api_client_for):
    org = world["own"]["org"]
    created = admin.post("/api/data-sources/", {"organization": org.pk, "kind": "postgresql", "name": "Warehouse",
                                                "options": {"host": "127.0.0.1"}, "secrets": {"password": "hunter2-x"}},
                         format="json")
    assert created.status_code == 201
    source_id = created.json()["id"]
    responses = [
        created,
        admin.get("/api/data-sources/"),
        admin.get(f"/api/data-sources/{source_id}/"),
        admin.patch(f"/api/data-sources/{source_id}/", {"secrets": {"password": "hunter3-y"}}, format="json"),
        admin.get(f"/api/apps/{world['own']['app'].slug}/view"),
        api_client_for(world["users"]["viewer"]).get("/api/data-sources/"),
    ]
    for response in responses:
        assert response.status_code in (200, 201), response.content
        body = response.content.decode()
        for secret in ("hunter2-x", "hunter3-y", "s3cr3t-value"):
            assert secret not in body
    assert responses[2].json()["secret_keys"] == ["password"]
    assert DataSource.objects.get(pk=source_id).secrets == {"password": "hunter3-y"}


def test_viewer_load_runs_on_load_queries_and_survives_a_failing_one(world, api_client_for):
    viewer = api_client_for(world["users"]["viewer"])
    response = viewer.get("/api/apps/own-app/view")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == "v1"
    assert body["definition"]["pages"][0]["name"] == "home"
    assert body["queries"]["broken"]["status"] == "error"
    assert body["queries"]["broken"]["error"]["code"]
    # The on-load query has a :city parameter with no value: a structured error too.
    assert body["queries"]["customers"]["status"] == "error"


def test_an_app_without_a_release_is_a_clear_404(world, builder):
    App.objects.create(organization=world["own"]["org"], name="Draft", slug="draft")
    response = builder.get("/api/apps/draft/view")
    assert response.status_code == 404
    assert "released" in response.json()["detail"]


def test_query_run_with_parameters_and_a_failing_query(world, api_client_for):
    viewer = api_client_for(world["users"]["viewer"])
    ok = viewer.post(f"/api/data-queries/{world['own']['query'].pk}/run", {"parameters": {"city": "Oslo"}},
                     format="json")
    assert ok.status_code == 200
    data = ok.json()["data"]
    assert data["columns"] == ["id", "name"] and len(data["rows"]) == 5
    injected = viewer.post(f"/api/data-queries/{world['own']['query'].pk}/run",
                           {"parameters": {"city": "Oslo' OR '1'='1"}}, format="json")
    assert injected.status_code == 200 and injected.json()["data"]["rows"] == []
    failing = viewer.post(f"/api/data-queries/{world['own']['broken'].pk}/run", {}, format="json")
    assert 400 <= failing.status_code < 600 and failing.status_code != 500
    assert failing.json()["status"] == "error"
    assert failing.json()["error"]["code"]


def test_release_flow(world, builder):
    builder.patch("/api/apps/own-app/", {"definition": {"pages": [{"name": "v2 page"}]}}, format="json")
    created = builder.post("/api/apps/own-app/versions/", {"name": "v2"}, format="json")
    assert created.status_code == 201
    duplicate = builder.post("/api/apps/own-app/versions/", {"name": "v2"}, format="json")
    assert duplicate.status_code == 400
    released = builder.post("/api/apps/own-app/release", {"version": "v2"}, format="json")
    assert released.status_code == 200 and released.json()["released_at"]
    view = builder.get("/api/apps/own-app/view").json()
    assert view["version"] == "v2" and view["definition"]["pages"][0]["name"] == "v2 page"
    unknown = builder.post("/api/apps/own-app/release", {"version": "v9"}, format="json")
    assert unknown.status_code == 400
    assert App.objects.get(slug="own-app").released_version.name == "v2"


def test_template_cloning(world, builder):
    response = builder.post("/api/apps/from-template", {"template": "crm", "organization": world["own"]["org"].pk,
                                                        "name": "My CRM"}, format="json")
    assert response.status_code == 201, response.content
    app = App.objects.get(slug=response.json()["slug"])
    assert app.definition == {"pages": [{"name": "crm"}]}
    assert list(app.queries.values_list("name", "data_source__kind")) == [("all", "sqlite")]


def test_template_cloning_needs_the_kinds_it_uses(world, builder):
    DataQuery.objects.filter(data_source__organization=world["own"]["org"]).delete()
    DataSource.objects.filter(organization=world["own"]["org"], kind="sqlite").delete()
    response = builder.post("/api/apps/from-template", {"template": "crm", "organization": world["own"]["org"].pk,
                                                        "name": "No sqlite"}, format="json")
    assert response.status_code == 400 and "template" in response.json()
    assert not App.objects.filter(name="No sqlite").exists()


def test_login_logout_and_failed_login(world, client):
    events = []
    user_logged_in.connect(lambda **kwargs: events.append("in"), weak=False, dispatch_uid="t-in")
    user_login_failed.connect(lambda **kwargs: events.append("failed"), weak=False, dispatch_uid="t-failed")
    try:
        username = world["users"]["viewer"].username
        bad = client.post("/api/auth/login", json.dumps({"username": username, "password": "nope"}),
                          content_type="application/json")
        assert bad.status_code == 401
        good = client.post("/api/auth/login", json.dumps({"username": username, "password": "pw-" + username}),
                           content_type="application/json")
        assert good.status_code == 200 and good.json()["token"]
        assert client.get("/api/apps/").status_code == 200  # the session works
        assert client.post("/api/auth/logout").status_code == 204
        assert client.get("/api/apps/").status_code in (401, 403)
    finally:
        user_logged_in.disconnect(dispatch_uid="t-in")
        user_login_failed.disconnect(dispatch_uid="t-failed")
    assert events == ["failed", "in"]


def test_openapi_schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert any(path.startswith("/api/apps/{slug}/view") for path in paths)
    assert any(path.startswith("/api/data-queries/{id}/run") for path in paths)


def test_list_endpoints_make_a_constant_number_of_queries(world, builder, django_assert_max_num_queries):
    for index in range(10):
        app = App.objects.create(organization=world["own"]["org"], name=f"extra {index}", slug=f"extra-{index}")
        AppVersion.objects.create(app=app, name="v1").release()
    with django_assert_max_num_queries(6):
        assert len(builder.get("/api/apps/").json()["results"]) == 11
    with django_assert_max_num_queries(6):
        builder.get("/api/data-queries/")
