"""Choosing deployments for a request, and failing over until one answers.

A request names a model group (or an alias of one, or a name a wildcard group such as
`openai/*` passes through). Within the group, the deployments that may take it are
those its key may reach, carrying one of its tags, with a context window large enough
for its prompt, not cooling down and not at their rpm/tpm capacity; the group's
strategy picks one. A failure is classified (apps.routing.selection.policy.ErrorClass): it
counts towards the deployment's cooldown, may be retried (on another deployment when
one is free, else on the same after a backoff), and once the group is exhausted the
request moves to the group's fallbacks.

Shared state (cooldowns, counters) lives in apps.routing.selection.deployment_state; settings in
apps.routing.selection.policy. Nothing here reads the database.

The router knows no provider or client format: the caller hands it `call` (one attempt on
one deployment) and gets back the first answer; the hold on the answering deployment stays
in `RouteProgress`, which the caller settles when the request ends (after its stream).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import functools
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.conf import settings

from apps.core.errors import GatewayError, invalid_request, not_found, permission_denied
from apps.core.hot_settings import setting
from apps.keys.context import KeyContext
from apps.keys.limits import LimitScope
from apps.providers.adapters.base import Operation
from apps.providers.registry import Deployment, deployment_registry
from apps.routing.metrics import cooldowns_total
from apps.routing.selection import policy as routing
from apps.routing.selection.deployment_state import DeploymentLoad, deployment_state
from apps.routing.selection.policy import ErrorClass, GroupPolicy, RoutingPolicy, routing_policy_cache
from apps.routing.selection.strategies import deployment_pick, strategy_needs
from apps.spend.pricing import prices_in_force
from apps.spend.tokens import request_prompt_tokens

logger = logging.getLogger(__name__)

MAX_COOLDOWN_SECONDS = 3600.0  # however long an upstream's Retry-After
DEFAULT_TAG = "default"  # deployments carrying it serve requests that send no tags


# --- access --------------------------------------------------------------------------------


def usable_deployments(group: list[Deployment], context: KeyContext) -> list[Deployment]:
    """The group's deployments this key may reach: shared ones, its organization's own and its
    team's own."""
    if context.is_master:
        return group
    return [
        d for d in group
        if (d.organization_id is None or d.organization_id == context.organization_id)
        and (d.team_id is None or d.team_id == context.team_id)
    ]


@functools.lru_cache(maxsize=1024)
def _team_model_scope(team_id: str, model: str, rpm: int | None, tpm: int | None) -> LimitScope:
    return LimitScope(kind="team-model", id=f"{team_id}:{model}", rpm=rpm, tpm=tpm)


def team_model_scopes(name: str, deployments: list[Deployment], team_id: str | None) -> tuple[LimitScope, ...]:
    """The limits of the key's team on the group's deployments of that team (LiteLLM's
    team_model_rpm_limit and team_model_tpm_limit), counted per team and model name; the
    strictest where the team's deployments of one name differ."""
    if team_id is None:
        return ()
    rpm = tpm = None
    limited = False
    for d in deployments:
        if d.team_id == team_id and (d.team_rpm_limit is not None or d.team_tpm_limit is not None):
            rpm, tpm, limited = _strictest(rpm, d.team_rpm_limit), _strictest(tpm, d.team_tpm_limit), True
    return (_team_model_scope(team_id, name, rpm, tpm),) if limited else ()


def _strictest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def may_use_group(context: KeyContext, model: str, group: list[Deployment]) -> bool:
    return context.may_use_model(
        model,
        names=tuple({f"{d.provider}/{d.upstream_model}" for d in group}),
        access_groups=tuple({g for d in group for g in d.access_groups}),
    )


# --- model groups --------------------------------------------------------------------------


@dataclass(slots=True)
class ModelGroup:
    name: str  # the group's own name: "gpt-4o", or a wildcard such as "openai/*"
    deployments: list[Deployment]
    policy: GroupPolicy
    # Limits the group adds to the key's levels: its team deployments' team limits.
    limit_scopes: tuple[LimitScope, ...] = ()


