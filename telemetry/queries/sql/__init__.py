"""Query analysis: ``analyze(sql, params=None, vendor=None) -> QueryAnalysis``.

The one entry point for what telemetry knows about a statement: its fingerprint
(``fingerprint.py``), operation, tables, complexity score (``complexity.py``, formula
there) and static suggestion codes (``suggestions.py``, documented in docs/queries.md).
It never raises.

Statements are parsed with sqlglot in the dialect of Django's vendor string
(``postgresql``, ``mysql``, ``sqlite``, ...). The parse-dependent result is cached per
``(sql, vendor)`` in a bounded LRU, so a repeated statement costs a dictionary look-up;
the two codes that depend on bound values are re-checked on a hit from the placeholder
keys recorded at parse time. The cache is cleared when ``TELEMETRY`` settings change
(thresholds are part of the cached codes). Transaction control (``BEGIN``,
``SAVEPOINT``, ``SET``, ...) is recognised by its first word without parsing. Statements
the parser rejects get operation ``other`` and no score, and are counted in
``telemetry_sql_unparsed_total{vendor}``.

Bounded in size and time, so that a hostile statement costs milliseconds, never a
thread: a statement longer than ``MAX_ANALYZED_CHARS`` has only its start fingerprinted
by one regular expression; one still longer than ``MAX_PARSED_CHARS`` once its lists are
shrunk, or of more than ``SQL_MAX_TOKENS`` tokens (counted by one regular expression:
sqlglot's tokenizer is pure Python, as slow per token as its parser), is fingerprinted
whole that way; tokenizing, parsing and the rules run
under a budget of ``SQL_ANALYZE_BUDGET_MS`` (``budget.py``) that the parser's own
``except`` blocks cannot swallow. Each of these results is literal-free, has
``analysed`` False, and counts as unparsed; a budget overrun is also reported
(``telemetry_internal_errors_total{component="sql_analyze_budget"}``).
"""

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from telemetry import conf
from telemetry.adapters import prometheus
from telemetry.core import guard
from telemetry.metrics import internal
from telemetry.queries.sql import budget, complexity, placeholders, suggestions
from telemetry.queries.sql import fingerprint as fingerprints

CACHE_SIZE = 4096
# Statements longer than this are cached by digest; longer than SHRINK_ABOVE_CHARS, their
# long IN lists and repeated VALUES rows are cut before parsing.
LONG_STATEMENT_CHARS = 4096
SHRINK_ABOVE_CHARS = 2000
#: Longest statement (after IN lists and VALUES rows are shrunk) that is parsed at all.
MAX_PARSED_CHARS = 20_000
#: Longest statement, as received, whose placeholders are renamed and lists shrunk: both
#: are regular expressions over the whole text (~0.5 ms per 1,000 characters), which the
#: budget cannot interrupt. Beyond it only the first MAX_PARSED_CHARS are fingerprinted.
MAX_ANALYZED_CHARS = 50_000
_OVERSIZED_OPERATIONS = {"SELECT": "select", "WITH": "select", "INSERT": "insert", "UPDATE": "update",
                         "DELETE": "delete"}

DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite", "oracle": "oracle"}
_COUNTED_VENDORS = frozenset(DIALECTS)

# First words of transaction, session and maintenance statements: no tables, no
# suggestions (EXPLAIN does not run its statement), and sqlglot misreads some of them
# (SAVEPOINT, SET TIME ZONE, EXPLAIN).
_CONTROL = {
    "BEGIN": "begin", "START": "begin", "COMMIT": "commit", "END": "commit", "ROLLBACK": "rollback",
    "SAVEPOINT": "savepoint", "RELEASE": "release_savepoint", "SET": "set", "SHOW": "show", "RESET": "reset",
    "DISCARD": "discard", "DEALLOCATE": "deallocate", "EXPLAIN": "explain", "VACUUM": "vacuum",
    "ANALYZE": "analyze", "LOCK": "lock",
}
_FIRST_WORD = re.compile(r"\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*(\w+)", re.S)
_LABEL_UNSAFE = re.compile(r"\W+")
#: Roughly what the tokenizer would see: a quoted string or name, a word, or one symbol.
_ROUGH_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\w+|[^\w\s]")


class QueryAnalysis(NamedTuple):
    operation: str
    tables: tuple[str, ...]
    complexity_score: float | None
    complexity: str
    pattern: str
    suggestions: tuple[str, ...]
    fingerprint: str
    fingerprint_id: str
    #: False when the statement was not parsed (rejected, or beyond a size, token or time
    #: bound): operation from its first word at best, no tables, score or suggestions.
    analysed: bool = True


