import uuid

from django.conf import settings
from django.db import models


class LimitsMixin(models.Model):
    """What every level of the hierarchy (organization, team, key) can be limited by."""

    max_budget = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True, help_text="USD; empty means none."
    )
    spend = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
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

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Team(LimitsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    alias = models.CharField(max_length=200)
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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="team_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"
