"""The registry, the public API's validation, and secrets kept out of messages."""

import pytest

import plugins
from plugins import ConfigurationError, QueryFailed
from plugins.base import redact
from plugins.postgresql import PostgreSQLPlugin


def test_kinds_load_lazily_and_are_cached():
    assert plugins.available_kinds() == ["mysql", "postgresql", "redis", "restapi", "sqlite"]
    plugin = plugins.get_plugin("postgresql")
    assert isinstance(plugin, PostgreSQLPlugin) and plugins.get_plugin("postgresql") is plugin


def test_unknown_kind_is_a_configuration_error():
    with pytest.raises(ConfigurationError) as caught:
        plugins.run_query(data_source_id=1, kind="oracle", options={}, query={})
    assert caught.value.http_status == 400 and caught.value.code == "unknown_kind"


@pytest.mark.parametrize("arguments", [
    {"timeout": 0}, {"timeout": "1"}, {"parameters": ["a"]}, {"query": "SELECT 1"},
])
def test_bad_arguments_are_configuration_errors(tmp_path, arguments):
    call = {"data_source_id": 1, "kind": "sqlite", "options": {"path": str(tmp_path / "x")},
            "query": {"query": "SELECT 1"}, **arguments}
    with pytest.raises(ConfigurationError):
        plugins.run_query(**call)


def test_query_without_sql_is_a_configuration_error(tmp_path):
    import sqlite3

    sqlite3.connect(tmp_path / "x").close()
    with pytest.raises(ConfigurationError):
        plugins.run_query(data_source_id=1, kind="sqlite", options={"path": str(tmp_path / "x")}, query={})


def test_redact_removes_passwords_tokens_urls_and_header_values():
    options = {"password": "pw-1", "token": "tok-2", "url": "postgres://u:p%40ss@h/db",
               "headers": {"X-Api-Key": "key-3"}, "host": "h"}
    message = redact("pw-1 tok-2 postgres://u:p%40ss@h/db p@ss p%40ss key-3 host=h", options)
    assert message == "*** *** *** *** *** *** host=h"


def test_errors_are_structured():
    error = QueryFailed("nope", code="missing_parameter")
    assert error.as_dict() == {"code": "missing_parameter", "message": "nope"}
    assert error.http_status == 400 and plugins.QueryTimeout("t").code == "timeout"
