"""Celery tasks of the routing app: thin, each a service call."""

from celery import shared_task

from apps.routing.services import deployments_health_check


@shared_task(name="routing.deployments_health_check", ignore_result=True)
def deployments_health_check_task() -> dict:
    return deployments_health_check()


@shared_task(name="routing.stored_responses_purge", ignore_result=True)
def stored_responses_purge_task() -> int:
    """Retention of stored /v1/responses (GATEWAY_RESPONSES_RETENTION; 0 keeps them)."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from apps.routing.services import stored_responses_purge

    if not settings.GATEWAY_RESPONSES_RETENTION:
        return 0
    cutoff = timezone.now() - timedelta(seconds=settings.GATEWAY_RESPONSES_RETENTION)
    return stored_responses_purge(older_than=cutoff)


@shared_task(name="routing.batches_poll", ignore_result=True)
def batches_poll_task() -> dict:
    """Follow running /v1/batches upstream; settle the ended ones (apps.routing.batch_settlement)."""
    from apps.routing.batch_settlement import batches_poll

    return batches_poll()


@shared_task(name="routing.owned_records_recover", ignore_result=True)
def owned_records_recover_task(older_than: float = 60.0) -> dict:
    """Write the stored responses, files and batches a dead process left only in Redis."""
    from apps.routing.batch_store import batch_store, file_store
    from apps.routing.responses_store import response_store

    return {store.name: store.recover(older_than) for store in (response_store, file_store, batch_store)}
