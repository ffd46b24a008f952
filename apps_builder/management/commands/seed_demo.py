"""Seed the demo: organizations, members of each role, environments, data sources, apps
with queries and a released version, a template, the admin user (API tokens come from a
login), and a large audit-event table (the demo's planted missing index, see ``AuditEvent``).

Data sources read sample databases only (``demo_data``), never the platform's own
database or credentials; a source an earlier seed pointed at the platform's database is
repointed at the sample (or emptied when there is none).

Idempotent: every row is found by its natural key, so a second run creates nothing.
"""

import os
import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from apps_builder import demo_data
from apps_builder.models import (
    App,
    AppTemplate,
    AppVersion,
    AuditEvent,
    DataQuery,
    DataSource,
    Environment,
    Membership,
    Organization,
)


class Command(BaseCommand):
    help = "Create the demo organizations, members, data sources, apps and admin login (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--audit-events", type=int, default=None,
                            help="audit events to seed (default: 1,000,000 on PostgreSQL, 200,000 otherwise, "
                                 "or DEMO_AUDIT_EVENTS)")

    def handle(self, *args, **options):
        sample_path, sample_created = demo_data.ensure_sample_database()
        self.postgres_sample = demo_data.ensure_postgres_sample()
        with transaction.atomic():
            self._ensure_admin()
            member_password_hash = make_password(demo_data.MEMBER_PASSWORD)
            self._retire_platform_database_sources()
            for organization_spec in demo_data.ORGANIZATIONS:
                self._seed_organization(organization_spec, member_password_hash)
            template_spec = demo_data.template_spec()
            AppTemplate.objects.update_or_create(
                slug=template_spec.pop("slug"), defaults=template_spec
            )
        self._seed_release_history()
        audit_target = options["audit_events"]
        if audit_target is None:
            audit_target = demo_data.audit_event_target(connection.vendor)
        self.audit_events_created = self._seed_audit_events(audit_target)
        self._print_logins(sample_path, sample_created)

    def _seed_audit_events(self, target):
        """``target`` audit events spread over the demo organizations, subjects and the
        last AUDIT_HISTORY_DAYS in random order (so no index on ``created_at`` or the
        organization can stand in for the missing one on ``subject``). Skipped when seeded
        rows (no actor: the API always has one) are there. Returns the rows created."""
        if target <= 0 or AuditEvent.objects.filter(actor__isnull=True).exists():
            return 0
        organization_ids = list(Organization.objects.filter(
            slug__in=[spec["slug"] for spec in demo_data.ORGANIZATIONS]).order_by("id").values_list("id", flat=True))
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        kinds, per_kind = list(demo_data.AUDIT_SUBJECT_KINDS), demo_data.AUDIT_SUBJECTS_PER_KIND
        actions = list(demo_data.AUDIT_ACTIONS)
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One statement, generated in the server. Foreign keys and secondary indexes
                # are dropped around it and rebuilt in the same transaction, as PostgreSQL's
                # "Populating a Database" advises: a few seconds instead of a minute.
                cursor.execute(
                    "SELECT 'ALTER TABLE ' || conrelid::regclass::text || ' DROP CONSTRAINT ' || quote_ident(conname), "
                    "'ALTER TABLE ' || conrelid::regclass::text || ' ADD CONSTRAINT ' || quote_ident(conname) "
                    "|| ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
                    "AND contype = 'f' UNION ALL SELECT 'DROP INDEX ' || indexrelid::regclass::text, "
                    "pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass "
                    "AND NOT indisprimary AND NOT indisunique",
                    [AuditEvent._meta.db_table] * 2,
                )
                rebuilt = cursor.fetchall()
                # Checks still deferred (in a caller's transaction) would forbid the ALTERs.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                for drop, _ in rebuilt:
                    cursor.execute(drop)
                cursor.execute(
                    f"INSERT INTO {table} (organization_id, action, subject, created_at) "
                    "SELECT (%s::bigint[])[1 + g %% %s], (%s::text[])[1 + g %% %s], "
                    "(%s::text[])[1 + (g / %s) %% %s] || ':' || (g %% %s), "
                    "now() - random() * make_interval(days => %s) FROM generate_series(1, %s) g",
                    [organization_ids, len(organization_ids), actions, len(actions), kinds, per_kind, len(kinds),
                     per_kind, demo_data.AUDIT_HISTORY_DAYS, target],
                )
                for _, create in reversed(rebuilt):
                    cursor.execute(create)
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
                cursor.execute(f"ANALYZE {table}")
            else:
                rng = random.Random(20240602)
                newest = timezone.now().replace(tzinfo=None)
                history_seconds = demo_data.AUDIT_HISTORY_DAYS * 86400
                rows = (
                    (organization_ids[number % len(organization_ids)], actions[number % len(actions)],
                     demo_data.audit_subject(number),
                     (newest - timedelta(seconds=rng.random() * history_seconds)).isoformat(" "))
                    for number in range(1, target + 1)
                )
                cursor.executemany(
                    f"INSERT INTO {table} (organization_id, action, subject, created_at) VALUES (%s, %s, %s, %s)",
                    rows,
                )
                cursor.execute(f"ANALYZE {table}")
        return target

    def _retire_platform_database_sources(self):
        """Earlier seeds gave every organization a source with the platform's own database
        and credentials: it becomes the PostgreSQL sample source, or loses its options."""
        options, secrets = self.postgres_sample or ({}, {})
        DataSource.objects.filter(name=demo_data.LEGACY_POSTGRES_SOURCE_NAME).update(
            name=demo_data.POSTGRES_SOURCE_NAME, options=options, secrets=secrets)

    def _seed_release_history(self):
        """Per-route latency of an earlier release, as if the platform had run it, so the
        release comparison (and its benchmark metrics) has a baseline from the start."""
        from django.utils import timezone

        from telemetry import api

        hour = timezone.now() - timezone.timedelta(days=7)
        for path, count, mean in demo_data.RELEASE_HISTORY:
            api.record_release_baseline(demo_data.PREVIOUS_RELEASE, path, hour, count, mean)

    def _ensure_admin(self):
        user_model = get_user_model()
        admin, created = user_model.objects.get_or_create(
            username=demo_data.ADMIN_USERNAME,
            defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"},
        )
        password = demo_data.admin_password()
        password_from_env = bool(os.environ.get("DEMO_ADMIN_PASSWORD"))
        if created or (password_from_env and not admin.check_password(password)):
            admin.set_password(password)
        admin.is_staff = admin.is_superuser = admin.is_active = True
        admin.save()
        return admin

    def _seed_organization(self, organization_spec, member_password_hash):
        user_model = get_user_model()
        organization, _ = Organization.objects.update_or_create(
            slug=organization_spec["slug"], defaults={"name": organization_spec["name"]}
        )
        members = {}
        for role in demo_data.ROLES:
            user, created = user_model.objects.get_or_create(
                username=demo_data.username_for(organization.slug, role),
                defaults={"email": f"{role}@{organization.slug}.example.com"},
            )
            if created:
                user.password = member_password_hash
                user.save(update_fields=["password"])
            Membership.objects.update_or_create(user=user, organization=organization, defaults={"role": role})
            members[role] = user
        for name in demo_data.ENVIRONMENTS:
            Environment.objects.update_or_create(
                organization=organization, name=name, defaults={"is_default": name == "development"}
            )
        sources_by_kind = {}
        for spec in demo_data.data_source_specs(self.postgres_sample):
            source, created = DataSource.objects.get_or_create(
                organization=organization, name=spec["name"],
                defaults={"kind": spec["kind"], "options": spec["options"], "secrets": spec["secrets"]},
            )
            if not created and spec["kind"] != "restapi":
                # The REST source's base_url belongs to demo_traffic once it has pointed it.
                DataSource.objects.filter(pk=source.pk).update(
                    kind=spec["kind"], options=spec["options"], secrets=spec["secrets"]
                )
            sources_by_kind[spec["kind"]] = source
        for app_spec in demo_data.app_specs(organization.slug, set(sources_by_kind)):
            self._seed_app(organization, members["builder"], sources_by_kind, app_spec)

    def _seed_app(self, organization, builder, sources_by_kind, app_spec):
        app, created = App.objects.get_or_create(
            slug=app_spec["slug"],
            defaults={"organization": organization, "name": app_spec["name"],
                      "definition": app_spec["definition"], "created_by": builder},
        )
        for name, kind, options, run_on_page_load in app_spec["queries"]:
            DataQuery.objects.update_or_create(
                app=app, name=name,
                defaults={"data_source": sources_by_kind[kind], "options": options,
                          "run_on_page_load": run_on_page_load},
            )
        version, _ = AppVersion.objects.get_or_create(
            app=app, name="v1", defaults={"definition": app_spec["definition"]}
        )
        if created or app.released_version_id is None:
            version.release()

    def _print_logins(self, sample_path, sample_created):
        base_url = f"http://127.0.0.1:{os.environ.get('PORT') or '8000'}"
        first_organization = demo_data.ORGANIZATIONS[0]["slug"]
        counts = (
            f"{Organization.objects.count()} organizations, {App.objects.count()} apps, "
            f"{DataQuery.objects.count()} queries, {DataSource.objects.count()} data sources, "
            f"{self.audit_events_created} audit events added"
        )
        lines = [
            f"Demo data ready: {counts}.",
            f"Sample database: {sample_path} ({'created' if sample_created else 'kept'}).",
            *([f"PostgreSQL sample: database {self.postgres_sample[0]['database']}, "
               f"read-only role {self.postgres_sample[0]['user']}."] if self.postgres_sample else []),
            f"Admin:   {base_url}/admin/   login: {demo_data.ADMIN_USERNAME} / {demo_data.admin_password()}",
            f"Builder: {demo_data.username_for(first_organization, 'builder')} / {demo_data.MEMBER_PASSWORD}",
            f"Viewer:  {demo_data.username_for(first_organization, 'viewer')} / {demo_data.MEMBER_PASSWORD}",
            f"API:     {base_url}/api/  (POST /api/auth/login, then 'Authorization: Token <key>')",
        ]
        self.stdout.write("\n".join(lines))
