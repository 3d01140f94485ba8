"""Control-plane receivers: a change to an organization, team or membership reaches every key context."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.core.invalidation import KIND_ALL_KEYS, publish_on_commit
from apps.customers.models import Budget
from apps.teams.models import Organization, Team, TeamMembership, UserLimits
from apps.teams.services import organization_budget_sync


@receiver([post_save, post_delete], sender=Organization)
@receiver([post_save, post_delete], sender=Team)
@receiver([post_save, post_delete], sender=UserLimits)
@receiver([post_save, post_delete], sender=TeamMembership)  # a member's own limits in its team
def hierarchy_changed(sender, **kwargs) -> None:
    publish_on_commit({"kind": KIND_ALL_KEYS})


@receiver(post_save, sender=Budget)
def organization_budget_changed(sender, instance, **kwargs) -> None:
    """The organizations a budget is linked to (LiteLLM's budget_id) have its limits."""
    organization_budget_sync(budget=instance)
