"""N+1 remedies: views with each N+1 shape, run through the middleware on PostgreSQL, get the
ORM change that removes the loop, stored with the finding and shown in admin and the report."""

import html
from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from django.template import engines
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import strip_tags
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps_builder.models import App, AppVersion, DataQuery, DataSource, Membership, Organization
from telemetry import api
from telemetry.models import QueryFinding, QueryStat
from telemetry.queries import reports
from telemetry.queries import stats as querystats
from telemetry.queries.sql import analyze
from tests.apps_builder.conftest import apps_for_the_overview

pytestmark = [pytest.mark.django_db(databases=["default", "telemetry"]), pytest.mark.urls(__name__)]


def forward_fk(request):
    return JsonResponse({"apps": [[app.name, app.organization.name] for app in App.objects.order_by("id")]})


def forward_fk_after_a_check(request):
    apps = list(App.objects.order_by("id"))
    Membership.objects.filter(organization=apps[0].organization_id).first()  # one row of another holder model
    return JsonResponse({"apps": [[app.name, app.organization.name] for app in apps]})


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


def nested_prefetch(request):
    return JsonResponse({"organizations": [
        [[query.name for query in app.queries.all()] for app in organization.apps.all()]
        for organization in Organization.objects.order_by("id")]})


def by_id(request):
    ids = list(Organization.objects.values_list("id", flat=True))
    return JsonResponse({"names": [Organization.objects.get(pk=pk).name for pk in ids]})


def twice(request):
    return JsonResponse({"counts": [Organization.objects.filter(slug="org-1").count() for _ in range(2)]})


def written_twice(request):
    return JsonResponse({"updated": [Organization.objects.filter(slug="org-1").update(name="Org") for _ in range(2)]})


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
    path("apps/organizations/after-a-check", forward_fk_after_a_check),
    path("organizations/apps", reverse_fk),
    path("organizations/apps/prefetched", reverse_fk_prefetched),
    path("groups/permissions", many_to_many),
    path("groups/permissions/prefetched", many_to_many_prefetched),
    path("organizations/app-counts", per_item_count),
    path("organizations/app-counts/annotated", per_item_count_annotated),
    path("organizations/has-apps", per_item_exists),
    path("queries/organizations", nested),
    path("organizations/apps/queries", nested_prefetch),
    path("organizations/by-id", by_id),
    path("organizations/twice", twice),
    path("organizations/written-twice", written_twice),
    path("api/apps", AppList.as_view()),
    path("api/apps/selected", AppListSelected.as_view()),
    path("apps/template", template_loop),
    path("apps/template/prefetched", template_loop_prefetched),
    path("admin/", admin.site.urls),
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
    ("/apps/organizations/after-a-check", "select_related", "App", 'select_related("organization")'),
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
    found = {finding.fingerprint.split(" FROM ")[1].split()[0]: finding.remedy["call"]
             for finding in n_plus_ones(client, "/organizations/apps/queries")}
    assert found == {'"apps_builder_app"': 'prefetch_related("apps")',
                     '"apps_builder_dataquery"': 'prefetch_related("apps__queries")'}


def test_a_relation_nothing_identifies_is_said_plainly(client, platform):
    remedy = only_remedy(client, "/organizations/by-id")
    assert remedy["kind"] == "unidentified"
    assert remedy["text"] == ("no remedy named: no statement before the loop reads a model with a foreign key to "
                              "Organization")


def test_a_duplicate_read_is_hoisted_a_duplicate_write_is_not(client, platform):
    client.get("/organizations/twice")
    client.get("/organizations/written-twice")
    api.flush(sample=True)
    remedies = {finding.route: finding.remedy for finding in QueryFinding.objects.using("telemetry")
                .filter(code="duplicate_query", fingerprint__contains="apps_builder_organization")}
    assert remedies["/organizations/twice"]["text"] == "cache or hoist the call out of the loop"
    assert remedies["/organizations/written-twice"] == {}


