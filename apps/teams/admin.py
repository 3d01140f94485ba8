from django.contrib import admin
from django.db.models import Q

from apps.spend.admin_reports import SpendReportAdminMixin
from apps.teams.admin_scope import OrganizationScopedAdmin
from apps.teams.models import Organization, OrganizationMembership, Team, TeamMembership, UserLimits

# Which Lago customer and subscription an entity is billed as (apps.billing) is the operator's
# business: organization admins see it, only superusers change it.
LAGO_FIELDS = ("lago_external_customer_id", "lago_external_subscription_id")


def _lago_ids_read_only(request, fields):
    return fields if request.user.is_superuser else (*fields, *LAGO_FIELDS)


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
class OrganizationAdmin(SpendReportAdminMixin, OrganizationScopedAdmin):
    organization_path = "pk"
    list_display = ("name", "spend", "max_budget", "rpm_limit", "tpm_limit", "blocked", "created_at",
                    "spend_report_link")
    list_filter = ("blocked",)
    search_fields = ("name", "id", "lago_external_customer_id", "lago_external_subscription_id")
    readonly_fields = ("id", "spend", "created_at", "updated_at")
    inlines = [OrganizationMembershipInline, TeamInline]

    def get_readonly_fields(self, request, obj=None):
        return _lago_ids_read_only(request, super().get_readonly_fields(request, obj))

    def spend_report_scope(self, obj) -> Q:
        return Q(organization_id=obj.pk)


class TeamMembershipInline(admin.TabularInline):
    model = TeamMembership
    autocomplete_fields = ("user",)
    extra = 0


@admin.register(Team)
class TeamAdmin(SpendReportAdminMixin, OrganizationScopedAdmin):
    list_display = ("alias", "organization", "spend", "max_budget", "rpm_limit", "tpm_limit", "blocked",
                    "spend_report_link")
    list_filter = ("blocked", "organization")
    search_fields = ("alias", "id", "organization__name", "lago_external_customer_id",
                     "lago_external_subscription_id")
    list_select_related = ("organization",)
    readonly_fields = ("id", "spend", "created_at", "updated_at")
    autocomplete_fields = ("organization",)
    inlines = [TeamMembershipInline]

    def get_readonly_fields(self, request, obj=None):
        return _lago_ids_read_only(request, super().get_readonly_fields(request, obj))

    def spend_report_scope(self, obj) -> Q:
        return Q(team_id=obj.pk)


@admin.register(TeamMembership)
class TeamMembershipAdmin(OrganizationScopedAdmin):
    organization_path = "team__organization"
    list_display = ("user", "team", "role", "spend", "created_at")
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
