"""What the platform tells telemetry (configured in ``settings.TELEMETRY``)."""


def user_organization(user):
    """The organization a user's login counts for: their first membership."""
    membership = user.memberships.order_by("id").values_list("organization_id", flat=True).first()
    return membership


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
