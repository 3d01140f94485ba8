from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.admin.utils import unquote
from django.db.models import Q
from django.urls import reverse

from apps.core.models import AuditLog
from apps.core.large_tables import LargeTablePaginator, RecentValuesFilter
from apps.keys.selectors import virtual_key_list
from apps.management.admin_hints import EmptyStateHintMixin
from apps.management.admin_scope import (
    AdminRequestFormMixin,
    AdminRequestInlineMixin,
    MembershipForm,
    OrganizationScopedAdmin,
    admin_organization_ids,
    permission_errors_as_form_errors,
)
from apps.management.dashboard import daily_series_get
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


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = "__all__"
        help_texts = {
            "name": "The tenant's name, unique on the gateway.",
            "blocked": "A blocked organization's keys (its teams' too) are all refused at once.",
            "max_parallel_requests": "Requests of the organization's keys running at once; more are refused. "
                                     "Empty: no limit.",
            "metadata": "Free JSON kept with the organization (LiteLLM's organization metadata).",
        }


@admin.register(Organization)
class OrganizationAdmin(EmptyStateHintMixin, SpendReportAdminMixin, OrganizationScopedAdmin):
    organization_path = "pk"
    form = OrganizationForm
    empty_hint = "No organizations yet"
    empty_hint_help = ("An organization is a tenant: its teams, users and keys, and the limits over all of them. "
                       "Its admins (staff users with the admin role) manage it here.")
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


# A team's JSON fields hold a short list or a few entries: small boxes keep its one page short.
TEAM_JSON_FIELDS = ("metadata", "models", "default_models", "model_rpm_limit", "model_tpm_limit", "model_aliases",
                    "tags", "guardrails")


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = "__all__"
        widgets = {name: forms.Textarea(attrs={"rows": 2, "cols": 60}) for name in TEAM_JSON_FIELDS}
        help_texts = {
            "alias": "The team's name, unique in its organization.",
            "organization": "The tenant the team belongs to: its limits and models hold the team too.",
            "blocked": "A blocked team's keys are all refused at once; unblocking lets them in again.",
            "max_parallel_requests": "Requests of the team's keys running at once; more are refused. Empty: no limit.",
            "metadata": "Free JSON kept with the team (LiteLLM's team metadata).",
        }


# How many of a team's keys its page lists; the keys' list (filtered by the team) has them all.
TEAM_PAGE_KEYS = 25
TEAM_PAGE_DAYS = 30

TEAM_LIMITS_HELP = (
    "Every request through the team's keys is held to these, on top of the key's own limits, its "
    "user's and its organization's: the strictest wins. Empty: no limit at this level."
)


