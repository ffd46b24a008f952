"""The sanitising every span passes before it is stored or exported: what third-party
instrumentation recorded (psycopg2, requests, redis, Celery) is made safe to keep; and
the text every stored value is cleaned of before it is written (:func:`clean`,
:func:`clean_json`): NUL characters and lone surrogates, which PostgreSQL refuses (a NUL
in text, json or jsonb; a surrogate cannot be encoded to UTF-8) and which would make it
reject a whole batch, become U+FFFD."""

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status

from telemetry.adapters.opentelemetry import rewrite_span
from telemetry.queries.sql import analyze

#: Instrumentation scopes of the spans telemetry builds itself (already safe).
HTTP_SCOPE_NAME = "telemetry.http"
DB_SCOPE_NAME = "telemetry.db"
OUR_SCOPES = frozenset({HTTP_SCOPE_NAME, DB_SCOPE_NAME})


REPLACEMENT = "\ufffd"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: An escaped NUL in JSON text (``\u0000``), not preceded by an escaped backslash.
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def clean_text(text: str) -> str:
    """``text`` with NUL characters and lone surrogates replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if not text.isascii():
        text = _LONE_SURROGATE.sub(REPLACEMENT, text)
    return text


def clean(value: Any) -> Any:
    """A copy of ``value`` with every string in it (in nested dicts, keys too, lists and
    tuples, which become lists as JSON has them) cleaned as :func:`clean_text` does;
    other values as they are."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean(key): clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(item) for item in value]
    return value


def clean_json(text: str) -> str:
    """JSON text with every escaped NUL (which PostgreSQL's json and text types refuse)
    turned into U+FFFD; one substring search when there is none."""
    if "\\u0000" not in text:
        return text
    return _ESCAPED_NUL.sub(lambda match: match.group(1) + REPLACEMENT, text)


def _strip_url(url):
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def sanitize(span: ReadableSpan, capture_sql: bool) -> ReadableSpan:
    """What third-party instrumentation recorded, made safe to keep: normalized SQL,
    URLs without credentials or query strings, exception types without their messages
    (a driver's message may quote a row's values). Mutates the span's private fields:
    it is the writer's own copy (``Span.end`` hands processors a fresh ``ReadableSpan``)."""
    scope = span.instrumentation_scope
    if scope is not None and scope.name in OUR_SCOPES:
        return span
    attributes: Mapping[str, Any] = span.attributes or {}
    changed: dict[str, Any] | None = None
    statement = attributes.get("db.statement")
    if statement is not None and not capture_sql and attributes.get("db.system") != "redis":
        changed = dict(attributes)
        vendor = str(attributes.get("db.system") or "postgresql")
        changed["db.statement"] = analyze(str(statement), None, vendor).fingerprint
    for key in ("http.url", "url.full"):
        value = attributes.get(key)
        if isinstance(value, str) and ("?" in value or "@" in value or "#" in value):
            changed = changed if changed is not None else dict(attributes)
            changed[key] = _strip_url(value)
    if changed is not None:
        rewrite_span(span, attributes=changed)
    if span.events:
        rewrite_span(span, events=tuple(_safe_event(event) for event in span.events))
    status = span.status
    if status.description:
        rewrite_span(span, status=Status(status.status_code, status.description.split(":", 1)[0][:120]))
    return span


def _safe_event(event):
    if event.name != "exception":
        return event
    attributes = event.attributes or {}
    kept = {key: attributes[key] for key in ("exception.type", "exception.escaped") if key in attributes}
    return Event("exception", kept, event.timestamp)
