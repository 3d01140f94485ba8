from django import forms
from django.contrib import admin
from django.db.models import Q

from apps.core.models import AuditLog
from apps.management.admin_scope import (
    AdminRequestFormMixin,
    AdminRequestInlineMixin,
    MembershipForm,
    OrganizationScopedAdmin,
    permission_errors_as_form_errors,
)
from apps.management.permissions import admin_actor, user_check
from apps.spend.admin_reports import SpendReportAdminMixin
from apps.teams.models import Organization, OrganizationMembership, Team, TeamMembership, UserLimits
from apps.teams.services import BUDGET_LIMIT_FIELDS

# Which Lago customer and subscription an entity is billed as (apps.billing) is the operator's
# business: organization admins see it, only superusers change it.
LAGO_FIELDS = ("lago_external_customer_id", "lago_external_subscription_id")


# An organization's limits are the proxy admin's (as on /organization/update): its staff may rename it.
ORGANIZATION_LIMIT_FIELDS = ("models", "max_budget", "soft_budget", "budget_duration", "budget_anchor",
                             "rpm_limit", "tpm_limit", "max_parallel_requests", "blocked")


def _lago_ids_read_only(request, fields):
    return fields if request.user.is_superuser else (*fields, *LAGO_FIELDS)


class TeamInline(admin.TabularInline):
    model = Team
    fields = ("alias", "max_budget", "spend", "rpm_limit", "tpm_limit", "blocked")
    readonly_fields = ("spend",)
    extra = 0
    show_change_link = True


class OrganizationMembershipInline(AdminRequestInlineMixin, admin.TabularInline):
    model = OrganizationMembership
    form = MembershipForm
    autocomplete_fields = ("user",)
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(SpendReportAdminMixin, OrganizationScopedAdmin):
    organization_path = "pk"
    list_display = ("name", "spend", "max_budget", "rpm_limit", "tpm_limit", "blocked", "created_at",
                    "spend_report_link")
    list_filter = ("blocked",)
    search_fields = ("name", "id", "lago_external_customer_id", "lago_external_subscription_id")
    # The budget (LiteLLM's budget_id) is linked through /organization/update, which brings its limits.
    readonly_fields = ("id", "spend", "budget", "created_by", "updated_by", "created_at", "updated_at")
    inlines = [OrganizationMembershipInline, TeamInline]

    def get_readonly_fields(self, request, obj=None):
        fields = _lago_ids_read_only(request, super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            return (*fields, *ORGANIZATION_LIMIT_FIELDS)
        if obj is not None and obj.budget_id is not None:
            return (*fields, *BUDGET_LIMIT_FIELDS)  # its budget's, changed with the budget
        return fields

    def spend_report_scope(self, obj) -> Q:
        return Q(organization_id=obj.pk)


class TeamMembershipInline(AdminRequestInlineMixin, admin.TabularInline):
    model = TeamMembership
    form = MembershipForm
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
class TeamMembershipAdmin(AdminRequestFormMixin, OrganizationScopedAdmin):
    form = MembershipForm
    organization_path = "team__organization"
    list_display = ("user", "team", "role", "spend", "created_at")
    list_filter = ("role", "team__organization")
    search_fields = ("user__username", "user__email", "team__alias")
    list_select_related = ("user", "team", "team__organization")
    autocomplete_fields = ("user", "team")


class UserLimitsForm(forms.ModelForm):
    """A user's limits: only for a user the staff user may change (apps.management.permissions.user_check),
    never its own."""

    def clean(self):
        cleaned = super().clean()
        request = getattr(self, "admin_request", None)
        user = cleaned.get("user") or getattr(self.instance, "user", None)
        if request is not None and user is not None:
            with permission_errors_as_form_errors(self, {"user_id": "user"}):
                user_check(admin_actor(request), user, "write")
        return cleaned


@admin.register(UserLimits)
class UserLimitsAdmin(AdminRequestFormMixin, OrganizationScopedAdmin):
    form = UserLimitsForm
    organization_path = "user__organization_memberships__organization"
    list_display = ("user", "spend", "max_budget", "budget_duration", "rpm_limit", "tpm_limit", "blocked")
    list_filter = ("blocked",)
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    readonly_fields = ("spend", "created_at", "updated_at")


@admin.register(AuditLog)
class AuditLogAdmin(OrganizationScopedAdmin):
    """The audit log: read, filtered, never written or deleted by hand (retention: the
    core.audit_logs_purge task). An organization's admins see its entries."""

    organization_path = "organization_id"
    list_display = ("created_at", "actor", "via", "action", "object_type", "object_repr", "ip", "request_id")
    list_filter = ("action", "via", "object_type")
    search_fields = ("actor", "=object_id", "object_repr", "=request_id")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in AuditLog._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
