"""Celery tasks of the core app: thin, each a service call."""

from celery import shared_task
from django.conf import settings

from apps.core.partitions import all_month_partitions_ensure


@shared_task(name="core.audit_logs_purge", ignore_result=True)
def audit_logs_purge_task() -> int:
    """Retention of the audit log (GATEWAY_AUDIT_RETENTION; 0 keeps it)."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.core.audit import audit_logs_purge

    if not settings.GATEWAY_AUDIT_RETENTION:
        return 0
    return audit_logs_purge(older_than=timezone.now() - timedelta(seconds=settings.GATEWAY_AUDIT_RETENTION))


@shared_task(name="core.month_partitions_ensure", ignore_result=True)
def month_partitions_ensure_task() -> int:
    """The month tables of spend logs, billing events and audit rows, made ahead (PostgreSQL;
    nothing to do on SQLite)."""
    return len(all_month_partitions_ensure(months_ahead=settings.GATEWAY_PARTITIONS_AHEAD))
