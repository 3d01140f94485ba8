from django import forms
from django.contrib import admin

from apps.providers.adapters import known_providers
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
    provider = forms.ChoiceField(choices=[])

    class Meta:
        model = ModelDeployment
        exclude = ["config_id"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [(p, p) for p in known_providers()]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_api_key"):
            cleaned["api_key"] = ""
        elif not cleaned.get("api_key") and self.instance.pk:
            cleaned["api_key"] = self.instance.api_key
        return cleaned


@admin.register(ModelDeployment)
class ModelDeploymentAdmin(admin.ModelAdmin):
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
    list_filter = ("is_active", "provider", "managed_by_config")
    search_fields = ("model_name", "upstream_model", "api_base")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("model_name", "provider", "upstream_model", "is_active")}),
        ("Connection", {"fields": ("api_base", "api_key", "clear_api_key", "api_version", "timeout")}),
        ("Routing", {"fields": ("weight", "rpm", "tpm")}),
        ("Prices (USD per token)", {
            "fields": ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost")
        }),
        ("More", {"fields": ("extra_params", "managed_by_config", "created_at", "updated_at")}),
    )

    @admin.display(boolean=True, description="Credentials")
    def has_credentials(self, obj: ModelDeployment) -> bool:
        return bool(obj.api_key)
