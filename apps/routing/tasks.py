"""Celery tasks of the routing app: thin, each a service call."""

from celery import shared_task

from apps.routing.services import deployments_health_check


@shared_task(name="routing.deployments_health_check", ignore_result=True)
def deployments_health_check_task() -> dict:
    return deployments_health_check()
