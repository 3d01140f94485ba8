from django import forms
from django.contrib import admin
from django.urls import reverse

from apps.management.admin_hints import EmptyStateHintMixin
from apps.management.admin_scope import OrganizationScopedAdmin
from apps.providers.adapters import known_providers
from apps.providers.admin_config_import import ConfigImportAdminMixin
from apps.providers.admin_connection_test import ConnectionTestAdminMixin
from apps.providers.models import ModelDeployment


class ModelDeploymentForm(forms.ModelForm):
    """The credential is write-only: never rendered back, kept when left empty."""

    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The provider's key, or os.environ/NAME to read it from the environment. "
        "Never shown again; leave empty to keep the current one.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored credential.")
    secret_params = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text='Other provider secrets as JSON, e.g. {"aws_secret_access_key": "os.environ/AWS_SECRET"}. '
        "Never shown again; leave empty to keep the current ones, {} to remove them.",
    )
    provider = forms.ChoiceField(choices=[])

    class Meta:
        model = ModelDeployment
        exclude = ["config_id"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [(p, p) for p in known_providers()]
        self.initial["secret_params"] = ""
        if self.instance.pk and self.instance.secret_params:
            names = ", ".join(sorted(self.instance.secret_params))
            self.fields["secret_params"].help_text += f" Set now: {names}."

    def clean_secret_params(self):
        import json

        text = self.cleaned_data.get("secret_params", "").strip()
        if not text:
            return self.instance.secret_params if self.instance.pk else {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise forms.ValidationError("A JSON object of strings is expected.")
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_api_key"):
            cleaned["api_key"] = ""
        elif not cleaned.get("api_key") and self.instance.pk:
            cleaned["api_key"] = self.instance.api_key
        return cleaned


@admin.register(ModelDeployment)
class ModelDeploymentAdmin(EmptyStateHintMixin, ConnectionTestAdminMixin, ConfigImportAdminMixin,
                           OrganizationScopedAdmin):
    """Besides the forms: "Test connection" on a deployment's page (admin_connection_test) and
    "Import config.yaml" on the list (admin_config_import); their templates are under
    templates/admin/providers/modeldeployment/."""

    shared_rows_when_empty = True  # shared deployments: visible to every organization's staff
    empty_hint = "No deployments yet"
    empty_hint_help = "Clients get a 404 for every model until a deployment serves it."
    form = ModelDeploymentForm
    list_display = (
        "model_name",
        "provider",
        "upstream_model",
        "api_base",
        "has_credentials",
        "weight",
        "rpm",
        "tpm",
        "input_cost_per_token",
        "output_cost_per_token",
        "is_active",
        "managed_by_config",
    )
    list_filter = ("is_active", "health_status", "provider", "managed_by_config", "organization")
    search_fields = ("model_name", "upstream_model", "api_base")
    # A team model is made through the API (/model/new with model_info.team_id), which keeps it in
    # its team's organization: shown here, not changed.
    readonly_fields = ("created_at", "updated_at", "health_status", "health_checked_at", "health_error",
                       "health_latency_ms", "team", "team_model_rpm_limit", "team_model_tpm_limit")
    fieldsets = (
        (None, {"fields": ("model_name", "organization", "provider", "upstream_model", "is_active")}),
        ("Connection", {
            "fields": ("api_base", "api_key", "clear_api_key", "secret_params", "api_version", "timeout",
                       "connect_timeout", "stream_timeout")
        }),
        ("Routing", {"fields": ("weight", "rpm", "tpm", "access_groups", "tags", "max_input_tokens", "mode")}),
        ("Team model", {"fields": ("team", "team_model_rpm_limit", "team_model_tpm_limit")}),
        ("Health", {"fields": ("health_status", "health_checked_at", "health_error", "health_latency_ms")}),
        ("Prices (USD per token)", {
            "fields": ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost")
        }),
        ("More", {"fields": ("extra_params", "managed_by_config", "created_at", "updated_at")}),
    )

    # Deployments are the proxy admin's, as on the management API (/model/*): a deployment sets the
    # prices every budget and bill is computed from, and where the gateway sends requests.
    # Organization staff see their organization's and the shared ones, read-only.
    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    @admin.display(boolean=True, description="Credentials")
    def has_credentials(self, obj: ModelDeployment) -> bool:
        return bool(obj.api_key)

    def empty_hint_links(self, request):
        links = super().empty_hint_links(request)
        if self.has_import_config_permission(request):
            links.append(("import config.yaml", reverse("admin:providers_modeldeployment_import_config")))
        return links
