"""The base of every telemetry admin page: telemetry rows are written by telemetry only, so
no one adds, changes or deletes them here (which also leaves the changelists without
actions: Django offers "delete selected" only with the delete permission). Viewing is
Django's own: a staff user with the model's view permission."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """A ``ModelAdmin`` that only shows: add, change and delete are refused to everyone,
    superusers included; ``has_view_permission`` is left to Django (or to a subclass)."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def viewable_object(self, request: HttpRequest, object_id: str) -> Any:
        """The object a custom detail page shows: 404 when it does not exist, 403 when the
        user may not view it."""
        found = self.get_object(request, object_id)
        if found is None:
            raise Http404(f"no such {self.model._meta.verbose_name}")
        if not self.has_view_or_change_permission(request, found):
            raise PermissionDenied
        return found
