"""Telemetry in Django admin: the overview (``overview.py``), traces and logs (``traces.py``), query intelligence
(``queries.py``), usage per organization (``usage.py``), release comparison (``releases.py``). Pages read pre-aggregated
tables, never raw scans, and are read-only (``readonly.ReadOnlyAdmin``).

Django lists an app's models alphabetically; the telemetry entries are listed in the order an on-call engineer uses
them instead (``WORKFLOW``), with short names, on the admin index, the app index and the navigation sidebar; and the
telemetry app's index (``/admin/telemetry/``, also its breadcrumb) opens the overview. Only the telemetry app's entries
change: a host site that overrides ``get_app_list`` or ``app_index`` keeps its own behaviour for every other app.
"""

from functools import wraps
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from telemetry.admin import overview, queries, releases, traces, usage  # noqa: F401

#: ``(model name, name shown)`` in the order of the workflow: overview, traces, query insights, usage, releases, logs.
WORKFLOW = (
    ("routestat", "Overview"),
    ("trace", "Traces"),
    ("querystat", "Query insights"),
    ("queryfinding", "Query findings"),
    ("queryplan", "Query plans"),
    ("queryreport", "Query reports"),
    ("organizationusage", "Usage"),
    ("releaseroutestats", "Releases"),
    ("logentry", "Logs"),
)
_POSITION = {name: (position, label) for position, (name, label) in enumerate(WORKFLOW)}


def in_workflow_order(app_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``app_list`` (as built by ``AdminSite.get_app_list``) with the telemetry models reordered and renamed."""
    for app in app_list:
        if app.get("app_label") != "telemetry":
            continue
        for entry in app["models"]:
            position = _POSITION.get(entry["object_name"].lower())
            if position is not None:
                entry["name"] = position[1]
        app["models"].sort(key=lambda entry: _POSITION.get(entry["object_name"].lower(), (len(WORKFLOW), ""))[0])
    return app_list


def _install(site: admin.AdminSite) -> None:
    """Wraps the site's ``get_app_list`` and ``app_index`` (once; before the admin's URLs are built, which bind
    ``app_index``: the app registry imports this module before any URLconf)."""
    get_app_list, app_index = site.get_app_list, site.app_index
    if getattr(get_app_list, "telemetry_workflow", False):
        return

    @wraps(get_app_list)
    def ordered(request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        return in_workflow_order(get_app_list(request, app_label))

    @wraps(app_index)
    def overview_first(request: HttpRequest, app_label: str, extra_context: dict[str, Any] | None = None
                       ) -> HttpResponse:
        if app_label == "telemetry" and request.user.has_perm("telemetry.view_routestat"):
            return HttpResponseRedirect(reverse(f"{site.name}:telemetry_routestat_changelist", current_app=site.name))
        return app_index(request, app_label, extra_context)

    ordered.telemetry_workflow = True  # type: ignore[attr-defined]
    site.get_app_list = ordered  # type: ignore[method-assign]
    site.app_index = overview_first  # type: ignore[method-assign, assignment]


_install(admin.site)
