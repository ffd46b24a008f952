"""What the platform tells telemetry (configured in ``settings.TELEMETRY``)."""


def user_organization(user):
    """The organization a user's login counts for: their first membership."""
    membership = user.memberships.order_by("id").values_list("organization_id", flat=True).first()
    return membership
