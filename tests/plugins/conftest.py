"""Fixtures of the plugin tests: real servers (PostgreSQL, MariaDB, Redis from
``.ci/services``; an HTTP server and a silent TCP server started here; SQLite files)."""

import json
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

import plugins
from plugins.sqlite import SQLitePlugin

GOOD_TOKEN = "s3cret-token-value"


@pytest.fixture(autouse=True)
def empty_connection_cache():
    plugins.connection_cache.clear()
    yield
    plugins.connection_cache.clear()


@pytest.fixture
def table_name():
    return f"plugin_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def plugin_settings(settings):
    """plugin_settings(**overrides) lays overrides over ``settings.PLUGINS`` for a test."""

    def apply(**overrides):
        settings.PLUGINS = {**settings.PLUGINS, **overrides}

    return apply


class RecordingSQLitePlugin(SQLitePlugin):
    """The real SQLite plugin, remembering the connections it opened and closed."""

    kind = "recording_sqlite"
    opened: ClassVar[list] = []
    closed: ClassVar[list] = []
    reports: ClassVar[list] = []

    def connect(self, options, deadline):
        connection = super().connect(options, deadline)
        self.opened.append(connection)
        return connection

    def close(self, connection):
        self.closed.append(connection)
        super().close(connection)

    def report(self, record):
        self.reports.append(record)


@pytest.fixture
def recording_sqlite(plugin_settings, tmp_path):
    """(plugin class, options) of a SQLite file whose connections are recorded."""
    path = tmp_path / "recorded.sqlite3"
    sqlite3.connect(path).close()
    plugin_settings(PLUGIN_CLASSES={
        **plugins.conf.DEFAULTS["PLUGIN_CLASSES"],
        "recording_sqlite": "tests.plugins.conftest.RecordingSQLitePlugin",
    })
    RecordingSQLitePlugin.opened.clear()
    RecordingSQLitePlugin.closed.clear()
    RecordingSQLitePlugin.reports.clear()
    return RecordingSQLitePlugin, {"path": str(path)}


class _Handler(BaseHTTPRequestHandler):
    release = threading.Event()
    hits: ClassVar[list] = []

    def log_message(self, *args):
        pass

    def _answer(self, status, payload, content_type="application/json"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.hits.append((self.server.server_address[1], url.path))
        echo = {"method": method, "raw_path": url.path, "params": parse_qs(url.query), "body": body,
                "authorization": self.headers.get("Authorization"), "x_custom": self.headers.get("X-Custom"),
                "host": self.headers.get("Host")}
        if url.path.endswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if url.path == "/secure":
            if self.headers.get("Authorization") != f"Bearer {GOOD_TOKEN}":
                return self._answer(401, {"error": "unauthorized"})
            return self._answer(200, {"ok": True})
        if url.path == "/slow":
            self.release.wait(10)
            return self._answer(200, {"slow": True})
        if url.path == "/fail":
            return self._answer(500, {"error": "boom"})
        if url.path == "/text":
            return self._answer(200, b"plain words", "text/plain")
        return self._answer(200, echo)

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")


@contextmanager
def _http_server():
    """Port of a local HTTP server answering with ``_Handler``, for the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        _Handler.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http_base_url(allow_egress):
    """Base URL of a local HTTP server (routes in ``_Handler``), allowlisted."""
    _Handler.release.clear()
    _Handler.hits.clear()
    with _http_server() as port:
        allow_egress(f"127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}/api"


@pytest.fixture
def unlisted_http_port():
    """Port of a second local HTTP server, not in the allowlist; ``http_hits()`` tells
    whether any request reached it."""
    with _http_server() as port:
        yield port


@pytest.fixture
def http_hits():
    """http_hits(port) -> paths requested from the local HTTP server on ``port``."""
    return lambda port: [path for hit_port, path in _Handler.hits if hit_port == port]


@pytest.fixture
def silent_server(allow_egress):
    """(host, port) of a TCP server that accepts connections and never answers, allowlisted."""
    listener = socket.create_server(("127.0.0.1", 0))
    allow_egress(f"127.0.0.1:{listener.getsockname()[1]}")
    listener.settimeout(0.1)
    held, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[:2]
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    listener.close()


@pytest.fixture
def elapsed():
    """elapsed() -> seconds since the test started, to bound how long a call held us."""
    started = time.monotonic()
    return lambda: time.monotonic() - started
