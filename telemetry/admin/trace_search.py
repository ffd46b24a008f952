"""The trace list's search and its duration scatter.

``TraceSearch.parse`` reads the list's query string (status code, maximum duration, a span
attribute ``key=value``, an absolute ``from``/``to`` range; route, organization and the
minimum duration are the sidebar filters' parameters, checked here so bad input gets a
message) and never raises: bad input becomes ``errors`` and an empty list.

The attribute search is bounded and indexed. On PostgreSQL it reads the trace ids of at
most ``MAX_ATTRIBUTE_SPANS`` matching spans through the GIN index on ``Span.attributes``
(``@>``, migration 0010), within the listed time range. Elsewhere there is no JSON index:
it reads the spans of the newest ``MAX_ATTRIBUTE_TRACES`` traces the other filters list,
through the ``(trace_id, start_ns)`` index, and the page says so.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.db import connections
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from telemetry.admin import formatting
from telemetry.models import Span, Trace

#: Query-string parameters applied by the search (the others belong to the sidebar filters).
SEARCH_PARAMS = ("status_code", "max_ms", "attr", "from", "to")
#: Every parameter of the search form, in its order.
FORM_PARAMS = ("route", "status_code", "organization", "min_ms", "max_ms", "attr", "from", "to")
#: Matching spans read on PostgreSQL (their trace ids filter the list).
MAX_ATTRIBUTE_SPANS = 5_000
#: Traces whose spans are read on backends without a JSON index.
MAX_ATTRIBUTE_TRACES = 2_000
#: A matching span may start this long after the trace it belongs to.
SPAN_SLACK = timedelta(hours=1)
#: Traces drawn in the scatter: the newest of the listed ones.
SCATTER_MAX = 500
PRESETS: dict[str, timedelta] = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1),
                                 "1d": timedelta(days=1), "7d": timedelta(days=7)}
_ATTRIBUTE = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127})=(.{1,256})$", re.DOTALL)
_INTEGER = re.compile(r"^-?\d{1,18}$")
_STATUS_CLASS = re.compile(r"^([1-5])xx$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TraceSearch:
    """The list's search criteria, parsed; ``errors`` says what could not be read."""

    status_codes: tuple[int, int] | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    attribute: tuple[str, str] | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None
    #: The start of the ``since`` preset, when one is chosen.
    since: datetime | None = None
    errors: tuple[str, ...] = ()

    @classmethod
    def parse(cls, params: Mapping[str, str], now: datetime | None = None) -> "TraceSearch":
        now = now or timezone.now()
        errors: list[str] = []
        values: dict[str, Any] = {}
        text = {name: str(params.get(name, "")).strip() for name in (*FORM_PARAMS, "since")}
        if text["status_code"]:
            values["status_codes"] = _status_codes(text["status_code"])
            if values["status_codes"] is None:
                errors.append(f"Status code “{text['status_code']}”: enter an HTTP status code such as 404, "
                              "or a class such as 5xx.")
        for name, label in (("min_ms", "Minimum duration"), ("max_ms", "Maximum duration")):
            if text[name]:
                values[name] = _milliseconds(text[name])
                if values[name] is None:
                    errors.append(f"{label} “{text[name]}”: enter a number of milliseconds, such as 250.")
        low, high = values.get("min_ms"), values.get("max_ms")
        if low is not None and high is not None and low > high:
            errors.append("The minimum duration is above the maximum duration.")
        if text["attr"]:
            match = _ATTRIBUTE.match(text["attr"])
            if match is None:
                errors.append(f"Span attribute “{text['attr']}”: write key=value, such as http.route=/api/apps/ or "
                              "user.id=42 (a key of letters, digits, dots, dashes, colons or underscores).")
            else:
                values["attribute"] = (match.group(1), match.group(2).strip())
        for name, label in (("from", "From"), ("to", "To")):
            if text[name]:
                moment = _moment(text[name])
                values["start_" + name] = moment
                if moment is None:
                    errors.append(f"{label} “{text[name]}”: enter a date and time such as 2026-12-03T14:30 "
                                  f"(time zone {timezone.get_current_timezone_name()}).")
        if values.get("start_from") and values.get("start_to") and values["start_from"] >= values["start_to"]:
            errors.append("The start of the time range is not before its end.")
        if text["since"] in PRESETS:
            values["since"] = now - PRESETS[text["since"]]
        return cls(**values, errors=tuple(errors))

    @property
    def range_start(self) -> datetime | None:
        """The earliest start listed (the later of the preset and ``from``)."""
        starts = [moment for moment in (self.start_from, self.since) if moment]
        return max(starts) if starts else None


