"""Normalized statement text and its stable id.

Built from the dialect's tokens rather than from the tree, so that statements the parser
rejects still get a sensible fingerprint: literals and placeholders become ``?``, a
negative sign before a literal goes with it, ``IN (?, ?, ...)`` of any length becomes
``IN (?)``, repeated identical ``VALUES`` rows become one, comments are dropped
(the tokenizer keeps them aside), keywords are upper-cased and unquoted identifiers
lower-cased; quoted identifiers keep their (double) quotes, as they are case-sensitive.
Savepoint names (Django makes one per thread and call) become ``?`` too.
"""

import hashlib
import re

from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import Token, TokenType

_VALUE_TYPES = frozenset(
    getattr(TokenType, name) for name in (
        "STRING", "NUMBER", "NATIONAL_STRING", "NATIONAL_RAW_STRING", "HEX_STRING", "BIT_STRING", "BYTE_STRING",
        "RAW_STRING", "HEREDOC_STRING", "UNICODE_STRING", "PLACEHOLDER",
    ) if hasattr(TokenType, name)
)
_RENAMED = re.compile(r"p\d+")
_SAVEPOINT_WORDS = frozenset(("SAVEPOINT", "RELEASE", "ROLLBACK"))
_KEEP_IN_SAVEPOINT = frozenset(("SAVEPOINT", "RELEASE", "ROLLBACK", "TO", "WORK", "TRANSACTION"))
_NO_SPACE_BEFORE = frozenset((")", ",", ".", "::", "]"))
_NO_SPACE_AFTER = frozenset(("(", ".", "::", "["))
# A quoted literal may be cut short (a statement's start only): its rest is a literal too.
_FALLBACK_LITERAL = re.compile(r"'(?:[^']|'')*(?:'|\Z)|\b\d+(?:\.\d+)?\b|:p\d+|\?")


def fingerprint_id(fingerprint: str) -> str:
    return hashlib.blake2b(fingerprint.encode(), digest_size=8).hexdigest()


def strip_literals(renamed_sql: str) -> str:
    """A crude fingerprint in one pass: literals and placeholders replaced by ``?``,
    whitespace folded (for text too long or too odd to tokenize)."""
    return " ".join(_FALLBACK_LITERAL.sub("?", renamed_sql).split())


def normalize(renamed_sql: str, dialect: str | None) -> str:
    """Fingerprint text of a statement whose placeholders were renamed ``:pN``."""
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(renamed_sql)
    except Exception:  # noqa: BLE001 - untokenizable text still gets a crude fingerprint
        return strip_literals(renamed_sql)
    return from_tokens(tokens)


def from_tokens(tokens: list[Token]) -> str:
    """Fingerprint text of a statement already tokenized (see :func:`normalize`)."""
    return _join(_collapse_values(_collapse_in_lists(_words(tokens))))


def _words(tokens):
    """``[(text, is_value, is_function_name)]``."""
    words = []
    savepoint = bool(tokens) and tokens[0].text.upper() in _SAVEPOINT_WORDS
    count = len(tokens)
    index = 0
    while index < count:
        token = tokens[index]
        kind = token.token_type
        following = tokens[index + 1] if index + 1 < count else None
        if kind == TokenType.COLON and following is not None and following.token_type == TokenType.VAR \
                and following.start == token.end + 1 and _RENAMED.fullmatch(following.text):
            words.append(("?", True, False))
            index += 2
            continue
        if kind == TokenType.DASH and following is not None and following.token_type in _VALUE_TYPES \
                and (not words or (not words[-1][1] and words[-1][0] not in (")", "]")
                                   and not _is_name(words[-1][0]))):
            index += 1  # the sign of a negative literal
            continue
        if kind in _VALUE_TYPES:
            words.append(("?", True, False))
        elif kind == TokenType.IDENTIFIER:
            text = token.text
            text = "?" if savepoint else '"' + text.replace('"', '""') + '"'
            words.append((text, False, False))
        elif kind == TokenType.VAR:
            if savepoint and token.text.upper() not in _KEEP_IN_SAVEPOINT:
                words.append(("?", False, False))
            else:
                is_call = following is not None and following.token_type == TokenType.L_PAREN
                words.append((token.text.lower(), False, is_call))
        else:
            # Words the tokenizer knows but that are usually names (``name``, ``status``,
            # ``type``) read better lower-cased; either way the case is folded.
            text = token.text.upper()
            if not all(word in _RESERVED_WORDS for word in text.split()):
                text = token.text.lower()
            is_call = following is not None and following.token_type == TokenType.L_PAREN and text.isidentifier() \
                and kind not in _SPACED_KEYWORDS
            words.append((text, False, is_call))
        index += 1
    return words


