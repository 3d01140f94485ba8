"""The management API's spend routes (LiteLLM's): GET /spend/logs lists spend logs, GET
/spend/report adds up the daily rollups. Each caller sees the spend of its scope
(apps.management.permissions.spend_scope); a filter naming something outside it is 403.
"""

from __future__ import annotations

import re

from rest_framework.response import Response

from apps.keys.selectors import virtual_key_get_by_ref
from apps.keys.services import virtual_key_hash
from apps.management.framework import ManagementAPIView, NotFoundError
from apps.management.lookups import organization_or_404, team_or_404, user_or_404
from apps.management.pagination import page_of
from apps.management.permissions import request_actor, spend_filter_check, spend_scope
from apps.spend import selectors
from apps.spend import serializers as s

_KEY_HASH = re.compile(r"[0-9a-f]{64}")


def _api_key_filter(ref: str):
    """(the key, {its filter}) for `api_key`: a live key by id (its logs from before a
    regeneration too); a key known only from spend (deleted) by hash, with no key to check."""
    key = virtual_key_get_by_ref(ref=ref)
    if key is not None:
        return key, {"key_id": key.pk}
    key_hash = ref if _KEY_HASH.fullmatch(ref) else virtual_key_hash(ref)
    if not selectors.spend_key_hash_seen(key_hash=key_hash):
        raise NotFoundError("No such key.", param="api_key")
    return None, {"key_hash": key_hash}


def spend_filters(actor, data: dict) -> dict:
    """The query's filters as the field values SpendLog and DailySpend share. An id naming
    nothing is 404; something the caller may not see is 403 (param: the query's name)."""
    filters = {name: data[name] for name in ("request_id", "model", "provider") if name in data}
    key = team = organization = user = None
    if "api_key" in data:
        key, key_filter = _api_key_filter(data["api_key"])
        filters.update(key_filter)
    if "team_id" in data:
        team = team_or_404(data["team_id"])
        filters["team_id"] = team.pk
    if "organization_id" in data:
        organization = organization_or_404(data["organization_id"])
        filters["organization_id"] = organization.pk
    if "user_id" in data:
        user = user_or_404(user_id=data["user_id"])
        filters["user_id"] = user.pk
    spend_filter_check(actor, key=key, team=team, organization=organization, user=user)
    return filters


class SpendLogsApi(ManagementAPIView):
    """Spend logs, newest first, as LiteLLM's list of rows; paged by page and page_size, the
    total in the x-total-count and x-total-pages headers."""

    query_serializer = s.SpendLogsQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        logs = selectors.spend_log_list(
            scope=spend_scope(actor),
            filters=spend_filters(actor, data),
            starts_from=data.get("starts_from"),
            starts_before=data.get("starts_before"),
        )
        page, total, pages = page_of(logs, page=data["page"], size=data["page_size"])
        usernames, key_aliases = selectors.spend_log_owner_names(logs=page)
        return Response(
            [s.spend_log_data(log, usernames=usernames, key_aliases=key_aliases) for log in page],
            headers={"x-total-count": str(total), "x-total-pages": str(pages)},
        )


class SpendReportApi(ManagementAPIView):
    """Spend added up per group (day, team, key, model, provider, organization, user) over the
    daily rollups of [start_date, end_date], with the totals."""

    query_serializer = s.SpendReportQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        rows = selectors.daily_spend_in_range(
            scope=spend_scope(actor),
            start_date=data["start_date"],
            end_date=data["end_date"],
            filters=spend_filters(actor, data),
        )
        [totals] = selectors.spend_report(rows=rows, group_by=[])
        return Response(
            {
                "start_date": data["start_date"].isoformat(),
                "end_date": data["end_date"].isoformat(),
                "group_by": data["group_by"],
                "rows": [
                    s.report_row_data(row) for row in selectors.spend_report(rows=rows, group_by=data["group_by"])
                ],
                "totals": s.report_row_data(totals),
            }
        )
