"""Control-plane receivers: any change to a key drops it from every process's key cache."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.core.invalidation import KIND_ALL_KEYS, KIND_KEY, publish_on_commit
from apps.customers.models import Budget
from apps.keys.models import VirtualKey


def key_hash_invalidate(token_hash: str) -> None:
    publish_on_commit({"kind": KIND_KEY, "hash": token_hash})


@receiver([post_save, post_delete], sender=VirtualKey)
def virtual_key_changed(sender, instance: VirtualKey, **kwargs) -> None:
    key_hash_invalidate(instance.token_hash)


@receiver([post_save, post_delete], sender=Budget)
def key_budget_changed(sender, instance: Budget, **kwargs) -> None:
    """A budget's limits hold for the keys linked to it: every cached key context is dropped (rare:
    budgets change by hand)."""
    publish_on_commit({"kind": KIND_ALL_KEYS})
