"""Seed the demo: organizations, members of each role, environments, data sources, apps
with queries and a released version, a template, the admin user and API tokens.

Idempotent: every row is found by its natural key, so a second run creates nothing.
"""

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from apps_builder import demo_data
from apps_builder.models import (
    App,
    AppTemplate,
    AppVersion,
    DataQuery,
    DataSource,
    Environment,
    Membership,
    Organization,
)


class Command(BaseCommand):
    help = "Create the demo organizations, members, data sources, apps and admin login (idempotent)."

    def handle(self, *args, **options):
        sample_path, sample_created = demo_data.ensure_sample_database()
        with transaction.atomic():
            admin = self._ensure_admin()
            member_password_hash = make_password(demo_data.MEMBER_PASSWORD)
            for organization_spec in demo_data.ORGANIZATIONS:
                self._seed_organization(organization_spec, member_password_hash)
            template_spec = demo_data.template_spec()
            AppTemplate.objects.update_or_create(
                slug=template_spec.pop("slug"), defaults=template_spec
            )
            Token.objects.get_or_create(user=admin)
        self._seed_release_history()
        self._print_logins(sample_path, sample_created)

    def _seed_release_history(self):
        """Per-route latency of an earlier release, as if the platform had run it, so the
        release comparison (and its benchmark metrics) has a baseline from the start."""
        from django.urls import Resolver404, resolve
        from django.utils import timezone

        from telemetry.models import ReleaseRouteStats
        from telemetry.routers import telemetry_alias
        from telemetry.routes import normalize

        hour = (timezone.now() - timezone.timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
        for path, count, mean in demo_data.RELEASE_HISTORY:
            try:
                route = normalize(resolve(path).route)
            except Resolver404:
                continue
            ReleaseRouteStats.objects.using(telemetry_alias()).update_or_create(
                release=demo_data.PREVIOUS_RELEASE, route=route, hour=hour,
                defaults={"count": count, "total_seconds": count * mean,
                          "total_squares": count * (mean * mean * 1.04), "satisfied": count,
                          "tolerating": 0, "max_seconds": mean * 3},
            )

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
            Token.objects.get_or_create(user=user)
            members[role] = user
        for name in demo_data.ENVIRONMENTS:
            Environment.objects.update_or_create(
                organization=organization, name=name, defaults={"is_default": name == "development"}
            )
        sources_by_kind = {}
        for spec in demo_data.data_source_specs():
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
            f"{DataQuery.objects.count()} queries, {DataSource.objects.count()} data sources"
        )
        lines = [
            f"Demo data ready: {counts}.",
            f"Sample database: {sample_path} ({'created' if sample_created else 'kept'}).",
            f"Admin:   {base_url}/admin/   login: {demo_data.ADMIN_USERNAME} / {demo_data.admin_password()}",
            f"Builder: {demo_data.username_for(first_organization, 'builder')} / {demo_data.MEMBER_PASSWORD}",
            f"Viewer:  {demo_data.username_for(first_organization, 'viewer')} / {demo_data.MEMBER_PASSWORD}",
            f"API:     {base_url}/api/  (POST /api/auth/login, then 'Authorization: Token <key>')",
        ]
        self.stdout.write("\n".join(lines))
