import uuid

from django.conf import settings
from django.db import models
from django.db.models import UniqueConstraint
from django.utils import timezone

from apps.core.durations import validate_duration
from apps.core.fields import EncryptedJSONField


class LimitsMixin(models.Model):
    """What every level of the hierarchy (organization, team, user, key) can be limited by."""

    max_budget = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True,
        help_text="USD per budget period (or in all, without a duration); a hard cap. Empty: none.",
    )
    soft_budget = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True,
        help_text="USD; crossing it raises an alert once per period, nothing is refused.",
    )
    budget_duration = models.CharField(
        max_length=16, blank=True, validators=[validate_duration],
        help_text="30s, 30m, 30h, 30d or 1mo: the budget starts again after each period. Empty: never.",
    )
    budget_anchor = models.DateTimeField(
        default=timezone.now, help_text="Periods follow each other from here."
    )
    spend = models.DecimalField(
        max_digits=20, decimal_places=10, default=0, help_text="USD spent in the current budget period."
    )
    budget_period_start = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="The budget period `spend` belongs to."
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute.")
    max_parallel_requests = models.PositiveIntegerField(null=True, blank=True)
    blocked = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Last: from here on, `models` in this class body names the field, not the module.
    models = models.JSONField(
        default=list, blank=True, help_text="Model names this level may use; empty means all."
    )

    class Meta:
        abstract = True


class Organization(LimitsMixin):
    """A tenant."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    # Usage billing (apps.billing): the Lago customer and subscription this organization is
    # billed as, when BILLING_ENTITY is "organization". Empty: not billed.
    lago_external_customer_id = models.CharField(
        max_length=255, blank=True, help_text="Lago customer external_id (wallet, entitlement)."
    )
    lago_external_subscription_id = models.CharField(
        max_length=255, blank=True, help_text="Lago external_subscription_id the usage events are sent to."
    )
    # LiteLLM's budget_id: a named budget (apps.customers) whose limits are the organization's own
    # while it is linked (apps.teams.services.organization_budget_sync keeps them in step).
    budget = models.ForeignKey(
        "customers.Budget", on_delete=models.SET_NULL, null=True, blank=True, related_name="organizations",
        help_text="The budget whose limits this organization has (LiteLLM's budget_id). Empty: its own.",
    )
    created_by = models.CharField(max_length=150, blank=True, editable=False)
    updated_by = models.CharField(max_length=150, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OrganizationMembership(models.Model):
    """A user's place in an organization. Org admins manage everything inside it; staff users
    see only the organizations they belong to in the admin."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Organization admin"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="organization_memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="organization_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} as {self.role}"


class Team(LimitsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # LiteLLM's team_id when the caller chose it ("my-prod-team"): every lookup by team_id accepts
    # it as well as our id, which stays the primary key.
    external_id = models.CharField(
        max_length=200, unique=True, null=True, blank=True,
        help_text="The team_id the team was created with through LiteLLM's API, if it chose one.",
    )
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    alias = models.CharField(max_length=200)
    # Per-model rate limits of the whole team, {model name: value}, on top of its own.
    model_rpm_limit = models.JSONField(default=dict, blank=True, help_text='{"gpt-4o": 60}')
    model_tpm_limit = models.JSONField(default=dict, blank=True, help_text='{"gpt-4o": 100000}')
    model_aliases = models.JSONField(
        default=dict, blank=True,
        help_text='{"gpt-3.5-turbo": "gpt-3.5-turbo-eu"}: the team\'s requests for a name go to the model named.',
    )
    tags = models.JSONField(
        default=list, blank=True,
        help_text="Routing tags of the team's requests (tag-based routing), added to those a request sends.",
    )
    default_models = models.JSONField(
        default=list, blank=True,
        help_text="The models a member added without a models list may use (within the team's). Empty: the team's.",
    )
    # The team's own logging callbacks (LiteLLM's team callbacks), secrets included: encrypted,
    # set through POST /team/{id}/callback only (apps.spend.callback_settings).
    logging_callbacks = EncryptedJSONField(blank=True, default=list, editable=False)
    guardrails = models.JSONField(
        default=list, blank=True,
        help_text="Guardrails (config.yaml's guardrail_name) every request of the team goes through.",
    )
    store_prompts = models.BooleanField(
        null=True, blank=True, verbose_name="store prompts and responses",
        help_text="Keep the messages and answers of the team's requests in their spend logs (a key may "
        "say otherwise for itself). Empty: the gateway's default (GATEWAY_STORE_PROMPTS, off unless set).",
    )
    # Limits each member has within the team (LiteLLM's team_member_*), on top of the team's own.
    team_member_budget = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True,
        help_text="USD each member may spend through the team's keys per member budget period. Empty: none.",
    )
    team_member_budget_duration = models.CharField(
        max_length=16, blank=True, validators=[validate_duration],
        help_text="30s, 30m, 30h, 30d or 1mo: each member's budget starts again after this (from the team's "
        "budget anchor). Empty: never.",
    )
    team_member_rpm_limit = models.PositiveIntegerField(null=True, blank=True,
                                                        help_text="Requests per minute, per member.")
    team_member_tpm_limit = models.PositiveIntegerField(null=True, blank=True,
                                                        help_text="Tokens per minute, per member.")
    # Usage billing (apps.billing), when BILLING_ENTITY is "team". Empty: not billed.
    lago_external_customer_id = models.CharField(
        max_length=255, blank=True, help_text="Lago customer external_id (wallet, entitlement)."
    )
    lago_external_subscription_id = models.CharField(
        max_length=255, blank=True, help_text="Lago external_subscription_id the usage events are sent to."
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="TeamMembership", related_name="gateway_teams", blank=True
    )

    class Meta:
        ordering = ["organization__name", "alias"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "alias"], name="team_alias_unique_in_org")
        ]

    def __str__(self) -> str:
        return f"{self.alias} ({self.organization})"


class UserLimits(LimitsMixin):
    """A user's own limits, across every team and key they have."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gateway_limits"
    )

    class Meta:
        verbose_name = "user limits"
        verbose_name_plural = "user limits"

    def __str__(self) -> str:
        return f"limits of {self.user}"


class TeamMembership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Team admin"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    # What the member spent through the team's keys in the member budget period (team_member_budget).
    spend = models.DecimalField(max_digits=20, decimal_places=10, default=0, editable=False)
    budget_period_start = models.DateTimeField(null=True, blank=True, editable=False)
    # This member's own limits within the team (LiteLLM's max_budget_in_team, member rpm/tpm/models);
    # empty: the team's team_member_* settings.
    max_budget = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True,
        help_text="USD the member may spend through the team per member budget period. Empty: the team's "
        "team_member_budget.",
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True,
                                            help_text="Requests per minute. Empty: the team's per member.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True,
                                            help_text="Tokens per minute. Empty: the team's per member.")
    created_at = models.DateTimeField(auto_now_add=True)
    # Last: from here on, `models` in this class body names the field, not the module.
    models = models.JSONField(
        default=list, blank=True, help_text="Models the member may use within the team; empty: the team's."
    )

    class Meta:
        constraints = [
            UniqueConstraint(fields=["team", "user"], name="team_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"