@functools.lru_cache(maxsize=256)
def _wildcard_regex(pattern: str) -> re.Pattern:
    first, *rest = (re.escape(part) for part in pattern.split("*"))
    return re.compile(first + "(.*)" + ".*".join(rest) + "$", re.DOTALL)


def _wildcard_match(pattern: str, model: str) -> str | None:
    """What the (first) `*` stands for when `model` matches `pattern`, else None."""
    match = _wildcard_regex(pattern).match(model)
    return match.group(1) if match else None


def _passed_through(deployment: Deployment, matched: str) -> Deployment:
    """A wildcard deployment serving one concrete model. Its shared state is per model,
    so one bad model name cannot cool the whole wildcard down."""
    upstream = deployment.upstream_model.replace("*", matched) if "*" in deployment.upstream_model else matched
    return dataclasses.replace(deployment, upstream_model=upstream, state_key=f"{deployment.state_key}/{upstream}")


async def _group_lookup(model: str, routing_policy: RoutingPolicy) -> tuple[str, list[Deployment]]:
    """(group name, deployments) serving `model`: its group, the group an alias names, or
    the most specific wildcard group matching it; ("", []) when none does."""
    groups = await deployment_registry.groups()
    if model in groups:
        return model, groups[model]
    target = routing_policy.aliases.get(model)
    if target is not None and target in groups:
        return target, groups[target]
    for pattern in deployment_registry.wildcard_names():
        matched = _wildcard_match(pattern, model)
        if matched:
            return pattern, [_passed_through(d, matched) for d in groups[pattern]]
    return "", []


def _with_tags(deployments: list[Deployment], tags: tuple[str, ...]) -> list[Deployment]:
    """In a group whose deployments carry tags, tagged requests reach deployments with one of
    their tags, untagged ones the deployments tagged "default" if there are any, else every
    deployment. In a group without tags, a request's tags only label it (spend per tag), as
    with LiteLLM's enable_tag_filtering off: clients tag requests for cost tracking."""
    if not any(d.tags for d in deployments):
        return deployments
    if tags:
        return [d for d in deployments if any(tag in d.tags for tag in tags)]
    defaults = [d for d in deployments if DEFAULT_TAG in d.tags]
    return defaults or deployments


async def model_group_resolve(
    model: str, context: KeyContext, routing_policy: RoutingPolicy, *, tags: tuple[str, ...] = ()
) -> ModelGroup:
    """The group serving `model` for this key and these tags: 404 if none, 403 if the key
    may not use it, 400 if none of its deployments carries the tags."""
    name, deployments = await _group_lookup(model, routing_policy)
    deployments = usable_deployments(deployments, context)
    if not deployments:
        raise not_found(f"The model '{model}' does not exist on this gateway.", param="model", code="model_not_found")
    # An alias is usable by keys allowed either the alias or the group it names.
    if not (may_use_group(context, model, deployments) or (name != model and may_use_group(context, name, deployments))):
        raise permission_denied(f"This key may not use the model '{model}'.", param="model", code="model_not_allowed")
    tagged = _with_tags(deployments, tags)
    if not tagged:
        raise invalid_request(
            f"No deployment of '{model}' carries the tags {', '.join(tags)}.",
            param="metadata.tags", code="no_deployment_for_tags",
        )
    return ModelGroup(name=name, deployments=tagged, policy=routing_policy.for_group(name),
                      limit_scopes=team_model_scopes(name, tagged, context.team_id))


async def deployment_group(model: str, context: KeyContext) -> list[Deployment]:
    """The deployments serving `model` for this key: 404 if none, 403 if the key may not use it."""
    return (await model_group_resolve(model, context, await routing_policy_cache.get())).deployments


# --- one request ---------------------------------------------------------------------------