class _Cached:
    """A cached analysis and what a new set of parameters must be checked against."""

    __slots__ = ("analysis", "like_keys", "offset_keys", "unparsed", "variants")

    def __init__(self, analysis, like_keys=(), offset_keys=(), unparsed=False):
        self.analysis = analysis
        self.like_keys = like_keys
        self.offset_keys = offset_keys
        self.unparsed = unparsed
        self.variants = {}


_limits = None
_schema = None


def analyze(sql: str | bytes | bytearray, params: Sequence[Any] | Mapping[str, Any] | None = None,
            vendor: str | None = None) -> QueryAnalysis:
    """Analysis of one statement as the driver received it (``params`` in any driver
    style: a sequence for ``%s``/``?``/``$1``, a mapping for ``%(name)s``/``:name``)."""
    try:
        if not isinstance(sql, str):
            sql = sql.decode("utf-8", "replace") if isinstance(sql, (bytes, bytearray)) else str(sql)
        limits = _limits or _load_limits()
        cached = _analyze_cached(sql if len(sql) <= LONG_STATEMENT_CHARS else _LongStatement(sql), vendor)
        if cached.unparsed:
            _count_unparsed(vendor)
        if params is None or not (cached.like_keys or cached.offset_keys):
            return cached.analysis
        return _with_params(cached, params, limits)
    except Exception as exc:  # noqa: BLE001 - analysis must never break the flusher
        guard.report("sql_analyze", exc)
        try:
            return _oversized_analysis("", str(sql)[:MAX_PARSED_CHARS])
        except Exception:  # noqa: BLE001
            return QueryAnalysis("other", (), None, "unknown", "other", (), "", fingerprints.fingerprint_id(""),
                                 analysed=False)


def cache_info() -> Any:  # functools' _CacheInfo (a private name)
    """Statistics of the statement cache (hits, misses, size), for tests and health pages."""
    return _analyze_cached.cache_info()


def _load_limits():
    global _limits
    conf.on_change(_settings_changed)
    _limits = suggestions.Limits(int(conf.get("LARGE_IN_LIST_ITEMS", 100)),
                                 int(conf.get("OFFSET_PAGINATION_ROWS", 1000)), int(conf.get("MAX_JOINS", 4)))
    return _limits


def _settings_changed():
    global _limits
    _limits = None
    _analyze_cached.cache_clear()


def _with_params(cached, params, limits):
    extra = []
    base = cached.analysis.suggestions
    if "leading_wildcard_like" not in base:
        for key in cached.like_keys:
            bound = placeholders.value(params, key)
            if isinstance(bound, str) and bound[:1] in ("%", "_"):
                extra.append("leading_wildcard_like")
                break
    if "offset_pagination" not in base:
        for key in cached.offset_keys:
            bound = placeholders.value(params, key)
            if isinstance(bound, (int, str)) and not isinstance(bound, bool):
                try:
                    if int(bound) > limits.offset_rows:
                        extra.append("offset_pagination")
                        break
                except ValueError:
                    pass
    if not extra:
        return cached.analysis
    key = tuple(extra)
    variant = cached.variants.get(key)
    if variant is None:
        codes = set(base).union(extra)
        variant = cached.variants[key] = cached.analysis._replace(
            suggestions=tuple(code for code in suggestions.CODES if code in codes))
    return variant


class _LongStatement(str):
    """Cache key of a long statement (a bulk INSERT, a huge IN list): its digest, so the
    LRU does not hold megabytes of SQL; the text rides along for a miss."""

    __slots__ = ("sql",)

    def __new__(cls, sql):
        key = super().__new__(cls, hashlib.blake2b(sql.encode("utf-8", "replace"), digest_size=16).hexdigest())
        key.sql = sql
        return key


_IN_ITEM = r"(?::p\d+|-?\d+(?:\.\d+)?|'(?:[^']|'')*')"
_LONG_IN_LIST = re.compile(rf"\bIN\s*\(\s*({_IN_ITEM})((?:\s*,\s*{_IN_ITEM}){{20,}})\s*\)", re.I)
_ROW_ITEM = r"\s*(?::p\d+|DEFAULT|NULL|-?\d+(?:\.\d+)?)\s*"
_ROW = rf"\((?:{_ROW_ITEM},)*{_ROW_ITEM}\)"
_REPEATED_ROWS = re.compile(rf"(\bVALUES\s*{_ROW})(?:\s*,\s*{_ROW})+", re.I)


def _shrink(renamed):
    """Long IN lists and repeated VALUES rows cut to their first item before parsing
    (sqlglot's cost grows with them; the rules do not need them); returns the text and
    the longest IN list seen. Placeholders keep their :pN names, so positions hold."""
    longest = 0

    def first_item(match: re.Match[str]) -> str:
        nonlocal longest
        longest = max(longest, match.group(2).count(",") + 1)
        return f"IN ({match.group(1)})"

    renamed = _LONG_IN_LIST.sub(first_item, renamed)
    return _REPEATED_ROWS.sub(r"\1", renamed), longest


