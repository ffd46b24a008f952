"""Bad input is a 400, never a 500, and nothing is stored: each
demonstration of issue 12 against the real PostgreSQL database, through the one
validation layer (the default parsers and the parameters middleware)."""

import json

import pytest
from rest_framework.test import APIClient

from apps_builder.models import App, DataQuery
from apps_builder.validation import MAX_JSON_DEPTH

pytestmark = pytest.mark.django_db


@pytest.fixture
def builder(world, api_client_for):
    return api_client_for(world["users"]["builder"])


def post_raw(client, path, body, content_type="application/json"):
    return client.generic("POST", path, body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body,
                          content_type=content_type)


def nested(levels):
    return "[" * levels + "]" * levels


def app_body(world, definition_json='{"pages": []}', name='"New app"'):
    return f'{{"organization": {world["own"]["org"].pk}, "name": {name}, "definition": {definition_json}}}'


@pytest.mark.parametrize("name, body", [
    ("NUL in a field", lambda world: app_body(world, name=r'"bad\u0000name"')),
    ("NUL in a nested key", lambda world: app_body(world, definition_json=r'{"pages": [{"na\u0000me": 1}]}')),
    ("lone surrogate", lambda world: app_body(world, name=r'"bad\ud800name"')),
    ("lone low surrogate in a key", lambda world: app_body(world, definition_json=r'{"\udc00": 1}')),
    ("5,000 levels", lambda world: app_body(world, definition_json=f'{{"pages": {nested(5000)}}}')),
    ("1e400", lambda world: app_body(world, definition_json='{"pages": [], "zoom": 1e400}')),
    ("-1e400", lambda world: app_body(world, definition_json='{"pages": [], "zoom": -1e400}')),
    ("NaN", lambda world: app_body(world, definition_json='{"pages": [], "zoom": NaN}')),
    ("Infinity", lambda world: app_body(world, definition_json='{"pages": [], "zoom": Infinity}')),
    ("invalid UTF-8", lambda world: b'{"name": "\xff"}'),
])
def test_bad_json_bodies_are_a_400_and_store_nothing(world, builder, name, body):
    response = post_raw(builder, "/api/apps/", body(world))
    assert response.status_code == 400, response.content
    assert response.json()["detail"]
    assert App.objects.count() == 2


def test_the_same_checks_guard_every_json_endpoint(world, builder):
    query = world["own"]["query"].pk
    assert post_raw(builder, f"/api/data-queries/{query}/run", r'{"parameters": {"city": "Os\u0000lo"}}'
                    ).status_code == 400
    assert builder.patch(f"/api/data-queries/{query}/", {"name": "x\x00y"}, format="json").status_code == 400
    assert DataQuery.objects.get(pk=query).name == "customers"


def test_depth_at_the_limit_is_accepted_and_one_more_is_refused(world, builder):
    # The definition sits at depth 1 of the body; "pages" adds one more.
    at_limit = app_body(world, definition_json=f'{{"pages": [], "deep": {nested(MAX_JSON_DEPTH - 2)}}}')
    assert post_raw(builder, "/api/apps/", at_limit).status_code == 201
    beyond = app_body(world, definition_json=f'{{"pages": [], "deep": {nested(MAX_JSON_DEPTH - 1)}}}')
    assert post_raw(builder, "/api/apps/", beyond).status_code == 400
    # Brackets inside strings are text, not nesting.
    in_text = app_body(world, definition_json=json.dumps({"pages": [], "note": "[" * 5000}), name='"Brackets"')
    assert post_raw(builder, "/api/apps/", in_text).status_code == 201


def test_valid_surrogate_pairs_and_large_finite_numbers_pass(world, builder):
    response = post_raw(builder, "/api/apps/", app_body(world, definition_json='{"pages": [], "zoom": 1e300}',
                                                          name=r'"Rocket \ud83d\ude80"'))
    assert response.status_code == 201, response.content
    app = App.objects.get(pk=response.json()["id"])
    assert app.name == "Rocket \U0001F680" and float(app.definition["zoom"]) == 1e300


def test_a_100000_level_body_to_the_anonymous_login_is_a_400():
    response = post_raw(APIClient(), "/api/auth/login", '{"username": ' + nested(100_000) + "}")
    assert response.status_code == 400
    assert "nest" in response.json()["detail"]


def test_a_body_over_the_upload_limit_is_a_400(world, builder, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = post_raw(builder, "/api/apps/", app_body(world, name=json.dumps("x" * 20_000)))
    assert response.status_code == 400
    assert App.objects.count() == 2


def test_nul_in_a_url_slug_or_a_query_parameter_is_a_400(world, builder):
    assert builder.get("/api/apps/own%00app/").status_code == 400
    assert builder.get("/api/apps/own%00app/view").status_code == 400
    assert builder.get("/api/data-queries/", {"app": "own-app\x00"}).status_code == 400
    assert builder.get("/api/data-queries/", {"a\x00pp": "own-app"}).status_code == 400
    assert builder.get(f"/api/organizations/{world['own']['org'].pk}/activity", {"subject": "app:\x00"}
                       ).status_code == 400
    # Anonymous callers and pages outside the API get the same answer.
    assert APIClient().get("/api/apps/%00/").status_code == 400
    assert APIClient().get("/admin/apps_builder/app/", {"q": "\x00"}).status_code == 400
    # A filter that is merely unknown still answers normally.
    assert builder.get("/api/data-queries/", {"app": "no-such-app"}).json()["results"] == []


def test_form_bodies_are_checked_too(world, builder):
    response = builder.post("/api/apps/", {"organization": world["own"]["org"].pk, "name": "x\x00y"})
    assert response.status_code == 400
    response = builder.post("/api/apps/", {"organization": world["own"]["org"].pk, "name": "x\x00y"},
                            format="multipart")
    assert response.status_code == 400
    assert App.objects.count() == 2


@pytest.mark.parametrize("value", ["²", "٣", "1" * 40, "-1"])
def test_ids_written_as_text_that_are_not_ids_find_nothing(world, builder, value):
    assert builder.get("/api/apps/", {"organization": value}).json()["results"] == []
    response = builder.post("/api/apps/own-app/release", {"version": value}, format="json")
    assert response.status_code == 400 and "version" in response.json()
    response = builder.post("/api/apps/from-template", {"template": value, "organization": world["own"]["org"].pk,
                                                        "name": "x"}, format="json")
    assert response.status_code == 400 and "template" in response.json()