@admin.register(Team)
class TeamAdmin(EmptyStateHintMixin, SpendReportAdminMixin, OrganizationScopedAdmin):
    """A team on one page: its settings and limits, its members (inline), its keys and its spend
    over the last 30 days (from the DailySpend rollup, drawn by the dashboard's script)."""

    change_form_template = "admin/teams/team/change_form.html"
    form = TeamForm
    empty_hint = "No teams yet"
    empty_hint_help = "A team groups users and keys inside an organization, with limits and models of its own."
    fieldsets = (
        (None, {"fields": ("alias", "organization", "external_id", "spend", "metadata")}),
        ("Limits", {"description": TEAM_LIMITS_HELP, "fields": (
            "blocked", ("max_budget", "soft_budget"), ("budget_duration", "budget_anchor"),
            ("rpm_limit", "tpm_limit", "max_parallel_requests"), "models", "default_models",
            "model_rpm_limit", "model_tpm_limit",
        )}),
        ("Limits of each member", {
            "description": "What each member may use through the team's keys, within the team's limits above. "
                           "A member's own limits in the team (on its membership below) may not exceed these.",
            "fields": (("team_member_budget", "team_member_budget_duration"),
                       ("team_member_rpm_limit", "team_member_tpm_limit")),
        }),
        ("Routing, guardrails and logging", {"classes": ("collapse",), "fields": (
            "model_aliases", "tags", "guardrails", "store_prompts",
        )}),
        ("Billing (Lago)", {"classes": ("collapse",), "fields": LAGO_FIELDS}),
        ("Record", {"classes": ("collapse",), "fields": ("id", "created_at", "updated_at")}),
    )
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

    def change_view(self, request, object_id, form_url="", extra_context=None):
        team = self.get_object(request, unquote(object_id))
        if team is not None and self.has_view_permission(request, team):
            extra_context = {**(extra_context or {}), **self._team_page(request, team)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _team_page(self, request, team) -> dict:
        """The team's keys and its daily spend, for templates/admin/teams/team/change_form.html. The
        keys are the team's own: whoever sees the team sees its organization, hence these keys."""
        keys = virtual_key_list(scope=Q(), team_id=team.pk)
        series = daily_series_get(scope=Q(team_id=team.pk), days=TEAM_PAGE_DAYS)
        keys_url = reverse("admin:keys_virtualkey_changelist")
        return {
            "team_keys": list(keys[:TEAM_PAGE_KEYS]),
            "team_keys_count": keys.count(),
            "team_keys_url": f"{keys_url}?team__id__exact={team.pk}",
            "team_key_add_url": (f"{reverse('admin:keys_virtualkey_add')}?team={team.pk}"
                                 if self.has_change_permission(request, team) else ""),
            "team_series": series,
            "team_totals": {"requests": sum(day["requests"] for day in series),
                            "errors": sum(day["errors"] for day in series),
                            "cost": sum(day["cost"] for day in series)},
            "team_days": TEAM_PAGE_DAYS,
        }


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
    # By date with a list filter, not date_hierarchy: its list of years reads every row.
    list_filter = (("created_at", admin.DateFieldListFilter), "action", ("via", RecentValuesFilter),
                   ("object_type", RecentValuesFilter))
    search_fields = ("actor", "=object_id", "object_repr", "=request_id")
    show_full_result_count = False
    paginator = LargeTablePaginator

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in AuditLog._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- users: the superusers' to change; an organization's staff see its people -----------------
# Django's own UserAdmin asks for model permissions no organization staff holds, so the user field
# of a key, a membership or a user's limits had nothing to pick from (its autocomplete answered
# 403). Organization staff may now view, never change, the users who belong to their
# organizations: accounts are proxy-wide (a password, the superuser flag), so only superusers
# change them.

User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)  # django.contrib.auth's, registered first


@admin.register(User)
class GatewayUserAdmin(DjangoUserAdmin):
    _STAFF_FIELDSETS = ((None, {"fields": ("username", "first_name", "last_name", "email", "is_active",
                                           "is_staff", "last_login", "date_joined")}),)

    def _organizations(self, request):
        return admin_organization_ids(request.user)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        organizations = self._organizations(request)
        if organizations is None:
            return queryset
        members = (Q(organization_memberships__organization__in=organizations)
                   | Q(team_memberships__team__organization__in=organizations))
        return queryset.filter(members).distinct()

    def has_module_permission(self, request):
        if request.user.is_superuser:
            return super().has_module_permission(request)
        return request.user.is_active and request.user.is_staff and bool(self._organizations(request))

    def has_view_permission(self, request, obj=None):
        if request.user.is_superuser:
            return super().has_view_permission(request, obj)
        if not (request.user.is_active and request.user.is_staff and self._organizations(request)):
            return False
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_add_permission(self, request):
        return request.user.is_superuser and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def get_fieldsets(self, request, obj=None):
        if request.user.is_superuser:
            return super().get_fieldsets(request, obj)
        return self._STAFF_FIELDSETS  # no password hash, groups or permissions

    def get_list_filter(self, request):
        return super().get_list_filter(request) if request.user.is_superuser else ("is_active", "is_staff")