@dataclass(slots=True)
class RouteRequest:
    """What the router needs to know about the request."""

    request_id: str
    operation: Operation
    body: dict
    stream: bool = False
    tags: tuple[str, ...] = ()
    client_fallbacks: tuple[str, ...] = ()
    _prompt_tokens: int | None = None

    def output_tokens(self) -> int | None:
        """The answer's size the client allows (validated before routing), if it set one."""
        if self.operation in (Operation.CHAT, Operation.RESPONSES):  # RESPONSES: its chat translation
            return self.body.get("max_completion_tokens") or self.body.get("max_tokens")
        if self.operation is Operation.COMPLETION:
            return self.body.get("max_tokens")
        return None

    def prompt_tokens(self) -> int:
        """The prompt's size, estimated once, and only when a context window is checked."""
        if self._prompt_tokens is None:
            self._prompt_tokens = request_prompt_tokens(self.body)
        return self._prompt_tokens


def routing_fields_pop(body: dict) -> tuple[dict, tuple[str, ...], tuple[str, ...]]:
    """(the body without the gateway's routing fields, request tags, client fallbacks).

    Tags come as LiteLLM takes them, in `metadata.tags` or `tags`; `fallbacks` is a list
    of model names (or of {"model": name}). Neither is sent upstream.
    """
    metadata = body.get("metadata")
    if "fallbacks" not in body and "tags" not in body and not (isinstance(metadata, dict) and "tags" in metadata):
        return body, (), ()
    body = dict(body)
    fallbacks = body.pop("fallbacks", None) or []
    if not isinstance(fallbacks, list):
        raise invalid_request("'fallbacks' must be an array of model names.", param="fallbacks", code="invalid_type")
    names = []
    for index, entry in enumerate(fallbacks):
        name = entry.get("model") if isinstance(entry, dict) else entry
        if not isinstance(name, str) or not name:
            raise invalid_request(f"'fallbacks[{index}]' must be a model name.", param=f"fallbacks[{index}]",
                                  code="invalid_type")
        names.append(name)
    tags = body.pop("tags", None) or []
    if isinstance(metadata, dict) and "tags" in metadata:
        metadata = dict(metadata)
        metadata_tags = metadata.pop("tags") or []
        if not isinstance(tags, list) or not isinstance(metadata_tags, list):
            raise invalid_request("'metadata.tags' must be an array of strings.", param="metadata.tags",
                                  code="invalid_type")
        tags = tags + metadata_tags
        if metadata:
            body["metadata"] = metadata
        else:
            del body["metadata"]
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise invalid_request("'metadata.tags' must be an array of strings.", param="metadata.tags",
                              code="invalid_type")
    return body, tuple(dict.fromkeys(tags)), tuple(dict.fromkeys(names))


@dataclass(slots=True)
class Timeouts:
    total: float  # a whole answer (for streams: the longest gap between reads)
    connect: float
    first_token: float | None  # streams: time to the first token


def timeouts_for(deployment: Deployment, group_policy: GroupPolicy) -> Timeouts:
    return Timeouts(
        total=deployment.timeout or group_policy.timeout or setting("GATEWAY_UPSTREAM_TIMEOUT"),
        connect=deployment.connect_timeout or setting("GATEWAY_UPSTREAM_CONNECT_TIMEOUT"),
        first_token=deployment.stream_timeout or group_policy.stream_timeout,
    )


