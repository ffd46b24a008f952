from django.contrib.auth import get_user_model
from django.utils.text import slugify
from rest_framework import serializers

from .models import App, AppTemplate, AppVersion, AuditEvent, DataQuery, DataSource, Membership, Organization, Role

DATA_SOURCE_KINDS = ("postgresql", "mysql", "restapi", "redis", "sqlite")


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "role", "created_at"]

    def get_role(self, organization) -> str | None:
        return self.context.get("roles", {}).get(organization.id)


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.SlugRelatedField(
        source="user", slug_field="username", queryset=get_user_model().objects.all()
    )
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = ["created_at"]


class AppSerializer(serializers.ModelSerializer):
    organization = serializers.PrimaryKeyRelatedField(queryset=Organization.objects.all())
    slug = serializers.SlugField(required=False, max_length=100)
    released_version = serializers.CharField(source="released_version.name", read_only=True, default=None)

    class Meta:
        model = App
        fields = ["id", "organization", "name", "slug", "definition", "released_version", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate_definition(self, definition):
        if not isinstance(definition, dict):
            raise serializers.ValidationError("The definition must be an object with a list of pages.")
        pages = definition.get("pages", [])
        if not isinstance(pages, list):
            raise serializers.ValidationError("pages must be a list.")
        return definition

    def validate(self, attrs):
        if self.instance is not None and "organization" in attrs and attrs["organization"] != self.instance.organization:
            raise serializers.ValidationError({"organization": "An app cannot move to another organization."})
        if self.instance is None and not attrs.get("slug"):
            attrs["slug"] = unique_slug(attrs.get("name", ""))
        return attrs


def unique_slug(name):
    base = slugify(name)[:80] or "app"
    slug, number = base, 1
    while App.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    return slug


class AppVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = AppVersion
        fields = ["id", "name", "definition", "created_at", "released_at"]
        read_only_fields = ["definition", "created_at", "released_at"]


class DataSourceSerializer(serializers.ModelSerializer):
    organization = serializers.PrimaryKeyRelatedField(queryset=Organization.objects.all())
    kind = serializers.ChoiceField(choices=DATA_SOURCE_KINDS)
    #: Write-only: never returned. Responses say which secret keys are set.
    secrets = serializers.DictField(write_only=True, required=False)
    secret_keys = serializers.SerializerMethodField()

    class Meta:
        model = DataSource
        fields = ["id", "organization", "kind", "name", "options", "secrets", "secret_keys", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_secret_keys(self, data_source) -> list[str]:
        return sorted(data_source.secrets)

    def validate_options(self, options):
        if not isinstance(options, dict):
            raise serializers.ValidationError("options must be an object.")
        return options

    def validate(self, attrs):
        if self.instance is not None:
            if "organization" in attrs and attrs["organization"] != self.instance.organization:
                raise serializers.ValidationError({"organization": "A data source cannot move to another organization."})
            if "kind" in attrs and attrs["kind"] != self.instance.kind:
                raise serializers.ValidationError({"kind": "The kind of a data source cannot change."})
        return attrs

    def update(self, instance, validated_data):
        secrets = validated_data.pop("secrets", None)
        if secrets is not None:
            # Secrets are merged: a key sent with null is removed, others are kept.
            merged = {**instance.secrets, **secrets}
            instance.secrets = {key: value for key, value in merged.items() if value is not None}
        return super().update(instance, validated_data)


class DataQuerySerializer(serializers.ModelSerializer):
    app = serializers.SlugRelatedField(slug_field="slug", queryset=App.objects.all())
    data_source = serializers.PrimaryKeyRelatedField(queryset=DataSource.objects.all())

    class Meta:
        model = DataQuery
        fields = ["id", "app", "data_source", "name", "options", "run_on_page_load", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs):
        app = attrs.get("app", getattr(self.instance, "app", None))
        data_source = attrs.get("data_source", getattr(self.instance, "data_source", None))
        if self.instance is not None and "app" in attrs and attrs["app"] != self.instance.app:
            raise serializers.ValidationError({"app": "A query cannot move to another app."})
        if app is not None and data_source is not None and data_source.organization_id != app.organization_id:
            raise serializers.ValidationError({"data_source": "The data source must belong to the app's organization."})
        if not isinstance(attrs.get("options", {}), dict):
            raise serializers.ValidationError({"options": "options must be an object."})
        return attrs


class AppTemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = AppTemplate
        fields = ["id", "name", "slug", "description", "definition", "queries"]


class RunSerializer(serializers.Serializer):
    parameters = serializers.DictField(required=False, default=dict)


class ReleaseSerializer(serializers.Serializer):
    version = serializers.CharField(help_text="The version's name or id.")


class FromTemplateSerializer(serializers.Serializer):
    template = serializers.CharField(help_text="The template's slug or id.")
    organization = serializers.IntegerField()
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(required=False, max_length=100)


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(write_only=True)


class AuditEventSerializer(serializers.ModelSerializer):
    app = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "action", "subject", "app", "actor", "created_at"]


class ActivityQuerySerializer(serializers.Serializer):
    subject = serializers.CharField(max_length=128)


class AppOverviewSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    query_count = serializers.IntegerField()
    latest_version = serializers.CharField(allow_null=True)
