"""Admin releases page: each route's latency in one release against another (by default the
running release against the one before), the most significant change first, with the
performance score of each; what ``manage.py telemetry_release_check`` gates a deploy on.
Reads the hourly release rows only (two GROUP BYs)."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from telemetry import conf
from telemetry.admin.readonly import ReadOnlyAdmin
from telemetry.models import ReleaseRouteStats
from telemetry.usage import releases


@admin.register(ReleaseRouteStats)
class ReleaseAdmin(ReadOnlyAdmin):
    """The changelist is the comparison of two releases, not the hourly rows."""

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        known = releases.releases_in_order()
        current = request.GET.get("release") if request.GET.get("release") in known else None
        previous = request.GET.get("against") if request.GET.get("against") in known else None
        comparison = releases.route_comparison(current, previous)
        fail_on = conf.get("RELEASE_CHECK_FAIL_ON")
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Releases",
            "comparison": comparison, "failing": {row.route for row in comparison.regressions(fail_on)},
            "fail_on": fail_on, "release_choices": list(reversed(known)), **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/telemetry/releases.html", context)
