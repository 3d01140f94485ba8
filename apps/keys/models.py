from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.teams.models import LimitsMixin, Organization, Team


class VirtualKey(LimitsMixin):
    """A key handed to a client. Only its sha256 is stored; the key itself is shown once."""

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_display = models.CharField(
        max_length=32, editable=False, help_text="Enough of the key to recognise it, e.g. sk-…abcd."
    )
    alias = models.CharField(max_length=200, blank=True)
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

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["alias"])]

    def __str__(self) -> str:
        return f"{self.alias or 'key'} {self.key_display}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()
