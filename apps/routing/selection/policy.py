"""The router's settings as the request path reads them.

`RouterSettings` and `ModelGroupSettings` (the database, edited in the admin or loaded
from config.yaml) become one immutable `RoutingPolicy` per process: loaded once,
replaced after an invalidation (kind "router_settings", published when either model
is saved), so a request never queries the database for them.

This module also names what the config file and the admin may say: strategy names
and LiteLLM's per-error-class policy keys.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from apps.core import invalidation
from apps.core.cache import SingleFlightCache
from apps.core.db import db_call

KIND_ROUTER_SETTINGS = "router_settings"
POLICY_TTL_SECONDS = 300.0  # only a backstop for a missed invalidation

# --- strategies (LiteLLM's names) -------------------------------------------------------------

SIMPLE_SHUFFLE = "simple-shuffle"
LEAST_BUSY = "least-busy"
USAGE_BASED = "usage-based-routing"
LATENCY_BASED = "latency-based-routing"
COST_BASED = "cost-based-routing"
ROUTING_STRATEGIES = (SIMPLE_SHUFFLE, LEAST_BUSY, USAGE_BASED, LATENCY_BASED, COST_BASED)
# Other names LiteLLM accepts for the same strategies.
STRATEGY_SYNONYMS = {"usage-based-routing-v2": USAGE_BASED}


def strategy_name(value: str) -> str | None:
    """The strategy a config value names, or None if it names none."""
    value = STRATEGY_SYNONYMS.get(value, value)
    return value if value in ROUTING_STRATEGIES else None


# --- error classes ------------------------------------------------------------------------------


class ErrorClass(enum.Enum):
    BAD_REQUEST = "bad_request"  # the client's request is wrong: never retried
    CONTEXT_WINDOW = "context_window"  # a 400 saying the prompt is too long
    CONTENT_POLICY = "content_policy"  # a 400 saying the content was refused
    AUTHENTICATION = "authentication"  # 401/403 from the upstream: this deployment's credentials
    NOT_FOUND = "not_found"  # 404 from the upstream: this deployment's model name
    UNSUPPORTED = "unsupported"  # a parameter or operation this deployment's provider lacks (the gateway's 400)
    RATE_LIMIT = "rate_limit"  # 429
    TIMEOUT = "timeout"  # 408, or no answer in time
    SERVER = "server"  # 5xx, a connection that failed or broke, an unreadable answer


# LiteLLM's retry_policy and allowed_fails_policy keys.
RETRY_POLICY_KEYS = {
    "BadRequestErrorRetries": ErrorClass.BAD_REQUEST,
    "AuthenticationErrorRetries": ErrorClass.AUTHENTICATION,
    "NotFoundErrorRetries": ErrorClass.NOT_FOUND,
    "TimeoutErrorRetries": ErrorClass.TIMEOUT,
    "RateLimitErrorRetries": ErrorClass.RATE_LIMIT,
    "ContentPolicyViolationErrorRetries": ErrorClass.CONTENT_POLICY,
    "InternalServerErrorRetries": ErrorClass.SERVER,
}
ALLOWED_FAILS_POLICY_KEYS = {
    key.replace("Retries", "AllowedFails"): error_class for key, error_class in RETRY_POLICY_KEYS.items()
}
# The client's mistakes are the same on every deployment: retrying them only repeats them.
NEVER_RETRIED = frozenset({ErrorClass.BAD_REQUEST, ErrorClass.CONTEXT_WINDOW, ErrorClass.CONTENT_POLICY})
# Failures that say nothing about a deployment's health: they never count towards a cooldown.
NOT_THE_DEPLOYMENTS_FAULT = NEVER_RETRIED | {ErrorClass.UNSUPPORTED}
# Failures of that deployment alone: another deployment may serve, the same one never will.
DEPLOYMENT_SPECIFIC = frozenset({ErrorClass.AUTHENTICATION, ErrorClass.NOT_FOUND, ErrorClass.UNSUPPORTED})

# --- defaults (LiteLLM's, where it has one) -----------------------------------------------------

DEFAULT_NUM_RETRIES = 2
DEFAULT_ALLOWED_FAILS = 3
DEFAULT_COOLDOWN_SECONDS = 5.0
# latency-based-routing: deployments within this fraction of the fastest share the load.
DEFAULT_LATENCY_BUFFER = 0.1
# Longest wait before a retry that the gateway accepts (Retry-After above it: fail over instead).
MAX_RETRY_WAIT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    """How one model group is routed; the router-wide values where the group sets none."""

    strategy: str = SIMPLE_SHUFFLE
    num_retries: int = DEFAULT_NUM_RETRIES
    retries_by_class: dict = field(default_factory=dict)  # ErrorClass -> retries
    allowed_fails: int = DEFAULT_ALLOWED_FAILS
    allowed_fails_by_class: dict = field(default_factory=dict)  # ErrorClass -> allowed fails
    cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS
    cooldowns_enabled: bool = True
    timeout: float | None = None  # seconds for a whole answer; None: GATEWAY_UPSTREAM_TIMEOUT
    stream_timeout: float | None = None  # seconds to a stream's first token; None: no limit of its own
    retry_after: float = 0.0  # the least wait before retrying the same deployment
    latency_buffer: float = DEFAULT_LATENCY_BUFFER
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()
    content_policy_fallbacks: tuple[str, ...] = ()
    cache_enabled: bool | None = None  # the response cache for this group (None: the gateway's choice)
    cache_ttl: float | None = None
    guardrails: tuple[str, ...] = ()  # guardrails every request to the group goes through

    def retries_for(self, error_class: ErrorClass) -> int:
        if error_class in NEVER_RETRIED:
            return 0
        return self.retries_by_class.get(error_class, self.num_retries)

    def allowed_fails_for(self, error_class: ErrorClass) -> int:
        return self.allowed_fails_by_class.get(error_class, self.allowed_fails)


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    default: GroupPolicy = GroupPolicy()
    groups: dict = field(default_factory=dict)  # model group -> GroupPolicy
    aliases: dict = field(default_factory=dict)  # alias -> model group
    hidden_aliases: frozenset = frozenset()  # aliases not listed by /v1/models
    default_fallbacks: tuple[str, ...] = ()  # for groups with no fallbacks of their own

    def for_group(self, name: str) -> GroupPolicy:
        return self.groups.get(name, self.default)


def _retries_by_class(policy: dict, keys: dict) -> dict:
    return {keys[name]: int(value) for name, value in (policy or {}).items() if name in keys and value is not None}


def routing_policy_build(router: dict, groups: list[dict]) -> RoutingPolicy:
    """A policy from RouterSettings' values and each ModelGroupSettings' values (dicts of
    their fields; None or empty in a group means "as the router")."""
    strategy_args = router.get("routing_strategy_args") or {}
    default = GroupPolicy(
        strategy=strategy_name(router.get("routing_strategy") or SIMPLE_SHUFFLE) or SIMPLE_SHUFFLE,
        num_retries=_or(router.get("num_retries"), DEFAULT_NUM_RETRIES),
        retries_by_class=_retries_by_class(router.get("retry_policy"), RETRY_POLICY_KEYS),
        allowed_fails=_or(router.get("allowed_fails"), DEFAULT_ALLOWED_FAILS),
        allowed_fails_by_class=_retries_by_class(router.get("allowed_fails_policy"), ALLOWED_FAILS_POLICY_KEYS),
        cooldown_seconds=float(_or(router.get("cooldown_time"), DEFAULT_COOLDOWN_SECONDS)),
        cooldowns_enabled=not router.get("disable_cooldowns"),
        timeout=router.get("timeout"),
        stream_timeout=router.get("stream_timeout"),
        retry_after=float(router.get("retry_after") or 0),
        latency_buffer=float(_or(strategy_args.get("lowest_latency_buffer"), DEFAULT_LATENCY_BUFFER)),
    )
    by_group = {}
    for group in groups:
        retries = dict(default.retries_by_class)
        retries.update(_retries_by_class(group.get("retry_policy"), RETRY_POLICY_KEYS))
        by_group[group["model_name"]] = GroupPolicy(
            strategy=strategy_name(group.get("routing_strategy") or "") or default.strategy,
            num_retries=_or(group.get("num_retries"), default.num_retries),
            retries_by_class=retries,
            allowed_fails=_or(group.get("allowed_fails"), default.allowed_fails),
            allowed_fails_by_class=default.allowed_fails_by_class,
            cooldown_seconds=float(_or(group.get("cooldown_time"), default.cooldown_seconds)),
            cooldowns_enabled=default.cooldowns_enabled,
            timeout=_or(group.get("timeout"), default.timeout),
            stream_timeout=_or(group.get("stream_timeout"), default.stream_timeout),
            retry_after=default.retry_after,
            latency_buffer=default.latency_buffer,
            fallbacks=tuple(group.get("fallbacks") or ()),
            context_window_fallbacks=tuple(group.get("context_window_fallbacks") or ()),
            content_policy_fallbacks=tuple(group.get("content_policy_fallbacks") or ()),
            cache_enabled=group.get("cache_enabled"),
            cache_ttl=group.get("cache_ttl"),
            guardrails=tuple(group.get("guardrails") or ()),
        )
    aliases, hidden = {}, set()
    for alias, target in (router.get("model_group_alias") or {}).items():
        if isinstance(target, dict):
            aliases[alias] = target["model"]
            if target.get("hidden"):
                hidden.add(alias)
        else:
            aliases[alias] = target
    return RoutingPolicy(
        default=default,
        groups=by_group,
        aliases=aliases,
        hidden_aliases=frozenset(hidden),
        default_fallbacks=tuple(router.get("default_fallbacks") or ()),
    )


def _or(value, default):
    return default if value is None else value


class RoutingPolicyCache:
    """The process's RoutingPolicy: loaded on first use, reloaded after an invalidation."""

    def __init__(self) -> None:
        self._cache: SingleFlightCache[RoutingPolicy] = SingleFlightCache(
            self._load, ttl=lambda policy: POLICY_TTL_SECONDS
        )

    @staticmethod
    async def _load(_key) -> RoutingPolicy:
        from apps.routing.selectors import routing_policy_get  # selectors import this module's builders

        return await db_call(routing_policy_get)

    async def get(self) -> RoutingPolicy:
        return await self._cache.get(None)

    def invalidate(self) -> None:
        self._cache.invalidate()

    def handle_message(self, message: dict) -> None:
        # Also on "deployments": that is the kind every process applies after a Redis
        # reconnect (apps.core.invalidation.apply_everything), when messages may be lost.
        if message.get("kind") in (KIND_ROUTER_SETTINGS, invalidation.KIND_DEPLOYMENTS):
            self.invalidate()


routing_policy_cache = RoutingPolicyCache()
invalidation.register_handler(routing_policy_cache.handle_message)
