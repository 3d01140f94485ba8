from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.core.invalidation import KIND_DEPLOYMENTS, publish_on_commit
from apps.providers.models import ModelDeployment


@receiver([post_save, post_delete], sender=ModelDeployment)
def deployment_changed(sender, **kwargs) -> None:
    publish_on_commit({"kind": KIND_DEPLOYMENTS})
