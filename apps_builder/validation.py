"""One validation layer for what clients send, applied before any view, serializer or the
database sees it. Request bodies go through the parsers below (``DEFAULT_PARSER_CLASSES``);
paths and query strings through ``RejectMalformedParametersMiddleware``.

Refused, with a 400 naming the problem:
- text (keys and values, anywhere) holding NUL or a lone UTF-16 surrogate: PostgreSQL
  cannot store either, and the driver's error would otherwise be a 500;
- JSON nested deeper than ``MAX_JSON_DEPTH``, measured before parsing and without
  recursion (the standard ``json`` module recurses, so 100,000 levels would be a
  ``RecursionError``);
- numbers JSON does not have (``NaN``, ``Infinity``) and numbers that overflow a float
  (``1e400``);
- a body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB by default): DRF reads JSON
  and form bodies through ``HttpRequest.body``, where Django enforces that limit before
  any parser runs (a plain 400)."""

import json
import math
import re

from django.conf import settings
from django.http import JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 64

#: NUL and the surrogate range. ``json`` joins an escaped surrogate pair into one astral
#: character, so a surrogate left in a decoded string is always a lone one.
FORBIDDEN_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
#: A JSON string literal (an unrolled loop: no backtracking on long strings).
JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
JSON_BRACKET = re.compile(r"[\[\]{}]")
#: An id as a client may write it in text: ASCII digits within a bigint (``str.isdigit``
#: also accepts "²", which ``int()`` refuses).
ID_TEXT = re.compile(r"[0-9]{1,18}")

FORBIDDEN_TEXT_MESSAGE = "Text may not contain NUL characters or lone surrogates."


def is_forbidden_text(text: str) -> bool:
    return FORBIDDEN_CHARACTERS.search(text) is not None


def parse_id(text: str) -> int | None:
    """The id written in ``text``, or ``None`` when it is not one."""
    return int(text) if ID_TEXT.fullmatch(text) else None


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether the JSON text nests arrays and objects deeper than ``limit``, counted
    over its brackets outside string literals (no parsing, no recursion)."""
    depth = 0
    for bracket in JSON_BRACKET.findall(JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def check_parsed(data) -> None:
    """Raises ``ParseError`` if any key or string in the parsed document is forbidden
    text. Iterative: the depth was bounded before parsing, but a stack costs nothing."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if is_forbidden_text(item):
                raise ParseError(FORBIDDEN_TEXT_MESSAGE)
        elif isinstance(item, dict):
            for key, value in item.items():
                if is_forbidden_text(key):
                    raise ParseError(FORBIDDEN_TEXT_MESSAGE)
                pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)


def _refuse_constant(name):
    raise ParseError(f"{name} is not a JSON number.")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ParseError(f"{text[:32]} is out of range for a number.")
    return value


class CheckedJSONParser(parsers.JSONParser):
    """DRF's JSON parser with the checks of this module, in this order: encoding, depth,
    then parsing with finite numbers only, then the text of every key and string."""

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = body.decode(encoding)
        except (UnicodeDecodeError, LookupError) as error:
            raise ParseError(f"The body is not valid {encoding} text.") from error
        if json_depth_exceeds(text, MAX_JSON_DEPTH):
            raise ParseError(f"JSON may nest at most {MAX_JSON_DEPTH} levels.")
        try:
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from error
        check_parsed(data)
        return data


def has_forbidden_item(querydict) -> bool:
    """Whether any key or text value of a ``QueryDict`` (query string, form) is forbidden text."""
    return any(
        is_forbidden_text(key) or any(isinstance(value, str) and is_forbidden_text(value) for value in values)
        for key, values in querydict.lists()
    )


def check_querydict(querydict) -> None:
    if has_forbidden_item(querydict):
        raise ParseError(FORBIDDEN_TEXT_MESSAGE)


class CheckedFormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        check_querydict(data)
        return data


class CheckedMultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        check_querydict(parsed.data)
        return parsed


class RejectMalformedParametersMiddleware:
    """A 400 for a request whose path or query string (keys or values) holds forbidden
    text: a NUL in a URL slug or a ``?app=`` filter never reaches URL resolution, a view
    or the database. Everything else passes untouched."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_forbidden_text(request.path) or has_forbidden_item(request.GET):
            return JsonResponse({"detail": FORBIDDEN_TEXT_MESSAGE}, status=400)
        return self.get_response(request)
