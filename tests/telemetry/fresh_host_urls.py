"""The fresh project's URLs (``fresh_host_settings``): the admin, telemetry's views, and
one page of its own that reads the database."""

from django.contrib import admin
from django.db import connection
from django.http import HttpResponse
from django.urls import include, path


def own_view(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("page", own_view),
    path("", include("telemetry.urls")),
]
