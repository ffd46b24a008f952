"""The REST API plugin against a local HTTP server (``http_base_url``)."""

import pytest

import plugins
from plugins import ConfigurationError, ConnectionFailed, QueryFailed, QueryTimeout

from .conftest import GOOD_TOKEN

INJECTION = "x'); DROP TABLE t; --/../&a=b?"


def run(options, query, parameters=None, **kwargs):
    return plugins.run_query(data_source_id="rest", kind="restapi", options=options, query=query,
                             parameters=parameters, **kwargs)


def test_parameters_fill_path_params_body_and_headers(http_base_url):
    options = {"base_url": http_base_url, "headers": {"X-Custom": "from-options"}, "token": GOOD_TOKEN}
    result = run(options, {"method": "post", "path": "/items/:id/{kind}",
                           "params": {"q": "{{term}}"}, "body": {"subject": "{{subject}}", "n": "{{n}}"}},
                 {"id": 7, "kind": "a b", "term": "x y", "subject": "Hi", "n": 3})
    assert result.metadata["status_code"] == 200
    assert result.data["method"] == "POST"
    assert result.data["raw_path"] == "/api/items/7/a%20b"
    assert result.data["params"] == {"q": ["x y"]}
    assert result.data["body"] == {"subject": "Hi", "n": 3}
    assert result.data["authorization"] == f"Bearer {GOOD_TOKEN}"
    assert result.data["x_custom"] == "from-options"


def test_path_values_are_url_quoted(http_base_url):
    result = run({"base_url": http_base_url}, {"path": "/items/:id"}, {"id": INJECTION})
    assert result.data["raw_path"] == "/api/items/x%27%29%3B%20DROP%20TABLE%20t%3B%20--%2F..%2F%26a%3Db%3F"
    assert result.data["params"] == {}


def test_text_response(http_base_url):
    assert run({"base_url": http_base_url}, {"path": "/../text"}).data == "plain words"


def test_bad_token_is_connection_failed_without_the_token(http_base_url):
    with pytest.raises(ConnectionFailed) as caught:
        run({"base_url": http_base_url, "token": "Wrong-Token-xyz"}, {"path": "/../secure"})
    assert "401" in caught.value.message and "Wrong-Token-xyz" not in repr(caught.value)
    assert run({"base_url": http_base_url, "token": GOOD_TOKEN}, {"path": "/../secure"}).data == {"ok": True}


def test_server_error_is_query_failed(http_base_url):
    with pytest.raises(QueryFailed) as caught:
        run({"base_url": http_base_url}, {"path": "/../fail"})
    assert caught.value.code == "http_error" and "500" in caught.value.message


def test_missing_parameter_and_bad_options(http_base_url):
    with pytest.raises(QueryFailed) as caught:
        run({"base_url": http_base_url}, {"path": "/items/{id}"})
    assert caught.value.code == "missing_parameter"
    with pytest.raises(ConfigurationError):
        run({"base_url": "ftp://example.invalid"}, {"path": "/"})


def test_refused_connection(allow_egress):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    allow_egress(f"127.0.0.1:{port}")
    with pytest.raises(ConnectionFailed):
        run({"base_url": f"http://127.0.0.1:{port}"}, {"path": "/"})


def test_slow_endpoint_times_out(http_base_url, elapsed):
    with pytest.raises(QueryTimeout):
        run({"base_url": http_base_url}, {"path": "/../slow"}, timeout=0.5)
    assert elapsed() < 5


def test_silent_server_times_out(silent_server, elapsed):
    host, port = silent_server
    with pytest.raises(QueryTimeout):
        run({"base_url": f"http://{host}:{port}"}, {"path": "/"}, timeout=0.5)
    assert elapsed() < 5


def test_test_connection(http_base_url):
    info = plugins.test_connection(kind="restapi", options={"base_url": http_base_url})
    assert info == {"ok": True, "server": http_base_url, "status_code": 200}
