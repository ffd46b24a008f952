"""``:name`` parameters in SQL text, converted to a driver's paramstyle.

A small tokenizer skips what must not be touched (string literals, quoted identifiers,
comments, PostgreSQL dollar quotes and ``::type`` casts), so ``':x'`` or ``a::text``
stay as written. Values are always bound by the driver, never formatted into the SQL.
"""

import re

from .errors import QueryFailed

_COMMON = [
    r"(?P<line_comment>--[^\n]*)",
    r"(?P<block_comment>/\*.*?(?:\*/|\Z))",
    r"(?P<cast>::)",
    r"(?P<parameter>(?<![\w:]):(?P<name>[A-Za-z_][A-Za-z0-9_]*))",
    r"(?P<percent>%)",
]
_DIALECT_TOKENS = {
    # standard_conforming_strings: backslashes escape only in E'...' strings.
    "postgresql": [
        r"(?P<escape_string>(?<![\w$])[eE]'(?:[^'\\]|\\.|'')*(?:'|\Z))",
        r"(?P<string>'(?:[^']|'')*(?:'|\Z))",
        r'(?P<identifier>"(?:[^"]|"")*(?:"|\Z))',
        r"(?P<dollar>(?<![\w$])\$\$.*?(?:\$\$|\Z))",
        r"(?P<tagged_dollar>(?<![\w$])\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)\$.*?(?:\$(?P=tag)\$|\Z))",
    ],
    "mysql": [
        r"(?P<string>'(?:[^'\\]|\\.|'')*(?:'|\Z))",
        r'(?P<dstring>"(?:[^"\\]|\\.|"")*(?:"|\Z))',
        r"(?P<identifier>`(?:[^`]|``)*(?:`|\Z))",
        r"(?P<hash_comment>#[^\n]*)",
    ],
    "sqlite": [
        r"(?P<string>'(?:[^']|'')*(?:'|\Z))",
        r'(?P<identifier>"(?:[^"]|"")*(?:"|\Z))',
        r"(?P<bracket>\[[^\]]*(?:\]|\Z))",
        r"(?P<backtick>`(?:[^`]|``)*(?:`|\Z))",
    ],
}
# Literals and comments come first so that ':x' or '%' inside them is never a token.
_PATTERNS = {
    dialect: re.compile("|".join(tokens + _COMMON), re.DOTALL)
    for dialect, tokens in _DIALECT_TOKENS.items()
}


def parameter_names(sql, dialect):
    """Names of the ``:name`` parameters of ``sql``, in order of first use."""
    names = []
    for match in _PATTERNS[dialect].finditer(sql):
        if match.lastgroup == "parameter" and match.group("name") not in names:
            names.append(match.group("name"))
    return names


def bind(sql, parameters, *, dialect, style):
    """``(driver_sql, values)`` for ``cursor.execute``.

    ``style`` is ``pyformat`` (psycopg2, PyMySQL: ``%(name)s``, and every literal ``%``
    doubled because those drivers %-format the whole text when values are passed) or
    ``named`` (sqlite3: ``:name`` kept). ``values`` holds only the names the SQL uses;
    a name missing from ``parameters`` raises ``QueryFailed`` (code
    ``missing_parameter``)."""
    parameters = parameters or {}
    missing = [name for name in parameter_names(sql, dialect) if name not in parameters]
    if missing:
        raise QueryFailed(f"Missing query parameter(s): {', '.join(missing)}", code="missing_parameter")
    values = {}

    def replace(match):
        kind = match.lastgroup
        text = match.group(0)
        if kind == "parameter":
            name = match.group("name")
            values[name] = parameters[name]
            return f"%({name})s" if style == "pyformat" else f":{name}"
        if style == "pyformat":
            return text.replace("%", "%%")
        return text

    return _PATTERNS[dialect].sub(replace, sql), values