_SPACED_KEYWORDS = frozenset(
    getattr(TokenType, name) for name in (
        "IN", "VALUES", "AS", "AND", "OR", "NOT", "ON", "FROM", "JOIN", "WHERE", "EXISTS", "SELECT", "USING",
        "INTO", "ALL", "ANY", "SOME", "OVER", "WITH", "UNION", "INTERSECT", "EXCEPT", "LATERAL", "SET", "TABLE",
        "RETURNING", "CONFLICT", "DO", "UPDATE", "DISTINCT", "BY", "THEN", "ELSE", "WHEN", "CASE", "IS", "LIKE",
        "ILIKE", "BETWEEN", "HAVING", "LIMIT", "OFFSET", "END",
    ) if hasattr(TokenType, name)
)


_RESERVED_WORDS = frozenset("""
    ALL ALTER AND ANY AS ASC BEGIN BETWEEN BY CASE CAST COMMIT CONFLICT CREATE CROSS DELETE DESC DISTINCT
    DO DROP ELSE END ESCAPE EXCEPT EXISTS EXPLAIN FALSE FETCH FIRST FOR FROM FULL GROUP HAVING ILIKE IN INNER
    INSERT INTERSECT INTERVAL INTO IS JOIN LAST LATERAL LEFT LIKE LIMIT NATURAL NOT NOTHING NULL NULLS OFFSET ON
    OR ORDER OUTER OVER PARTITION RECURSIVE RELEASE RETURNING RIGHT ROLLBACK ROWS SAVEPOINT SELECT SET SOME
    TABLE THEN TO TRUE UNION UPDATE USING VALUES WHEN WHERE WINDOW WITH
""".split())


def _is_name(text):
    return text[:1].isalpha() or text[:1] in '_"'


def _collapse_in_lists(words):
    out = []
    index = 0
    count = len(words)
    while index < count:
        out.append(words[index])
        if words[index][0] == "IN" and index + 2 < count and words[index + 1][0] == "(" and words[index + 2][1]:
            end = index + 2
            while end + 2 < count and words[end + 1][0] == "," and words[end + 2][1]:
                end += 2
            if end + 1 < count and words[end + 1][0] == ")":
                out.extend((("(", False, False), ("?", True, False), (")", False, False)))
                index = end + 2
                continue
        index += 1
    return out


def _group_end(words, start):
    """Index just past the parenthesized group opening at ``start``."""
    depth = 0
    for index in range(start, len(words)):
        if words[index][0] == "(":
            depth += 1
        elif words[index][0] == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(words)


def _collapse_values(words):
    out = []
    index = 0
    count = len(words)
    while index < count:
        out.append(words[index])
        if words[index][0] == "VALUES" and index + 1 < count and words[index + 1][0] == "(":
            end = _group_end(words, index + 1)
            first = words[index + 1:end]
            out.extend(first)
            index = end
            while index < count and words[index][0] == "," and words[index + 1:index + 1 + len(first)] == first:
                index += 1 + len(first)
            continue
        index += 1
    return out


def _join(words):
    parts = []
    previous = None
    for text, _, is_call in words:
        if previous is not None and not (
            text in _NO_SPACE_BEFORE or previous[0] in _NO_SPACE_AFTER or (text == "(" and previous[2])
        ):
            parts.append(" ")
        parts.append(text)
        previous = (text, None, is_call)
    return "".join(parts)
