from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

from django.utils import timezone

from apps.keys.context import KeyContext
from apps.keys.limits import LimitScope, usd_to_nanos
from apps.keys.master import prompts_stored_by_default
from apps.keys.models import VirtualKey
from apps.keys.services import virtual_key_hash
from apps.spend.callback_settings import callback_specs
from apps.teams.models import LimitsMixin, Organization, Team, TeamMembership, UserLimits


def _limit_scope(kind: str, entity_id, entity: LimitsMixin, now: float) -> LimitScope | None:
    """The entity's limits, or None when it has none (nothing to count for it)."""
    if not (entity.rpm_limit or entity.tpm_limit or entity.max_parallel_requests
            or entity.max_budget is not None or entity.soft_budget is not None):
        return None
    scope = LimitScope(
        kind=kind,
        id=str(entity_id),
        rpm=entity.rpm_limit,
        tpm=entity.tpm_limit,
        parallel=entity.max_parallel_requests,
        budget_nanos=usd_to_nanos(entity.max_budget),
        soft_budget_nanos=usd_to_nanos(entity.soft_budget),
        budget_duration=entity.budget_duration,
        budget_anchor=entity.budget_anchor.timestamp(),
        db_spend_nanos=usd_to_nanos(entity.spend) or 0,
    )
    # The database's spend seeds a lost counter only within the period it belongs to.
    if entity.budget_duration:
        start = entity.budget_period_start
        db_period = str(int(start.timestamp())) if start else "none"
    else:
        db_period = "all"
    return LimitScope(**{**_as_dict(scope), "db_period": db_period})


_LIMIT_NAMES = ("rpm_limit", "tpm_limit", "max_parallel_requests", "max_budget", "soft_budget", "budget_duration")


def _key_limits(key: VirtualKey, now) -> SimpleNamespace:
    """The key's own limits as they stand: its temporary budget increase while it lasts, and its
    budget tier's limits (LiteLLM's budget_id) wherever the key sets none itself."""
    values = {name: getattr(key, name) for name in (*_LIMIT_NAMES, "budget_anchor", "spend",
                                                       "budget_period_start", "blocked", "models")}
    values["max_budget"] = key.effective_max_budget(now)
    budget = key.budget
    if budget is not None:
        for name in _LIMIT_NAMES:
            if values[name] in (None, "") and getattr(budget, name) not in (None, ""):
                values[name] = getattr(budget, name)
    return SimpleNamespace(**values)


def _model_budget(entry) -> tuple[Decimal | None, str | None]:
    """A model_max_budget entry: a number (USD) or LiteLLM's {"budget_limit", "time_period"}."""
    if isinstance(entry, dict):
        limit = entry.get("budget_limit")
        return (None if limit is None else Decimal(str(limit))), entry.get("time_period") or None
    return Decimal(str(entry)), None


def _model_scopes(key: VirtualKey) -> dict[str, LimitScope]:
    """The key's per-model limits. Their spend lives only in the limiter's counters."""
    budgets, rpm, tpm = key.model_max_budget or {}, key.model_rpm_limit or {}, key.model_tpm_limit or {}
    scopes = {}
    for model in {*budgets, *rpm, *tpm}:
        limit, period = _model_budget(budgets[model]) if model in budgets else (None, None)
        scopes[model] = LimitScope(
            kind="key-model",
            id=f"{key.pk}:{model}",
            rpm=rpm.get(model),
            tpm=tpm.get(model),
            budget_nanos=usd_to_nanos(limit),
            budget_duration=period or key.budget_duration,
            budget_anchor=key.budget_anchor.timestamp(),
        )
    return scopes


def _team_model_scopes(team) -> dict[str, LimitScope]:
    """The team's per-model rate limits, counted for the whole team (every key and member of it)."""
    if team is None:
        return {}
    rpm, tpm = team.model_rpm_limit or {}, team.model_tpm_limit or {}
    return {
        model: LimitScope(kind="team-model", id=f"{team.pk}:{model}", rpm=rpm.get(model), tpm=tpm.get(model))
        for model in {*rpm, *tpm}
    }


