"""The PostgreSQL plugin against the real server (database tooljet_plugin_data)."""

from urllib.parse import urlsplit

import psycopg2
import pytest

import plugins
from plugins import ConnectionFailed, QueryFailed, QueryTimeout

INJECTION = "x'); DROP TABLE t; --"


@pytest.fixture
def pg_options(postgres_plugin_url):
    parts = urlsplit(postgres_plugin_url)
    return {"host": parts.hostname, "port": parts.port or 5432, "database": parts.path.lstrip("/"),
            "user": parts.username, "password": parts.password}


@pytest.fixture
def pg_table(postgres_plugin_url, table_name):
    connection = psycopg2.connect(postgres_plugin_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table_name} (id serial PRIMARY KEY, name text, born date, price numeric)")
        cursor.execute(f"INSERT INTO {table_name} (name, born, price) VALUES ('ada', '1815-12-10', 1.50), "
                       "('grace', '1906-12-09', 2)")
    yield table_name
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table_name}")
    connection.close()


def run(options, sql, parameters=None, **kwargs):
    return plugins.run_query(data_source_id=kwargs.pop("data_source_id", "pg"), kind="postgresql",
                             options=options, query={"query": sql}, parameters=parameters, **kwargs)


def test_parameterized_query_returns_json_values(pg_options, pg_table):
    result = run(pg_options, f"SELECT name, born, price, name::text AS cast FROM {pg_table} "
                             "WHERE name = :name AND ':name' = ':name'", {"name": "ada"})
    assert result.columns == ["name", "born", "price", "cast"]
    assert result.rows == [["ada", "1815-12-10", 1.5, "ada"]]
    assert result.row_count == 1 and result.bytes > 0


def test_dsn_option_and_write_is_committed(postgres_plugin_url, pg_table):
    result = run({"url": postgres_plugin_url}, f"INSERT INTO {pg_table} (name) VALUES (:name)", {"name": "linus"})
    assert result.metadata == {"affected_rows": 1}
    assert run({"url": postgres_plugin_url}, f"SELECT count(*) AS n FROM {pg_table}").rows == [[3]]


def test_bound_values_are_never_sql(pg_options, pg_table):
    run(pg_options, f"INSERT INTO {pg_table} (name) VALUES (:name)", {"name": INJECTION})
    result = run(pg_options, f"SELECT name FROM {pg_table} WHERE name = :name", {"name": INJECTION})
    assert result.rows == [[INJECTION]]
    assert run(pg_options, f"SELECT count(*) FROM {pg_table}").rows == [[3]]


def test_missing_parameter_is_a_query_error(pg_options):
    with pytest.raises(QueryFailed) as caught:
        run(pg_options, "SELECT :a, :b", {"a": 1})
    assert caught.value.code == "missing_parameter" and "b" in caught.value.message


def test_bad_query_is_query_failed(pg_options, table_name):
    with pytest.raises(QueryFailed) as caught:
        run(pg_options, f"SELECT * FROM {table_name}_missing")
    assert "does not exist" in caught.value.message and caught.value.http_status == 400


def test_bad_credentials_do_not_leak_the_password(pg_options):
    options = {**pg_options, "password": "Wrong-Pa55word-xyz"}
    with pytest.raises(ConnectionFailed) as caught:
        run(options, "SELECT 1")
    assert "authentication failed" in caught.value.message
    assert "Wrong-Pa55word-xyz" not in caught.value.message + repr(caught.value) + str(caught.value)
    assert caught.value.http_status == 502


def test_password_in_url_is_redacted(postgres_plugin_url):
    parts = urlsplit(postgres_plugin_url)
    url = f"postgresql://{parts.username}:Wrong-Pa55word-xyz@{parts.hostname}:{parts.port}{parts.path}"
    with pytest.raises(ConnectionFailed) as caught:
        plugins.test_connection(kind="postgresql", options={"url": url})
    assert "Wrong-Pa55word-xyz" not in caught.value.message


def test_slow_query_times_out(pg_options, elapsed):
    with pytest.raises(QueryTimeout) as caught:
        run(pg_options, "SELECT pg_sleep(30)", timeout=1)
    assert caught.value.code == "timeout"
    assert elapsed() < 10


def test_default_timeout_comes_from_settings(pg_options, plugin_settings, elapsed):
    plugin_settings(RUN_TIMEOUT_SECONDS=1)
    with pytest.raises(QueryTimeout):
        run(pg_options, "SELECT pg_sleep(30)")
    assert elapsed() < 10


def test_connection_is_reused_until_a_run_fails(pg_options):
    first = run(pg_options, "SELECT pg_backend_pid()").rows
    assert run(pg_options, "SELECT pg_backend_pid()").rows == first
    with pytest.raises(QueryFailed):
        run(pg_options, "SELEC 1")
    assert run(pg_options, "SELECT pg_backend_pid()").rows != first


def test_test_connection_reports_the_server(pg_options):
    info = plugins.test_connection(kind="postgresql", options=pg_options)
    assert info["ok"] is True and info["server"].startswith("PostgreSQL")
