"""The Redis plugin against the real server (the test database of TEST_REDIS_URL)."""

import uuid
from urllib.parse import urlsplit

import pytest
import redis

import plugins
from plugins import ConnectionFailed, QueryFailed, QueryTimeout

INJECTION = "x'); DROP TABLE t; --\r\nFLUSHALL\r\n"


@pytest.fixture
def redis_key(redis_url):
    key = f"plugin-test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield key
    client.delete(key, f"{key}:other")
    client.close()


@pytest.fixture
def redis_options(redis_url):
    parts = urlsplit(redis_url)
    return {"host": parts.hostname, "port": parts.port or 6379, "db": int(parts.path.lstrip("/") or 0)}


def run(options, query, parameters=None, **kwargs):
    return plugins.run_query(data_source_id="redis", kind="redis", options=options, query=query,
                             parameters=parameters, **kwargs)


def test_parameterized_commands(redis_options, redis_key):
    assert run(redis_options, {"command": "SET", "args": [":key", ":value"]},
               {"key": redis_key, "value": "hello"}).data is True
    assert run(redis_options, {"command": ["GET", "{{key}}"]}, {"key": redis_key}).data == "hello"
    result = run(redis_options, {"command": "RPUSH", "args": [f"{redis_key}:other", "a", "b"]})
    assert result.data == 2
    result = run(redis_options, {"command": f"LRANGE {redis_key}:other 0 -1"})
    assert result.data == ["a", "b"] and result.row_count == 2


def test_parameter_values_are_single_arguments(redis_url, redis_options, redis_key):
    run(redis_options, {"command": "SET", "args": [":key", ":value"]}, {"key": redis_key, "value": INJECTION})
    assert run(redis_options, {"command": "GET", "args": [":key"]}, {"key": redis_key}).data == INJECTION
    assert redis.Redis.from_url(redis_url, socket_timeout=5).exists(redis_key) == 1


def test_url_option(redis_url, redis_key):
    assert run({"url": redis_url}, {"command": "EXISTS", "args": [":key"]}, {"key": redis_key}).data == 0


def test_missing_parameter_and_bad_command(redis_options):
    with pytest.raises(QueryFailed) as caught:
        run(redis_options, {"command": "GET", "args": [":key"]})
    assert caught.value.code == "missing_parameter"
    with pytest.raises(QueryFailed) as caught:
        run(redis_options, {"command": "NOSUCHCOMMAND"})
    assert caught.value.code == "command_not_allowed"  # only known data commands reach the server
    with pytest.raises(QueryFailed) as caught:
        run(redis_options, {"command": "SUBSCRIBE", "args": ["channel"]})
    assert caught.value.code == "command_not_allowed"


def test_bad_credentials_do_not_leak_the_password(redis_options):
    with pytest.raises(ConnectionFailed) as caught:
        run({**redis_options, "username": "nobody", "password": "Wrong-Pa55word-xyz"}, {"command": "PING"})
    assert "Wrong-Pa55word-xyz" not in caught.value.message + repr(caught.value)


def test_blocking_command_times_out(redis_options, redis_key, elapsed):
    with pytest.raises(QueryTimeout):
        run(redis_options, {"command": "BLPOP", "args": [redis_key, "30"]}, timeout=1)
    assert elapsed() < 10


def test_silent_server_times_out(silent_server, elapsed):
    host, port = silent_server
    with pytest.raises(QueryTimeout):
        run({"host": host, "port": port}, {"command": "PING"}, timeout=1)
    assert elapsed() < 10


def test_connection_is_reused(redis_options):
    run(redis_options, {"command": "PING"})
    run(redis_options, {"command": "PING"})
    assert plugins.connection_cache.stats()["kinds"]["redis"] == {"active": 0, "idle": 1}


def test_test_connection_reports_the_server(redis_options):
    assert plugins.test_connection(kind="redis", options=redis_options)["server"].startswith("Redis ")
