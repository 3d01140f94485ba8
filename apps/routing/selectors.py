"""Reads of the routing app. The request path never calls these per request: the policy
is read once per process into apps.routing.selection.policy's cache, deployments into the registry."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user
from django.forms.models import model_to_dict

from apps.keys.master import key_grants_proxy_admin
from apps.keys.models import VirtualKey
from apps.providers.config import GatewayConfig, ModelGroupSpec, RouterSpec
from apps.providers.models import ModelDeployment
from apps.providers.selectors import DeploymentPlanEntry, FieldChange, deployments_config_plan
from apps.routing.models import ModelGroupSettings, RouterSettings
from apps.routing.selection import policy
from apps.routing.selection.policy import RoutingPolicy, routing_policy_build


def routing_policy_get() -> RoutingPolicy:
    router = RouterSettings.objects.order_by("pk").first()
    return routing_policy_build(
        model_to_dict(router) if router is not None else {},
        [model_to_dict(group) for group in ModelGroupSettings.objects.all()],
    )


def deployment_health_list() -> list[ModelDeployment]:
    """Active deployments with their last health check, for GET /health."""
    return list(
        ModelDeployment.objects.filter(is_active=True)
        .only("id", "model_name", "provider", "upstream_model", "api_base", "mode", "health_status",
              "health_checked_at", "health_error", "health_latency_ms", "created_at")
        .order_by("model_name", "id")
    )


def key_is_proxy_admin(*, key_id: int) -> bool:
    """Does this virtual key act as the proxy admin (apps.keys.master.key_grants_proxy_admin)?"""
    key = VirtualKey.objects.select_related("user").filter(pk=key_id).first()
    return key is not None and key_grants_proxy_admin(key)


class _SessionHolder:
    def __init__(self, session) -> None:
        self.session = session


def user_from_session(*, session_key: str):
    """The user an admin session cookie belongs to (anonymous if none), checked as the
    admin checks it: the session exists, is unexpired and matches the password hash."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return get_user(_SessionHolder(store))


def stored_response_get(response_id: str):
    """One stored /v1/responses record (apps.routing.responses_store.ResponseRecord), or None."""
    from apps.routing.models import StoredResponse
    from apps.routing.responses_store import ResponseRecord

    row = StoredResponse.objects.filter(pk=response_id, deleted_at__isnull=True).first()
    if row is None:
        return None
    return ResponseRecord(
        id=row.id, key_hash=row.key_hash, key_id=row.key_id, team_id=row.team_id,
        organization_id=row.organization_id, model=row.model, deployment_id=row.deployment_id,
        native=row.native, previous_response_id=row.previous_response_id, input_items=row.input_items,
        output_items=row.output_items, response=row.response, created_at=row.created_at,
    )


def managed_file_get(file_id: str):
    """One /v1/files record (apps.routing.batch_store.FileRecord), or None (unknown or deleted)."""
    from apps.keys.limits import NANOS_PER_USD
    from apps.routing.batch_store import FileRecord
    from apps.routing.models import ManagedFile

    row = ManagedFile.objects.filter(pk=file_id, deleted_at__isnull=True).first()
    if row is None:
        return None
    return FileRecord(
        id=row.id, key_hash=row.key_hash, key_id=row.key_id, team_id=row.team_id,
        organization_id=row.organization_id, created_at=row.created_at, deployment_id=row.deployment_id,
        purpose=row.purpose, filename=row.filename, bytes=row.bytes, file=row.file, model=row.model,
        endpoint=row.endpoint, request_count=row.request_count,
        max_cost_nanos=int(row.max_cost * NANOS_PER_USD) if row.max_cost is not None else 0, batch_id=row.batch_id,
    )


def managed_batch_get(batch_id: str):
    """One /v1/batches record (apps.routing.batch_store.BatchRecord), or None."""
    from apps.keys.limits import NANOS_PER_USD
    from apps.routing.batch_store import BatchRecord
    from apps.routing.models import ManagedBatch

    row = ManagedBatch.objects.filter(pk=batch_id).first()
    if row is None:
        return None
    return BatchRecord(
        id=row.id, key_hash=row.key_hash, key_id=row.key_id, team_id=row.team_id,
        organization_id=row.organization_id, created_at=row.created_at, user_id=row.user_id,
        deployment_id=row.deployment_id, model=row.model, input_file_id=row.input_file_id, endpoint=row.endpoint,
        reservation_id=row.reservation_id, limit_scopes=row.limit_scopes,
        reserved_nanos=int(row.reserved_cost * NANOS_PER_USD), batch=row.batch,
    )


def _owned_by(queryset, context):
    if context.is_master:
        return queryset
    if context.team_id:
        return queryset.filter(team_id=context.team_id)
    return queryset.filter(team_id__isnull=True, key_hash=context.token_hash)


def managed_files_list(*, context, purpose: str | None, limit: int, after: str | None, order: str) -> dict:
    """The files this key may see, newest first (or oldest with order=asc), as OpenAI lists them."""
    from apps.routing.models import ManagedFile

    queryset = _owned_by(ManagedFile.objects.filter(deleted_at__isnull=True), context)
    if purpose:
        queryset = queryset.filter(purpose=purpose)
    return _page(queryset, "file", limit=limit, after=after, order=order)


def managed_batches_list(*, context, limit: int, after: str | None) -> dict:
    """The batches this key may see, newest first, each as the poller last saw it upstream."""
    from apps.routing.models import ManagedBatch

    page = _page(_owned_by(ManagedBatch.objects.all(), context), "batch", limit=limit, after=after, order="desc")
    return page


