"""The router's settings in the admin. Saving publishes an invalidation (apps.routing.signals):
every server process uses the new settings from its next request."""

from django.contrib import admin

from apps.core.fields import BoundedJSONAdminMixin
from apps.routing.models import ModelGroupSettings, RouterSettings


@admin.register(RouterSettings)
class RouterSettingsAdmin(BoundedJSONAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "routing_strategy", "num_retries", "allowed_fails", "cooldown_time",
                    "timeout", "managed_by_config", "updated_at")
    readonly_fields = ("updated_at",)
    fieldsets = (
        ("Strategy", {"fields": ("routing_strategy", "routing_strategy_args", "model_group_alias")}),
        ("Retries", {"fields": ("num_retries", "retry_policy", "retry_after")}),
        ("Timeouts (seconds)", {"fields": ("timeout", "stream_timeout")}),
        ("Cooldowns", {"fields": ("allowed_fails", "allowed_fails_policy", "cooldown_time", "disable_cooldowns")}),
        ("Fallbacks", {"fields": ("default_fallbacks",)}),
        (None, {"fields": ("managed_by_config", "updated_at")}),
    )

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser  # router-wide: not an organization's to change

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        # One row: the router's settings.
        return request.user.is_superuser and not RouterSettings.objects.exists()

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelGroupSettings)
class ModelGroupSettingsAdmin(BoundedJSONAdminMixin, admin.ModelAdmin):
    list_display = ("model_name", "routing_strategy", "num_retries", "timeout", "fallbacks",
                    "context_window_fallbacks", "managed_by_config", "updated_at")
    list_filter = ("routing_strategy", "managed_by_config")
    search_fields = ("model_name",)
    readonly_fields = ("updated_at",)
    fieldsets = (
        (None, {"fields": ("model_name", "routing_strategy")}),
        ("Retries", {"fields": ("num_retries", "retry_policy")}),
        ("Timeouts (seconds)", {"fields": ("timeout", "stream_timeout")}),
        ("Cooldowns", {"fields": ("allowed_fails", "cooldown_time")}),
        ("Fallbacks", {"fields": ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")}),
        ("Response cache", {"fields": ("cache_enabled", "cache_ttl")}),
        ("Guardrails", {"fields": ("guardrails",)}),
        (None, {"fields": ("managed_by_config", "updated_at")}),
    )

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser
