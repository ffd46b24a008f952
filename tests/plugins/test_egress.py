"""The egress policy through the API, against the real services on loopback: every target
that belongs to the platform or is not public is a 400 naming its rule, counted, and
never connected to; what the allowlist names works."""

import sqlite3
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests

from apps_builder.models import App, DataQuery, DataSource
from plugins.restapi import PinnedAdapter
from telemetry.testing import Samples
from tests.live import embedded_env, gunicorn

REFUSALS = "tooljet_plugin_query_result_total"


@pytest.fixture
def admin(org, make_member, api_client_for):
    return api_client_for(make_member(org, "admin"))


@pytest.fixture
def attempt(org, admin):
    """attempt(kind, options, query=None, secrets=None) -> (test response, run response) of
    a new data source through the API."""
    created = []

    def attempt(kind, options, query=None, secrets=None):
        source = DataSource.objects.create(organization=org, kind=kind, name=f"{kind} {len(created)}",
                                           options=options, secrets=secrets or {})
        app = App.objects.create(organization=org, name="probe", slug=f"probe-{org.pk}-{len(created)}")
        data_query = DataQuery.objects.create(app=app, data_source=source, name="probe", options=query or {})
        created.append(source)
        tested = admin.post(f"/api/data-sources/{source.pk}/test", format="json")
        run = admin.post(f"/api/data-queries/{data_query.pk}/run", {}, format="json")
        return tested, run

    return attempt


def assert_refused(responses, rule):
    for response in responses:
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == "egress_denied" and f"rule {rule}" in error["message"], error


def refusals(kind):
    return Samples().snapshot(REFUSALS, {"tooljet_datasource_kind": kind, "tooljet_query_result": "egress_denied"})


@pytest.fixture
def platform_database(settings):
    database = settings.DATABASES["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql", "make test runs the platform on PostgreSQL"
    return database


def test_the_platforms_database_with_its_credentials_is_refused_even_when_its_server_is_allowlisted(
        attempt, platform_database, allow_egress):
    allow_egress(f"{platform_database['HOST']}:{platform_database['PORT']}")  # the whole server, not this database
    counted = refusals("postgresql")
    responses = attempt("postgresql", {"host": platform_database["HOST"], "port": platform_database["PORT"],
                                       "database": platform_database["NAME"], "user": platform_database["USER"]},
                        {"query": "SELECT username, password FROM auth_user"},
                        secrets={"password": platform_database["PASSWORD"]})
    assert_refused(responses, "platform_database")
    assert "platform's own database" in responses[1].json()["error"]["message"]
    assert counted() == 2  # the connection test and the run


def test_another_database_on_loopback_is_refused(attempt, platform_database):
    for host in ("127.0.0.1", "localhost", "[::1]"):
        url = f"postgresql://{platform_database['USER']}:{platform_database['PASSWORD']}@{host}:5432/postgres"
        responses = attempt("postgresql", {}, {"query": "SELECT 1"}, secrets={"url": url})
        assert_refused(responses, "loopback")
        assert platform_database["PASSWORD"] not in responses[0].content.decode()


def test_mysql_on_loopback_is_refused_and_unix_sockets_are_not_network_addresses(attempt, mysql_url):
    parts = urlsplit(mysql_url)
    assert_refused(attempt("mysql", {"host": "localhost", "port": parts.port, "database": "mysql",
                                     "user": parts.username}, {"query": "SELECT 1"}), "loopback")
    assert_refused(attempt("postgresql", {"host": "/var/run/postgresql", "database": "postgres"},
                           {"query": "SELECT 1"}), "unix_socket")


def test_the_celery_brokers_redis_is_refused_another_database_there_is_allowed(
        attempt, settings, redis_url, allow_egress):
    parts = urlsplit(redis_url)
    broker = f"redis://{parts.hostname}:{parts.port}/3"
    settings.CELERY_BROKER_URL = broker
    allow_egress(f"{parts.hostname}:{parts.port}")  # the whole server: the broker needs an entry naming it
    counted = refusals("redis")
    assert_refused(attempt("redis", {"url": broker}, {"command": "PING"}), "platform_broker")
    assert counted() == 2
    tested, run = attempt("redis", {"url": redis_url}, {"command": "PING"})
    assert tested.status_code == 200 and run.json()["data"]["data"] is True, run.content


@pytest.mark.parametrize("command", [["CONFIG", "GET", "*"], ["KEYS", "*"], ["CLIENT", "LIST"], ["FLUSHALL"],
                                     ["DEBUG", "SLEEP", "0"], ["MODULE", "LIST"], ["REPLICAOF", "NO", "ONE"],
                                     ["EVAL", "return 1", "0"], ["SCRIPT", "FLUSH"], ["ACL", "LIST"],
                                     ["SHUTDOWN"], ["SELECT", "0"]])
def test_redis_runs_data_commands_only(attempt, redis_url, command):
    _, run = attempt("redis", {"url": redis_url}, {"command": command})
    assert run.status_code == 400 and run.json()["error"]["code"] == "command_not_allowed", run.content


def test_the_platforms_own_gunicorn_metrics_are_refused_over_rest(attempt, settings, allow_egress, tmp_path):
    with gunicorn(embedded_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=tmp_path / "prom"), workers=1) as (base_url, _):
        assert requests.get(base_url + "/metrics", timeout=10).status_code == 200  # loopback reads it all
        address = urlsplit(base_url).netloc
        # Where the web server listens, as settings derive it from GUNICORN_BIND / PORT.
        settings.PLUGINS = {**settings.PLUGINS, "EGRESS_PLATFORM_ADDRESSES": [address]}
        allow_egress("127.0.0.0/8")  # even with all of loopback allowlisted
        counted = refusals("restapi")
        responses = attempt("restapi", {"base_url": base_url}, {"method": "GET", "path": "/metrics"})
    assert_refused(responses, "platform_web")
    assert counted() == 2


def test_rest_sources_on_loopback_are_refused_before_any_request(attempt, unlisted_http_port, http_hits):
    for base_url in (f"http://127.0.0.1:{unlisted_http_port}", f"http://localhost:{unlisted_http_port}",
                     f"http://0.0.0.0:{unlisted_http_port}"):
        responses = attempt("restapi", {"base_url": base_url}, {"method": "GET", "path": "/anything"})
        assert_refused(responses, "unspecified" if "0.0.0.0" in base_url else "loopback")
    for base_url in ("http://169.254.169.254", "http://10.1.2.3", "http://[fd00::1]", "http://100.64.0.1"):
        responses = attempt("restapi", {"base_url": base_url}, {"method": "GET", "path": "/latest/meta-data"})
        assert responses[0].status_code == 400 and responses[0].json()["error"]["code"] == "egress_denied"
    assert http_hits(unlisted_http_port) == []


def test_a_redirect_is_checked_at_every_hop(attempt, http_base_url, unlisted_http_port, http_hits):
    counted = refusals("restapi")
    to_loopback = f"http://127.0.0.1:{unlisted_http_port}/secret"
    _, run = attempt("restapi", {"base_url": http_base_url},
                     {"method": "GET", "path": "/redirect", "params": {"to": to_loopback}})
    assert_refused([run], "loopback")
    assert http_hits(unlisted_http_port) == [] and counted() == 1
    _, run = attempt("restapi", {"base_url": http_base_url},
                     {"method": "GET", "path": "/redirect", "params": {"to": f"{http_base_url}/landed"}})
    assert run.status_code == 200 and run.json()["data"]["data"]["raw_path"] == "/api/landed", run.content


def test_a_name_is_connected_to_at_its_checked_address_with_its_host_header(attempt, http_base_url, allow_egress):
    port = urlsplit(http_base_url).port
    allow_egress(f"localhost:{port}")
    _, run = attempt("restapi", {"base_url": f"http://localhost:{port}/api"}, {"method": "GET", "path": "/echo"})
    assert run.status_code == 200, run.content
    assert run.json()["data"]["data"]["host"] == f"localhost:{port}"


