"""How telemetry learns the organization of a request, without importing the platform."""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.utils.module_loading import import_string

from telemetry import conf


def from_request_attribute(request: HttpRequest) -> Any:
    """Default resolver: the view sets ``request.organization_id`` when it knows it."""
    return getattr(request, "organization_id", None)


class OrganizationResolver:
    """Calls the ``ORGANIZATION_RESOLVER`` setting's function, imported once per path."""

    def __init__(self) -> None:
        self._imported: dict[str, Callable] = {}

    def resolve(self, request: HttpRequest) -> Any:
        path = conf.get_settings()["ORGANIZATION_RESOLVER"]
        resolver = self._imported.get(path)
        if resolver is None:
            resolver = self._imported[path] = import_string(path)
        return resolver(request)

    def reset(self) -> None:
        """Imports the resolvers again on next use (``telemetry.testing.reset``)."""
        self._imported.clear()


#: This process's resolver; the middleware calls :func:`resolve`.
resolver = OrganizationResolver()
resolve = resolver.resolve
