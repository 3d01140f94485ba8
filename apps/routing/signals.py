"""Control-plane receivers: a change to the router's settings reaches every process's policy."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.core.invalidation import publish_on_commit
from apps.routing.models import ModelGroupSettings, RouterSettings
from apps.routing.selection.policy import KIND_ROUTER_SETTINGS


@receiver([post_save, post_delete], sender=RouterSettings)
@receiver([post_save, post_delete], sender=ModelGroupSettings)
def router_settings_changed(sender, **kwargs) -> None:
    publish_on_commit({"kind": KIND_ROUTER_SETTINGS})
