"""Placeholders of every driver style (``%s``, ``%(name)s``, ``?``, ``$1``, ``:name``),
found outside string literals, quoted identifiers and comments, and renamed ``:p0``,
``:p1``, ... in text order, so that the parsed tree tells which bound value feeds which
position. ``%%`` (the percent-style escape) becomes ``%``.

Backslashes escape quotes only where the server reads them so (MySQL strings,
PostgreSQL ``E'...'``): Django's SQLite ``LIKE %s ESCAPE '\\'`` must not swallow the
rest of the statement. In a PostgreSQL statement with percent-style placeholders, ``?``
is the jsonb operator."""

import re
from typing import Any, cast

_COMMON = r"""
    (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*.*?(?:\*/|\Z))
  | (?P<backticked>`(?:[^`]|``)*(?:`|\Z))
  | (?P<percent_escape>%%)
  | (?P<percent>%s)
  | %\((?P<percent_named>\w+)\)s
  | (?P<question>\?(?![|&]))
  | (?<![\w$])\$(?P<dollar>\d+)
  | (?<!:):(?!:)(?P<colon>[A-Za-z_]\w*)
"""
_PERCENT_STYLE = re.compile(r"%s|%\(\w+\)s")
# Standard SQL: a quote is escaped by doubling it; PostgreSQL's E'...' also by backslash.
_STANDARD = re.compile(r"""
    (?P<quoted>(?<!\w)[eE]'(?:[^'\\]|''|\\.)*(?:'|\Z) | '(?:[^']|'')*(?:'|\Z) | "(?:[^"]|"")*(?:"|\Z))
  | """ + _COMMON, re.S | re.X)
# MySQL: backslash escapes in both quote styles.
_MYSQL = re.compile(r"""
    (?P<quoted>'(?:[^'\\]|''|\\.)*(?:'|\Z) | "(?:[^"\\]|""|\\.)*(?:"|\Z))
  | """ + _COMMON, re.S | re.X)


def rename(sql: str, vendor: str | None = None) -> tuple[str, tuple[int | str, ...]]:
    """``(sql with :pN placeholders, keys)``: ``keys[N]`` is the parameter's index (int)
    or name (str) in the params the driver received."""
    keys: list[int | str] = []
    position = [0]

    def replace(match: re.Match[str]) -> str:
        kind = cast(str, match.lastgroup)  # every alternative of the pattern is a named group
        if kind in ("quoted", "backticked"):
            return match.group()
        if kind == "line_comment":
            return ""
        if kind == "block_comment":
            return " "
        if kind == "percent_escape":
            return "%"
        if kind == "question" and question_is_operator:
            return "?"
        if kind in ("percent", "question"):
            keys.append(position[0])
            position[0] += 1
        elif kind == "dollar":
            keys.append(int(match.group(kind)) - 1)
        else:
            keys.append(match.group(kind))
        return f":p{len(keys) - 1}"

    # psycopg takes %s / %(name)s only, so in a PostgreSQL statement that has those a
    # "?" is the jsonb key-exists operator (Django's has_key), not a placeholder.
    question_is_operator = vendor == "postgresql" and _PERCENT_STYLE.search(sql) is not None

    renamed = (_MYSQL if vendor == "mysql" else _STANDARD).sub(replace, sql)
    return renamed, tuple(keys)


def value(params: Any, key: int | str) -> Any:
    """The bound value for ``key``, or ``None`` when it cannot be found."""
    if params is None:
        return None
    try:
        if isinstance(params, dict):
            return params.get(key if isinstance(key, str) else None)
        if isinstance(key, int):
            return params[key]
    except (IndexError, TypeError, KeyError):
        return None
    return None
