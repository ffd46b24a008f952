"""How telemetry learns the organization of a request, without importing the platform."""

from django.utils.module_loading import import_string

from telemetry import conf

_resolver_cache = {}


def from_request_attribute(request):
    """Default resolver: the view sets ``request.organization_id`` when it knows it."""
    return getattr(request, "organization_id", None)


def resolve(request):
    path = conf.get("ORGANIZATION_RESOLVER")
    resolver = _resolver_cache.get(path)
    if resolver is None:
        resolver = _resolver_cache[path] = import_string(path)
    return resolver(request)
