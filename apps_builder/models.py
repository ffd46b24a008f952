"""The low-code domain, modelled on ToolJet: organizations own apps and data sources;
apps have versions (one released), and data queries that run through plugins."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import tokens


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    BUILDER = "builder", "Builder"
    VIEWER = "viewer", "Viewer"


#: What each role may do, from least to most. A role includes the ones before it.
ROLE_RANK = {Role.VIEWER: 0, Role.BUILDER: 1, Role.ADMIN: 2}


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="unique_membership")]

    def __str__(self):
        return f"{self.user} in {self.organization} ({self.role})"

    def has_role(self, role):
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class ApiTokenManager(models.Manager):
    def issue(self, user) -> str:
        """A new API key for ``user``, returned once: only its digest is stored. A user
        keeps at most ``ApiToken.MAX_PER_USER`` keys; issuing one more revokes the oldest."""
        key = tokens.generate_key()
        self.create(user=user, digest=tokens.digest_of(key))
        stale = list(self.filter(user=user).order_by("-created_at", "-pk")
                     .values_list("pk", flat=True)[ApiToken.MAX_PER_USER:])
        if stale:
            self.filter(pk__in=stale).delete()
        return key


class ApiToken(models.Model):
    """An API key for ``Authorization: Token <key>``, stored as the SHA-256 digest of the
    key (see ``tokens``): the key itself exists only in the response that issued it."""

    MAX_PER_USER = 10

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ApiTokenManager()

    def __str__(self):
        return f"API token of {self.user} ({self.created_at:%Y-%m-%d})"


class Environment(models.Model):
    class Name(models.TextChoices):
        DEVELOPMENT = "development", "Development"
        STAGING = "staging", "Staging"
        PRODUCTION = "production", "Production"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="environments")
    name = models.CharField(max_length=16, choices=Name.choices)
    is_default = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="unique_environment")]

    def __str__(self):
        return f"{self.organization}: {self.name}"


class DataSource(models.Model):
    """A connection to a datasource. ``options`` are readable; ``secrets`` (passwords,
    tokens) are write-only: never returned by the API, never logged."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="data_sources")
    kind = models.CharField(max_length=32)
    name = models.CharField(max_length=200)
    options = models.JSONField(default=dict, blank=True)
    secrets = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="unique_data_source_name")]

    def __str__(self):
        return f"{self.name} ({self.kind})"

    def connection_options(self):
        """Options and secrets merged, as a plugin needs them to connect."""
        return {**self.options, **self.secrets}


def invitation_expiry():
    return timezone.now() + Invitation.LIFETIME


class Invitation(models.Model):
    """An organization admin's offer of a role to one person, named by username or e-mail
    address. Nothing changes until that person, signed in, accepts it with its token (shown
    once, to the admin who invited); staff and superuser accounts never can. Creating one
    looks no user up, so it tells nothing about which accounts exist."""

    LIFETIME = timedelta(days=7)

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    username = models.CharField(max_length=150, blank=True)
    email = models.EmailField(blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    digest = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=invitation_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=~Q(username="", email=""), name="invitation_has_invitee")]

    def __str__(self):
        return f"{self.username or self.email} to {self.organization} ({self.role})"

    def is_addressed_to(self, user) -> bool:
        """The invitee is the user with this username, or with this e-mail address."""
        if self.username and self.username == user.username:
            return True
        return bool(self.email and user.email and self.email.casefold() == user.email.casefold())


class App(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="apps")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    #: Pages and components: {"pages": [{"name": ..., "components": [{"type": ..., ...}]}]}
    definition = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    released_version = models.ForeignKey(
        "AppVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class AppVersion(models.Model):
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="versions")
    name = models.CharField(max_length=100)
    definition = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["app", "name"], name="unique_app_version_name")]

    def __str__(self):
        return f"{self.app} {self.name}"

    def release(self):
        self.released_at = timezone.now()
        self.save(update_fields=["released_at"])
        App.objects.filter(pk=self.app_id).update(released_version=self, updated_at=timezone.now())


class DataQuery(models.Model):
    """A query of an app against one data source. ``options`` depend on the kind:
    SQL text and parameters, HTTP method and path, a Redis command."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="queries")
    data_source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="queries")
    name = models.CharField(max_length=200)
    options = models.JSONField(default=dict, blank=True)
    run_on_page_load = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "data queries"
        constraints = [models.UniqueConstraint(fields=["app", "name"], name="unique_query_name")]

    def __str__(self):
        return f"{self.app}: {self.name}"


class AppTemplate(models.Model):
    """A blueprint to create an app by cloning: its definition and its queries, whose
    data sources are matched by kind in the target organization."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    definition = models.JSONField(default=dict, blank=True)
    #: [{"name": ..., "kind": ..., "options": {...}, "run_on_page_load": bool}]
    queries = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class AuditEvent(models.Model):
    """Who did what to which subject in an organization: the activity feed.

    Deliberately, no index serves the feed's filter (organization and ``subject``): on the
    demo's large seeded table it is a sequential scan, the missing index that the query
    advice finds and proves (``CREATE INDEX ... (organization_id, subject)``). The
    organization's foreign key has no index of its own for the same reason: PostgreSQL
    would otherwise scan it and filter on ``subject``, which hides the scan."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="audit_events",
                                     db_index=False)
    app = models.ForeignKey(App, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    action = models.CharField(max_length=64)
    subject = models.CharField(max_length=128)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.action} {self.subject}"


class BackgroundTask(models.Model):
    """Background work a member asked for through the API (an app export or import) and
    what became of it: read back through ``GET /api/tasks/<id>`` by builders of the same
    organization. The id is also the Celery task id. ``payload`` holds the input (an
    import's bundle, emptied once the import ran), ``result`` the output (an export's
    bundle, an import's new app), ``error`` a reason safe to show the caller."""

    class Kind(models.TextChoices):
        EXPORT = "export", "App export"
        IMPORT = "import", "App import"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    #: Finished tasks (their bundles with them) are deleted after this long.
    RETENTION = timedelta(days=1)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="background_tasks")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    app = models.ForeignKey(App, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    payload = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self):
        return f"{self.kind} {self.id} ({self.status})"


class QuerySchedule(models.Model):
    """A data query run every ``interval_seconds`` with fixed ``parameters``, by the
    worker (``tasks.run_due_schedules`` claims the due ones). Its latest runs are kept."""

    MIN_INTERVAL_SECONDS = 60
    MAX_INTERVAL_SECONDS = 7 * 24 * 3600
    MAX_PER_ORGANIZATION = 100

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="query_schedules")
    data_query = models.ForeignKey(DataQuery, on_delete=models.CASCADE, related_name="schedules")
    interval_seconds = models.PositiveIntegerField()
    parameters = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    next_run_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.data_query} every {self.interval_seconds}s"


class ScheduledRun(models.Model):
    """One run of a schedule: its outcome and a summary of its result (never the rows).
    Only the latest ``MAX_PER_SCHEDULE`` are kept."""

    MAX_PER_SCHEDULE = 20

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"

    schedule = models.ForeignKey(QuerySchedule, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=8, choices=Status.choices)
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    row_count = models.IntegerField(null=True, blank=True)
    result_bytes = models.IntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    #: The run's trace, when tracing is on (it opens in admin when the trace was kept).
    trace_id = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["schedule", "-started_at"], name="scheduled_run_latest")]

    def __str__(self):
        return f"{self.schedule_id} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"
