"""App bundles: an app with its versions and data queries as one JSON document, what an
export produces and an import takes.

A bundle names each query's data source by name and kind only: data sources, their
options and secrets never travel, and query options lose the entries that look like
credentials (``credentials.without_credentials``). An import recreates the app in the
caller's organization, matching each query to that organization's data source of the same
name and kind, else its first of the kind; nothing in a bundle (ids, slugs, organization)
can point at another organization's objects.

Format (``format_version`` 1)::

    {"format": "tooljet-app-bundle", "format_version": 1, "exported_at": "<ISO 8601>",
     "app": {"name": ..., "slug": ..., "definition": {"pages": [...]}},
     "versions": [{"name": ..., "definition": {...}, "released": bool}, ...],
     "data_queries": [{"name": ..., "options": {...}, "run_on_page_load": bool,
                       "data_source": {"name": ..., "kind": ...}}, ...]}
"""

import json

from django.db import transaction
from django.utils import timezone
from rest_framework import serializers

from . import credentials
from .models import App, AppVersion, DataQuery, DataSource

FORMAT = "tooljet-app-bundle"
FORMAT_VERSION = 1
#: The largest bundle an import takes, as compact JSON.
MAX_BUNDLE_BYTES = 1_000_000
MAX_VERSIONS = 100
MAX_QUERIES = 200


class BundleRejected(Exception):
    """The bundle cannot be installed in this organization (a data source kind it lacks);
    the message is safe to show the caller."""


def build(app: App) -> dict:
    """The bundle of ``app``: its definition, versions (oldest first) and queries."""
    queries = app.queries.select_related("data_source").order_by("name")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "app": {"name": app.name, "slug": app.slug, "definition": app.definition},
        "versions": [
            {"name": version.name, "definition": version.definition,
             "released": version.pk == app.released_version_id}
            for version in app.versions.order_by("created_at", "id")
        ],
        "data_queries": [
            {"name": query.name, "options": credentials.without_credentials(query.options),
             "run_on_page_load": query.run_on_page_load,
             "data_source": {"name": query.data_source.name, "kind": query.data_source.kind}}
            for query in queries
        ],
    }


def bundle_size(bundle) -> int:
    """Bytes of ``bundle`` as compact JSON, what ``MAX_BUNDLE_BYTES`` bounds."""
    return len(json.dumps(bundle, separators=(",", ":")).encode())


def validate_definition(definition):
    if not isinstance(definition, dict) or not isinstance(definition.get("pages", []), list):
        raise serializers.ValidationError("A definition must be an object with a list of pages.")
    return definition


class BundleAppSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.CharField(max_length=100, required=False)
    definition = serializers.JSONField(validators=[validate_definition])


class BundleVersionSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    definition = serializers.JSONField(validators=[validate_definition])
    released = serializers.BooleanField(default=False)


class BundleDataSourceSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.CharField(max_length=32)


class BundleQuerySerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    options = serializers.DictField()
    run_on_page_load = serializers.BooleanField(default=False)
    data_source = BundleDataSourceSerializer()


class BundleSerializer(serializers.Serializer):
    """The schema of a bundle, checked when an import is requested (a 400 naming the
    field); unknown keys are ignored."""

    format = serializers.ChoiceField(choices=[FORMAT])
    format_version = serializers.IntegerField()
    app = BundleAppSerializer()
    versions = BundleVersionSerializer(many=True, max_length=MAX_VERSIONS)
    data_queries = BundleQuerySerializer(many=True, max_length=MAX_QUERIES)

    def validate_format_version(self, value):
        if value != FORMAT_VERSION:
            raise serializers.ValidationError(f"Only version {FORMAT_VERSION} bundles can be imported.")
        return value

    def validate(self, attrs):
        for field, items in (("versions", attrs["versions"]), ("data_queries", attrs["data_queries"])):
            names = [item["name"] for item in items]
            if len(set(names)) != len(names):
                raise serializers.ValidationError({field: ["Names must be unique."]})
        if sum(version["released"] for version in attrs["versions"]) > 1:
            raise serializers.ValidationError({"versions": ["At most one version can be released."]})
        return attrs


def _data_sources_for(queries, organization_id):
    """``{(name, kind): DataSource}`` of the organization for the queries' references;
    raises ``BundleRejected`` naming a kind the organization has no data source of."""
    available = list(DataSource.objects.filter(organization_id=organization_id).order_by("id"))
    chosen = {}
    for query in queries:
        reference = query["data_source"]
        key = (reference["name"], reference["kind"])
        if key in chosen:
            continue
        same_kind = [source for source in available if source.kind == reference["kind"]]
        if not same_kind:
            raise BundleRejected(f"The organization has no data source of kind {reference['kind']!r}.")
        chosen[key] = next((source for source in same_kind if source.name == reference["name"]), same_kind[0])
    return chosen


@transaction.atomic
def install(bundle: dict, organization_id: int, name: str, slug: str, user_id: int | None) -> App:
    """A new app in the organization from a bundle that ``BundleSerializer`` accepted."""
    sources = _data_sources_for(bundle["data_queries"], organization_id)
    app = App.objects.create(organization_id=organization_id, name=name, slug=slug,
                             definition=bundle["app"]["definition"], created_by_id=user_id)
    released = None
    for spec in bundle["versions"]:
        version = AppVersion.objects.create(app=app, name=spec["name"], definition=spec["definition"])
        if spec["released"]:
            released = version
    if released is not None:
        released.release()
    DataQuery.objects.bulk_create([
        DataQuery(app=app, name=spec["name"], options=spec["options"], run_on_page_load=spec["run_on_page_load"],
                  data_source=sources[(spec["data_source"]["name"], spec["data_source"]["kind"])])
        for spec in bundle["data_queries"]
    ])
    return app