@dataclass(slots=True)
class SearchResult:
    queryset: QuerySet[Trace]
    notes: list[str] = field(default_factory=list)


def apply(search: TraceSearch, queryset: QuerySet[Trace]) -> SearchResult:
    """The list's rows narrowed by ``search`` (nothing when it has errors), with notes on
    how the attribute search was bounded."""
    if search.errors:
        return SearchResult(queryset.none())
    if search.status_codes:
        queryset = queryset.filter(status_code__range=search.status_codes)
    if search.max_ms is not None:
        queryset = queryset.filter(duration_ms__lte=search.max_ms)
    if search.start_from:
        queryset = queryset.filter(start__gte=search.start_from)
    if search.start_to:
        queryset = queryset.filter(start__lte=search.start_to)
    if not search.attribute:
        return SearchResult(queryset)
    vendor = connections[Span.objects.db_manager().db].vendor
    if vendor == "postgresql":
        return _indexed_attribute_search(search, queryset)
    return _bounded_attribute_search(search, queryset, vendor)


def indexed_attribute_spans(search: TraceSearch) -> QuerySet[Span]:
    """Spans with the searched attribute in the listed time range, for PostgreSQL's GIN
    index (``attributes @> {key: value}``, one containment per JSON type of the value)."""
    key, value = cast(tuple[str, str], search.attribute)
    condition = Q()
    for candidate in _json_values(value):
        condition |= Q(attributes__contains={key: candidate})
    spans = Span.objects.filter(condition)
    if search.range_start:
        spans = spans.filter(start_ns__gte=_epoch_ns(search.range_start))
    if search.start_to:
        spans = spans.filter(start_ns__lte=_epoch_ns(search.start_to + SPAN_SLACK))
    return spans


def _indexed_attribute_search(search, queryset):
    key, value = search.attribute
    spans = indexed_attribute_spans(search)
    # No ORDER BY: the bitmap scan of the GIN index stops after the cap.
    trace_ids = list(spans.values_list("trace_id", flat=True)[: MAX_ATTRIBUTE_SPANS + 1])
    notes = []
    if len(trace_ids) > MAX_ATTRIBUTE_SPANS:
        notes.append(f"More than {MAX_ATTRIBUTE_SPANS:,} spans in this time range have {key} = {value}: "
                     f"the list shows the traces of the first {MAX_ATTRIBUTE_SPANS:,} found, not necessarily the "
                     "newest. Narrow the time range to see them all.")
    return SearchResult(queryset.filter(trace_id__in=set(trace_ids[:MAX_ATTRIBUTE_SPANS])), notes)


def _bounded_attribute_search(search, queryset, vendor):
    key, value = search.attribute
    newest = list(queryset.order_by("-start").values_list("trace_id", flat=True)[:MAX_ATTRIBUTE_TRACES])
    condition = Q()
    for candidate in _json_values(value):
        condition |= Q(attribute_value=candidate)
    trace_ids = set(Span.objects.filter(trace_id__in=newest).annotate(
        attribute_value=KeyTransform(key, "attributes")).filter(condition).values_list("trace_id", flat=True))
    note = (f"On {vendor} spans have no attribute index: the attribute search reads the spans of the newest "
            f"{MAX_ATTRIBUTE_TRACES:,} traces the other filters and the time range list"
            + (", so older traces are not searched: narrow the time range to reach them."
               if len(newest) == MAX_ATTRIBUTE_TRACES else "."))
    return SearchResult(queryset.filter(trace_id__in=trace_ids), [note])


def _json_values(value: str) -> list[Any]:
    """The JSON values ``value`` may be stored as: the string, and the number or boolean
    it spells (``user.id=42`` finds 42 and "42")."""
    if value in ("true", "false"):
        return [value, value == "true"]
    if _INTEGER.match(value):
        return [value, int(value)]
    number = _milliseconds(value.lstrip("-"))  # a finite number, sign aside
    return [value, float(value)] if number is not None else [value]