def page_text(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code == 200
    return " ".join(html.unescape(strip_tags(response.content.decode())).split())


def test_the_report_ranks_an_n_plus_one_by_its_repetitions_and_says_the_fix(client, admin_client, platform):
    client.get("/apps/organizations")
    api.flush(sample=True)
    finding = QueryFinding.objects.using("telemetry").get(code="n_plus_one")
    report = reports.build_optimization_report(hours=1)

    suggestion = report.suggestions.get(code="n_plus_one")
    line = finding.call_site.split(" in ")[0]
    assert line.startswith("tests/telemetry/test_query_remedies.py:")
    headline = (f'6 queries per request on /apps/organizations — add select_related("organization") to the App '
                f"queryset at {line}")
    assert suggestion.evidence["headline"] == headline
    assert suggestion.share_of_db_time == round(finding.occurrences_ms / report.data["total_ms"], 4)
    assert headline in page_text(admin_client, reverse("admin:telemetry_queryreport_change", args=[report.pk]))
    remedy = f'add select_related("organization") to the App queryset at {line}'
    fingerprint_page = page_text(admin_client, reverse("admin:telemetry_querystat_fingerprint",
                                                       args=[finding.fingerprint_id]))
    assert remedy in fingerprint_page and headline in fingerprint_page
    assert remedy in page_text(admin_client, reverse("admin:telemetry_queryfinding_change", args=[finding.pk]))


def test_findings_rate_limited_in_between_are_folded_into_the_next_kept_one(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(querystats, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    statistics = querystats.QueryStatistics()
    analysis = analyze('SELECT "id" FROM "apps_builder_organization" WHERE "id" = %s', [1], "postgresql")
    for seconds, milliseconds in ((0, 10), (20, 20), (40, 30), (61, 40)):
        clock[0] = 1000.0 + seconds
        statistics.finding("n_plus_one", analysis, "default", "/r", "", "", milliseconds / 1000.0, 6)
    statistics.write_pending()
    kept = QueryFinding.objects.using("telemetry").filter(fingerprint_id=analysis.fingerprint_id).order_by("id")
    assert [(finding.occurrences, round(finding.occurrences_ms)) for finding in kept] == [(1, 10), (3, 90)]


def stat(fingerprint_id, max_ms):
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    text = f'SELECT "id" FROM "{fingerprint_id}" WHERE "id" = ?'
    QueryStat.objects.using("telemetry").create(
        fingerprint_id=fingerprint_id, alias="default", hour=hour, fingerprint=text, operation="select",
        tables=fingerprint_id, complexity="low", calls=10, total_ms=max_ms * 2, min_ms=0.5, max_ms=max_ms, rows=10,
        first_seen=hour, last_seen=hour)
    return text


def finding_row(code, fingerprint_id, text):
    QueryFinding.objects.using("telemetry").create(
        code=code, fingerprint_id=fingerprint_id, fingerprint=text, alias="default", route="/r",
        call_site="app/views.py:9 in view", duration_ms=900.0, occurrences_ms=900.0, repetitions=6,
        created_at=timezone.now())


def test_slow_is_a_symptom_on_the_fingerprint_not_advice_beside_the_fix(admin_client, settings):
    settings.TELEMETRY = {**settings.TELEMETRY, "SLOW_QUERY_MS": 500}
    advised, unexplained = stat("advised", 900.0), stat("unexplained", 800.0)
    stat("fast", 1.0)
    finding_row("slow", "advised", advised)
    finding_row("n_plus_one", "advised", advised)
    finding_row("slow", "unexplained", unexplained)

    report = reports.build_optimization_report(hours=1)

    codes = {(item.fingerprint_id, item.code) for item in report.suggestions.filter(source="runtime")}
    assert codes == {("advised", "n_plus_one"), ("unexplained", "slow")}
    response = admin_client.get(reverse("admin:telemetry_querystat_changelist"))
    rows = {row.split('data-fingerprint="')[1].split('"')[0]: row
            for row in response.content.decode().split('<tr class="fingerprint-row"')[1:]}
    assert {key for key, row in rows.items() if 'class="badge slow"' in row} == {"advised", "unexplained"}
    assert ">slow<" in rows["advised"] and "n_plus_one" in rows["advised"]
    assert "n_plus_one, slow" not in rows["advised"]
    page = page_text(admin_client, reverse("admin:telemetry_querystat_fingerprint", args=["advised"]))
    assert ("slow a symptom: runs took up to 900.0 ms (SLOW_QUERY_MS is 500 ms); the suggestions below say what to "
            "change") in page
    assert "slow a symptom: runs took up to 800.0 ms (SLOW_QUERY_MS is 500 ms); no other suggestion explains it yet" \
        in page_text(admin_client, reverse("admin:telemetry_querystat_fingerprint", args=["unexplained"]))
    assert "symptom" not in page_text(admin_client, reverse("admin:telemetry_querystat_fingerprint",
                                                            args=["fast"]))


@pytest.mark.urls("config.urls")
def test_the_platforms_planted_n_plus_one_gets_its_remedies(org, make_member, api_client_for):
    apps_for_the_overview(org)
    client = api_client_for(make_member(org, "viewer"))

    assert client.get(f"/api/organizations/{org.pk}/apps-overview").status_code == 200

    api.flush(sample=True)
    remedies = {finding.fingerprint.split(" FROM ")[1].split()[0]: finding.remedy["text"]
                for finding in QueryFinding.objects.using("telemetry").filter(code="n_plus_one")}
    assert remedies == {
        '"apps_builder_dataquery"': 'add annotate(queries_count=Count("queries")) to the App queryset',
        '"apps_builder_appversion"': 'add annotate(first_appversion=Subquery(AppVersion.objects.filter('
                                     'app=OuterRef("pk")).order_by("-created_at").values("pk")[:1])) to the App '
                                     "queryset",
    }
