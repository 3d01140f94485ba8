from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from rest_framework.exceptions import PermissionDenied

from apps.keys.models import VirtualKey
from apps.keys.services import virtual_key_issue, virtual_key_set_blocked, virtual_key_spend_reset
from apps.management.admin_scope import (
    AdminRequestFormMixin,
    OrganizationScopedAdmin,
    permission_errors_as_form_errors,
)
from apps.management.framework import FieldRefused, Forbidden
from apps.management.inputs import key_logging_values
from apps.management.permissions import admin_actor, key_placement_check, key_regenerate_check

PLACEMENT_FIELDS = ("user", "team", "organization")


class ModelListField(forms.CharField):
    """A list of model names edited as comma-separated text."""

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return ", ".join(value)
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class VirtualKeyForm(forms.ModelForm):
    models = ModelListField(required=False, help_text="Comma-separated model names; empty allows all.")

    class Meta:
        model = VirtualKey
        fields = [
            "alias",
            "organization",
            "team",
            "user",
            "models",
            "max_budget",
            "soft_budget",
            "budget_duration",
            "rpm_limit",
            "tpm_limit",
            "max_parallel_requests",
            "model_max_budget",
            "model_rpm_limit",
            "model_tpm_limit",
            "expires_at",
            "blocked",
            "store_prompts",
            "guardrails",
            "metadata",
        ]

    def clean(self):
        """A key made or moved here follows the management API's rule (key_placement_check); its
        metadata.logging becomes its own logging callbacks, as through the API."""
        cleaned = super().clean()
        request = getattr(self, "admin_request", None)
        if request is not None and "metadata" in self.changed_data and not self.errors:
            values = {"metadata": cleaned.get("metadata") or {}}
            try:
                key_logging_values(admin_actor(request), values, stored=self.instance.logging_callbacks or [])
            except (Forbidden, FieldRefused) as exc:
                self.add_error("metadata", f"{exc.param}: {exc.detail}")
                return cleaned
            cleaned["metadata"] = values["metadata"]
            if "logging_callbacks" in values:
                self.instance.logging_callbacks = values["logging_callbacks"]
        placed = self.instance.pk is None or set(PLACEMENT_FIELDS) & set(self.changed_data)
        if request is None or not placed or self.errors:
            return cleaned
        team = cleaned.get("team")
        organization = cleaned.get("organization") or (team.organization if team is not None else None)
        with permission_errors_as_form_errors(
            self, {"user_id": "user", "team_id": "team", "organization_id": "organization"}
        ):
            key_placement_check(admin_actor(request), user=cleaned.get("user"), team=team,
                                organization=organization)
        return cleaned


@admin.register(VirtualKey)
class VirtualKeyAdmin(AdminRequestFormMixin, OrganizationScopedAdmin):
    form = VirtualKeyForm
    list_display = (
        "key_display",
        "alias",
        "organization",
        "team",
        "user",
        "spend",
        "max_budget",
        "rpm_limit",
        "tpm_limit",
        "expires_at",
        "blocked",
        "created_at",
    )
    list_filter = ("blocked", "organization", "team")
    search_fields = ("alias", "key_display", "token_hash", "user__username", "team__alias")
    list_select_related = ("organization", "team", "user")
    autocomplete_fields = ("organization", "team", "user")
    readonly_fields = ("key_display", "spend", "created_at", "updated_at")
    actions = ["block_keys", "unblock_keys", "regenerate_key", "reset_spend"]

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is None:  # nothing to show before the key exists
            return [f for f in fields if f not in self.readonly_fields]
        return fields

    def save_model(self, request, obj, form, change):
        if obj.team_id:
            obj.organization_id = obj.team.organization_id
        if change:
            if set(PLACEMENT_FIELDS) & set(form.changed_data):
                obj.issued_by_proxy_admin = request.user.is_superuser
            super().save_model(request, obj, form, change)
            return
        obj._raw_key = virtual_key_issue(key=obj, by_proxy_admin=request.user.is_superuser)

    def _show_key_once(self, request, key, raw_key: str, heading: str):
        response = TemplateResponse(
            request,
            "admin/keys/virtualkey/key_created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "key": key,
                "raw_key": raw_key,
                "heading": heading,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    def response_add(self, request, obj, post_url_continue=None):
        raw_key = getattr(obj, "_raw_key", None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        return self._show_key_once(request, obj, raw_key, "Key created")

    @admin.action(description="Regenerate the selected key (the old secret stops working)")
    def regenerate_key(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one key to regenerate.", messages.ERROR)
            return None
        key = queryset.get()
        if not self.has_change_permission(request, key):
            self.message_user(request, "You may not change this key.", messages.ERROR)
            return None
        try:
            key_regenerate_check(admin_actor(request), key)
        except PermissionDenied as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
            return None
        raw_key = virtual_key_issue(key=key, by_proxy_admin=request.user.is_superuser)
        return self._show_key_once(request, key, raw_key, "Key regenerated")

    @admin.action(description="Reset the spend of the selected keys")
    def reset_spend(self, request, queryset):
        for key in queryset:
            virtual_key_spend_reset(key=key)
        self.message_user(request, f"Reset the spend of {queryset.count()} key(s).", messages.SUCCESS)

    @admin.action(description="Block the selected keys")
    def block_keys(self, request, queryset):
        for key in queryset:
            virtual_key_set_blocked(key=key, blocked=True)
        self.message_user(request, f"Blocked {queryset.count()} key(s).", messages.SUCCESS)

    @admin.action(description="Unblock the selected keys")
    def unblock_keys(self, request, queryset):
        for key in queryset:
            virtual_key_set_blocked(key=key, blocked=False)
        self.message_user(request, f"Unblocked {queryset.count()} key(s).", messages.SUCCESS)
