"""Control-plane receivers: a change to an end user or budget reaches every process's cache of
its organization's limited end users (apps.customers.cache)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.customers.cache import end_users_invalidate
from apps.customers.models import Budget, EndUser


@receiver([post_save, post_delete], sender=EndUser)
@receiver([post_save, post_delete], sender=Budget)
def end_user_limits_changed(sender, instance, **kwargs) -> None:
    end_users_invalidate(instance.organization_id)
