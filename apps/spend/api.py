"""The management API's spend routes (LiteLLM's): GET /spend/logs lists spend logs; GET
/spend/report, /global/spend, /global/spend/report, /global/spend/teams, /global/spend/logs,
/global/spend/keys and /global/spend/models add up the daily rollups, GET /spend/tags and
/global/spend/tags the daily tag rollups (never the logs: a range of logs can be the whole table);
POST /spend/calculate prices a request with the gateway's prices; POST /global/spend/reset (the
proxy admin's) starts every budget's spend again from zero. Each caller sees the spend of its
scope (apps.management.permissions.spend_scope); a filter naming something outside it is 403.

The GET routes read their rows from the read replica when one is configured (replica_reads: a report
a moment behind is fine, and these reads are the heavy ones); who the caller is, what it may see and
what its filters name are read on the primary first.
"""

from __future__ import annotations

import re
from datetime import timedelta

from rest_framework.response import Response

from apps.core.db_router import replica_reads
from apps.keys.selectors import virtual_key_get_by_ref
from apps.keys.services import virtual_key_hash
from apps.management.framework import Forbidden, ManagementAPIView, NotFoundError
from apps.management.lookups import organization_or_404, team_or_404, user_or_404
from apps.management.pagination import page_of
from apps.management.permissions import (
    model_price_access,
    request_actor,
    require_proxy_admin,
    spend_filter_check,
    spend_scope,
)
from apps.providers.adapters.base import Usage
from apps.providers.adapters.openai import usage_from_openai
from apps.providers.registry import deployment_from_row
from apps.providers.selectors import deployment_list_named
from apps.spend import selectors, services
from apps.spend import serializers as s
from apps.spend.pricing import calculated_cost
from apps.spend.rollups import utc_today
from apps.spend.tokens import estimate_prompt_tokens

_KEY_HASH = re.compile(r"[0-9a-f]{64}")
# LiteLLM's /global/spend/{logs,keys,models} cover "startTime >= CURRENT_DATE - 30 days": the
# 30 UTC days before today, and today (as of the last rollup).
GLOBAL_SPEND_DAYS = 30


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
        scope, filters = spend_scope(actor), spend_filters(actor, data)
        with replica_reads():
            logs = selectors.spend_log_list(
                scope=scope,
                filters=filters,
                starts_from=data.get("starts_from"),
                starts_before=data.get("starts_before"),
            )
            page, total, pages = page_of(logs, page=data["page"], size=data["page_size"], bounded=True)
            usernames, key_aliases = selectors.spend_log_owner_names(logs=page)
            rows = [s.spend_log_data(log, usernames=usernames, key_aliases=key_aliases) for log in page]
        return Response(rows, headers={"x-total-count": str(total), "x-total-pages": str(pages)})


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
        with replica_reads():
            [totals] = selectors.spend_report(rows=rows, group_by=[])
            groups = selectors.spend_report(rows=rows, group_by=data["group_by"])
        return Response(
            {
                "start_date": data["start_date"].isoformat(),
                "end_date": data["end_date"].isoformat(),
                "group_by": data["group_by"],
                "rows": [s.report_row_data(row) for row in groups],
                "totals": s.report_row_data(totals),
            }
        )


def _caller_name(principal) -> str:
    """Who made a call, for the record of what it did."""
    if principal.user is not None:
        return principal.user.get_username()
    if principal.key is not None:
        return f"key {principal.key.alias or principal.key.key_display}"
    return "master key" if principal.via == "master_key" else principal.via


class GlobalSpendReportApi(ManagementAPIView):
    """LiteLLM's /global/spend/report over the daily rollups of [start_date, end_date]: per day and
    team (group_by=team, the default), per day and end user (customer), or per key with its
    models (api_key, or a key's or a user's keys: api_key=, internal_user_id=)."""

    query_serializer = s.GlobalSpendReportQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        filters, key, team, user = {}, None, None, None
        if "api_key" in data:
            key, key_filter = _api_key_filter(data["api_key"])
            filters.update(key_filter)
        if "internal_user_id" in data:
            user = user_or_404(user_id=data["internal_user_id"], param="internal_user_id")
            filters["user_id"] = user.pk
        if "team_id" in data:
            team = team_or_404(data["team_id"])
            filters["team_id"] = team.pk
        if "customer_id" in data:
            filters["end_user"] = data["customer_id"]
        try:
            spend_filter_check(actor, key=key, team=team, user=user)
        except Forbidden as refused:
            if refused.param == "user_id":
                refused.param = "internal_user_id"
            raise
        rows = selectors.daily_spend_in_range(
            scope=spend_scope(actor), start_date=data["start_date"], end_date=data["end_date"], filters=filters
        )
        with replica_reads():
            if "api_key" in data or "internal_user_id" in data or data["group_by"] == "api_key":
                return Response(s.report_per_key_data(selectors.spend_per_key_and_model(rows=rows)))
            if data["group_by"] == "customer":
                return Response(s.report_per_customer_data(selectors.spend_per_day_and_end_user(rows=rows)))
            return Response(s.report_per_team_data(selectors.spend_per_day_and_team(rows=rows)))


def _last_30_days(actor, filters: dict | None = None):
    today = utc_today()
    return selectors.daily_spend_in_range(
        scope=spend_scope(actor), start_date=today - timedelta(days=GLOBAL_SPEND_DAYS), end_date=today,
        filters=filters,
    )


class GlobalSpendApi(ManagementAPIView):
    """LiteLLM's GET /global/spend: the spend of the last 30 days (in the caller's scope) and the
    proxy's budget. This gateway has no proxy-wide budget (budgets hang on keys, users, teams and
    organizations): max_budget is null."""

    query_serializer = s.NoQuery

    def get(self, request):
        self.validated(request)
        rows = _last_30_days(request_actor(request))
        with replica_reads():
            spend = selectors.spend_total(rows=rows)
        return Response({"spend": float(spend), "max_budget": None})


class GlobalSpendTeamsApi(ManagementAPIView):
    """LiteLLM's GET /global/spend/teams: spend per day and team over the last 30 days, for its UI's
    chart (teams by alias; spend outside every team as "Unassigned")."""

    query_serializer = s.NoQuery

    def get(self, request):
        self.validated(request)
        rows = _last_30_days(request_actor(request))
        with replica_reads():
            groups = selectors.spend_per_day_and_team(rows=rows)
        return Response(s.teams_spend_data(groups))


class GlobalSpendResetApi(ManagementAPIView):
    """LiteLLM's POST /global/spend/reset (the proxy admin only): every budget's spend starts again
    from zero, on /v1 at once. The spend logs and reports are kept, as in LiteLLM."""

    input_serializer = s.NoBody

    def post(self, request):
        self.validated(request)
        actor = request_actor(request)
        require_proxy_admin(actor, "reset every budget's spend")
        services.spend_reset_all(reset_by=_caller_name(request.auth))
        return Response({"message": "Spend for all API Keys and Teams reset successfully", "status": "success"})


class GlobalSpendLogsApi(ManagementAPIView):
    """Spend per day over the last 30 days (LiteLLM's /global/spend/logs), of one key with
    api_key. Days without requests are left out, as in LiteLLM."""

    query_serializer = s.GlobalSpendLogsQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        filters, api_key = {}, None
        if "api_key" in data:
            key, filters = _api_key_filter(data["api_key"])
            spend_filter_check(actor, key=key)
            api_key = key.token_hash if key is not None else filters["key_hash"]
        rows = _last_30_days(actor, filters)
        with replica_reads():
            days = selectors.spend_report(rows=rows, group_by=["day"])
        return Response([s.day_spend_data(day, api_key=api_key) for day in days])


class GlobalSpendKeysApi(ManagementAPIView):
    """The keys with the most spend over the last 30 days (LiteLLM's /global/spend/keys)."""

    query_serializer = s.GlobalSpendKeysQuery

    def get(self, request):
        data = self.validated(request)
        rows = _last_30_days(request_actor(request))
        with replica_reads():
            keys = selectors.spend_per_key_hash(rows=rows, limit=data.get("limit"))
        return Response([s.key_spend_data(row) for row in keys])


class GlobalSpendModelsApi(ManagementAPIView):
    """The models with the most spend over the last 30 days (LiteLLM's /global/spend/models)."""

    query_serializer = s.GlobalSpendModelsQuery

    def get(self, request):
        data = self.validated(request)
        # Requests refused before a model was known have none: not a model.
        rows = _last_30_days(request_actor(request)).exclude(model="")
        with replica_reads():
            models = selectors.spend_report(rows=rows, group_by=["model"], order_by="-spend", limit=data["limit"])
        return Response([s.model_spend_data(row) for row in models])


class SpendTagsApi(ManagementAPIView):
    """Spend per request tag (LiteLLM's /spend/tags), over [start_date, end_date] when given."""

    query_serializer = s.SpendTagsQuery

    def get(self, request):
        data = self.validated(request)
        rows = selectors.daily_tag_spend_in_range(
            scope=spend_scope(request_actor(request)), start_date=data.get("start_date"), end_date=data.get("end_date")
        )
        with replica_reads():
            tags = selectors.spend_per_tag(rows=rows)
        return Response([s.tag_spend_data(row) for row in tags])


class GlobalSpendTagsApi(ManagementAPIView):
    """Spend per request tag over [start_date, end_date], of some tags (LiteLLM's /global/spend/tags,
    which its UI charts)."""

    query_serializer = s.GlobalSpendTagsQuery

    def get(self, request):
        data = self.validated(request)
        rows = selectors.daily_tag_spend_in_range(
            scope=spend_scope(request_actor(request)),
            start_date=data["start_date"],
            end_date=data["end_date"],
            tags=data["tags"],
        )
        with replica_reads():
            tags = selectors.spend_per_tag(rows=rows)
        return Response({"spend_per_tag": [s.ui_tag_spend_data(row) for row in tags]})


class SpendCalculateApi(ManagementAPIView):
    """What a request costs with the gateway's prices (LiteLLM's /spend/calculate): a model and
    its messages (their prompt tokens, counted as the gateway counts them), or a completion
    answer (its usage). A model without a known price is a 404 in LiteLLM's words ("This model
    isn't mapped yet"), never a cost of 0."""

    input_serializer = s.SpendCalculateInput

    def post(self, request):
        data = self.validated(request)
        model = data["model"]
        if "messages" in data:
            messages = data["messages"]

            def usage_of(upstream_model: str) -> Usage:
                return Usage(prompt_tokens=estimate_prompt_tokens(messages, model=upstream_model), reported=True)
        else:
            usage = usage_from_openai(data["usage"])

            def usage_of(upstream_model: str) -> Usage:
                return usage
        access = model_price_access(request_actor(request))
        deployments = [
            deployment for row in deployment_list_named(model_name=model)
            if (access is None or access.allows(row)) and (deployment := deployment_from_row(row)) is not None
        ]
        cost = calculated_cost(model, usage_of, deployments)
        if cost is None:
            raise NotFoundError(
                f"This model isn't mapped yet. model={model}: no price is known for it (neither a deployment's "
                "own prices nor the price catalog's), so its cost is unknown, not 0.",
                param="model" if "messages" in data else "completion_response.model",
            )
        return Response({"cost": float(cost)})