def _page(queryset, field: str, *, limit: int, after: str | None, order: str) -> dict:
    ordering = ("created_at", "id") if order == "asc" else ("-created_at", "-id")
    queryset = queryset.order_by(*ordering)
    if after:
        anchor = queryset.filter(pk=after).values_list("created_at", flat=True).first()
        if anchor is None:
            queryset = queryset.none()
        elif order == "asc":
            queryset = queryset.filter(created_at__gte=anchor).exclude(pk=after).exclude(created_at=anchor, id__lt=after)
        else:
            queryset = queryset.filter(created_at__lte=anchor).exclude(pk=after).exclude(created_at=anchor, id__gt=after)
    rows = list(queryset[: limit + 1])
    # A batch as OpenAI names it: its endpoint in OpenAI's spelling (Azure's has no /v1).
    data = [{**row.batch, "endpoint": row.endpoint} if field == "batch" else row.file for row in rows[:limit]]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": len(rows) > limit}


# --- config.yaml: what loading a file would change (the admin's import previews it) ----------

GROUP_CONFIG_FIELDS = (
    "routing_strategy", "num_retries", "retry_policy", "timeout", "stream_timeout", "allowed_fails",
    "cooldown_time", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks",
)


def router_settings_values(spec: RouterSpec) -> dict:
    """The router-wide row as a file with router settings sets it: every value, the default where
    the file says nothing."""
    def _or(value, default):
        return default if value is None else value

    return {
        "routing_strategy": spec.routing_strategy,
        "routing_strategy_args": spec.routing_strategy_args,
        "num_retries": _or(spec.num_retries, policy.DEFAULT_NUM_RETRIES),
        "retry_policy": spec.retry_policy,
        "retry_after": spec.retry_after,
        "timeout": spec.timeout,
        "stream_timeout": spec.stream_timeout,
        "allowed_fails": _or(spec.allowed_fails, policy.DEFAULT_ALLOWED_FAILS),
        "allowed_fails_policy": spec.allowed_fails_policy,
        "cooldown_time": _or(spec.cooldown_time, policy.DEFAULT_COOLDOWN_SECONDS),
        "disable_cooldowns": spec.disable_cooldowns,
        "default_fallbacks": spec.default_fallbacks,
        "model_group_alias": spec.model_group_alias,
        "managed_by_config": True,
    }


def model_group_settings_values(group: ModelGroupSpec) -> dict:
    return {**{name: getattr(group, name) for name in GROUP_CONFIG_FIELDS}, "managed_by_config": True}


@dataclass
class SettingsPlanEntry:
    """What a file does to the router-wide settings or to one model group's: create, update,
    unchanged or remove (a group the file set before and no longer lists)."""

    action: str
    name: str
    changes: list[FieldChange] = field(default_factory=list)


def _changes(row, values: dict) -> list[FieldChange]:
    return [FieldChange(name, getattr(row, name), value) for name, value in values.items()
            if getattr(row, name) != value]


@dataclass
class GatewayConfigPlan:
    """Everything loading a config file changes: its deployments, the router settings (None: the
    file has none, they are left as they are) and the model groups' settings."""

    deployments: list[DeploymentPlanEntry]
    router: SettingsPlanEntry | None
    groups: list[SettingsPlanEntry]

    @property
    def has_changes(self) -> bool:
        return any(entry.action != "unchanged" for entry in (*self.deployments, *self.groups,
                                                               *([self.router] if self.router else [])))

    def fingerprint(self) -> str:
        """A digest of every planned change, old and new values included: equal digests, equal plans
        (an apply checks the plan it is about to carry out against the one the operator saw)."""
        def entry(item) -> list:
            name = getattr(item, "config_id", None) or getattr(item, "name", "")
            return [item.action, name, [[c.name, repr(c.old), repr(c.new)] for c in item.changes]]

        document = [[entry(d) for d in self.deployments], entry(self.router) if self.router else None,
                    [entry(g) for g in self.groups]]
        return hashlib.sha256(json.dumps(document, default=repr).encode()).hexdigest()


def gateway_config_plan(*, config: GatewayConfig, for_update: bool = False) -> GatewayConfigPlan:
    """What routing.services.gateway_config_apply would change with this file (`for_update`: lock the
    rows, inside its transaction). The preview of the admin's import."""
    deployments = deployments_config_plan(config=config, for_update=for_update)
    spec = config.router
    if not spec.present:
        return GatewayConfigPlan(deployments, None, [])
    routers = RouterSettings.objects.order_by("pk")
    groups = ModelGroupSettings.objects.all()
    if for_update:
        routers, groups = routers.select_for_update(), groups.select_for_update()

    def entry(name: str, row, blank, values: dict) -> SettingsPlanEntry:
        changes = _changes(row or blank, values)  # a new row: compared with the model's defaults
        action = "create" if row is None else ("update" if changes else "unchanged")
        return SettingsPlanEntry(action, name, changes)

    router = entry("router settings", routers.first(), RouterSettings(), router_settings_values(spec))
    existing = {group.model_name: group for group in groups}
    group_plan = [entry(group.model_name, existing.pop(group.model_name, None),
                        ModelGroupSettings(model_name=group.model_name), model_group_settings_values(group))
                  for group in spec.groups]
    group_plan += [SettingsPlanEntry("remove", row.model_name)
                   for row in existing.values() if row.managed_by_config]
    return GatewayConfigPlan(deployments, router, group_plan)
