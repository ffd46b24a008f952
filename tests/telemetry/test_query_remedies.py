"""N+1 remedies: views with each N+1 shape, run through the middleware on PostgreSQL, get the
ORM change that removes the loop, stored with the finding and shown in admin and the report."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from django.template import engines
from django.urls import path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps_builder.models import App, AppVersion, DataQuery, DataSource, Organization
from telemetry import api
from telemetry.models import QueryFinding

pytestmark = [pytest.mark.django_db(databases=["default", "telemetry"]), pytest.mark.urls(__name__)]


def forward_fk(request):
    return JsonResponse({"apps": [[app.name, app.organization.name] for app in App.objects.order_by("id")]})


def forward_fk_selected(request):
    apps = App.objects.select_related("organization").order_by("id")
    return JsonResponse({"apps": [[app.name, app.organization.name] for app in apps]})


def reverse_fk(request):
    return JsonResponse({"organizations": [[app.slug for app in organization.apps.all()]
                                           for organization in Organization.objects.order_by("id")]})


def reverse_fk_prefetched(request):
    organizations = Organization.objects.prefetch_related("apps").order_by("id")
    return JsonResponse({"organizations": [[app.slug for app in organization.apps.all()]
                                           for organization in organizations]})


def many_to_many(request):
    return JsonResponse({"groups": [[permission.codename for permission in group.permissions.all()]
                                    for group in Group.objects.order_by("id")]})


def many_to_many_prefetched(request):
    groups = Group.objects.prefetch_related("permissions").order_by("id")
    return JsonResponse({"groups": [[permission.codename for permission in group.permissions.all()]
                                    for group in groups]})


def per_item_count(request):
    return JsonResponse({"apps": [organization.apps.count() for organization in Organization.objects.order_by("id")]})


def per_item_count_annotated(request):
    organizations = Organization.objects.annotate(apps_count=Count("apps")).order_by("id")
    return JsonResponse({"apps": [organization.apps_count for organization in organizations]})


def per_item_exists(request):
    return JsonResponse({"apps": [organization.apps.exists() for organization in Organization.objects.order_by("id")]})


def nested(request):
    queries = DataQuery.objects.order_by("id")
    return JsonResponse({"queries": [[query.name, query.app.organization.name] for query in queries]})


class AppSerializer(serializers.ModelSerializer):
    organization_name = serializers.SerializerMethodField()

    class Meta:
        model = App
        fields = ["slug", "organization_name"]

    def get_organization_name(self, app):
        return app.organization.name


class AppList(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    queryset = App.objects.order_by("id")

    def get(self, request):
        return Response(AppSerializer(self.queryset.all(), many=True).data)


class AppListSelected(AppList):
    queryset = App.objects.select_related("organization").order_by("id")


TEMPLATE = "{% for app in apps %}{{ app.slug }}:{% for query in app.queries.all %}{{ query.name }}{% endfor %};" \
           "{% endfor %}"


def template_loop(request):
    template = engines["django"].from_string(TEMPLATE)
    return HttpResponse(template.render({"apps": App.objects.order_by("id")}))


def template_loop_prefetched(request):
    template = engines["django"].from_string(TEMPLATE)
    return HttpResponse(template.render({"apps": App.objects.prefetch_related("queries").order_by("id")}))


urlpatterns = [
    path("apps/organizations", forward_fk),
    path("apps/organizations/selected", forward_fk_selected),
    path("organizations/apps", reverse_fk),
    path("organizations/apps/prefetched", reverse_fk_prefetched),
    path("groups/permissions", many_to_many),
    path("groups/permissions/prefetched", many_to_many_prefetched),
    path("organizations/app-counts", per_item_count),
    path("organizations/app-counts/annotated", per_item_count_annotated),
    path("organizations/has-apps", per_item_exists),
    path("queries/organizations", nested),
    path("api/apps", AppList.as_view()),
    path("api/apps/selected", AppListSelected.as_view()),
    path("apps/template", template_loop),
    path("apps/template/prefetched", template_loop_prefetched),
]


@pytest.fixture
def platform():
    """Six organizations, each with one app (with a version and a data query); six groups
    with three permissions each."""
    for number in range(6):
        organization = Organization.objects.create(name=f"Org {number}", slug=f"org-{number}")
        source = DataSource.objects.create(organization=organization, kind="sqlite", name="Sample")
        app = App.objects.create(organization=organization, name=f"App {number}", slug=f"app-{number}")
        AppVersion.objects.create(app=app, name="v1")
        DataQuery.objects.create(app=app, data_source=source, name=f"q{number}", options={})
    permissions = list(Permission.objects.order_by("id")[:3])
    for number in range(6):
        Group.objects.create(name=f"g{number}").permissions.set(permissions)
    QueryFinding.objects.using("telemetry").all().delete()


def n_plus_ones(client, url):
    assert client.get(url).status_code == 200
    api.flush(sample=True)
    return list(QueryFinding.objects.using("telemetry").filter(code="n_plus_one", route=url))


def only_remedy(client, url):
    [finding] = n_plus_ones(client, url)
    assert finding.repetitions == 6
    return finding.remedy


@pytest.mark.parametrize(("url", "kind", "queryset", "call"), [
    ("/apps/organizations", "select_related", "App", 'select_related("organization")'),
    ("/organizations/apps", "prefetch_related", "Organization", 'prefetch_related("apps")'),
    ("/groups/permissions", "prefetch_related", "Group", 'prefetch_related("permissions")'),
    ("/organizations/app-counts", "annotate", "Organization", 'annotate(apps_count=Count("apps"))'),
    ("/organizations/has-apps", "annotate", "Organization",
     'annotate(has_apps=Exists(App.objects.filter(organization=OuterRef("pk"))))'),
    ("/api/apps", "select_related", "App", 'select_related("organization")'),
    ("/apps/template", "prefetch_related", "App", 'prefetch_related("queries")'),
])
def test_each_n_plus_one_shape_gets_its_remedy(client, platform, url, kind, queryset, call):
    remedy = only_remedy(client, url)
    assert (remedy["kind"], remedy["queryset"], remedy["call"]) == (kind, queryset, call)
    assert remedy["text"] == f"add {call} to the {queryset} queryset"


@pytest.mark.parametrize("url", [
    "/apps/organizations/selected", "/organizations/apps/prefetched", "/groups/permissions/prefetched",
    "/organizations/app-counts/annotated", "/api/apps/selected", "/apps/template/prefetched",
])
def test_the_look_alike_that_already_fetches_the_relation_gets_none(client, platform, url):
    assert n_plus_ones(client, url) == []


def test_a_loop_in_a_loop_is_one_path_on_the_outer_queryset(client, platform):
    found = {finding.fingerprint.split(" FROM ")[1].split()[0]: finding.remedy
             for finding in n_plus_ones(client, "/queries/organizations")}
    assert found['"apps_builder_app"']["call"] == 'select_related("app")'
    assert found['"apps_builder_organization"']["call"] == 'select_related("app__organization")'
    assert {remedy["queryset"] for remedy in found.values()} == {"DataQuery"}
