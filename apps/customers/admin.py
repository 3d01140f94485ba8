"""End users and budgets in the admin: the superusers' (operators'). Staff of an organization
manage theirs through /customer and /budget with an org admin's key; the admin's scoping of staff
(apps.management.admin_scope) is not extended to them yet."""

from django.contrib import admin

from apps.core.fields import BoundedJSONAdminMixin
from apps.customers.models import Budget, EndUser


class _SuperusersOnly(admin.ModelAdmin):
    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)


@admin.register(Budget)
class BudgetAdmin(_SuperusersOnly):
    list_display = ("budget_id", "organization", "max_budget", "soft_budget", "budget_duration", "rpm_limit",
                    "tpm_limit", "max_parallel_requests")
    list_filter = ("organization",)
    search_fields = ("budget_id",)
    readonly_fields = ("created_by", "updated_by", "created_at", "updated_at")


@admin.register(EndUser)
class EndUserAdmin(BoundedJSONAdminMixin, _SuperusersOnly):
    list_display = ("user_id", "organization", "alias", "blocked", "budget", "spend", "created_at")
    list_filter = ("blocked", "organization")
    search_fields = ("user_id", "alias")
    list_select_related = ("organization", "budget")
    autocomplete_fields = ("budget",)
    readonly_fields = ("spend", "budget_period_start", "created_at", "updated_at")
