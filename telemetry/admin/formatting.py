"""How the admin pages write statements, durations and times, the same on every page: a
statement on one line that keeps ``FROM … WHERE …``, a duration with its unit (ms below a
second, s above), a timestamp in ISO form with seconds and zone, in lists followed by its
age ("5 minutes ago")."""

import re
from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

#: Characters of a statement shown on one line in a list.
STATEMENT_CHARS = 140
_SELECT_LIST = re.compile(r"^(\s*SELECT\s+(?:DISTINCT\s+)?)(.+?)(\s+FROM\s)", re.IGNORECASE | re.DOTALL)


def compact(statement: str, limit: int = STATEMENT_CHARS) -> str:
    """A statement on one line of at most ``limit`` characters that keeps what tells
    statements apart (``FROM … WHERE …``): a long select list becomes ``…`` first."""
    text = " ".join(statement.split())
    if len(text) > limit:
        text = _SELECT_LIST.sub(lambda match: f"{match.group(1)}…{match.group(3)}", text, count=1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(milliseconds: float | None) -> str:
    """``0.42 ms``, ``12.3 ms``, ``254 ms``, ``1.24 s``, ``75.2 s``; ``—`` for none."""
    if milliseconds is None:
        return "—"
    if milliseconds < 1:
        return f"{milliseconds:.2f} ms"
    if milliseconds < 100:
        return f"{milliseconds:.1f} ms"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def timestamp(value: datetime | None) -> str:
    """``2026-12-03 02:41:07+00:00`` in the current time zone; ``—`` for none."""
    if value is None:
        return "—"
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.isoformat(sep=" ", timespec="seconds")


def when(value: datetime | None, now: datetime | None = None) -> SafeString | str:
    """A timestamp with its age, for lists: ``<time>…</time> · 5 minutes ago``."""
    if value is None:
        return "—"
    age = timesince(value, now or timezone.now(), depth=1)
    return format_html('<time datetime="{}">{}</time> <span class="age">· {} ago</span>',
                       value.isoformat(), timestamp(value), age)
