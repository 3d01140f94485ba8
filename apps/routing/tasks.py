"""Celery tasks of the routing app: thin, each a service call."""

from celery import shared_task


@shared_task(name="routing.deployments_health_check", ignore_result=True)
def deployments_health_check_task() -> dict:
    from apps.routing.services import deployments_health_check

    return deployments_health_check()