def team_member_scope(team, user_id, membership: dict | None) -> LimitScope | None:
    """The member's limits within the team, counted per (team, user): its own (max_budget_in_team,
    rpm_limit, tpm_limit), else the team's team_member_*."""
    if team is None or user_id is None:
        return None
    membership = membership or {}
    own = {name: membership.get(name) for name in ("max_budget", "rpm_limit", "tpm_limit")}
    budget = own["max_budget"] if own["max_budget"] is not None else team.team_member_budget
    rpm = own["rpm_limit"] if own["rpm_limit"] is not None else team.team_member_rpm_limit
    tpm = own["tpm_limit"] if own["tpm_limit"] is not None else team.team_member_tpm_limit
    if budget is None and not rpm and not tpm:
        return None
    period_start = membership.get("budget_period_start")
    return LimitScope(
        kind="team-member",
        id=f"{team.pk}:{user_id}",
        rpm=rpm,
        tpm=tpm,
        budget_nanos=usd_to_nanos(budget),
        budget_duration=team.team_member_budget_duration,
        budget_anchor=team.budget_anchor.timestamp(),
        db_spend_nanos=usd_to_nanos(membership.get("spend")) or 0,
        db_period=(str(int(period_start.timestamp())) if period_start else "none")
        if team.team_member_budget_duration else "all",
    )


def _team_membership_spend(team, user_id) -> dict | None:
    """The member's row in the key's team: its spend and its own limits (one query on a cache miss)."""
    if team is None or user_id is None:
        return None
    return TeamMembership.objects.filter(team=team, user_id=user_id).values(
        "spend", "budget_period_start", "max_budget", "rpm_limit", "tpm_limit", "models"
    ).first()


def _as_dict(scope: LimitScope) -> dict:
    return {name: getattr(scope, name) for name in LimitScope.__slots__}


def key_context_get(token_hash: str) -> KeyContext | None:
    """The whole authorization context of a key in one query (the data plane's cache miss)."""
    key = (
        VirtualKey.objects.select_related(
            "team", "organization", "team__organization", "user__gateway_limits", "budget"
        )
        .filter(token_hash=token_hash)
        .first()
    )
    if key is None:
        return None
    team = key.team
    organization = key.organization or (team.organization if team else None)
    user_limits = None
    if key.user_id is not None:
        try:
            user_limits = key.user.gateway_limits
        except UserLimits.DoesNotExist:
            user_limits = None
    return _context(key=key, user_id=key.user_id, user_limits=user_limits, team=team, organization=organization,
                    token_hash=key.token_hash, alias=key.alias,
                    membership=_team_membership_spend(team, key.user_id))


def _context(*, key, user_id, user_limits, team, organization, token_hash: str, alias: str,
             membership: dict | None = None) -> KeyContext:
    now = time.time()
    key_limits = _key_limits(key, timezone.now()) if key is not None else None
    levels = [("key", getattr(key, "pk", None), key_limits), ("user", user_id, user_limits),
              ("team", getattr(team, "pk", None), team),
              ("organization", getattr(organization, "pk", None), organization)]
    levels = [(kind, entity_id, entity) for kind, entity_id, entity in levels if entity is not None]
    blocked_reason = None
    for kind, _, entity in levels:
        if entity.blocked:
            blocked_reason = "This key is blocked." if kind == "key" else f"The key's {kind} is blocked."
            break
    return KeyContext(
        key_id=getattr(key, "pk", None),
        token_hash=token_hash,
        alias=alias,
        user_id=user_id,
        team_id=str(team.pk) if team else None,
        organization_id=str(organization.pk) if organization else None,
        allowed_models=tuple(frozenset(entity.models) for _, _, entity in levels if entity.models)
        + tuple(frozenset(m) for m in ((membership or {}).get("models"),) if m),  # the member's, in the team
        expires_at=key.expires_at.timestamp() if key is not None and key.expires_at else None,
        blocked_reason=blocked_reason,
        scopes=tuple(s for kind, entity_id, entity in levels if (s := _limit_scope(kind, entity_id, entity, now)))
        + tuple(s for s in (team_member_scope(team, user_id, membership),) if s is not None),
        model_scopes=_model_scopes(key) if key is not None else {},
        team_model_scopes=_team_model_scopes(team),
        team_model_aliases=dict(team.model_aliases) if team is not None else {},
        team_tags=tuple(team.tags) if team is not None else (),
        store_prompts=_store_prompts(key, team),
        cache_settings=_cache_settings(key, team),
        guardrails=_guardrails(key, team),
        logging_callbacks=(callback_specs(f"key:{key.pk}", key.logging_callbacks) if key is not None else ())
        + (callback_specs(f"team:{team.pk}", team.logging_callbacks) if team is not None else ()),
        key_spend=getattr(key, "spend", None),
        **(_key_request_fields(key, key_limits) if key is not None else {}),
    )


