"""Route templates as label values: ``/api/apps/<slug>/view``, never raw paths."""

import re

from django.http import HttpRequest

from telemetry.core import labels

_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+):(\w+)>")
#: Distinct resolver patterns whose label is cached; beyond it a new one is ``other``.
MAX_ROUTES_CACHED = 10_000


class RouteLabels(dict[str, str]):
    """Resolver patterns -> route labels, cached per process (bounded): ``route_labels[route]``
    is the label, computed on first use (a cached one costs a dict lookup, no Python call)."""

    def __missing__(self, route: str) -> str:
        """``api/^apps/(?P<slug>[^/.]+)/view$`` -> ``/api/apps/<slug>/view``, capped as a label."""
        text = _GROUP.sub(r"<\1>", route).replace("^", "").replace("$", "").replace("/?", "/").replace("\\.", ".")
        text = "/" + _CONVERTER.sub(r"<\1>", text).lstrip("/")
        label = labels.route(text) if len(self) < MAX_ROUTES_CACHED else labels.OTHER
        self[route] = label
        return label


#: This process's route labels, emptied with the label caps (which they came from).
route_labels = RouteLabels()
normalize = route_labels.__getitem__
labels.on_reset(route_labels.clear)


def of_request(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None:
        return labels.UNMATCHED_ROUTE
    return normalize(match.route)
