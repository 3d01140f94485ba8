"""The management API's /key routes (LiteLLM's shapes).

A raw key is in the answer of /key/generate and /key/regenerate only: it is stored nowhere,
the database keeps its sha256 (LiteLLM's `token`).
"""

from __future__ import annotations

from django.db import transaction
from rest_framework import exceptions
from rest_framework.response import Response

from apps.core.errors import GatewayError
from apps.customers import selectors as customer_selectors
from apps.keys import selectors, services
from apps.keys import serializers as s
from apps.keys.models import VirtualKey
from apps.management.framework import ManagementAPIView, NotFoundError, model_errors_as_fields, validated_body
from apps.management.inputs import key_logging_values
from apps.management.lookups import organization_or_404, team_or_404, user_or_404
from apps.management.pagination import page_of
from apps.management.permissions import (
    key_budget_check,
    key_check,
    key_default_owner,
    key_default_placement,
    key_placement_check,
    key_regenerate_check,
    key_scope,
    key_update_check,
    request_actor,
    require_user,
)
from apps.teams import selectors as team_selectors
from apps.teams.services import user_get_or_create

KEY_FIELDS = {
    "alias": "key_alias",
    "expires_at": "duration",
    "team": "team_id",
    "organization": "organization_id",
    "user": "user_id",
    "username": "user_id",
}


def key_or_404(ref: str, *, param: str = "key") -> VirtualKey:
    key = selectors.virtual_key_get_by_ref(ref=ref)
    if key is None:
        raise NotFoundError("No such key.", param=param)
    return key


def _owner_for(actor, user_id: str):
    """The user a key is made for. The proxy admin may name a user who does not exist yet (it is
    created, as LiteLLM does); anyone else must name an existing one."""
    if actor.is_proxy_admin:
        with model_errors_as_fields({"username": "user_id"}):
            user, _ = user_get_or_create(user_id=user_id, user_email=None)
        return user
    return user_or_404(user_id=user_id)


def _budget_for(actor, budget_id: str | None, *, organization_id):
    """The budget (LiteLLM's budget_id) of the key's organization a key is held to; None clears it."""
    if not budget_id:
        return None
    key_budget_check(actor, organization_id)
    budget = customer_selectors.budget_get(organization_id=organization_id, budget_id=budget_id)
    if budget is None:
        raise NotFoundError(f"No budget {budget_id!r} in the key's organization.", param="budget_id")
    return budget


def _key_generate(actor, data: dict, *, service_account: bool = False):
    """A new key as the validated body asks; a service account's belongs to its team, no user."""
    require_user(actor)
    team_id, organization_id = data.get("team_id"), data.get("organization_id")
    placement_named = bool(team_id or organization_id)
    if not placement_named:
        team_id, organization_id = key_default_placement(actor)
    team = team_or_404(team_id) if team_id else None
    organization = organization_or_404(organization_id) if organization_id else None
    if service_account:
        user = None
    elif data.get("user_id"):
        user = _owner_for(actor, data["user_id"])
    else:
        user = key_default_owner(actor, team=team, organization=organization, placement_named=placement_named)
    key_placement_check(actor, user=user, team=team, organization=organization)
    values = s.key_values(data)
    key_logging_values(actor, values, stored=[])
    if data.get("budget_id"):
        key_organization_id = team.organization_id if team is not None else getattr(organization, "pk", None)
        values["budget"] = _budget_for(actor, data["budget_id"], organization_id=key_organization_id)
    with model_errors_as_fields(KEY_FIELDS):
        return services.virtual_key_create(
            alias=data.get("key_alias") or "",
            team=team,
            organization=organization,
            user=user,
            expires_at=services.virtual_key_expiry(data.get("duration")),
            issued_by_proxy_admin=actor.is_proxy_admin,
            **values,
        )


class KeyGenerateApi(ManagementAPIView):
    """A new key. The answer's `key` is the only time the key is shown; `token` is its sha256."""

    input_serializer = s.KeyGenerateInput

    def post(self, request):
        key, raw_key = _key_generate(request_actor(request), self.validated(request))
        return Response(s.key_data(key, raw_key=raw_key))


class KeyServiceAccountGenerateApi(ManagementAPIView):
    """A team's key that belongs to no user (LiteLLM's service account): made by whoever may make
    the team's keys for others (its admins)."""

    input_serializer = s.KeyServiceAccountGenerateInput

    def post(self, request):
        key, raw_key = _key_generate(request_actor(request), self.validated(request), service_account=True)
        return Response(s.key_data(key, raw_key=raw_key))


