"""The admin's playground (/admin/playground/): what the page offers a staff user, the credential
its browser calls /v1 with, and the price of a streamed answer.

The call itself goes through the real /v1 path: the page mints a short-lived credential that
acts as one virtual key (apps.keys.playground), so routing, limits, budgets, logging and spend
are exactly that key's. Who may mint for which key follows apps.management.permissions: a
credential hands the key's use to the caller for minutes, as a new secret would, so it takes
what regenerating the key takes (key_regenerate_check).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

from django.db.models import Q

from apps.keys.models import VirtualKey
from apps.keys.services import (
    PLAYGROUND_KEY_MARK,
    playground_credential_issue,
    virtual_key_playground_get_or_create,
)
from apps.management.admin_scope import admin_organization_ids
from apps.management.framework import Forbidden
from apps.management.permissions import (
    ADMIN,
    MEMBER,
    Actor,
    key_check,
    key_placement_check,
    key_regenerate_check,
    key_scope,
    model_access,
)
from apps.providers.adapters.openai import usage_from_openai
from apps.providers.models import ModelDeployment
from apps.providers.registry import deployment_from_row
from apps.providers.selectors import deployment_list_active
from apps.spend.pricing import price_usage
from apps.teams.models import Organization

KEYS_SHOWN = 200  # the key list's length; a search finds the rest
KEYS_EXAMINED = 2000  # keys checked for one list, at most


class PlaygroundNotFound(Exception):
    """An id that names nothing the staff user sees (404, as the admin's own pages answer)."""


@dataclass(frozen=True)
class PlaygroundCredential:
    credential: str
    expires_at: float
    key: VirtualKey


def playground_models(*, actor: Actor) -> list[str]:
    """The public model names of the active deployments the staff user may use (wildcard names
    are patterns, not something to pick)."""
    access = model_access(actor)
    names = {row.model_name for row in deployment_list_active() if access is None or access.allows(row)}
    return sorted(name for name in names if "*" not in name)


def _may_use(actor: Actor, key: VirtualKey) -> bool:
    try:
        key_regenerate_check(actor, key)
    except Forbidden:
        return False
    return True


def playground_keys(*, actor: Actor, search: str = "", limit: int = KEYS_SHOWN) -> tuple[list[VirtualKey], bool]:
    """The keys the staff user may try in the playground (alias, display or id matching
    `search`), and whether there are more than `limit`. Its own playground keys are offered apart."""
    own = VirtualKey.objects.filter(user=actor.user, **{f"metadata__{PLAYGROUND_KEY_MARK}": True})
    own = own.values_list("pk", flat=True)
    keys = (VirtualKey.objects.filter(key_scope(actor)).exclude(pk__in=list(own))
            .select_related("user", "team", "organization").order_by("alias", "pk"))
    if search:
        match = Q(alias__icontains=search) | Q(key_display__icontains=search)
        if search.isdigit():
            match |= Q(pk=int(search))
        keys = keys.filter(match)
    chosen, more = [], False
    # Checked one by one (rights depend on each key's owner), so only so many are looked at.
    for key in keys[:KEYS_EXAMINED].iterator(chunk_size=limit):
        if _may_use(actor, key):
            if len(chosen) == limit:
                more = True
                break
            chosen.append(key)
    return chosen, more


def playground_key_label(key) -> str:
    """How the playground names a key: its alias, where it belongs, its display form, its id."""
    where = key.team.alias if key.team_id else (key.organization.name if key.organization_id else "no team")
    return f"{key.alias or '(no alias)'} · {where} · {key.key_display} · #{key.pk}"


def playground_organizations(*, actor: Actor) -> list[Organization] | None:
    """Where the staff user's own playground key may be: the organizations it may make keys in
    for itself (None: the proxy admin's key, outside every organization)."""
    if actor.is_proxy_admin:
        return None
    writable = [org for org, role in actor.org_roles.items() if role in (ADMIN, MEMBER)]
    return list(Organization.objects.filter(pk__in=writable).order_by("name"))


def _organization_chosen(actor: Actor, organization_id: str | None) -> Organization | None:
    organizations = playground_organizations(actor=actor)
    if organizations is None:
        return None
    if organization_id:
        chosen = [org for org in organizations if str(org.pk) == str(organization_id)]
        if not chosen:
            raise Forbidden("You may not make keys in this organization.", param="organization_id")
        return chosen[0]
    if len(organizations) == 1:
        return organizations[0]
    if not organizations:
        raise Forbidden("You may not make keys in any organization (viewers only look): pick a key you manage.",
                        param="organization_id")
    raise Forbidden("Name the organization your playground key belongs to.", param="organization_id")


def _seen_in_admin(actor: Actor, key_id: int) -> bool:
    """Does the admin's key list show this key to the staff user (its organizations, any role)?"""
    organizations = admin_organization_ids(actor.user)
    if organizations is None:
        return VirtualKey.objects.filter(pk=key_id).exists()
    in_organizations = Q(organization_id__in=organizations) | Q(team__organization_id__in=organizations)
    return VirtualKey.objects.filter(in_organizations, pk=key_id).exists()


def playground_credential_mint(*, actor: Actor, key_id: int | None = None,
                               organization_id: str | None = None) -> PlaygroundCredential:
    """A credential acting as key `key_id`, or (no key) as the staff user's own playground key,
    made on first use in `organization_id` with the user's own rights and no more. Raises
    PlaygroundNotFound, Forbidden, or redis.RedisError when the credential cannot be stored."""
    user = actor.user
    if key_id is not None:
        key = (VirtualKey.objects.filter(key_scope(actor), pk=key_id)
               .select_related("user", "team", "organization").first())
        if key is None:
            if _seen_in_admin(actor, key_id):
                raise Forbidden("You may look at this key, not use it: the playground acts as a key only for "
                                "those who may change it.", param="key_id")
            raise PlaygroundNotFound(f"No key with id {key_id}.")
        key_regenerate_check(actor, key)
    else:
        organization = _organization_chosen(actor, organization_id)
        key_placement_check(actor, user=user, team=None, organization=organization)
        key = virtual_key_playground_get_or_create(user=user, organization=organization)
        key_check(actor, key, "write")  # still the user's own, inside what it may change
    if key.blocked:
        raise Forbidden("This key is blocked: unblock it to try it.", param="key_id")
    if key.is_expired:
        raise Forbidden("This key has expired.", param="key_id")
    credential, expires_at = playground_credential_issue(key=key, operator=user.get_username())
    return PlaygroundCredential(credential=credential, expires_at=expires_at, key=key)


def _api_base_shown(api_base: str | None) -> str:
    """An upstream address without what may be secret in it (user info, query string)."""
    if not api_base:
        return ""
    parts = urlsplit(api_base)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def playground_result(*, actor: Actor, deployment_id: int, usage: dict | None,
                      started_at: float | None = None) -> dict:
    """What a streamed answer's deployment is and what its usage cost, priced by the function
    that priced its spend log (apps.spend.pricing.price_usage) at the prices in force when it
    started. Raises PlaygroundNotFound for a deployment outside the staff user's reach."""
    access = model_access(actor)
    row = ModelDeployment.objects.filter(pk=deployment_id).first()
    if row is None or (access is not None and not access.allows(row)):
        raise PlaygroundNotFound(f"No deployment with id {deployment_id}.")
    deployment = deployment_from_row(row)
    priced = price_usage(deployment, usage_from_openai(usage or {}), at=started_at)
    return {
        "deployment": {"id": row.pk, "model_name": row.model_name, "provider": row.provider,
                       "upstream_model": row.upstream_model,
                       "api_base": _api_base_shown(deployment.api_base if deployment else row.api_base)},
        "cost": format(priced.cost.normalize(), "f") if priced.cost is not None else None,
        "cost_status": priced.status,
    }


def expiry_iso(expires_at: float) -> str:
    return datetime.fromtimestamp(expires_at, timezone.utc).isoformat()
