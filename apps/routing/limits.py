"""The limit step of a request: check and count before the upstream call, settle after."""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from decimal import Decimal

import redis
from django.conf import settings
from redis.exceptions import NoScriptError

from apps.core.background import hold, spawn
from apps.core.errors import GatewayError, permission_denied
from apps.core.hot_settings import setting
from apps.customers.cache import end_user_limits_cache
from apps.keys.context import KeyContext
from apps.keys.limits import RESERVATION_TTL_MS, LimitDecision, LimitScope, Settlement, limiter, usd_to_nanos
from apps.providers.registry import Deployment
from apps.spend.alerts import budget_exhausted, soft_budget_crossed
from apps.spend.journal import puts_then
from apps.spend.pricing import Prices, prices_in_force
from apps.spend.tokens import request_prompt_tokens

logger = logging.getLogger(__name__)

_KIND_NAMES = {"team-member": "team member", "key-model": "key (for this model)", "team-model": "team (for this model)",
               "end_user": "end user"}
# Longer ids than an end user's column holds are not end users (not tracked, never limited).
END_USER_MAX_LENGTH = 255
_WINDOW_NAMES = {"rpm": "requests per minute", "tpm": "tokens per minute", "parallel": "parallel requests"}


def max_cost_nanos(deployment: Deployment, body: dict, prices: Prices | None = None) -> int:
    """The most this request can cost: its prompt (roughly counted: this runs on every request)
    and its whole output allowance, at the prices in force (the deployment's, else the catalog's)
    or at `prices` (a batch's)."""
    prices = prices or prices_in_force(deployment)
    input_price = (prices.input_cost_per_token if prices else None) or Decimal(0)
    output_price = (prices.output_cost_per_token if prices else None) or Decimal(0)
    if not input_price and not output_price:
        return media_max_cost_nanos(prices, body)
    prompt = request_prompt_tokens(body, rough=True)
    output = body.get("max_completion_tokens") or body.get("max_tokens") or deployment.extra_params.get(
        "max_tokens"
    ) or setting("GATEWAY_RESERVED_OUTPUT_TOKENS")
    return usd_to_nanos(prompt * input_price + int(output) * output_price)


# The fewest bytes a second of uploaded audio takes (speech codecs go down to 16 kbit/s), so an
# upload's size bounds its duration from above.
AUDIO_MIN_BYTES_PER_SECOND = 2_000


def media_max_cost_nanos(prices, body: dict) -> int:
    """Images priced per image: `n` of them at the model's base price (a larger size or higher
    quality may cost more: the settlement counts the exact cost); speech: its input's characters;
    audio priced per second: the longest the upload's size allows."""
    if prices is None:
        return 0
    if prices.output_cost_per_image:
        n = body.get("n") or 1
        return usd_to_nanos(int(n) * prices.output_cost_per_image)
    text = body.get("input")
    if prices.input_cost_per_character and isinstance(text, str):
        return usd_to_nanos(len(text) * prices.input_cost_per_character)
    upload = body.get("file")
    if prices.input_cost_per_second and hasattr(upload, "content"):
        seconds = len(upload.content) / AUDIO_MIN_BYTES_PER_SECOND
        return usd_to_nanos(Decimal(str(seconds)) * prices.input_cost_per_second)
    return 0


def _headers(decision: LimitDecision) -> dict[str, str]:
    headers = {}
    if decision.limit_requests is not None:
        headers["x-ratelimit-limit-requests"] = str(decision.limit_requests)
        headers["x-ratelimit-remaining-requests"] = str(decision.remaining_requests)
    if decision.limit_tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(decision.limit_tokens)
        headers["x-ratelimit-remaining-tokens"] = str(decision.remaining_tokens)
    return headers


def request_end_user(body: dict, meta: dict) -> str:
    """The end user a request is made for, as the tenant's client names its own customer: LiteLLM's
    x-litellm-customer-id or x-litellm-end-user-id header, else the OpenAI `user` field (Anthropic's
    metadata.user_id arrives there too); "" for none."""
    user = meta.get("HTTP_X_LITELLM_CUSTOMER_ID") or meta.get("HTTP_X_LITELLM_END_USER_ID") or body.get("user")
    if isinstance(user, str) and 0 < len(user) <= END_USER_MAX_LENGTH:
        return user
    return ""


