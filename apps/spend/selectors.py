from __future__ import annotations

from django.db.models import QuerySet

from apps.spend.models import SpendLog


def spend_log_list(*, key_id: int | None = None, team_id=None, organization_id=None) -> QuerySet[SpendLog]:
    """Spend logs, newest first, narrowed to a key, team or organization."""
    logs = SpendLog.objects.all()
    if key_id is not None:
        logs = logs.filter(key_id=key_id)
    if team_id is not None:
        logs = logs.filter(team_id=team_id)
    if organization_id is not None:
        logs = logs.filter(organization_id=organization_id)
    return logs.order_by("-start_time")
