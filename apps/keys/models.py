from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.teams.models import LimitsMixin, Organization, Team
from apps.core.fields import EncryptedJSONField


class VirtualKey(LimitsMixin):
    """A key handed to a client. Only its sha256 is stored; the key itself is shown once."""

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_display = models.CharField(
        max_length=32, editable=False, help_text="Enough of the key to recognise it, e.g. sk-…abcd."
    )
    alias = models.CharField(max_length=200, blank=True)
    # The key's own logging callbacks (LiteLLM's metadata.logging), secrets included: encrypted;
    # its metadata keeps them masked (apps.spend.callback_settings).
    logging_callbacks = EncryptedJSONField(blank=True, default=list, editable=False)
    guardrails = models.JSONField(
        default=list, blank=True, help_text="Guardrails (config.yaml's guardrail_name) every request of the key goes through."
    )
    store_prompts = models.BooleanField(
        null=True, blank=True, verbose_name="store prompts and responses",
        help_text="Keep each request's messages and answer in its spend log. Empty: as the key's team "
        "(or the gateway's default, GATEWAY_STORE_PROMPTS) says.",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="virtual_keys",
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="keys"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="keys"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    # Whether the proxy admin (master key, superuser) issued the key's current secret and placement.
    # A superuser's key is the proxy admin on the management API only then (apps.management.permissions).
    issued_by_proxy_admin = models.BooleanField(
        default=False, editable=False,
        help_text="The proxy admin made (or last regenerated or moved) this key.",
    )
    # Per-model limits, {model name: value}, on top of the key's own.
    model_max_budget = models.JSONField(default=dict, blank=True, help_text='{"gpt-4o": 10.0} (USD)')
    model_rpm_limit = models.JSONField(default=dict, blank=True, help_text='{"gpt-4o": 60}')
    model_tpm_limit = models.JSONField(default=dict, blank=True, help_text='{"gpt-4o": 100000}')
    # LiteLLM's key fields that shape requests and their spend logs.
    aliases = models.JSONField(
        default=dict, blank=True, verbose_name="model aliases",
        help_text='A model name the key sends → the model it gets: {"gpt-3.5-turbo": "my-free-tier"}.',
    )
    tags = models.JSONField(default=list, blank=True, help_text="Added to every spend log of the key.")
    permissions = models.JSONField(
        default=dict, blank=True, help_text='LiteLLM\'s key permissions, e.g. {"hide_secrets": false}.'
    )
    enforced_params = models.JSONField(
        default=list, blank=True,
        help_text='Request fields every request of the key must carry: ["user", "metadata.generation_name"].',
    )
    # A tier of limits (LiteLLM's budget table) the key is held to on its own, on top of its own.
    budget = models.ForeignKey(
        "customers.Budget", on_delete=models.SET_NULL, null=True, blank=True, related_name="keys",
    )
    temp_budget_increase = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True,
        help_text="USD added to max_budget until temp_budget_expiry.",
    )
    temp_budget_expiry = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["alias"])]

    def __str__(self) -> str:
        return f"{self.alias or 'key'} {self.key_display}"

    def effective_max_budget(self, now=None):
        """max_budget, with the temporary increase while it lasts (None: no budget)."""
        if self.max_budget is None:
            return None
        expiry = self.temp_budget_expiry
        if self.temp_budget_increase and expiry is not None and expiry > (now or timezone.now()):
            return self.max_budget + self.temp_budget_increase
        return self.max_budget

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()