def request_scopes(context: KeyContext, model: str, group_scopes: tuple = ()) -> tuple:
    """Every level a request for `model` counts against: the key's levels, the group's, the key's
    and the team's limits for this model (not the end user's: apps.routing.proxy adds it)."""
    scopes = (*context.scopes, *group_scopes) if group_scopes else context.scopes
    if model in context.model_scopes:
        scopes = (*scopes, context.model_scopes[model])
    if model in context.team_model_scopes:
        scopes = (*scopes, context.team_model_scopes[model])
    return scopes


async def end_user_scope(context: KeyContext, end_user: str) -> LimitScope | None:
    """The end user's limits, in the namespace of the key's organization: a 403 if it is blocked,
    its scope if it has limits, else None (a dict lookup: no query, no Redis round trip)."""
    limits = await end_user_limits_cache.get(context.organization_id, end_user)
    if limits is None:
        return None
    if limits.blocked:
        raise permission_denied(f"The end user {end_user!r} is blocked.", param="user", code="end_user_blocked")
    return limits.scope


async def limits_acquire(scopes: tuple, request_id: str, deployment: Deployment, body: dict) -> dict:
    """Count the request against every level's limits; the x-ratelimit-* headers if allowed,
    else a 429: rate limits with Retry-After, an exhausted budget as OpenAI's insufficient_quota."""
    return await limits_reserve(scopes, request_id, max_cost_nanos(deployment, body))


async def limits_reserve(scopes: tuple, request_id: str, reservation_nanos: int,
                         hold_ms: int = RESERVATION_TTL_MS) -> dict:
    """limits_acquire with the reservation given, held `hold_ms` unless settled before."""
    try:
        decision = await limiter().acquire(scopes, request_id, reservation_nanos, hold_ms)
    except (redis.RedisError, OSError):
        # The client already retried with backoff: Redis is down, or failing over for longer.
        _limits_unavailable_log()
        if settings.GATEWAY_LIMITS_FAIL_OPEN:
            return {}
        raise GatewayError(
            "Rate limits and budgets cannot be checked right now; retry shortly.",
            status=503, type="api_error", code="limits_unavailable", headers={"Retry-After": "1"},
        ) from None
    if decision.allowed:
        return _headers(decision)
    scope = decision.scope
    if decision.reason == "budget":
        spawn(budget_exhausted(scope), name="budget-exhausted-alert")
        raise GatewayError(
            f"The {_KIND_NAMES.get(scope.kind, scope.kind)}'s budget is exhausted for this period.",
            status=429,
            type="insufficient_quota",
            code="insufficient_quota",
            headers={"x-should-retry": "false"},
        )
    limit = {"rpm": scope.rpm, "tpm": scope.tpm, "parallel": scope.parallel}[decision.reason]
    headers = {"Retry-After": str(decision.retry_after), "x-should-retry": "true"}
    if decision.reason == "rpm":
        headers.update({"x-ratelimit-limit-requests": str(scope.rpm), "x-ratelimit-remaining-requests": "0"})
    elif decision.reason == "tpm":
        headers.update({"x-ratelimit-limit-tokens": str(scope.tpm), "x-ratelimit-remaining-tokens": "0"})
    raise GatewayError(
        f"Rate limit reached for the {_KIND_NAMES.get(scope.kind, scope.kind)}: {limit} "
        f"{_WINDOW_NAMES[decision.reason]}.",
        status=429,
        type="requests" if decision.reason != "tpm" else "tokens",
        code="rate_limit_exceeded",
        headers=headers,
    )


_unavailable_logged_at = 0.0


