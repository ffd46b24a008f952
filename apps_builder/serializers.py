from django.utils.text import slugify
from rest_framework import serializers

from . import credentials
from .models import (
    App,
    AppTemplate,
    AppVersion,
    AuditEvent,
    BackgroundTask,
    DataQuery,
    DataSource,
    Invitation,
    Membership,
    Organization,
    QuerySchedule,
    Role,
    ScheduledRun,
)
from .permissions import organization_ids

DATA_SOURCE_KINDS = ("postgresql", "mysql", "restapi", "redis", "sqlite")


class CallerOrganizationsMixin:
    """A related field that sees only objects of the caller's organizations, reached from
    the model by ``organization_path``: another organization's id or slug gets exactly the
    error of one that does not exist."""

    def __init__(self, *, organization_path: str, **kwargs):
        self.organization_path = organization_path
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        if request is None:
            return super().get_queryset().none()
        return super().get_queryset().filter(**{f"{self.organization_path}__in": organization_ids(request.user)})


class CallerPrimaryKeyRelatedField(CallerOrganizationsMixin, serializers.PrimaryKeyRelatedField):
    pass


class CallerSlugRelatedField(CallerOrganizationsMixin, serializers.SlugRelatedField):
    pass


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "role", "created_at"]

    def get_role(self, organization) -> str | None:
        return self.context.get("roles", {}).get(organization.id)


class MembershipSerializer(serializers.ModelSerializer):
    """Members are listed and their role changed here; people join through invitations."""

    username = serializers.CharField(source="user.username", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = ["created_at"]


class InvitationSerializer(serializers.ModelSerializer):
    """An invitation names its invitee by ``username`` or ``email`` (or both: either then
    matches). ``token`` is in the creation's response only: the invitee accepts with it."""

    role = serializers.ChoiceField(choices=Role.choices)
    token = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = ["id", "username", "email", "role", "token", "created_at", "expires_at"]
        read_only_fields = ["created_at", "expires_at"]

    def get_token(self, invitation) -> str | None:
        return getattr(invitation, "token", None)

    def validate(self, attrs):
        if not attrs.get("username") and not attrs.get("email"):
            raise serializers.ValidationError({"username": ["Name the invitee by username or email."]})
        return attrs


class AcceptInvitationSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=64)


class AppSerializer(serializers.ModelSerializer):
    organization = CallerPrimaryKeyRelatedField(queryset=Organization.objects.all(), organization_path="pk")
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
        moved = "organization" in attrs and attrs["organization"] != getattr(self.instance, "organization", None)
        if self.instance is not None and moved:
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
    """``options`` are readable by every member; entries that look like credentials
    (``apps_builder.credentials``) are refused there (use ``secrets``) and never returned."""

    organization = CallerPrimaryKeyRelatedField(queryset=Organization.objects.all(), organization_path="pk")
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
        found = credentials.credential_paths(options)
        if found:
            raise serializers.ValidationError(
                f"{', '.join(found)}: credentials are not allowed in options (readable by every "
                "member); send them in secrets, which are write-only.")
        return options

    def to_representation(self, data_source):
        representation = super().to_representation(data_source)
        representation["options"] = credentials.without_credentials(representation["options"])
        return representation

    def validate(self, attrs):
        if self.instance is not None:
            if "organization" in attrs and attrs["organization"] != self.instance.organization:
                raise serializers.ValidationError(
                    {"organization": "A data source cannot move to another organization."})
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
    app = CallerSlugRelatedField(slug_field="slug", queryset=App.objects.all(), organization_path="organization_id")
    data_source = CallerPrimaryKeyRelatedField(queryset=DataSource.objects.all(), organization_path="organization_id")

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


class BackgroundTaskSerializer(serializers.ModelSerializer):
    """An export or import: ``result`` is the bundle of an export and ``{"app": <slug>}``
    of an import once ``status`` is ``succeeded``; ``error`` says why it ``failed``."""

    app = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = BackgroundTask
        fields = ["id", "kind", "status", "app", "result", "error", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class AppImportSerializer(serializers.Serializer):
    """An import: the bundle (``apps_builder.bundles``), the organization it lands in
    (one of the caller's) and the new app's name and slug (the bundle's name and a free
    slug by default)."""

    organization = serializers.IntegerField()
    bundle = serializers.JSONField(help_text="An app bundle, as an export's result holds it.")
    name = serializers.CharField(max_length=200, required=False)
    slug = serializers.SlugField(max_length=100, required=False)


class QueryScheduleSerializer(serializers.ModelSerializer):
    """A data query of the caller's organizations run every ``interval_seconds`` (at
    least ``QuerySchedule.MIN_INTERVAL_SECONDS``) with ``parameters``."""

    data_query = CallerPrimaryKeyRelatedField(queryset=DataQuery.objects.all(),
                                              organization_path="app__organization_id")
    interval_seconds = serializers.IntegerField(min_value=QuerySchedule.MIN_INTERVAL_SECONDS,
                                                max_value=QuerySchedule.MAX_INTERVAL_SECONDS)
    parameters = serializers.DictField(required=False, default=dict)

    class Meta:
        model = QuerySchedule
        fields = ["id", "organization", "data_query", "interval_seconds", "parameters", "created_at", "next_run_at",
                  "last_run_at"]
        read_only_fields = ["organization", "created_at", "next_run_at", "last_run_at"]


class ScheduledRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScheduledRun
        fields = ["id", "status", "started_at", "duration_ms", "row_count", "result_bytes", "error_code",
                  "error_message", "trace_id"]
