"""The builder and viewer API. Every queryset is scoped to the caller's organizations
(another organization's objects are a 404); roles are checked per action (403)."""

from django.contrib.auth import authenticate, login, logout
from django.db import transaction
from django.db.models import ProtectedError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view, authentication_classes, permission_classes
from rest_framework.exceptions import APIException, NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

import plugins
from telemetry import api as telemetry

from . import bundles, services, tasks, tokens
from .models import (
    ApiToken,
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
)
from .permissions import EDIT, MANAGE, READ, memberships_of, organization_ids, require_role
from .serializers import (
    AcceptInvitationSerializer,
    ActivityQuerySerializer,
    AppImportSerializer,
    AppOverviewSerializer,
    AppSerializer,
    AppTemplateSerializer,
    AppVersionSerializer,
    AuditEventSerializer,
    BackgroundTaskSerializer,
    DataQuerySerializer,
    DataSourceSerializer,
    FromTemplateSerializer,
    InvitationSerializer,
    LoginSerializer,
    MembershipSerializer,
    OrganizationSerializer,
    QueryScheduleSerializer,
    ReleaseSerializer,
    RunSerializer,
    ScheduledRunSerializer,
    unique_slug,
)
from .validation import parse_id


def tag_request(request, organization_id=None, app_operation=None):
    """Tells telemetry which organization and app operation this request is about."""
    django_request = getattr(request, "_request", request)
    if organization_id is not None:
        django_request.organization_id = organization_id
    if app_operation is not None:
        django_request.app_operation = app_operation


def audit(request, app, action_name):
    """One activity-feed entry about an app, by the caller."""
    AuditEvent.objects.create(organization_id=app.organization_id, app=app, actor=request.user,
                              action=action_name, subject=f"app:{app.slug}")


class ScopedViewSet(viewsets.GenericViewSet):
    """Objects of the caller's organizations only; ``organization_path`` is the lookup
    from the model to its organization id. Actions need ``READ`` unless listed in
    ``edit_actions`` (``EDIT``) or ``manage_actions`` (``MANAGE``)."""

    organization_path = "organization_id"
    edit_actions = ("create", "update", "partial_update", "destroy")
    manage_actions = ()
    operations = {}

    def get_queryset(self):
        return self.queryset.filter(**{f"{self.organization_path}__in": organization_ids(self.request.user)})

    def required_role(self):
        if self.action in self.manage_actions:
            return MANAGE
        if self.action in self.edit_actions:
            return EDIT
        return READ

    def object_organization(self, obj):
        value = obj
        for part in self.organization_path.split("__"):
            value = getattr(value, part)
        return value

    def get_object(self):
        obj = super().get_object()
        organization_id = self.object_organization(obj)
        tag_request(self.request, organization_id, self.operations.get(self.action))
        require_role(self.request.user, organization_id, self.required_role())
        return obj

    def check_create(self, organization):
        """For creations: the organization must be the caller's (400 otherwise, as with
        any unknown id) and the caller needs the role."""
        if organization.pk not in memberships_of(self.request.user):
            raise serializers.ValidationError({"organization": ["Unknown organization."]})
        tag_request(self.request, organization.pk, self.operations.get("create"))
        require_role(self.request.user, organization.pk, self.required_role())


class OrganizationViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = OrganizationSerializer
    queryset = Organization.objects.all()

    def get_queryset(self):
        return self.queryset.filter(pk__in=organization_ids(self.request.user))

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "roles": memberships_of(self.request.user)}

    ACTIVITY_LIMIT = 50

    def get_object(self):
        organization = super().get_object()
        tag_request(self.request, organization.pk)
        return organization

    @extend_schema(
        parameters=[OpenApiParameter("subject", str, required=True,
                                     description="What the events are about, e.g. `app:acme-sales`.")],
        responses={200: AuditEventSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def activity(self, request, pk=None):
        """The organization's latest audit events about one subject, newest first (at most 50).

        ``subject`` has no index (see ``AuditEvent``): on the demo's large table this is the
        planted missing index that the slow-query plans and index advice find."""
        organization = self.get_object()
        query = ActivityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        events = (AuditEvent.objects.filter(organization=organization, subject=query.validated_data["subject"])
                  .select_related("app", "actor").order_by("-created_at")[:self.ACTIVITY_LIMIT])
        return Response(AuditEventSerializer(events, many=True).data)

    @extend_schema(responses={200: AppOverviewSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="apps-overview", pagination_class=None)
    def apps_overview(self, request, pk=None):
        """The organization's apps with their number of queries and latest version.

        Written the naive way ON PURPOSE: two statements per app (the planted N+1 that the
        demo's ``n_plus_one`` detector reports). The fix is one statement::

            App.objects.filter(organization=organization).annotate(
                query_count=Count("queries", distinct=True),
                latest_version=Subquery(AppVersion.objects.filter(app=OuterRef("pk"))
                                        .order_by("-created_at").values("name")[:1]),
            )
        """
        organization = self.get_object()
        overview = []
        for app in App.objects.filter(organization=organization).order_by("name"):
            # Intentionally naive (N+1): one COUNT and one version lookup per app.
            latest = AppVersion.objects.filter(app=app).order_by("-created_at").first()
            overview.append({"slug": app.slug, "name": app.name,
                             "query_count": DataQuery.objects.filter(app=app).count(),
                             "latest_version": latest.name if latest else None})
        return Response(AppOverviewSerializer(overview, many=True).data)


class OrganizationScopedMixin:
    """Views under ``organizations/<organization_pk>/``: the organization must be one of
    the caller's (the same 404 as an unknown id otherwise); ``read_actions`` need
    ``READ``, every other action ``MANAGE``."""

    read_actions = ("list", "retrieve")

    def organization(self):
        organization = get_object_or_404(Organization, pk=self.kwargs["organization_pk"],
                                         pk__in=organization_ids(self.request.user))
        tag_request(self.request, organization.pk)
        require_role(self.request.user, organization.pk, READ if self.action in self.read_actions else MANAGE)
        return organization


class MemberViewSet(OrganizationScopedMixin, mixins.ListModelMixin, mixins.UpdateModelMixin,
                    mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Members of one organization: listed by its members, their roles changed and
    removed by its admins. Nobody is added here: people join by accepting an invitation."""

    serializer_class = MembershipSerializer

    def get_queryset(self):
        return Membership.objects.filter(organization=self.organization()).select_related("user").order_by("id")

    def perform_update(self, serializer):
        # Compared as text, never looked up: the answer must not tell which usernames exist.
        if "username" in self.request.data and self.request.data["username"] != serializer.instance.user.username:
            raise serializers.ValidationError({"username": ["A membership cannot change user."]})
        serializer.save()


class InvitationViewSet(OrganizationScopedMixin, mixins.ListModelMixin, mixins.CreateModelMixin,
                        mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Pending invitations of one organization, for its admins: invite (the response
    carries the token, once), list, revoke. Inviting looks no user up."""

    serializer_class = InvitationSerializer
    read_actions = ()

    def get_queryset(self):
        return Invitation.objects.filter(organization=self.organization(), accepted_at__isnull=True).order_by("id")

    def perform_create(self, serializer):
        key = tokens.generate_key()
        invitation = serializer.save(organization=self.organization(), created_by=self.request.user,
                                     digest=tokens.digest_of(key))
        invitation.token = key
        telemetry.track_feature("members", "invite", invitation.organization_id)


NO_SUCH_INVITATION = "No such invitation."


@extend_schema(request=AcceptInvitationSerializer, responses={200: OrganizationSerializer})
@api_view(["POST"])
def accept_invitation_view(request):
    """The signed-in invitee joins the organization with the invitation's role. An unknown
    token, one addressed to someone else or already used, and a staff or superuser caller
    all get the same 404; an expired invitation addressed to the caller is a 400."""
    serializer = AcceptInvitationSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    user = request.user
    invitation = (Invitation.objects.select_related("organization")
                  .filter(digest=tokens.digest_of(serializer.validated_data["token"]), accepted_at__isnull=True)
                  .first())
    if invitation is None or not invitation.is_addressed_to(user) or user.is_staff or user.is_superuser:
        raise NotFound(NO_SUCH_INVITATION)
    now = timezone.now()
    if invitation.expires_at <= now:
        raise serializers.ValidationError({"token": ["This invitation has expired."]})
    with transaction.atomic():
        # Claimed by one conditional update, so a token accepted twice at once joins once.
        if not Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(accepted_at=now):
            raise NotFound(NO_SUCH_INVITATION)
        Membership.objects.get_or_create(user=user, organization=invitation.organization,
                                         defaults={"role": invitation.role})
    tag_request(request, invitation.organization_id)
    telemetry.track_feature("members", "accept_invitation", invitation.organization_id)
    user._organization_roles = None  # the per-request role cache predates the new membership
    return Response(OrganizationSerializer(invitation.organization,
                                           context={"roles": memberships_of(user)}).data)


class AppViewSet(ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                 mixins.UpdateModelMixin, mixins.DestroyModelMixin):
    serializer_class = AppSerializer
    queryset = App.objects.select_related("released_version").order_by("name")
    lookup_field = "slug"
    edit_actions = ("create", "update", "partial_update", "destroy", "versions_create", "release", "from_template",
                    "export", "import_bundle")
    operations = {"retrieve": "app_open", "create": "app_create", "update": "app_update",
                  "partial_update": "app_update", "destroy": "app_delete", "view": "app_view",
                  "versions": "version_list", "versions_create": "version_create", "release": "app_release",
                  "from_template": "app_create", "export": "app_export", "import_bundle": "app_import"}

    def get_queryset(self):
        queryset = super().get_queryset()
        organization = self.request.query_params.get("organization")
        if self.action == "list" and organization:
            organization_id = parse_id(organization)
            queryset = queryset.filter(organization_id=organization_id) if organization_id else queryset.none()
        return queryset

    def perform_create(self, serializer):
        self.check_create(serializer.validated_data["organization"])
        app = serializer.save(created_by=self.request.user)
        audit(self.request, app, "app.create")
        telemetry.track_feature("app_builder", "create_app", app.organization_id)

    def perform_update(self, serializer):
        app = serializer.save()
        action_name = "edit_definition" if "definition" in serializer.validated_data else "update_app"
        audit(self.request, app, "app.update")
        telemetry.track_feature("app_builder", action_name, app.organization_id)

    def perform_destroy(self, instance):
        telemetry.track_feature("app_builder", "delete_app", instance.organization_id)
        instance.delete()

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["get"])
    def view(self, request, slug=None):
        """Viewer load: the released definition and the results of its on-load queries."""
        app = self.get_object()
        if app.released_version is None:
            return Response({"detail": "This app has no released version yet."}, status=status.HTTP_404_NOT_FOUND)
        environment = request.query_params.get("environment", "production")
        if environment not in ("development", "staging", "production"):
            return Response({"environment": ["Unknown environment."]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(services.load_for_viewer(app, environment=environment))

    @extend_schema(request=AppVersionSerializer, responses={200: AppVersionSerializer(many=True)})
    @action(detail=True, methods=["get", "post"])
    def versions(self, request, slug=None):
        if request.method == "POST":
            self.action = "versions_create"
        app = self.get_object()
        if request.method == "GET":
            return Response(AppVersionSerializer(app.versions.all(), many=True).data)
        serializer = AppVersionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        name = serializer.validated_data["name"]
        if app.versions.filter(name=name).exists():
            return Response({"name": ["A version with this name exists."]}, status=status.HTTP_400_BAD_REQUEST)
        version = services.create_version(app, name)
        telemetry.track_feature("app_builder", "create_version", app.organization_id)
        return Response(AppVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReleaseSerializer, responses={200: AppVersionSerializer})
    @action(detail=True, methods=["post"])
    def release(self, request, slug=None):
        app = self.get_object()
        serializer = ReleaseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reference = serializer.validated_data["version"]
        versions = app.versions.all()
        version = versions.filter(name=reference).first()
        version_id = parse_id(reference)
        if version is None and version_id is not None:
            version = versions.filter(pk=version_id).first()
        if version is None:
            return Response({"version": ["No such version of this app."]}, status=status.HTTP_400_BAD_REQUEST)
        services.release(version)
        audit(request, app, "app.release")
        return Response(AppVersionSerializer(version).data)

    @extend_schema(request=FromTemplateSerializer, responses={201: AppSerializer})
    @action(detail=False, methods=["post"], url_path="from-template")
    def from_template(self, request):
        serializer = FromTemplateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        organization = Organization.objects.filter(pk=data["organization"]).first()
        if organization is None:
            raise serializers.ValidationError({"organization": ["Unknown organization."]})
        self.check_create(organization)
        reference = data["template"]
        template_id = parse_id(reference)
        template = AppTemplate.objects.filter(slug=reference).first() or (
            AppTemplate.objects.filter(pk=template_id).first() if template_id is not None else None)
        if template is None:
            raise serializers.ValidationError({"template": ["Unknown template."]})
        slug = data.get("slug")
        if slug and App.objects.filter(slug=slug).exists():
            raise serializers.ValidationError({"slug": ["An app with this slug exists."]})
        try:
            app = services.create_from_template(template, organization, data["name"], slug or unique_slug(data["name"]),
                                                request.user)
        except LookupError as missing:
            raise serializers.ValidationError(
                {"template": [f"The organization has no data source of kind {missing.args[0]!r}."]}) from None
        return Response(AppSerializer(app).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: BackgroundTaskSerializer, 503: BackgroundTaskSerializer})
    @action(detail=True, methods=["post"])
    def export(self, request, slug=None):
        """Enqueues an export of the app (builders): the answer is the task, whose result
        (``GET /api/tasks/<id>``) is the app's bundle with its versions and queries."""
        app = self.get_object()
        background_task = BackgroundTask.objects.create(organization_id=app.organization_id, app=app,
                                                        kind=BackgroundTask.Kind.EXPORT, created_by=request.user)
        telemetry.track_feature("app_builder", "export_app", app.organization_id)
        return enqueued(tasks.export_app, background_task)

    @extend_schema(request=AppImportSerializer,
                   responses={202: BackgroundTaskSerializer, 503: BackgroundTaskSerializer})
    @action(detail=False, methods=["post"], url_path="import")
    def import_bundle(self, request):
        """Enqueues an import of a bundle as a new app of one of the caller's organizations
        (builders). The bundle is checked here (size, schema, format version: a 4xx naming
        the problem); the task's result names the new app's slug."""
        serializer = AppImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        organization = Organization.objects.filter(pk=data["organization"]).first()
        if organization is None:
            raise serializers.ValidationError({"organization": ["Unknown organization."]})
        self.check_create(organization)
        if bundles.bundle_size(data["bundle"]) > bundles.MAX_BUNDLE_BYTES:
            raise BundleTooLarge()
        bundle = bundles.BundleSerializer(data=data["bundle"])
        if not bundle.is_valid():
            raise serializers.ValidationError({"bundle": bundle.errors})
        slug = data.get("slug")
        if slug and App.objects.filter(slug=slug).exists():
            raise serializers.ValidationError({"slug": ["An app with this slug exists."]})
        background_task = BackgroundTask.objects.create(
            organization=organization, kind=BackgroundTask.Kind.IMPORT, created_by=request.user,
            payload={"bundle": bundle.validated_data, "name": data.get("name") or bundle.validated_data["app"]["name"],
                     "slug": slug})
        telemetry.track_feature("app_builder", "import_app", organization.pk)
        return enqueued(tasks.import_app, background_task)


class BundleTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"A bundle may hold at most {bundles.MAX_BUNDLE_BYTES:,} bytes of JSON."
    default_code = "bundle_too_large"


def enqueued(task, background_task):
    """Publishes ``task`` for the background task: 202 with the task, or 503 with the
    task marked failed when the broker refused it."""
    tasks.enqueue(task, background_task)
    failed = background_task.status == BackgroundTask.Status.FAILED
    return Response(BackgroundTaskSerializer(background_task).data,
                    status=status.HTTP_503_SERVICE_UNAVAILABLE if failed else status.HTTP_202_ACCEPTED)


class BackgroundTaskViewSet(ScopedViewSet, mixins.RetrieveModelMixin):
    """An export's or import's status, result or failure, for builders of its organization."""

    serializer_class = BackgroundTaskSerializer
    queryset = BackgroundTask.objects.select_related("app")
    lookup_value_regex = "[0-9a-fA-F-]{36}"
    edit_actions = ("retrieve",)


class QueryScheduleViewSet(ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                           mixins.DestroyModelMixin):
    """Data queries run on an interval by the worker: members list them and read their
    latest runs; builders create and delete them. ``?data_query=<id>`` filters the list."""

    serializer_class = QueryScheduleSerializer
    queryset = QuerySchedule.objects.order_by("id")
    edit_actions = ("create", "destroy")

    def get_queryset(self):
        queryset = super().get_queryset()
        data_query = self.request.query_params.get("data_query")
        if self.action == "list" and data_query:
            data_query_id = parse_id(data_query)
            queryset = queryset.filter(data_query_id=data_query_id) if data_query_id else queryset.none()
        return queryset

    def perform_create(self, serializer):
        organization = serializer.validated_data["data_query"].app.organization
        self.check_create(organization)
        if QuerySchedule.objects.filter(organization=organization).count() >= QuerySchedule.MAX_PER_ORGANIZATION:
            raise serializers.ValidationError(
                {"detail": f"An organization has at most {QuerySchedule.MAX_PER_ORGANIZATION} schedules."})
        serializer.save(organization=organization, created_by=self.request.user)
        telemetry.track_feature("app_builder", "schedule_query", organization.pk)

    @extend_schema(responses={200: ScheduledRunSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def runs(self, request, pk=None):
        """The schedule's latest runs, newest first (at most ``ScheduledRun.MAX_PER_SCHEDULE``)."""
        schedule = self.get_object()
        return Response(ScheduledRunSerializer(schedule.runs.all(), many=True).data)


class DataSourceViewSet(ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                        mixins.UpdateModelMixin, mixins.DestroyModelMixin):
    serializer_class = DataSourceSerializer
    queryset = DataSource.objects.order_by("name")
    manage_actions = ("create", "update", "partial_update", "destroy", "test")
    operations = {"test": "datasource_test"}

    def perform_create(self, serializer):
        self.check_create(serializer.validated_data["organization"])
        source = serializer.save()
        telemetry.track_feature("data_sources", "create_data_source", source.organization_id)

    def perform_update(self, serializer):
        source = serializer.save()
        plugins.invalidate(source.pk)
        telemetry.track_feature("data_sources", "update_data_source", source.organization_id)

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise serializers.ValidationError({"detail": "Queries still use this data source."}) from None
        plugins.invalidate(instance.pk)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        source = self.get_object()
        telemetry.track_feature("data_sources", "test_connection", source.organization_id)
        try:
            return Response(plugins.test_connection(kind=source.kind, options=source.connection_options()))
        except plugins.PluginError as error:
            return Response({"ok": False, "error": {"code": error.code, "message": error.message}},
                            status=error.http_status)


class DataQueryViewSet(ScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                       mixins.UpdateModelMixin, mixins.DestroyModelMixin):
    serializer_class = DataQuerySerializer
    queryset = DataQuery.objects.select_related("app", "data_source").order_by("app_id", "name")
    organization_path = "app__organization_id"
    operations = {"run": "query_run", "create": "query_create", "update": "query_update",
                  "partial_update": "query_update", "destroy": "query_delete"}

    def get_queryset(self):
        queryset = super().get_queryset()
        app = self.request.query_params.get("app")
        return queryset.filter(app__slug=app) if self.action == "list" and app else queryset

    def perform_create(self, serializer):
        app = serializer.validated_data["app"]
        if app.organization_id not in memberships_of(self.request.user):
            raise serializers.ValidationError({"app": ["Unknown app."]})
        self.check_create(app.organization)
        serializer.save()
        telemetry.track_feature("app_builder", "create_query", app.organization_id)

    def perform_update(self, serializer):
        query = serializer.save()
        telemetry.track_feature("app_builder", "edit_query", query.app.organization_id)

    @extend_schema(request=RunSerializer, responses={200: dict})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        query = self.get_object()
        serializer = RunSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = services.run_query(query, serializer.validated_data["parameters"])
        return Response(outcome.as_response_body(), status=200 if outcome.ok else outcome.error.http_status)


class TemplateViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AppTemplateSerializer
    queryset = AppTemplate.objects.all()


@extend_schema(request=LoginSerializer, responses={200: dict})
@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
def login_view(request):
    """Session login for browsers and a new API token for API clients (shown in this
    response only: the server keeps its digest); 401 on bad credentials."""
    serializer = LoginSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    user = authenticate(request._request, **serializer.validated_data)
    if user is None:
        return Response({"detail": "Invalid username or password."}, status=status.HTTP_401_UNAUTHORIZED)
    login(request._request, user)
    key = ApiToken.objects.issue(user)
    return Response({"token": key, "user": {"id": user.pk, "username": user.username}})


@extend_schema(request=None, responses={204: None})
@api_view(["POST"])
def logout_view(request):
    """Ends the session (the API token stays valid)."""
    logout(request._request)
    return Response(status=status.HTTP_204_NO_CONTENT)