def _key_changes(actor, key: VirtualKey, data: dict) -> dict:
    """The model changes one /key/update (or regenerate) body asks for, checked by the one rule."""
    key_update_check(actor, key, data)
    changes = s.key_values(data)
    key_logging_values(actor, changes, stored=key.logging_callbacks or [])
    if "key_alias" in data:
        changes["alias"] = data["key_alias"] or ""
    if "duration" in data:
        changes["expires_at"] = services.virtual_key_expiry(data["duration"])
    if {"user_id", "team_id", "organization_id"} & set(data):
        changes.update(_placement(actor, key, data))
    team = changes.get("team", key.team)
    organization = changes.get("organization", key.organization)
    organization_id = team.organization_id if team is not None else getattr(organization, "pk", None)
    if "budget_id" in data:
        changes["budget"] = _budget_for(actor, data["budget_id"], organization_id=organization_id)
    elif key.budget is not None and key.budget.organization_id != organization_id:
        raise exceptions.ValidationError(
            {"budget_id": ["The key's budget belongs to its old organization: give budget_id (or null)."]}
        )
    return changes


def _key_update(actor, data: dict) -> VirtualKey:
    """One /key/update body (validated): checked by the one rule, then written."""
    key = key_or_404(data.pop("key"))
    changes = _key_changes(actor, key, data)
    with model_errors_as_fields(KEY_FIELDS):
        return services.virtual_key_update(key=key, by_proxy_admin=actor.is_proxy_admin, **changes)


def _placement(actor, key: VirtualKey, data: dict) -> dict:
    """The key's new user, team and organization, when the request moves it."""
    user, team, organization = key.user, key.team, key.organization
    if "user_id" in data:
        user = _owner_for(actor, data["user_id"]) if data["user_id"] else None
    if "team_id" in data:
        team = team_or_404(data["team_id"]) if data["team_id"] else None
        if team is not None and "organization_id" not in data:
            organization = team.organization
    if "organization_id" in data:
        organization = organization_or_404(data["organization_id"]) if data["organization_id"] else None
    key_placement_check(actor, user=user, team=team, organization=organization)
    return {"user": user, "team": team, "organization": organization}


class KeyUpdateApi(ManagementAPIView):
    """Change a key (`key`: the key or its token); only the fields given change, null clears one."""

    input_serializer = s.KeyUpdateInput

    def post(self, request):
        key = _key_update(request_actor(request), self.validated(request))
        return Response({**s.key_data(key), "key": key.token_hash})  # LiteLLM answers the token as `key`


class KeyBulkUpdateApi(ManagementAPIView):
    """Change several keys at once, each item a /key/update body checked by the same rule. All or
    nothing: an item refused (its 400, 403 or 404, `param` naming it as keys[i]) changes no key."""

    input_serializer = s.KeyBulkUpdateInput

    def post(self, request):
        items = self.validated(request)["keys"]
        actor = request_actor(request)
        bodies = [validated_body(s.KeyUpdateInput, item, param=f"keys[{i}]") for i, item in enumerate(items)]
        seen = set()
        for index, body in enumerate(bodies):
            key = key_or_404(body["key"], param=f"keys[{index}].key")
            if key.pk in seen:
                raise exceptions.ValidationError(
                    {f"keys[{index}].key": ["The same key twice: merge its changes."]}
                )
            seen.add(key.pk)
        updated = []
        # One transaction over the checks and the writes: a later item's refusal undoes the
        # earlier ones (and a user the proxy admin's item made on the way).
        with transaction.atomic():
            for index, (item, body) in enumerate(zip(items, bodies)):
                try:
                    updated.append((item["key"], _key_update(actor, body)))
                except (exceptions.APIException, GatewayError) as error:
                    raise _within_item(error, index) from None
        return Response(
            {
                "total_requested": len(items),
                "successful_updates": [{"key": ref, "key_info": s.key_data(key)} for ref, key in updated],
                "failed_updates": [],
            }
        )


def _within_item(error, index: int):
    """The error of one /key/bulk_update item, its param placed in the item (keys[i].<param>)."""
    if isinstance(error, exceptions.ValidationError):
        return exceptions.ValidationError({f"keys[{index}]": error.detail})
    param = getattr(error, "param", None)
    error.param = f"keys[{index}].{param}" if param else f"keys[{index}]"
    return error


