from django.contrib import admin

from apps.spend.models import SpendLog
from apps.teams.admin_scope import OrganizationScopedAdmin


@admin.register(SpendLog)
class SpendLogAdmin(OrganizationScopedAdmin):
    list_display = (
        "start_time",
        "request_id",
        "model",
        "provider",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_ms",
        "is_stream",
        "key_hash_short",
        "team_id",
    )
    list_filter = ("status", "is_stream", "provider", "call_type", "usage_reported")
    search_fields = ("request_id", "model", "key_hash")
    date_hierarchy = "start_time"
    show_full_result_count = False  # counting a large log table is the slow part

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Key")
    def key_hash_short(self, obj: SpendLog) -> str:
        return obj.key_hash[:12] if obj.key_hash else "master"