class DeploymentLease:
    """One attempt's hold on a deployment: what it counted before the call, released after."""

    __slots__ = ("key", "request_id", "count_usage", "track_in_flight", "record_latency", "stream",
                 "started", "first_token_at")

    def __init__(self, deployment: Deployment, group_policy: GroupPolicy, route: RouteRequest) -> None:
        needs = strategy_needs(group_policy.strategy)
        self.key = deployment.state_key
        self.request_id = route.request_id
        self.count_usage = needs.usage or bool(deployment.rpm or deployment.tpm)
        self.track_in_flight = needs.in_flight
        self.record_latency = needs.latency
        self.stream = route.stream
        self.started = time.perf_counter()
        self.first_token_at: float | None = None

    @property
    def acquire_needed(self) -> bool:
        return self.count_usage or self.track_in_flight

    @property
    def release_needed(self) -> bool:
        return self.count_usage or self.track_in_flight or self.record_latency

    def mark_first_token(self) -> None:
        self.first_token_at = time.perf_counter()

    async def acquire(self, deployment: Deployment) -> int:
        """0 once counted, else the seconds until the deployment has rpm/tpm capacity again."""
        try:
            return await deployment_state().acquire(
                self.key, self.request_id, rpm=deployment.rpm, tpm=deployment.tpm,
                count_usage=self.count_usage, track_in_flight=self.track_in_flight,
            )
        except Exception:
            logger.warning("routing state unavailable: %s not counted", self.key, exc_info=True)
            return 0

    async def release(self, *, tokens: int, succeeded: bool = True, timed_out: bool = False) -> None:
        latency = time_to_first_token = None
        if self.record_latency:
            if self.stream and self.first_token_at is not None:
                time_to_first_token = self.first_token_at - self.started
            elif succeeded or timed_out:  # a timeout is a (long) latency too
                latency = time.perf_counter() - self.started
        try:
            await deployment_state().release(
                self.key, self.request_id, tokens=tokens, count_usage=self.count_usage,
                track_in_flight=self.track_in_flight, latency=latency, time_to_first_token=time_to_first_token,
            )
        except Exception:
            logger.warning("routing state unavailable: %s not released", self.key, exc_info=True)


@dataclass(slots=True)
class RouteProgress:
    """What the router did for one request, for its response headers and its settlement."""

    attempted_retries: int = 0
    attempted_fallbacks: int = 0
    waited_seconds: float = 0.0  # in backoff before retries
    lease: DeploymentLease | None = None  # the attempt in progress, or the one that answered

    # The answer outlives route_request when it streams, so whoever ends the request ends the
    # lease through these two calls; the lease itself stays the router's business.
    def first_token(self) -> None:
        if self.lease is not None:
            self.lease.mark_first_token()

    def settle(self, *, tokens: int, succeeded: bool) -> Awaitable[None] | None:
        """The release of the answering deployment's hold, to spawn; None when nothing is held."""
        lease, self.lease = self.lease, None
        if lease is None or not lease.release_needed:
            return None
        return lease.release(tokens=tokens, succeeded=succeeded)


# --- failures --------------------------------------------------------------------------------

_CONTEXT_WINDOW_MARKERS = (
    "context_length_exceeded", "context length", "context window", "context_window", "maximum context",
    "prompt is too long", "input is too long", "too many tokens", "exceeds the maximum number of tokens",
    "input length and `max_tokens` exceed",
)
_CONTENT_POLICY_MARKERS = (
    "content_filter", "content_policy", "content policy", "content management policy", "responsibleaipolicy",
)


# The gateway's own 400s for what a provider cannot take (apps.providers.adapters.base).
_UNSUPPORTED_CODES = frozenset({"unsupported_parameter", "unsupported_operation"})


def error_class_of(error: GatewayError) -> ErrorClass:
    status = error.status
    if error.code in _UNSUPPORTED_CODES:
        return ErrorClass.UNSUPPORTED
    if status == 429:
        return ErrorClass.RATE_LIMIT
    if status in (408, 504) or error.code == "upstream_timeout":
        return ErrorClass.TIMEOUT
    if status >= 500:
        return ErrorClass.SERVER
    if status in (401, 403):
        return ErrorClass.AUTHENTICATION
    if status == 404:
        return ErrorClass.NOT_FOUND
    text = f"{error.code} {error.type} {error.message}".lower()
    if any(marker in text for marker in _CONTEXT_WINDOW_MARKERS):
        return ErrorClass.CONTEXT_WINDOW
    if any(marker in text for marker in _CONTENT_POLICY_MARKERS):
        return ErrorClass.CONTENT_POLICY
    return ErrorClass.BAD_REQUEST