def _key_request_fields(key: VirtualKey, key_limits) -> dict:
    """What the key adds to its requests and their spend logs, and how long its budget holds."""
    expiry = key.temp_budget_expiry
    if expiry is not None and (not key.temp_budget_increase or expiry <= timezone.now()):
        expiry = None  # nothing left to fall back from
    spend_logs_metadata = (key.metadata or {}).get("spend_logs_metadata")
    return {
        "key_max_budget": key_limits.max_budget,
        "valid_until": expiry.timestamp() if expiry is not None else None,
        "model_aliases": dict(key.aliases or {}),
        "enforced_params": tuple(key.enforced_params or ()),
        "spend_tags": tuple(key.tags or ()),
        "spend_logs_metadata": spend_logs_metadata if isinstance(spend_logs_metadata, dict) else None,
    }


def _guardrails(key, team) -> tuple[str, ...]:
    """The guardrails the team (its organization's admins set them) and the key require."""
    names = [*(getattr(team, "guardrails", None) or ()), *(getattr(key, "guardrails", None) or ())]
    return tuple(dict.fromkeys(name for name in names if isinstance(name, str)))


def _cache_settings(key, team) -> dict | None:
    """The response cache's settings: the team's metadata.cache, the key's over it."""
    settings_ = {}
    for entity in (team, key):
        own = (getattr(entity, "metadata", None) or {}).get("cache")
        if isinstance(own, dict):
            settings_.update({k: v for k, v in own.items() if k in ("enabled", "ttl", "call_types")})
    return settings_ or None


def _store_prompts(key, team) -> bool:
    for choice in (getattr(key, "store_prompts", None), getattr(team, "store_prompts", None)):
        if choice is not None:
            return choice
    return prompts_stored_by_default()


def jwt_context_get(identity: str) -> KeyContext | None:
    """The context of a JWT's identity ("subject, team id, organization id"): the user (if the
    gateway knows it), the team and organization named by the claims; None if a named team or
    organization does not exist or they do not belong together."""
    import uuid

    from django.contrib.auth import get_user_model

    subject, team_id, organization_id = identity.split("\x1f")
    team = organization = None
    try:
        if team_id:
            team = Team.objects.select_related("organization").filter(pk=uuid.UUID(team_id)).first()
            if team is None:
                return None
        if organization_id:
            organization = Organization.objects.filter(pk=uuid.UUID(organization_id)).first()
            if organization is None or (team is not None and team.organization_id != organization.pk):
                return None
    except ValueError:
        return None
    organization = organization or (team.organization if team else None)
    user = get_user_model().objects.filter(username=subject).select_related("gateway_limits").first()
    user_limits = None
    if user is not None:
        try:
            user_limits = user.gateway_limits
        except UserLimits.DoesNotExist:
            pass
    user_id = user.pk if user else None
    return _context(key=None, user_id=user_id, user_limits=user_limits, team=team,
                    organization=organization, token_hash=f"jwt:{subject}", alias=f"jwt:{subject}",
                    membership=_team_membership_spend(team, user_id))


def virtual_key_get_by_raw(raw_key: str) -> VirtualKey | None:
    return VirtualKey.objects.filter(token_hash=virtual_key_hash(raw_key)).first()


# --- the management API -------------------------------------------------------------------


def virtual_key_get_for_auth(*, raw_key: str) -> VirtualKey | None:
    """The key a management API caller sent, with its user (one query)."""
    return VirtualKey.objects.select_related("user").filter(token_hash=virtual_key_hash(raw_key)).first()


def virtual_key_get_by_ref(*, ref: str) -> VirtualKey | None:
    """A key by LiteLLM's `key` parameter: the raw key or its sha256 (the `token`)."""
    return (
        VirtualKey.objects.select_related("user", "team", "organization")
        .filter(token_hash__in={ref, virtual_key_hash(ref)})
        .first()
    )


def virtual_key_list(
    *,
    scope,
    user_id: int | None = None,
    team_id=None,
    organization_id=None,
    key_alias: str | None = None,
    key_hash: str | None = None,
):
    """Keys within a caller's scope (a Q), newest first, optionally filtered."""
    keys = VirtualKey.objects.filter(scope).select_related("user", "team", "organization")
    if user_id is not None:
        keys = keys.filter(user_id=user_id)
    if team_id is not None:
        keys = keys.filter(team_id=team_id)
    if organization_id is not None:
        keys = keys.filter(organization_id=organization_id)
    if key_alias:
        keys = keys.filter(alias=key_alias)
    if key_hash:
        keys = keys.filter(token_hash=key_hash)
    return keys.order_by("-created_at", "-pk")
