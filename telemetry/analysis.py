"""Statement analysis as the metric handlers need it: ``telemetry.sql.analyze`` when
available, else a minimal operation/table extraction. Runs in the flusher thread only."""

import hashlib
import re
from functools import lru_cache

from . import guard

_FIRST_WORD = re.compile(r"^\s*(?:/\*.*?\*/\s*)?(\w+)", re.S)
_TABLE = re.compile(r'\b(?:from|into|update|join)\s+[`"]?([\w.]+)[`"]?', re.I)
_LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b|%s|\$\d+|\?")


class LightAnalysis:
    __slots__ = ("operation", "tables", "complexity_score", "complexity", "pattern", "suggestions", "fingerprint",
                 "fingerprint_id")

    def __init__(self, sql):
        match = _FIRST_WORD.match(sql)
        self.operation = match.group(1).lower() if match else "other"
        self.tables = tuple(dict.fromkeys(t.lower().split(".")[-1] for t in _TABLE.findall(sql)))
        self.complexity_score = None
        self.complexity = "unknown"
        self.pattern = "_".join((self.operation,) + self.tables[:3])
        self.suggestions = ()
        self.fingerprint = " ".join(_LITERAL.sub("?", sql).split())
        self.fingerprint_id = hashlib.blake2b(self.fingerprint.encode(), digest_size=8).hexdigest()


@lru_cache(maxsize=4096)
def _light(sql):
    return LightAnalysis(sql)


def _full_analyzer():
    try:
        from .sql import analyze as full_analyze
    except ImportError:
        return None
    return full_analyze


_analyzers = []


def analyze(sql, params, vendor):
    if not _analyzers:
        _analyzers.append(_full_analyzer())
    full_analyze = _analyzers[0]
    if full_analyze is None:
        return _light(sql)
    try:
        return full_analyze(sql, params, vendor)
    except Exception as exc:  # noqa: BLE001 - analyze() must never raise; if it does, degrade
        guard.report("sql_analyze", exc)
        return _light(sql)