def retry_after_seconds(headers: dict) -> float | None:
    """An upstream's Retry-After (seconds or an HTTP date), if it sent one."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def retry_delay(retry_number: int, error: GatewayError, group_policy: GroupPolicy) -> float | None:
    """Seconds to wait before retrying the same deployment: exponential with jitter, at
    least the upstream's Retry-After. None when that is longer than worth waiting for."""
    delay = min(settings.GATEWAY_ROUTER_RETRY_BASE_DELAY * 2 ** (retry_number - 1),
                settings.GATEWAY_ROUTER_RETRY_MAX_DELAY)
    delay *= random.uniform(0.5, 1.0)  # jitter: replicas retrying together spread out
    retry_after = retry_after_seconds(error.headers)
    if retry_after is not None:
        if retry_after > routing.MAX_RETRY_WAIT_SECONDS:
            return None
        delay = max(delay, retry_after)
    return max(delay, group_policy.retry_after)


@dataclass(slots=True)
class GroupFailure:
    """Why a group gave no answer."""

    group: str
    error: GatewayError | None = None  # the last attempt's error
    error_class: ErrorClass | None = None
    cooling_until: float = 0.0  # the soonest end of a cooldown that kept a deployment out
    capacity_retry_after: int = 0  # deployments at their rpm/tpm capacity: when one has room
    context_too_long: bool = False  # no deployment's context window fits the prompt

    def note_cooling(self, until: float) -> None:
        if not self.cooling_until or until < self.cooling_until:
            self.cooling_until = until

    def note_capacity(self, seconds: int) -> None:
        if not self.capacity_retry_after or seconds < self.capacity_retry_after:
            self.capacity_retry_after = seconds


def _no_answer_error(failures: list[GroupFailure], model: str) -> GatewayError:
    """What the client gets when no group answered: the last upstream error if anything
    was attempted, else why nothing could be."""
    for failure in reversed(failures):
        if failure.error is not None:
            return failure.error
    cooling = [f.cooling_until for f in failures if f.cooling_until]
    if cooling:
        wait = max(math.ceil(min(cooling) - time.time()), 1)
        return GatewayError(
            f"Every deployment of '{model}' is cooling down after failures; retry in {wait} s.",
            status=429, type="rate_limit_error", code="deployments_cooling_down",
            headers={"Retry-After": str(wait), "x-should-retry": "true"},
        )
    capacity = [f.capacity_retry_after for f in failures if f.capacity_retry_after]
    if capacity:
        wait = min(capacity)
        return GatewayError(
            f"Every deployment of '{model}' is at its rate limit; retry in {wait} s.",
            status=429, type="rate_limit_error", code="deployments_at_capacity",
            headers={"Retry-After": str(wait), "x-should-retry": "true"},
        )
    if any(f.context_too_long for f in failures):
        return invalid_request(
            f"The prompt is longer than the context window of every deployment of '{model}'.",
            param="messages", code="context_length_exceeded",
        )
    return GatewayError(f"No deployment of '{model}' is available.", status=503, type="api_error",
                        code="no_deployment_available")


async def _failure_record(deployment: Deployment, error: GatewayError, error_class: ErrorClass,
                          group_policy: GroupPolicy) -> None:
    """Count the failure towards the deployment's cooldown: a 429 cools it down at once (for
    its Retry-After, else cooldown_time), other failures after allowed_fails in a minute.
    The client's own mistakes, and requests its provider cannot take, do not count."""
    if not group_policy.cooldowns_enabled or error_class in routing.NOT_THE_DEPLOYMENTS_FAULT:
        return
    immediate = error_class is ErrorClass.RATE_LIMIT
    seconds = group_policy.cooldown_seconds
    if immediate:
        seconds = min(retry_after_seconds(error.headers) or seconds, MAX_COOLDOWN_SECONDS)
    try:
        until = await deployment_state().failure(
            deployment.state_key, allowed_fails=group_policy.allowed_fails_for(error_class),
            cooldown_seconds=seconds, immediate=immediate,
        )
        if until:
            cooldowns_total.labels(deployment.model_name, str(deployment.id)).inc()
    except Exception:
        logger.warning("routing state unavailable: failure of %s not counted", deployment.state_key, exc_info=True)