@lru_cache(maxsize=CACHE_SIZE)
def _analyze_cached(sql, vendor):
    if isinstance(sql, _LongStatement):
        sql = sql.sql
    dialect = DIALECTS.get(vendor)
    if len(sql) > MAX_ANALYZED_CHARS:
        head = sql[:MAX_PARSED_CHARS]
        return _Cached(_oversized_analysis(_first_word(head), head), unparsed=True)
    renamed, keys = placeholders.rename(sql, vendor)
    first_word = _first_word(renamed)
    if first_word in _CONTROL:
        return _Cached(_simple_analysis(_CONTROL[first_word], renamed, dialect, 0.0))
    shrunk, longest_in_list = _shrink(renamed) if len(renamed) > SHRINK_ABOVE_CHARS else (renamed, 0)
    settings = conf.get_settings()
    if len(shrunk) > MAX_PARSED_CHARS or len(_ROUGH_TOKEN.findall(shrunk)) > settings["SQL_MAX_TOKENS"]:
        # Parse time grows faster than the text (a 50 KB OR chain takes seconds, a 1 MB
        # one minutes): beyond this, no parse; literals still replaced.
        return _Cached(_oversized_analysis(first_word, shrunk), unparsed=True)
    if vendor not in _warmed:
        _warm(vendor)
    try:
        cached, error = budget.run(settings["SQL_ANALYZE_BUDGET_MS"] / 1000.0, _parse_and_analyze, shrunk, keys,
                                   vendor, longest_in_list)
    except budget.Exceeded as exc:
        guard.report("sql_analyze_budget", exc)
        return _Cached(_oversized_analysis(first_word, shrunk), unparsed=True)
    if error is not None:  # reported here: a log call is no place for the budget to strike
        guard.report("sql_analyze", error)
    return cached


#: Vendors whose one-time loads are done (see _warm).
_warmed: set[str | None] = set()


def _warm(vendor):
    """The one-time loads of a first parse, outside the budget: a dialect's module import
    (sqlglot loads dialects lazily) and the model schema take several ms of CPU once per
    process, which is not the statement's cost and would cache it as unanalysed."""
    candidates = (DIALECTS.get(vendor),) if vendor is not None else (None, "mysql", "postgres", "sqlite")
    for dialect in candidates:
        Dialect.get_or_raise(dialect).parser()
    _model_schema()
    _warmed.add(vendor)


def _first_word(text):
    match = _FIRST_WORD.match(text)
    return match.group(1).upper() if match else ""


def _parse_and_analyze(text, keys, vendor, longest_in_list):
    """``(cached analysis, exception the rules raised or None)`` of a statement of bounded
    length and tokens; runs within the budget. Tokenized once per dialect tried, for the
    parse and the fingerprint both."""
    dialect = DIALECTS.get(vendor)
    trees = None
    # Without a vendor, the generic dialect first, then the ones Django speaks.
    candidates = (dialect,) if vendor is not None else (None, "mysql", "postgres", "sqlite")
    for dialect in candidates:  # noqa: B020 - after the loop, ``dialect`` is the one that parsed
        try:
            tokens = Dialect.get_or_raise(dialect).tokenize(text)
        except Exception:  # noqa: BLE001 - untokenizable in this dialect
            continue
        fingerprint = fingerprints.from_tokens(tokens)
        try:
            trees = _parse(text, tokens, dialect)
        except Exception:  # noqa: BLE001 - any parser failure means "cannot analyse"
            trees = None
        if trees:
            break
    if not trees:
        return _Cached(_simple_analysis("other", text, dialect), unparsed=True), None
    try:
        return _analyze_trees(trees, fingerprint, keys, longest_in_list), None
    except Exception as exc:  # noqa: BLE001 - a tree the rules trip on is cached and counted
        return _Cached(_simple_analysis("other", text, dialect), unparsed=True), exc


def _parse(text, tokens, dialect):
    parsed = Dialect.get_or_raise(dialect).parser().parse(tokens, text)
    trees = [tree for tree in parsed if tree is not None]
    # sqlglot falls back to an opaque Command for syntax it does not know: not parsed.
    if not trees or any(isinstance(tree, exp.Command) for tree in trees):
        return None
    return trees


