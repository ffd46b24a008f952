"""Organization names on the admin pages: telemetry stores organization ids only (a
label value, a column), the host knows their names.

``ORGANIZATION_NAME_RESOLVER`` is a dotted path to ``callable(ids) -> {id: name}``, asked
once per page with the ids that page shows (at most a page's rows). Without it, or when
it fails (counted, logged), pages show the ids.
"""

from collections.abc import Iterable

from django.utils.module_loading import import_string

from telemetry import conf
from telemetry.core import guard


def organization_names(ids: Iterable[str]) -> dict[str, str]:
    """``{id: name}`` for the ids the resolver knows (never raises)."""
    path = conf.get("ORGANIZATION_NAME_RESOLVER")
    wanted = sorted({str(value) for value in ids if value})
    if not path or not wanted:
        return {}
    try:
        names = import_string(path)(wanted)
        return {str(key): str(name) for key, name in dict(names).items() if name}
    except Exception as exc:  # noqa: BLE001 - the page shows ids instead
        guard.report("organization_names", exc)
        return {}


def organization_label(organization_id: str, names: dict[str, str]) -> str:
    """``"Acme Corp (12)"``, the bare id when its name is unknown, ``"—"`` for none."""
    if not organization_id:
        return "—"
    name = names.get(str(organization_id))
    return f"{name} ({organization_id})" if name else str(organization_id)