def _status_codes(text: str) -> tuple[int, int] | None:
    match = _STATUS_CLASS.match(text)
    if match:
        first = int(match.group(1)) * 100
        return first, first + 99
    if text.isdigit() and 100 <= int(text) <= 599:
        return int(text), int(text)
    return None


def _milliseconds(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _moment(text: str) -> datetime | None:
    """A ``datetime-local`` value (or ISO 8601, or a date) in the current time zone."""
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime(day.year, day.month, day.day) if day else None
    except ValueError:  # well formed, out of range (month 13)
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def _epoch_ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


# ---------------------------------------------------------------------------------- scatter
WIDTH, HEIGHT, LEFT, TOP, BOTTOM, RIGHT = 1000, 180, 64, 8, 22, 8


def _tick(value: float) -> str:
    """A power of ten of milliseconds: ``10 ms``, ``1 s``."""
    return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"


def scatter(rows: Sequence[tuple[str, datetime, float, str]], overflow: bool) -> SafeString:
    """An inline SVG: a dot per trace ``(trace_id, start, duration_ms, status)``, x its start,
    y its duration on a log scale, failed traces red, each dot a link to its waterfall."""
    if not rows:
        return mark_safe("")
    starts = [row[1].timestamp() for row in rows]
    first, last = min(starts), max(starts)
    span = (last - first) or 1.0
    low = 10 ** math.floor(math.log10(max(min(row[2] for row in rows), 0.01)))
    high = 10 ** math.ceil(math.log10(max(max(row[2] for row in rows), low * 10)))
    decades = math.log10(high / low)
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y_of(duration_ms: float) -> float:
        return TOP + plot_height * (1 - math.log10(max(duration_ms, low) / low) / decades)

    parts: list[str] = []
    for power in range(round(decades) + 1):
        tick = low * 10 ** power
        y = y_of(tick)
        parts.append(format_html('<line class="grid" x1="{}" y1="{}" x2="{}" y2="{}"/>'
                                 '<text x="{}" y="{}" text-anchor="end">{}</text>',
                                 LEFT, f"{y:.1f}", WIDTH - RIGHT, f"{y:.1f}", LEFT - 6, f"{y + 4:.1f}",
                                 _tick(tick)))
    zone = timezone.get_current_timezone()
    stamp = "%Y-%m-%d %H:%M:%S" if span < 86_400 * 2 else "%Y-%m-%d %H:%M"
    for edge, anchor, moment in ((LEFT, "start", first), (WIDTH - RIGHT, "end", last)):
        parts.append(format_html('<text x="{}" y="{}" text-anchor="{}">{}</text>', edge, HEIGHT - 6, anchor,
                                 datetime.fromtimestamp(moment, zone).strftime(stamp)))
    # The admin's change URL of each trace, without a reverse() per dot.
    change_url = reverse("admin:telemetry_trace_changelist") + "{}/change/"
    for (trace_id, start, duration_ms, status), moment in zip(rows, starts, strict=True):
        x = LEFT + plot_width * (moment - first) / span if last > first else LEFT + plot_width / 2
        parts.append(format_html(
            '<a href="{}" class="scatter-dot" data-trace-id="{}"><circle class="scatter-{}" cx="{}" cy="{}" '
            'r="3.5"><title>{} · {} · {}</title></circle></a>',
            change_url.format(trace_id), trace_id, "error" if status == "error" else "ok", f"{x:.1f}",
            f"{y_of(duration_ms):.1f}",
            formatting.timestamp(start), formatting.duration(duration_ms), status))
    caption = (f"newest {len(rows):,} of the listed traces" if overflow else f"{len(rows):,} listed traces")
    return format_html(
        '<figure id="trace-scatter"><figcaption>Duration by start time: {} '
        '<span class="scatter-key"><i class="ok"></i>ok <i class="error"></i>failed</span></figcaption>'
        '<svg viewBox="0 0 {} {}" role="img" aria-label="trace durations by start time">{}</svg></figure>',
        caption, WIDTH, HEIGHT, mark_safe("".join(parts)))  # noqa: S308 - parts are built by format_html
