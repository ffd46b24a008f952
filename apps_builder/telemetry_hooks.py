"""What the platform tells telemetry (configured in ``settings.TELEMETRY``)."""


def user_organizations(user):
    """Every organization the user is a member of, oldest membership first: the telemetry
    API shows them the traces and logs of all of them; logins count for the first. An
    anonymous user has none (the schema view asks with one)."""
    if not user.is_authenticated:
        return []
    return list(user.memberships.order_by("id").values_list("organization_id", flat=True))


def administered_organizations(user):
    """The organizations the user administers: whose usage the telemetry API shows them."""
    if not user.is_authenticated:
        return []
    return list(user.memberships.filter(role="admin").values_list("organization_id", flat=True))


def organization_names(ids):
    """Names of the organizations telemetry's admin pages show (ids as telemetry stores
    them: strings; ones that are not ours are left out)."""
    from .models import Organization

    numbers = [int(value) for value in ids if str(value).isdigit()]
    return {str(pk): name for pk, name in Organization.objects.filter(pk__in=numbers).values_list("pk", "name")}


def storage_usage():
    """Bytes stored per organization: app definitions, released versions, query options,
    measured by the database (one grouped query per type)."""
    from django.db.models import Sum, TextField
    from django.db.models.functions import Cast, Length

    from .models import App, AppVersion, DataQuery

    sources = (
        ("app_definitions", App.objects, "organization_id", "definition"),
        ("app_versions", AppVersion.objects, "app__organization_id", "definition"),
        ("data_queries", DataQuery.objects, "app__organization_id", "options"),
    )
    rows = []
    for storage_type, manager, organization_field, json_field in sources:
        totals = (
            manager.values(organization_field)
            .annotate(size=Sum(Length(Cast(json_field, TextField()))))
            .order_by()
        )
        rows.extend((storage_type, row[organization_field], row["size"] or 0) for row in totals)
    return rows