# --- picking -----------------------------------------------------------------------------------


async def _candidates(
    group: ModelGroup, route: RouteRequest, failure: GroupFailure
) -> tuple[list[Deployment], list[DeploymentLoad]]:
    """The group's deployments free to take the request now, with their shared state."""
    deployments = group.deployments
    now = time.time()
    if setting("GATEWAY_HEALTH_CHECK_ROUTING") and any(d.unhealthy_until > now for d in deployments):
        # Deployments that failed their last health check sit out, unless all did: then the
        # check may be what is wrong, and requests (with retries and cooldowns) decide.
        healthy = [d for d in deployments if d.unhealthy_until <= now]
        deployments = healthy or deployments
    if any(d.max_input_tokens for d in deployments):
        tokens = route.prompt_tokens()
        deployments = [d for d in deployments if not d.max_input_tokens or tokens <= d.max_input_tokens]
        if not deployments:
            failure.context_too_long = True
            return [], []
    requested = route.output_tokens()
    if requested:
        deployments = [d for d in deployments if (limit := output_token_limit(d)) is None or requested <= limit]
        if not deployments:
            return [], []
    needs = strategy_needs(group.policy.strategy)
    if not needs.usage and any(d.rpm or d.tpm for d in deployments):
        needs = dataclasses.replace(needs, usage=True)  # capacity is checked before the call
    try:
        loads = await deployment_state().read([d.state_key for d in deployments], needs,
                                              [(d.rpm, d.tpm) for d in deployments])
    except Exception:
        # Routing without shared state beats not routing: every deployment counts as free.
        logger.warning("routing state unavailable: routing %s without it", group.name, exc_info=True)
        loads = [DeploymentLoad() for _ in deployments]
    now = time.time()
    free, free_loads = [], []
    for deployment, load in zip(deployments, loads):
        if group.policy.cooldowns_enabled and load.cooldown_until > now:
            failure.note_cooling(load.cooldown_until)
            continue
        if needs.usage and ((deployment.rpm and load.requests >= deployment.rpm)
                            or (deployment.tpm and load.tokens >= deployment.tpm)):
            oldest = load.oldest_second or int(now)
            failure.note_capacity(max(oldest + 60 - int(now), 1))
            continue
        free.append(deployment)
        free_loads.append(load)
    return free, free_loads


Call = Callable[[Deployment, Timeouts], Awaitable]


async def _group_serve(group: ModelGroup, route: RouteRequest, call: Call, progress: RouteProgress):
    """An answer from the group (whatever `call` returns), or a GroupFailure."""
    group_policy = group.policy
    failure = GroupFailure(group.name)
    tried: set[str] = set()
    attempts = 0
    same_deployment_retries = 0
    while True:
        candidates, loads = await _candidates(group, route, failure)
        if attempts:
            untried = [i for i, d in enumerate(candidates) if d.state_key not in tried]
            if untried:
                candidates, loads = [candidates[i] for i in untried], [loads[i] for i in untried]
            elif failure.error_class in routing.DEPLOYMENT_SPECIFIC or not candidates:
                return failure  # that deployment's own problem: retrying it cannot help
            else:
                same_deployment_retries += 1
                delay = retry_delay(same_deployment_retries, failure.error, group_policy)
                if delay is None:
                    return failure
                await asyncio.sleep(delay)
                progress.waited_seconds += delay
                candidates, loads = await _candidates(group, route, failure)
        lease = None
        while candidates:
            deployment = deployment_pick(group_policy.strategy, candidates, loads, stream=route.stream,
                                         latency_buffer=group_policy.latency_buffer)
            lease = DeploymentLease(deployment, group_policy, route)
            if not lease.acquire_needed:
                break
            retry_after = await lease.acquire(deployment)
            if not retry_after:
                break
            failure.note_capacity(retry_after)  # taken by another replica meanwhile: pick again
            index = next(i for i, d in enumerate(candidates) if d is deployment)
            candidates, loads = candidates[:index] + candidates[index + 1:], loads[:index] + loads[index + 1:]
            lease = None
        if lease is None:
            return failure
        if attempts:
            progress.attempted_retries += 1
        attempts += 1
        tried.add(deployment.state_key)
        progress.lease = lease
        try:
            return await call(deployment, timeouts_for(deployment, group_policy))
        except GatewayError as error:
            error_class = error_class_of(error)
            progress.lease = None
            if lease.release_needed:
                await lease.release(tokens=0, succeeded=False, timed_out=error_class is ErrorClass.TIMEOUT)
            await _failure_record(deployment, error, error_class, group_policy)
            failure.error, failure.error_class = error, error_class
            if attempts > group_policy.retries_for(error_class):
                return failure


