from django.contrib import admin

from .models import (
    ApiToken,
    App,
    AppTemplate,
    AppVersion,
    DataQuery,
    DataSource,
    Environment,
    Invitation,
    Membership,
    Organization,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "organization__name"]
    list_select_related = ["user", "organization"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens can be revoked here; their keys were never stored, only digests."""

    list_display = ["user", "created_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    fields = ["user", "created_at"]
    readonly_fields = ["user", "created_at"]

    def has_add_permission(self, request):
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["organization", "username", "email", "role", "created_at", "expires_at", "accepted_at"]
    list_filter = ["role", "organization"]
    search_fields = ["username", "email", "organization__name"]
    list_select_related = ["organization"]
    exclude = ["digest"]
    readonly_fields = ["created_by", "accepted_at"]

    def has_add_permission(self, request):
        return False


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["organization", "name", "is_default"]
    list_filter = ["name"]


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    """Secrets are never shown: only which keys are set."""

    list_display = ["name", "kind", "organization", "updated_at"]
    list_filter = ["kind", "organization"]
    search_fields = ["name"]
    exclude = ["secrets"]
    readonly_fields = ["secret_keys"]

    @admin.display(description="secrets set")
    def secret_keys(self, data_source):
        return ", ".join(sorted(data_source.secrets)) or "none"


class DataQueryInline(admin.TabularInline):
    model = DataQuery
    extra = 0
    fields = ["name", "data_source", "run_on_page_load"]


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "organization", "released_version", "updated_at"]
    list_filter = ["organization"]
    search_fields = ["name", "slug"]
    list_select_related = ["organization", "released_version"]
    inlines = [DataQueryInline]


@admin.register(AppVersion)
class AppVersionAdmin(admin.ModelAdmin):
    list_display = ["app", "name", "created_at", "released_at"]
    list_filter = ["app__organization"]
    list_select_related = ["app"]


@admin.register(DataQuery)
class DataQueryAdmin(admin.ModelAdmin):
    list_display = ["name", "app", "data_source", "run_on_page_load"]
    list_filter = ["data_source__kind", "run_on_page_load"]
    search_fields = ["name", "app__name"]
    list_select_related = ["app", "data_source"]


@admin.register(AppTemplate)
class AppTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
