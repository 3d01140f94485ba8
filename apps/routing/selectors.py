"""Reads of the routing app. The request path never calls these per request: the policy
is read once per process into apps.routing.selection.policy's cache, deployments into the registry."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user
from django.forms.models import model_to_dict

from apps.keys.master import key_grants_proxy_admin
from apps.keys.models import VirtualKey
from apps.providers.models import ModelDeployment
from apps.routing.models import ModelGroupSettings, RouterSettings
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


def stored_response_get(*, response_id: str):
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
