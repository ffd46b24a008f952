"""Route templates as label values: ``/api/apps/<slug>/view``, never raw paths."""

import re

from django.http import HttpRequest

from telemetry.core import labels

_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+):(\w+)>")
#: Distinct resolver patterns whose label is cached; beyond it a new one is ``other``.
MAX_ROUTES_CACHED = 10_000


class RouteLabels:
    """Resolver patterns -> route labels, cached per process (bounded)."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}

    def normalize(self, route: str) -> str:
        """``api/^apps/(?P<slug>[^/.]+)/view$`` -> ``/api/apps/<slug>/view``, capped as a label."""
        cached = self._labels.get(route)
        if cached is None:
            text = _GROUP.sub(r"<\1>", route).replace("^", "").replace("$", "").replace("/?", "/").replace("\\.", ".")
            text = "/" + _CONVERTER.sub(r"<\1>", text).lstrip("/")
            cached = labels.route(text) if len(self._labels) < MAX_ROUTES_CACHED else labels.OTHER
            self._labels[route] = cached
        return cached

    def reset(self) -> None:
        """Forgets the cached labels (with the label caps they came from)."""
        self._labels.clear()


#: This process's route labels, emptied with the label caps.
route_labels = RouteLabels()
normalize = route_labels.normalize
labels.on_reset(route_labels.reset)


def of_request(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None:
        return labels.UNMATCHED_ROUTE
    return normalize(match.route)
