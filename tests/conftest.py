"""Shared fixtures. Tests run against real services started by ``.ci/services``; a
missing service is an error, never a skip."""

import os
import sqlite3
from urllib.parse import urlsplit

import pytest

from telemetry.core import recorder
from telemetry.metrics import families

# Telemetry events in the test process are applied by explicit flushes (the `samples`
# fixture, /metrics), never by a background thread racing the test databases.
recorder.run_in_foreground()
# Families take the namespace in force when they are first defined: define them now, with
# the platform's settings, before a test replaces TELEMETRY wholesale (the library's default
# namespace is not the platform's).
families()


def _required_env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the tests with `make test` (it starts the services)")
    return value


@pytest.fixture(scope="session")
def redis_url():
    return _required_env("TEST_REDIS_URL")


@pytest.fixture(scope="session")
def mysql_url():
    return _required_env("TEST_MYSQL_URL")


@pytest.fixture(scope="session")
def postgres_plugin_url():
    return _required_env("TEST_POSTGRES_PLUGIN_URL")


@pytest.fixture(autouse=True)
def data_source_egress(settings, tmp_path_factory):
    """The egress policy stays on in every test. Allowlisted, exactly: the test services'
    databases (``TEST_*_URL`` host:port/database, never the platform's); SQLite sources
    read pytest's temporary directory. Servers a test starts add themselves with
    ``allow_egress``."""
    allowlist = []
    for name in ("TEST_POSTGRES_PLUGIN_URL", "TEST_MYSQL_URL", "TEST_REDIS_URL"):
        if os.environ.get(name):
            parts = urlsplit(os.environ[name])
            allowlist.append(f"{parts.hostname}:{parts.port}{parts.path}")
    settings.PLUGINS = {**settings.PLUGINS, "EGRESS_ALLOWLIST": allowlist,
                        "SQLITE_DIRECTORY": str(tmp_path_factory.getbasetemp())}


@pytest.fixture
def allow_egress(settings):
    """allow_egress("127.0.0.1:8123") adds an entry to the egress allowlist for a test."""

    def allow(entry):
        settings.PLUGINS = {**settings.PLUGINS,
                            "EGRESS_ALLOWLIST": [*settings.PLUGINS["EGRESS_ALLOWLIST"], entry]}

    return allow


@pytest.fixture
def make_member(db, django_user_model):
    """make_member(org, role, username=None) -> User with a membership of ``role`` in ``org``."""
    from apps_builder.models import Membership

    counter = {"n": 0}

    def make(org, role, username=None):
        counter["n"] += 1
        username = username or f"{role}-{org.slug}-{counter['n']}"
        user = django_user_model.objects.create_user(username=username, password="pw-" + username)
        Membership.objects.create(user=user, organization=org, role=role)
        return user

    return make


@pytest.fixture
def org(db):
    from apps_builder.models import Organization

    return Organization.objects.create(name="Acme", slug="acme")


@pytest.fixture
def other_org(db):
    from apps_builder.models import Organization

    return Organization.objects.create(name="Globex", slug="globex")


@pytest.fixture
def api_client_for():
    """api_client_for(user) -> DRF APIClient authenticated with a new token of the user."""
    from rest_framework.test import APIClient

    from apps_builder.models import ApiToken

    def make(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.issue(user)}")
        return client

    return make


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Password hashing dominates fixtures that create users; its strength is not under test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_telemetry_state():
    """Each test starts without the label caps, pending rows and rate limits (findings,
    stored log rows) that earlier tests left in this process."""
    from telemetry import testing

    testing.reset()


@pytest.fixture
def browser():
    """Debian's headless Chromium through chromedriver (installed by .ci/services)."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1100"):
        options.add_argument(argument)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService("/usr/bin/chromedriver"))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def sample_sqlite(tmp_path):
    """A SQLite datasource file: 20 customers, alternately in Oslo and Paris."""
    path = tmp_path / "sample.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT)")
        connection.executemany("INSERT INTO customers (name, city) VALUES (?, ?)",
                               [(f"customer {i}", "Paris" if i % 2 else "Oslo") for i in range(20)])
    return str(path)