def _analyze_trees(trees, text, keys, longest_in_list=0):
    """The analysis of parsed ``trees``; ``text`` is their fingerprint."""
    limits = _limits or _load_limits()
    schema = _model_schema()
    codes = {"large_in_list"} if longest_in_list > limits.in_list_items else set()
    like_keys = []
    offset_keys = []
    score = 0.0
    tables = []
    for tree in trees:
        findings = suggestions.find(tree, limits, schema)
        codes |= findings.codes
        like_keys += _keys(findings.like_placeholders, keys)
        offset_keys += _keys(findings.offset_placeholders, keys)
        score += complexity.score(tree, findings)
        tables += [table for table in _tables(tree) if table not in tables]
    operation = _operation(trees[0])
    tables = tuple(tables)
    analysis = QueryAnalysis(
        operation=operation, tables=tables, complexity_score=score, complexity=complexity.classify(score),
        pattern=_pattern(operation, tables), suggestions=tuple(code for code in suggestions.CODES if code in codes),
        fingerprint=text, fingerprint_id=fingerprints.fingerprint_id(text),
    )
    return _Cached(analysis, tuple(dict.fromkeys(like_keys)), tuple(dict.fromkeys(offset_keys)))


def _keys(placeholder_names, keys):
    found = []
    for name in placeholder_names:
        if name.startswith("p") and name[1:].isdigit() and int(name[1:]) < len(keys):
            found.append(keys[int(name[1:])])
    return found


def _simple_analysis(operation, renamed, dialect, score=None):
    """A statement analysed by its first word only: a transaction-control statement
    (score 0, "low") or one sqlglot could not parse ("other", no score, "unknown")."""
    text = fingerprints.normalize(renamed, dialect)
    return QueryAnalysis(operation, (), score, complexity.classify(score), operation, (), text,
                         fingerprints.fingerprint_id(text), analysed=score is not None)


def _oversized_analysis(first_word, text):
    """A statement too long to parse (in characters, tokens or time): its operation from
    the first word, literals replaced by one linear regular expression (no tokenizer), no
    score."""
    operation = _OVERSIZED_OPERATIONS.get(first_word, "other")
    normalized = fingerprints.strip_literals(text)
    return QueryAnalysis(operation, (), None, "unknown", operation, (), normalized[:MAX_PARSED_CHARS],
                         fingerprints.fingerprint_id(normalized), analysed=False)



#: ``telemetry_sql_unparsed_total``'s series by vendor label: an unparsed statement counts on every run.
_unparsed = prometheus.Increments(lambda label: (internal.sql_unparsed().labels(label),))


def _count_unparsed(vendor):
    _unparsed[vendor if vendor in _COUNTED_VENDORS else "other"][0](1)


_OPERATIONS = None


def _operation(tree):
    global _OPERATIONS
    if _OPERATIONS is None:
        _OPERATIONS = (
            ((exp.Select, exp.SetOperation, exp.Subquery), "select"), (exp.Insert, "insert"),
            (exp.Update, "update"), (exp.Delete, "delete"), (exp.Merge, "merge"), (exp.Create, "create"),
            (exp.Drop, "drop"), (exp.Alter, "alter"), (exp.TruncateTable, "truncate"), (exp.Transaction, "begin"),
            (exp.Commit, "commit"), (exp.Rollback, "rollback"), (exp.Set, "set"), (exp.Show, "show"),
            (exp.Describe, "describe"), (exp.Pragma, "pragma"), (exp.Copy, "copy"), (exp.Values, "select"),
        )
    for types, name in _OPERATIONS:
        if isinstance(tree, types):
            return name
    return "other"


def _tables(tree):
    """Table names, lowercased and without schema: the statement's target (or the main
    SELECT's FROM list) first, then the others in text order; CTE names are not tables."""
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    primary = tree
    while isinstance(primary, (exp.SetOperation, exp.Subquery)):
        primary = primary.this
    if isinstance(primary, exp.Select):
        first = [primary.args.get("from_"), *(primary.args.get("joins") or ())]
    else:
        first = [primary.this if isinstance(primary.this, exp.Expression) else None]
    names = []
    for root in [*first, tree]:
        if root is None:
            continue
        for table in root.find_all(exp.Table, bfs=False):
            if not isinstance(table.this, exp.Identifier):
                continue
            name = table.name.lower()
            if name and name not in names and not (name in cte_names and not table.db):
                names.append(name)
    return names


def _pattern(operation, tables):
    return "_".join([operation, *(_LABEL_UNSAFE.sub("_", table) for table in tables[:3])])


def _model_schema():
    """``{table: {columns}}`` of the project's models, to resolve unqualified columns."""
    global _schema
    if _schema is not None:
        return _schema
    from django.apps import apps

    if not apps.ready:
        return {}
    schema = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        columns = {field.column.lower() for field in meta.concrete_fields if field.column}
        schema.setdefault(meta.db_table.lower(), set()).update(columns)
    _schema = {table: frozenset(columns) for table, columns in schema.items()}
    return _schema


# sqlglot logs a warning for every statement it cannot parse and falls back to an opaque
# Command; those are counted in telemetry_sql_unparsed_total instead.
class _QuietFallback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_QuietFallback())
