"""The realistic view of the overhead benchmark: three ORM queries on PostgreSQL."""

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


urlpatterns = [path("api/items/<int:item_id>/view", three_queries)]
