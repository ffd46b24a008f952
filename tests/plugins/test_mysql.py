"""The MySQL plugin against the real MariaDB (database tooljet_plugin_data)."""

from urllib.parse import urlsplit

import pymysql
import pytest

import plugins
from plugins import ConnectionFailed, QueryFailed, QueryTimeout

INJECTION = "x'); DROP TABLE t; --"


@pytest.fixture
def mysql_options(mysql_url):
    parts = urlsplit(mysql_url)
    return {"host": parts.hostname, "port": parts.port or 3306, "database": parts.path.lstrip("/"),
            "user": parts.username, "password": parts.password}


@pytest.fixture
def mysql_table(mysql_options, table_name):
    options = {**mysql_options}
    connection = pymysql.connect(host=options["host"], port=options["port"], user=options["user"],
                                 password=options["password"], database=options["database"],
                                 autocommit=True, connect_timeout=5, read_timeout=10)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table_name} (id INT AUTO_INCREMENT PRIMARY KEY, name TEXT, "
                       "born DATE, price DECIMAL(8, 2))")
        cursor.execute(f"INSERT INTO {table_name} (name, born, price) VALUES ('ada', '1815-12-10', 1.50), "
                       "('grace', '1906-12-09', 2)")
    yield table_name
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table_name}")
    connection.close()


def run(options, sql, parameters=None, **kwargs):
    return plugins.run_query(data_source_id="mysql", kind="mysql", options=options, query={"query": sql},
                             parameters=parameters, **kwargs)


def test_parameterized_query_returns_json_values(mysql_options, mysql_table):
    result = run(mysql_options, f"SELECT name, born, price, '100%' AS pct FROM {mysql_table} "
                                "WHERE name = :name AND ':name' <> '' -- :ignored", {"name": "ada"})
    assert result.columns == ["name", "born", "price", "pct"]
    assert result.rows == [["ada", "1815-12-10", 1.5, "100%"]]


def test_url_option_and_write(mysql_url, mysql_table):
    result = run({"url": mysql_url}, f"INSERT INTO {mysql_table} (name) VALUES (:name)", {"name": "linus"})
    assert result.metadata == {"affected_rows": 1}
    assert run({"url": mysql_url}, f"SELECT COUNT(*) FROM {mysql_table}").rows == [[3]]


def test_bound_values_are_never_sql(mysql_options, mysql_table):
    run(mysql_options, f"INSERT INTO {mysql_table} (name) VALUES (:name)", {"name": INJECTION})
    assert run(mysql_options, f"SELECT name FROM {mysql_table} WHERE name = :name",
               {"name": INJECTION}).rows == [[INJECTION]]
    assert run(mysql_options, f"SELECT COUNT(*) FROM {mysql_table}").rows == [[3]]


def test_bad_query_is_query_failed(mysql_options, table_name):
    with pytest.raises(QueryFailed) as caught:
        run(mysql_options, f"SELECT * FROM {table_name}_missing")
    assert "doesn't exist" in caught.value.message


def test_bad_credentials_do_not_leak_the_password(mysql_options):
    with pytest.raises(ConnectionFailed) as caught:
        run({**mysql_options, "password": "Wrong-Pa55word-xyz"}, "SELECT 1")
    assert "Access denied" in caught.value.message
    assert "Wrong-Pa55word-xyz" not in caught.value.message + repr(caught.value)


def test_slow_query_times_out(mysql_options, elapsed):
    with pytest.raises(QueryTimeout):
        run(mysql_options, "SELECT SLEEP(30)", timeout=1)
    assert elapsed() < 10


def test_silent_server_times_out_while_connecting(silent_server, elapsed):
    host, port = silent_server
    with pytest.raises(QueryTimeout):
        run({"host": host, "port": port, "user": "x", "password": "y"}, "SELECT 1", timeout=1)
    assert elapsed() < 10


def test_connection_is_reused(mysql_options):
    first = run(mysql_options, "SELECT CONNECTION_ID()").rows
    assert run(mysql_options, "SELECT CONNECTION_ID()").rows == first


def test_test_connection_reports_the_server(mysql_options):
    assert "MariaDB" in plugins.test_connection(kind="mysql", options=mysql_options)["server"]
