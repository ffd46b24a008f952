"""Secrets stay secret: credentials never sit in readable data-source options, and API
tokens are stored as digests, so reading the database yields no usable token."""

import hashlib
import importlib
import json

import pytest
from django.apps import apps
from django.db import connection
from rest_framework.test import APIClient

from apps_builder import credentials
from apps_builder.models import ApiToken, DataSource

pytestmark = pytest.mark.django_db

hash_clear_tokens = importlib.import_module("apps_builder.migrations.0003_api_tokens_and_invitations").hash_clear_tokens

DSN = "postgresql://warehouse:dsn-pass-0xfeed@db.example.com:5432/sales"


@pytest.fixture
def admin(world, api_client_for):
    return api_client_for(world["users"]["admin"])


@pytest.mark.parametrize("options, named", [
    ({"dsn": DSN}, "dsn"),
    ({"host": "db.example.com", "connection_string": "host=db user=x"}, "connection_string"),
    ({"url": "redis://:redis-pass@cache.example.com:6379/0"}, "url"),
    ({"base_url": "https://api-user:api-pass@api.example.com/"}, "base_url"),
    ({"base_url": "https://api.example.com/", "headers": {"Authorization": "Bearer abc"}}, "headers.Authorization"),
    ({"headers": {"X-Api-Key": "abc"}}, "headers.X-Api-Key"),
    ({"API_TOKEN": "abc"}, "API_TOKEN"),
    ({"extra": "host=db password=pw-in-a-keyword-dsn"}, "extra"),
    ({"hosts": ["https://a.example.com", "https://u:p@b.example.com"]}, "hosts[1]"),
])
def test_credentials_in_options_are_refused_with_a_pointer_to_secrets(world, admin, options, named):
    response = admin.post("/api/data-sources/", {"organization": world["own"]["org"].pk, "kind": "restapi",
                                                 "name": "Leaky", "options": options}, format="json")
    assert response.status_code == 400, response.content
    message = response.json()["options"][0]
    assert named in message and "secrets" in message
    assert not DataSource.objects.filter(name="Leaky").exists()


def test_the_same_credentials_are_accepted_in_secrets(world, admin):
    response = admin.post("/api/data-sources/", {
        "organization": world["own"]["org"].pk, "kind": "postgresql", "name": "Warehouse",
        "options": {"host": "db.example.com", "port": 5432}, "secrets": {"dsn": DSN}}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["options"] == {"host": "db.example.com", "port": 5432}
    assert response.json()["secret_keys"] == ["dsn"]
    assert DSN not in response.content.decode()
    source = DataSource.objects.get(name="Warehouse")
    assert source.connection_options()["dsn"] == DSN  # what the plugin connects with


def test_a_dsn_stored_in_options_is_not_returned_to_a_viewer(world, api_client_for):
    # Written before the rule (or by other means than the API): still never served.
    stored = DataSource.objects.create(
        organization=world["own"]["org"], kind="postgresql", name="Legacy",
        options={"dsn": DSN, "host": "db.example.com", "headers": {"Accept": "json", "Cookie": "sid=cookie-0xbeef"},
                 "mirror": "postgres://reader:mirror-pass-0xcafe@mirror.example.com/sales"})
    viewer = api_client_for(world["users"]["viewer"])
    for response in (viewer.get("/api/data-sources/"), viewer.get(f"/api/data-sources/{stored.pk}/")):
        assert response.status_code == 200
        body = response.content.decode()
        for secret in ("dsn-pass-0xfeed", "cookie-0xbeef", "mirror-pass-0xcafe"):
            assert secret not in body
    assert viewer.get(f"/api/data-sources/{stored.pk}/").json()["options"] == {
        "host": "db.example.com", "headers": {"Accept": "json"}}


def test_harmless_options_are_not_mistaken_for_credentials():
    options = {"host": "db.example.com", "port": 5432, "database": "sales", "base_url": "https://api.example.com/v1",
               "headers": {"Accept": "application/json"}, "url": "redis://cache.example.com:6379/0",
               "path": "/srv/data/sample.sqlite3", "username": "reader", "ssl_mode": "require"}
    assert credentials.credential_paths(options) == []
    assert credentials.without_credentials(options) == options


def login(client, user):
    response = client.post("/api/auth/login", {"username": user.username, "password": "pw-" + user.username},
                           format="json")
    assert response.status_code == 200
    return response.json()["token"]


def test_a_token_read_from_the_database_cannot_authenticate(world):
    user = world["users"]["viewer"]
    key = login(APIClient(), user)
    stored = list(ApiToken.objects.filter(user=user).values())
    assert len(stored) == 1
    row_text = json.dumps(stored, default=str)
    assert key not in row_text
    assert stored[0]["digest"] == hashlib.sha256(key.encode()).hexdigest()

    def status_with(token):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client.get("/api/apps/").status_code

    assert status_with(key) == 200
    assert status_with(stored[0]["digest"]) == 401
    assert status_with(stored[0]["digest"][:40]) == 401


@pytest.mark.django_db(databases=["default", "telemetry"])
def test_tokens_work_on_the_telemetry_api_and_inactive_users_are_refused(world, django_user_model):
    staff = django_user_model.objects.create_user("ops", password="pw-ops", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.issue(staff)}")
    assert client.get("/telemetry/api/traces").status_code == 200
    staff.is_active = False
    staff.save()
    assert client.get("/telemetry/api/traces").status_code == 401


def test_each_login_issues_a_new_key_and_a_user_keeps_the_newest_ones(world):
    user = world["users"]["builder"]
    keys = [login(APIClient(), user) for _ in range(ApiToken.MAX_PER_USER + 1)]
    assert len(set(keys)) == len(keys)
    assert ApiToken.objects.filter(user=user).count() == ApiToken.MAX_PER_USER

    def works(key):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client.get("/api/apps/").status_code == 200

    assert not works(keys[0])
    assert all(works(key) for key in keys[1:])


def test_the_migration_turns_clear_tokens_into_digests(world):
    """``authtoken_token`` rows an earlier deployment left become digests, and the clear
    keys are deleted (DDL is transactional on PostgreSQL: the test's table goes away)."""
    user = world["users"]["admin"]
    clear_key = "f" * 40
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamptz NOT NULL, "
                       "user_id integer NOT NULL)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), %s)", [clear_key, user.pk])
    with connection.schema_editor() as schema_editor:
        hash_clear_tokens(apps, schema_editor)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {clear_key}")
    assert client.get("/api/apps/").status_code == 200  # the client keeps its token
