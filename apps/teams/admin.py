from django.contrib import admin

from apps.teams.admin_scope import OrganizationScopedAdmin

from apps.teams.models import Organization, OrganizationMembership, Team, TeamMembership, UserLimits


class TeamInline(admin.TabularInline):
    model = Team
    fields = ("alias", "max_budget", "spend", "rpm_limit", "tpm_limit", "blocked")
    readonly_fields = ("spend",)
    extra = 0
    show_change_link = True


class OrganizationMembershipInline(admin.TabularInline):
    model = OrganizationMembership
    autocomplete_fields = ("user",)
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    organization_path = "pk"
    list_display = ("name", "spend", "max_budget", "rpm_limit", "tpm_limit", "blocked", "created_at")
    list_filter = ("blocked",)
    search_fields = ("name", "id")
    readonly_fields = ("id", "spend", "created_at", "updated_at")
    inlines = [OrganizationMembershipInline, TeamInline]


class TeamMembershipInline(admin.TabularInline):
    model = TeamMembership
    autocomplete_fields = ("user",)
    extra = 0


@admin.register(Team)
class TeamAdmin(OrganizationScopedAdmin):
    list_display = ("alias", "organization", "spend", "max_budget", "rpm_limit", "tpm_limit", "blocked")
    list_filter = ("blocked", "organization")
    search_fields = ("alias", "id", "organization__name")
    list_select_related = ("organization",)
    readonly_fields = ("id", "spend", "created_at", "updated_at")
    autocomplete_fields = ("organization",)
    inlines = [TeamMembershipInline]


@admin.register(TeamMembership)
class TeamMembershipAdmin(OrganizationScopedAdmin):
    organization_path = "team__organization"
    list_display = ("user", "team", "role", "created_at")
    list_filter = ("role", "team__organization")
    search_fields = ("user__username", "user__email", "team__alias")
    list_select_related = ("user", "team", "team__organization")
    autocomplete_fields = ("user", "team")


@admin.register(UserLimits)
class UserLimitsAdmin(OrganizationScopedAdmin):
    organization_path = "user__organization_memberships__organization"
    list_display = ("user", "spend", "max_budget", "budget_duration", "rpm_limit", "tpm_limit", "blocked")
    list_filter = ("blocked",)
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    readonly_fields = ("spend", "created_at", "updated_at")
