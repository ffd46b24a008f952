"""The ``:name`` tokenizer: parameters become the driver's paramstyle, nothing else moves."""

import pytest

from plugins import QueryFailed
from plugins.sqlparams import bind, parameter_names


def test_postgresql_literals_comments_casts_and_dollar_quotes_are_left_alone():
    sql = ("SELECT ':a', a::text, \"col:a\", $$ :a $$, $tag$ :a $$ $tag$, E'\\' :a', 5 % 2 -- :a\n"
           "/* :a */ FROM t WHERE x = :a AND y = :b::int AND z = '100%'")
    text, values = bind(sql, {"a": 1, "b": 2, "c": 3}, dialect="postgresql", style="pyformat")
    assert text == ("SELECT ':a', a::text, \"col:a\", $$ :a $$, $tag$ :a $$ $tag$, E'\\' :a', 5 %% 2 -- :a\n"
                    "/* :a */ FROM t WHERE x = %(a)s AND y = %(b)s::int AND z = '100%%'")
    assert values == {"a": 1, "b": 2}


def test_mysql_backslash_strings_backticks_and_hash_comments():
    sql = "SELECT 'it\\'s :a', `x:a`, \"q:a\" # :a\n, :a"
    text, values = bind(sql, {"a": 1}, dialect="mysql", style="pyformat")
    assert text == "SELECT 'it\\'s :a', `x:a`, \"q:a\" # :a\n, %(a)s" and values == {"a": 1}


def test_sqlite_keeps_named_style():
    assert bind("SELECT :a, ':b', [c:d]", {"a": 1}, dialect="sqlite", style="named") == (
        "SELECT :a, ':b', [c:d]", {"a": 1})


def test_names_in_order_and_missing_names():
    assert parameter_names("SELECT :b, :a, :b, x:y", "postgresql") == ["b", "a"]
    with pytest.raises(QueryFailed) as caught:
        bind("SELECT :a, :b", {"a": 1}, dialect="postgresql", style="pyformat")
    assert caught.value.code == "missing_parameter" and caught.value.message.endswith(": b")
