"""The tenants' own customers (LiteLLM's "customers", or end users) and the budgets they are held to.

An end user is whoever a tenant's client names in a request's `user` field: the gateway does not
authenticate it, the tenant's backend vouches for it with its key. Ids are the clients' own, so
each organization has its own namespace of them ("alice" of two organizations are two rows); the
keys outside every organization share the proxy admin's namespace (organization empty).
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from apps.teams.models import LimitsMixin, Organization


def _limits_field(name: str):
    """The same field as every other level's (organization, team, user, key) has."""
    return LimitsMixin._meta.get_field(name).clone()


class Budget(models.Model):
    """LiteLLM's budget table: a named set of limits (a tier such as "free"). Every end user given
    it is held to it on its own: each has its own spend, request and token counts."""

    budget_id = models.CharField(max_length=200, help_text="LiteLLM's budget_id, unique in its organization.")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="budgets",
        help_text="Whose budget it is. Empty: the proxy admin's (for keys outside every organization).",
    )
    max_budget = _limits_field("max_budget")
    soft_budget = _limits_field("soft_budget")
    budget_duration = _limits_field("budget_duration")
    budget_anchor = _limits_field("budget_anchor")
    rpm_limit = _limits_field("rpm_limit")
    tpm_limit = _limits_field("tpm_limit")
    max_parallel_requests = _limits_field("max_parallel_requests")
    created_by = models.CharField(max_length=150, blank=True)
    updated_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["budget_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "budget_id"], name="budget_id_unique_in_org"),
            # NULLs are distinct in the constraint above: the proxy admin's namespace needs its own.
            models.UniqueConstraint(fields=["budget_id"], condition=Q(organization__isnull=True),
                                    name="budget_id_unique_outside_orgs"),
        ]

    def __str__(self) -> str:
        return self.budget_id

    @property
    def has_limits(self) -> bool:
        return bool(self.rpm_limit or self.tpm_limit or self.max_parallel_requests
                    or self.max_budget is not None or self.soft_budget is not None)


class EndUser(models.Model):
    """One of a tenant's customers, as its clients name it in the `user` field of a request.

    Made by /customer/new or /customer/block, or by the spend writer the first time a request
    names it. Limits come from its budget; without a budget and unblocked it is only counted."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="end_users",
        help_text="The organization of the keys that name it. Empty: keys outside every organization.",
    )
    user_id = models.CharField(max_length=255, help_text="The id the clients send as `user`.")
    alias = models.CharField(max_length=255, blank=True)
    blocked = models.BooleanField(default=False, help_text="Refuse every request naming it (403).")
    budget = models.ForeignKey(
        Budget, on_delete=models.SET_NULL, null=True, blank=True, related_name="end_users",
        help_text="Its limits (a budget of its own organization). Empty: none.",
    )
    spend = models.DecimalField(
        max_digits=20, decimal_places=10, default=0, help_text="USD spent in the current budget period."
    )
    budget_period_start = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="The budget period `spend` belongs to."
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "user_id"], name="end_user_unique_in_org"),
            models.UniqueConstraint(fields=["user_id"], condition=Q(organization__isnull=True),
                                    name="end_user_unique_outside_orgs"),
        ]
        indexes = [
            # The data plane's cache loads, per organization, only the end users with limits.
            models.Index(fields=["organization"], condition=Q(blocked=True) | Q(budget__isnull=False),
                         name="end_user_limited_idx"),
        ]

    def __str__(self) -> str:
        return self.user_id

    def clean(self) -> None:
        if self.budget is not None and self.budget.organization_id != self.organization_id:
            raise ValidationError({"budget": ["The budget belongs to another organization."]})
