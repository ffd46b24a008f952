"""The SQLite plugin on temporary database files."""

import sqlite3

import pytest

import plugins
from plugins import ConnectionFailed, QueryFailed, QueryTimeout

INJECTION = "x'); DROP TABLE t; --"


@pytest.fixture
def sqlite_options(tmp_path):
    path = tmp_path / "data.sqlite3"
    connection = sqlite3.connect(path)
    connection.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, blob BLOB);"
                             "INSERT INTO t (name, blob) VALUES ('ada', x'00ff'), ('grace', 'hi');")
    connection.close()
    return {"path": str(path)}


def run(options, sql, parameters=None, **kwargs):
    return plugins.run_query(data_source_id=kwargs.pop("data_source_id", "sqlite"), kind="sqlite",
                             options=options, query={"query": sql}, parameters=parameters, **kwargs)


def test_parameterized_query(sqlite_options):
    result = run(sqlite_options, "SELECT id, name, blob FROM t WHERE name = :name OR name = ':name'",
                 {"name": "ada", "unused": 1})
    assert result.rows == [[1, "ada", "AP8="]]
    assert result.records() == [{"id": 1, "name": "ada", "blob": "AP8="}]


def test_bound_values_are_never_sql(sqlite_options):
    assert run(sqlite_options, "SELECT :name AS name", {"name": INJECTION}).rows == [[INJECTION]]
    assert run(sqlite_options, "SELECT name FROM t WHERE name = :name", {"name": INJECTION}).rows == []
    assert run(sqlite_options, "SELECT count(*) FROM t").rows == [[2]]


def test_bad_query_is_query_failed(sqlite_options):
    with pytest.raises(QueryFailed) as caught:
        run(sqlite_options, "SELECT * FROM missing_table")
    assert "no such table" in caught.value.message


def test_missing_file_is_connection_failed(tmp_path):
    with pytest.raises(ConnectionFailed):
        run({"path": str(tmp_path / "absent.sqlite3")}, "SELECT 1")
    assert not (tmp_path / "absent.sqlite3").exists()


def test_slow_query_is_interrupted(sqlite_options, elapsed):
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
            "SELECT count(*) FROM n")
    with pytest.raises(QueryTimeout):
        run(sqlite_options, slow, timeout=0.5)
    assert elapsed() < 5
    assert run(sqlite_options, "SELECT count(*) FROM t").rows == [[2]]