def _fallback_names(failure: GroupFailure, group: ModelGroup, routing_policy: RoutingPolicy,
                    route: RouteRequest) -> list[str]:
    """The groups to try after `group` failed, in order: context-window fallbacks for a
    prompt too long, content-policy ones for refused content, none for other client
    errors, else the request's own fallbacks, the group's, or the default ones."""
    error_class = failure.error_class
    if error_class is ErrorClass.CONTEXT_WINDOW or (error_class is None and failure.context_too_long):
        names = group.policy.context_window_fallbacks
    elif error_class is ErrorClass.CONTENT_POLICY:
        names = group.policy.content_policy_fallbacks
    elif error_class is ErrorClass.BAD_REQUEST:
        names = ()
    else:
        names = route.client_fallbacks or group.policy.fallbacks or routing_policy.default_fallbacks
    return [name for name in dict.fromkeys(names) if name != group.name]


def output_token_limit(deployment: Deployment) -> int | None:
    """The most tokens the deployment's model answers with, when the price catalog knows it."""
    prices = prices_in_force(deployment)
    return prices.max_output_tokens if prices is not None else None


def output_limit_check(group: ModelGroup, route: RouteRequest) -> None:
    """A 400 before any call when no deployment of the group can answer that long, as OpenAI
    refuses it; a group where some deployment's limit is unknown is left to try."""
    requested = route.output_tokens()
    if not requested:
        return
    limits = [output_token_limit(d) for d in group.deployments]
    if None in limits or requested <= max(limits):
        return
    param = "max_completion_tokens" if route.body.get("max_completion_tokens") else "max_tokens"
    raise invalid_request(
        f"{param} is too large: {requested}. This model supports at most {max(limits)} completion tokens, "
        f"whereas you provided {requested}.", param=param, code="invalid_value",
    )


async def route_request(
    model: str, primary: ModelGroup, *, context: KeyContext, routing_policy: RoutingPolicy,
    route: RouteRequest, call: Call, progress: RouteProgress,
):
    """Serve the request from `primary`, then from its fallbacks: the first answer `call`
    gives, else the error that explains why there is none."""
    output_limit_check(primary, route)
    outcome = await _group_serve(primary, route, call, progress)
    if not isinstance(outcome, GroupFailure):
        return outcome
    failures = [outcome]
    for name in _fallback_names(outcome, primary, routing_policy, route):
        try:
            group = await model_group_resolve(name, context, routing_policy, tags=route.tags)
        except GatewayError:
            continue  # unknown, not allowed for this key, or no deployment for its tags
        progress.attempted_fallbacks += 1
        outcome = await _group_serve(group, route, call, progress)
        if not isinstance(outcome, GroupFailure):
            return outcome
        failures.append(outcome)
    raise _no_answer_error(failures, model)


def costliest_deployment(deployments: list[Deployment]) -> Deployment:
    """The deployment whose prices reserve the most against budgets (any, if none has one)."""
    def price(deployment: Deployment):
        prices = prices_in_force(deployment)
        if prices is None:
            return 0
        return (prices.input_cost_per_token or 0) + (prices.output_cost_per_token or 0)

    return max(deployments, key=price)

