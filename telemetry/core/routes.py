"""Route templates as label values: ``/api/apps/<slug>/view``, never raw paths."""

import re

from telemetry.core import labels

_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_normalized = {}


def normalize(route):
    """``api/^apps/(?P<slug>[^/.]+)/view$`` -> ``/api/apps/<slug>/view``; cached."""
    cached = _normalized.get(route)
    if cached is None:
        text = _GROUP.sub(r"<\1>", route).replace("^", "").replace("$", "").replace("/?", "/").replace("\\.", ".")
        text = re.sub(r"<(?:\w+):(\w+)>", r"<\1>", text)
        text = "/" + text.lstrip("/")
        cached = _normalized[route] = labels.route(text) if len(_normalized) < 10_000 else labels.OTHER
    return cached


def of_request(request):
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None:
        return labels.UNMATCHED_ROUTE
    return normalize(match.route)