def test_an_allowlisted_database_works(attempt, postgres_plugin_url):
    tested, run = attempt("postgresql", {}, {"query": "SELECT 41 + 1 AS answer"}, secrets={"url": postgres_plugin_url})
    assert tested.status_code == 200 and tested.json()["ok"] is True, tested.content
    assert run.status_code == 200 and run.json()["data"]["rows"] == [[42]], run.content


@pytest.fixture
def sqlite_directory(settings, tmp_path):
    """A directory for SQLite sources holding ``inside.sqlite3``; ``outside.sqlite3`` beside it."""
    directory = tmp_path / "sources"
    directory.mkdir()
    for path in (directory / "inside.sqlite3", tmp_path / "outside.sqlite3"):
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE t (x)")
            connection.execute("INSERT INTO t VALUES (1)")
        connection.close()
    settings.PLUGINS = {**settings.PLUGINS, "SQLITE_DIRECTORY": str(directory)}
    return directory


def test_sqlite_sources_stay_inside_their_directory(attempt, sqlite_directory):
    (sqlite_directory / "link.sqlite3").symlink_to(sqlite_directory.parent / "outside.sqlite3")
    counted = refusals("sqlite")
    for path in (str(sqlite_directory.parent / "outside.sqlite3"), "../outside.sqlite3",
                 str(sqlite_directory / "link.sqlite3"), "/etc/passwd"):
        assert_refused(attempt("sqlite", {"path": path}, {"query": "SELECT 1"}), "sqlite_directory")
    assert counted() == 8
    _, run = attempt("sqlite", {"path": "inside.sqlite3"}, {"query": "SELECT x FROM t"})
    assert run.status_code == 200 and run.json()["data"]["rows"] == [[1]], run.content


@pytest.mark.parametrize("statement", [
    "ATTACH DATABASE '{directory}/created.sqlite3' AS other",
    "VACUUM INTO '{directory}/copy.sqlite3'",
    "SELECT load_extension('/usr/lib/x86_64-linux-gnu/libsqlite3.so')",
    "INSERT INTO t VALUES (2)",
    "PRAGMA writable_schema = ON",
])
def test_sqlite_sources_are_read_only_and_cannot_reach_other_files(attempt, sqlite_directory, statement):
    _, run = attempt("sqlite", {"path": "inside.sqlite3"}, {"query": statement.format(directory=sqlite_directory)})
    assert run.status_code == 400 and run.json()["error"]["code"] == "query_failed", run.content
    assert sorted(path.name for path in sqlite_directory.iterdir()) == ["inside.sqlite3"]
    with sqlite3.connect(sqlite_directory / "inside.sqlite3") as connection:
        assert connection.execute("SELECT x FROM t").fetchall() == [(1,)]
    connection.close()


@pytest.fixture
def tls_server(tmp_path):
    """(port, CA bundle, SNI names seen) of a local HTTPS server whose certificate names
    ``localhost`` only; it answers with the Host header it got."""
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(certificate)],
                   check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = (self.headers.get("Host") or "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    names = []
    context.sni_callback = lambda _socket, name, _context: names.append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1], str(certificate), names
    server.shutdown()
    server.server_close()


def test_https_keeps_the_urls_name_for_sni_and_verification_while_connecting_to_the_checked_address(
        tls_server, allow_egress):
    port, bundle, names = tls_server
    allow_egress(f"localhost:{port}")
    allow_egress(f"127.0.0.1:{port}")
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", PinnedAdapter())
    response = session.get(f"https://localhost:{port}/", verify=bundle, timeout=10)
    assert response.text == f"localhost:{port}" and names == ["localhost"]
    with pytest.raises(requests.exceptions.SSLError):  # the certificate does not name the address
        session.get(f"https://127.0.0.1:{port}/", verify=bundle, timeout=10)
