"""The views of the overhead benchmark: a realistic one (three ORM queries on PostgreSQL)
and an N+1 of 50 (the content type of each of 50 permissions, one query each)."""

from django.contrib.auth.models import Group, Permission, User
from django.http import JsonResponse
from django.urls import path


def three_queries(request, item_id):
    request.organization_id = 1
    return JsonResponse({
        "users": User.objects.filter(is_active=True).count(),
        "groups": list(Group.objects.values_list("name", flat=True)[:5]),
        "permission": Permission.objects.filter(codename__startswith="add_").order_by("id").values("codename").first(),
    })


def n_plus_one(request, item_id):
    request.organization_id = 1
    permissions = Permission.objects.order_by("id")[:50]
    return JsonResponse({"models": [permission.content_type.model for permission in permissions]})


urlpatterns = [path("api/items/<int:item_id>/view", three_queries),
               path("api/items/<int:item_id>/n-plus-one", n_plus_one)]
