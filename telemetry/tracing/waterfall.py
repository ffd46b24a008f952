"""Layout of one stored trace for the waterfall page and the trace API: spans nested by
parent, placed by offset and width, slow and failed ones marked, the critical path.

Pure functions over plain dicts (the rows of ``Span.objects.values(...)``), so the admin
page, the API and tests share them without a database.
"""

from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from telemetry import conf

#: Spans shown per trace; a runaway trace (a loop of queries) must not stall the page.
MAX_SPANS = 2000


def critical_path(spans: Sequence[Mapping[str, Any]]) -> set[str]:
    """Span ids on the critical path of a span tree.

    From the root, walk back from the parent's end: the child that ends last (within the
    parent) is on the path; then the child that ends last before that child started, and
    so on (the sequential work the parent waited for); recurse into each. Children that end
    after their parent (fire-and-forget work such as an enqueued task) are never on it.
    ``spans`` are dicts with ``span_id``, ``parent_span_id``, ``start_ns``, ``end_ns``.
    """
    if not spans:
        return set()
    by_id = {span["span_id"]: span for span in spans}
    return _walk_critical_path(_root(spans, by_id), _children(spans, by_id))


def _children(spans, by_id):
    """Child lists by parent id, in the order of ``spans``; a span is never its own child."""
    children = {}
    for span in spans:
        parent_id = span["parent_span_id"]
        if parent_id and parent_id != span["span_id"] and parent_id in by_id:
            children.setdefault(parent_id, []).append(span)
    return children


def _walk_critical_path(root, children):
    path, stack = set(), [root]
    while stack:
        span = stack.pop()
        if span["span_id"] in path:  # a malformed parent cycle must not loop forever
            continue
        path.add(span["span_id"])
        cursor = end = span["end_ns"]
        within = [child for child in children.get(span["span_id"], ()) if child["end_ns"] <= end]
        for child in sorted(within, key=_end, reverse=True):
            if child["end_ns"] <= cursor:
                stack.append(child)
                cursor = child["start_ns"]
    return path


_start, _end = itemgetter("start_ns"), itemgetter("end_ns")


def _root(spans, by_id):
    """The local root: a span without a (stored) parent, the longest if several."""
    orphans = [span for span in spans if not span["parent_span_id"] or span["parent_span_id"] not in by_id]
    return max(orphans or spans, key=lambda span: (span["end_ns"] - span["start_ns"], -span["start_ns"]))


def is_slow(span: Mapping[str, Any], slow_query_ms: float, slow_span_ms: float) -> bool:
    """Database spans flagged slow or over ``SLOW_QUERY_MS``; other spans over
    ``TRACE_SLOW_MS`` (what makes a whole trace slow)."""
    attributes = span.get("attributes") or {}
    if attributes.get("db.query.is_slow") in (True, "true", "True", 1):
        return True
    if "db.system" in attributes:
        return span["duration_ms"] >= slow_query_ms
    return span["duration_ms"] >= slow_span_ms


def _self_ms(span, children):
    """The span's own time: its duration less what its children cover (clipped to it)."""
    start, end = span["start_ns"], span["end_ns"]
    covered, cursor = 0, start
    for child in children:  # by start
        child_start, child_end = max(child["start_ns"], cursor), min(child["end_ns"], end)
        if child_end > child_start:
            covered += child_end - child_start
            cursor = child_end
    return max(end - start - covered, 0) / 1e6


def _fold_repeats(children, slow_query_ms, slow_span_ms):
    """Sibling DB spans of one statement (same fingerprint) fold into their first: it gets
    ``repeat_count`` and ``repeat_total_ms``, the others ``folded_into`` its span id. A
    failed or slow run is never folded: it is what the page is read for."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for child in children:
        attributes = child.get("attributes") or {}
        key = attributes.get("db.query.fingerprint_id") or attributes.get("db.statement")
        if (key and "db.system" in attributes and child["status"] != "error"
                and not is_slow(child, slow_query_ms, slow_span_ms)):
            groups.setdefault(str(key), []).append(child)
    for group in groups.values():
        if len(group) < 2:
            continue
        first = group[0]
        first["repeat_count"] = len(group)
        first["repeat_total_ms"] = sum(span["duration_ms"] for span in group)
        for span in group[1:]:
            span["folded_into"] = first["span_id"]


def layout(spans: Iterable[dict[str, Any]],
           logs: Iterable[dict[str, Any]] = ()) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows in display order (depth-first, children by start): the span dicts, with ``depth``,
    ``offset_percent``, ``width_percent``, ``is_slow``, ``is_error``, ``on_critical_path``,
    ``self_ms`` (time not covered by children), ``repeat_count`` / ``repeat_total_ms`` (a DB
    span whose later siblings run the same statement) or ``folded_into`` (one of those
    siblings: the first one's span id) and ``logs`` (the log records of that span) added to
    each span dict. Logs whose span is not shown are returned apart.
    Returns ``(rows, unmatched_logs)``."""
    if not spans:
        return [], list(logs)
    # One stable sort (linear on the start-ordered rows the callers read) puts every child
    # list in display order, instead of a sort per span.
    spans = sorted(spans, key=_start)
    trace_start = spans[0]["start_ns"]
    total = max(max(map(_end, spans)) - trace_start, 1)
    by_id = {span["span_id"]: span for span in spans}
    children = _children(spans, by_id)
    roots = [span for span in spans if span["parent_span_id"] == span["span_id"]
             or not span["parent_span_id"] or span["parent_span_id"] not in by_id]
    on_path = _walk_critical_path(_root(spans, by_id), children)
    slow_query_ms, slow_span_ms = conf.get("SLOW_QUERY_MS"), conf.get("TRACE_SLOW_MS", 1000)
    for span in spans:
        span["repeat_count"], span["repeat_total_ms"], span["folded_into"] = 1, span["duration_ms"], ""
    for siblings in children.values():
        _fold_repeats(siblings, slow_query_ms, slow_span_ms)
    logs_by_span: dict[str, list[dict[str, Any]]]
    logs_by_span, unmatched = {}, []
    for log in logs:
        if log.get("span_id") in by_id:
            logs_by_span.setdefault(log["span_id"], []).append(log)
        else:
            unmatched.append(log)

    rows, seen = [], set()
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        span_id = span["span_id"]
        if span_id in seen:  # a span id stored twice
            continue
        seen.add(span_id)
        start = span["start_ns"]
        offset = (start - trace_start) * 100.0 / total
        width = (span["end_ns"] - start) * 100.0 / total
        # The caller's dicts are extended in place: copying 2,000 of them cost more than the layout.
        span["depth"] = depth
        span["offset_percent"] = round(offset, 3)
        span["width_percent"] = round(min(max(width, 0.15), 100.0 - offset), 3)
        span["is_slow"] = is_slow(span, slow_query_ms, slow_span_ms)
        span["is_error"] = span["status"] == "error"
        span["on_critical_path"] = span_id in on_path
        span["self_ms"] = _self_ms(span, children.get(span_id, ()))
        span["logs"] = logs_by_span.get(span_id, [])
        rows.append(span)
        if span_id in children:
            depth += 1
            stack.extend([(child, depth) for child in reversed(children[span_id])])
    return rows, unmatched
