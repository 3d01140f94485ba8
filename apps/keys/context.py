"""What the data plane knows about a key: everything needed to authorize a request, in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fnmatch import fnmatchcase

from apps.keys.limits import LimitScope


@dataclass(frozen=True, slots=True)
class KeyContext:
    key_id: int | None
    token_hash: str
    alias: str
    user_id: int | None
    team_id: str | None
    organization_id: str | None
    # What each level that restricts models allows (key, user, team, organization): model
    # names, access-group names and wildcards such as "anthropic/*".
    allowed_models: tuple[frozenset[str], ...]
    expires_at: float | None  # unix time
    blocked_reason: str | None  # why any level is blocked, if it is
    # The levels with limits (rpm, tpm, parallel requests, budgets), key first.
    scopes: tuple[LimitScope, ...] = ()
    # The key's per-model limits: {model name: LimitScope}.
    model_scopes: dict[str, LimitScope] = field(default_factory=dict)
    # The team's per-model rate limits (its model_rpm_limit / model_tpm_limit), counted for the team.
    team_model_scopes: dict[str, LimitScope] = field(default_factory=dict)
    # The team's model aliases ({requested name: model}) and routing tags (added to a request's).
    team_model_aliases: dict[str, str] = field(default_factory=dict)
    team_tags: tuple[str, ...] = ()
    is_master: bool = False
    # Keep the request's messages and answer in its spend log (the key's, else its team's,
    # else the gateway's choice; off by default).
    store_prompts: bool = False
    # The key's spend in its budget period when the context was loaded (LiteLLM's
    # x-litellm-key-spend): as stale as the cached context, never read per request.
    key_spend: Decimal | None = None
    # The key's max budget in force (its temporary increase included: x-litellm-key-max-budget).
    key_max_budget: Decimal | None = None
    # When the context stops being true by itself (a temporary budget increase ends): unix time.
    valid_until: float | None = None
    # The key's model aliases: {name the client sends: model it gets}.
    model_aliases: dict[str, str] = field(default_factory=dict)
    # Request fields every request must carry (LiteLLM's enforced_params; "metadata.x" is nested).
    enforced_params: tuple[str, ...] = ()
    # Added to each spend log: the key's tags, and its metadata.spend_logs_metadata.
    spend_tags: tuple[str, ...] = ()
    spend_logs_metadata: dict | None = None
    # The response cache's settings for this key (its metadata.cache over its team's): enabled, ttl,
    # call_types, namespace (apps.routing.response_cache).
    cache_settings: dict | None = None
    # Guardrails the key and its team require (their `guardrails`; apps.routing.guardrails).
    guardrails: tuple[str, ...] = ()
    # The key's and its team's own logging callbacks (apps.spend.callback_settings.CallbackSpec).
    logging_callbacks: tuple = field(default=(), repr=False)  # their secrets stay out of any repr

    def may_use_model(self, model: str, *, names: tuple[str, ...] = (), access_groups: tuple[str, ...] = ()) -> bool:
        """`names`: the model's other names (provider/upstream of its deployments), which
        wildcards may match; `access_groups`: the groups its deployments belong to."""
        if self.is_master:
            return True
        return all(_allows(allowed, model, names, access_groups) for allowed in self.allowed_models)


def _allows(allowed: frozenset[str], model: str, names: tuple[str, ...], access_groups: tuple[str, ...]) -> bool:
    if model in allowed or any(group in allowed for group in access_groups):
        return True
    return any(
        "*" in pattern and any(fnmatchcase(name, pattern) for name in (model, *names)) for pattern in allowed
    )


MASTER_KEY_CONTEXT = KeyContext(
    key_id=None,
    token_hash="",
    alias="master",
    user_id=None,
    team_id=None,
    organization_id=None,
    allowed_models=(),
    expires_at=None,
    blocked_reason=None,
    is_master=True,
)