class KeyDeleteApi(ManagementAPIView):
    """Delete keys given as `keys` (keys or tokens) or `key_aliases` (the caller's keys with them)."""

    input_serializer = s.KeyDeleteInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        keys: dict[int, VirtualKey] = {}
        for ref in data.get("keys") or []:
            key = key_or_404(ref, param="keys")
            keys[key.pk] = key
        for alias in data.get("key_aliases") or []:
            # Aliases are not unique across tenants: only the caller's keys are meant.
            matches = list(selectors.virtual_key_list(scope=key_scope(actor), key_alias=alias))
            if not matches:
                raise NotFoundError(f"No key with alias {alias!r}.", param="key_aliases")
            keys.update((k.pk, k) for k in matches)
        for key in keys.values():
            key_check(actor, key, "write")
        services.virtual_key_delete(keys=list(keys.values()))
        return Response({"deleted_keys": [*(data.get("keys") or []), *(data.get("key_aliases") or [])]})


class KeyInfoApi(ManagementAPIView):
    """A key (`key`: the key or its token; without it, the caller's own key)."""

    query_serializer = s.KeyInfoQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        if data.get("key"):
            key = key_or_404(data["key"])
        elif actor.key is not None:
            key = key_or_404(actor.key.token_hash)
        else:
            raise exceptions.ValidationError(
                {"key": ["Required unless the request is made with a virtual key."]}
            )
        key_check(actor, key, "read")
        return Response({"key": key.token_hash, "info": s.key_data(key)})


class KeyListApi(ManagementAPIView):
    """The caller's keys: tokens, or whole keys with return_full_object=true; paged by page and size."""

    query_serializer = s.KeyListQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        require_user(actor)
        filters = {"key_alias": data.get("key_alias"), "key_hash": data.get("key_hash")}
        if data.get("user_id"):
            filters["user_id"] = getattr(team_selectors.user_get(user_id=data["user_id"]), "pk", None)
        if data.get("team_id"):
            filters["team_id"] = getattr(team_selectors.team_get(team_id=data["team_id"]), "pk", None)
        if data.get("organization_id"):
            organization = team_selectors.organization_get(organization_id=data["organization_id"])
            filters["organization_id"] = getattr(organization, "pk", None)
        if any(filters.get(name, "") is None for name in ("user_id", "team_id", "organization_id")):
            keys, total, pages = [], 0, 1  # a filter naming nothing matches no key
        else:
            keys, total, pages = page_of(
                selectors.virtual_key_list(scope=key_scope(actor), **filters),
                page=data["page"],
                size=data["size"],
            )
        full = data["return_full_object"]
        return Response(
            {
                "keys": [s.key_data(k) if full else k.token_hash for k in keys],
                "total_count": total,
                "current_page": data["page"],
                "total_pages": pages,
            }
        )


class KeyRegenerateApi(ManagementAPIView):
    """A new secret for a key (named in the body, or in the path: /key/{key}/regenerate), its
    fields changed on the way as /key/update would: the old secret stops working at once."""

    input_serializer = s.KeyRegenerateInput

    def post(self, request, key: str | None = None):
        data = dict(self.validated(request))
        actor = request_actor(request)
        ref = key or data.pop("key", None)
        data.pop("key", None)
        if not ref:
            raise exceptions.ValidationError({"key": ["Required: the key (or its token) to regenerate."]})
        virtual_key = key_or_404(ref)
        key_regenerate_check(actor, virtual_key)
        with transaction.atomic():
            if data:
                changes = _key_changes(actor, virtual_key, data)
                with model_errors_as_fields(KEY_FIELDS):
                    virtual_key = services.virtual_key_update(
                        key=virtual_key, by_proxy_admin=actor.is_proxy_admin, **changes
                    )
            raw_key = services.virtual_key_issue(key=virtual_key, by_proxy_admin=actor.is_proxy_admin)
        return Response(s.key_data(virtual_key, raw_key=raw_key))


class KeyHealthApi(ManagementAPIView):
    """The calling key's health (LiteLLM's /key/health): a key that authenticates is healthy. Its
    own logging callbacks (LiteLLM's metadata.logging) are listed; they are sent in the background."""

    def post(self, request):
        key = request_actor(request).key
        entries = (key.logging_callbacks or []) if key is not None else []
        callbacks = None
        if entries:
            callbacks = {
                "callbacks": [entry["callback_name"] for entry in entries],
                "status": "healthy",
                "details": "Sent in the background after each request; a failed send is retried, then counted "
                           "in gateway_callback_records_dropped_total on /metrics.",
            }
        return Response({"key": "healthy", "logging_callbacks": callbacks})


class KeyBlockApi(ManagementAPIView):
    """Block a key: it is refused at once, everywhere."""

    input_serializer = s.KeyRefInput
    blocked = True

    def post(self, request):
        data = self.validated(request)
        key = key_or_404(data["key"])
        key_check(request_actor(request), key, "block")
        key = services.virtual_key_set_blocked(key=key, blocked=self.blocked)
        return Response(s.key_data(key))


class KeyUnblockApi(KeyBlockApi):
    """Unblock a key."""

    blocked = False
