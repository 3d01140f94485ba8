"""The billing outbox and received webhooks in the admin: read-only, for superusers (operators).
Dead letters show why Lago refused them and can be sent again from here (or `manage.py lago_replay`)."""

from django.contrib import admin, messages

from apps.billing.models import BillingEvent, BillingWebhook
from apps.billing.services import billing_events_replay
from apps.core.fields import BoundedJSONAdminMixin
from apps.core.large_tables import LargeTablePaginator, RecentValuesFilter
from apps.management.admin_hints import EmptyStateHintMixin


class _OperatorsOnly(BoundedJSONAdminMixin, admin.ModelAdmin):
    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BillingEvent)
class BillingEventAdmin(EmptyStateHintMixin, _OperatorsOnly):
    empty_hint = "No billing events yet"
    empty_hint_help = ("Billing is on once LAGO_API_BASE is set: then each priced request of an organization (or "
                       "team, BILLING_ENTITY) with a Lago subscription id queues a usage event here for Lago.")
    list_display = (
        "created_at",
        "transaction_id",
        "status",
        "external_subscription_id",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "error_short",
    )
    # By date with a list filter, not date_hierarchy: its list of years reads every row.
    list_filter = (("created_at", admin.DateFieldListFilter), "status", ("entity_kind", RecentValuesFilter))
    search_fields = ("transaction_id", "external_subscription_id", "external_customer_id", "entity_id")
    show_full_result_count = False
    paginator = LargeTablePaginator
    actions = ["resend"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="Last error")
    def error_short(self, obj: BillingEvent) -> str:
        return obj.last_error[:120]

    @admin.action(description="Send the selected dead letters again", permissions=["resend"])
    def resend(self, request, queryset):
        count = billing_events_replay(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            f"{count} dead letter(s) back in the outbox; the next send delivers them.",
            messages.SUCCESS if count else messages.WARNING,
        )

    def has_resend_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser


@admin.register(BillingWebhook)
class BillingWebhookAdmin(_OperatorsOnly):
    list_display = ("received_at", "webhook_type", "unique_key")
    list_filter = ("webhook_type",)
    search_fields = ("unique_key",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