def _limits_unavailable_log() -> None:
    """A warning at most every 10 s: a Redis outage must not flood the log once per request."""
    global _unavailable_logged_at
    now = time.monotonic()
    if now - _unavailable_logged_at >= 10:
        _unavailable_logged_at = now
        logger.warning("limits: Redis unreachable; requests are %s (GATEWAY_LIMITS_FAIL_OPEN=%s)",
                       "served uncounted" if settings.GATEWAY_LIMITS_FAIL_OPEN else "refused with 503",
                       settings.GATEWAY_LIMITS_FAIL_OPEN, exc_info=True)


class AfterAnswer:
    """Settlements held until the request's answer is written (the data plane sets one per
    request in `settlements_after_answer`): on one connection to Redis, a settlement begun as
    the journal's put came back wrote its script before the answer went out, a system call on
    the answer's path. Begun right after the answer's write instead, in the same turn: still
    before this process reads anything more, and before its next Redis command."""

    __slots__ = ("closed", "starts")

    def __init__(self) -> None:
        self.starts: list = []
        self.closed = False

    def add(self, start) -> None:
        if self.closed:  # late (a task that outlived the request): at once
            start()
        else:
            self.starts.append(start)

    def run(self) -> None:
        self.closed = True
        for start in self.starts:
            try:
                start()
            except Exception:
                logger.exception("limits: a settlement could not begin")
        self.starts = []


settlements_after_answer: ContextVar[AfterAnswer | None] = ContextVar("settlements_after_answer", default=None)


def limits_settle_soon(scopes: tuple, request_id: str, tokens: int, cost: Decimal | None, after: tuple = ()) -> None:
    """limits_settle for a request being answered, begun once `after` (its spend-journal puts) are
    done, so that its script is not in the Redis round trip the answer waits for (it would share
    the write and the turn of Redis's loop), and, on the data plane, once the answer is written
    (AfterAnswer: its write to Redis is not ahead of the answer's). Either way it is queued on
    this process's Redis connection before the process reads anything more, so a client's next
    request to this process finds it settled.

    No task on the common path, which runs on every request: a callback on the puts queues the
    script on the pipelined connection, and one on its reply reads it. Where that cannot be (a
    cluster's script per scope, no pipelined connection, the connection down) or fails in a way
    limits_settle recovers from (NOSCRIPT, a lost connection), limits_settle runs as a task. The
    settlement is held for the shutdown's drain either way (apps.core.background)."""
    held = hold()
    cost_nanos = usd_to_nanos(cost) or 0

    def by_task() -> None:
        task = spawn(limits_settle(scopes, request_id, tokens, cost), name="limits-settle")
        task.add_done_callback(lambda _: held.done() or held.set_result(None))

    def settled(result) -> None:
        if isinstance(result, Settlement):
            held.set_result(None)
            for scope in result.soft_budget_crossed:
                soft_budget_crossed(scope)
        elif isinstance(result, NoScriptError) or not isinstance(result, redis.ResponseError):
            by_task()  # the script not loaded yet, or the connection lost: settle() deals with both
        else:
            held.set_result(None)
            logger.warning("limits: the settle script failed: %s", result)

    def begin() -> None:
        try:
            started = limiter().settle_soon(scopes, request_id, tokens, cost_nanos, settled)
        except RuntimeError:  # the loop is closing
            started = False
        if not started:
            by_task()

    waiting = settlements_after_answer.get()
    if waiting is None:
        puts_then(after, begin)
    else:
        waiting.add(lambda: puts_then(after, begin))


async def limits_settle(scopes: tuple, request_id: str, tokens: int, cost: Decimal | None) -> None:
    """Count what the request used against its scopes and release what it held (apps.keys.limits);
    with the client's retries where Redis is unreachable, and never raising."""
    try:
        settlement = await limiter().settle(scopes, request_id, tokens, usd_to_nanos(cost) or 0)
    except (redis.RedisError, OSError):
        # The spend log still records the cost; the reconciliation task brings the budget counters
        # back to it, and the in-flight mark and reservation expire with their TTL.
        _limits_unavailable_log()
        return
    for scope in settlement.soft_budget_crossed:
        soft_budget_crossed(scope)
