"""Roles: viewers read and run, builders edit apps and queries, admins manage members
and data sources. Objects of another organization are a 404, never a 403."""

from rest_framework.exceptions import PermissionDenied

from .models import ROLE_RANK, Membership, Role


def memberships_of(user):
    """``{organization_id: role}`` of the user, cached on the user object per request."""
    cached = getattr(user, "_organization_roles", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("organization_id", "role"))
        user._organization_roles = cached
    return cached


def organization_ids(user):
    return list(memberships_of(user))


def require_role(user, organization_id, role):
    """Raises 403 unless the user has at least ``role`` in the organization. Callers have
    already scoped the object to the user's organizations (404 otherwise)."""
    current = memberships_of(user).get(organization_id)
    if current is None or ROLE_RANK[current] < ROLE_RANK[role]:
        raise PermissionDenied(f"This needs the {role} role in the organization.")


READ, EDIT, MANAGE = Role.VIEWER, Role.BUILDER, Role.ADMIN
