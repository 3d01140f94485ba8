"""Budget alerts: a soft budget crossed (it refuses nothing; the limiter reports only the request
that crossed it, so once per period), and a hard budget exhausted (reported once per period and
scope across every replica, however many requests are refused).

Each alert is logged, handed to `listeners`, and posted, when configured, to a Slack incoming
webhook (SLACK_WEBHOOK_URL, LiteLLM's name) and/or a JSON webhook (GATEWAY_ALERT_WEBHOOK_URL,
fields named as LiteLLM's budget webhook events). Posting happens in a background task on the
event loop, with a few retries: never in the request's way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

from django.conf import settings

from apps.core.background import spawn
from apps.keys.limits import LimitScope, limiter

logger = logging.getLogger("gateway.alerts")

SOFT_BUDGET_CROSSED = "soft_budget_crossed"
BUDGET_CROSSED = "budget_crossed"  # LiteLLM's name for an exhausted budget

# Called with each soft-budget crossing; tests and integrations subscribe here.
listeners: list = []

DELIVERY_ATTEMPTS = 3


def _usd(nanos: int | None) -> float | None:
    return None if nanos is None else nanos / 1e9


def alert_payload(event: str, scope: LimitScope, *, now: float | None = None) -> dict:
    """The JSON webhook's body (LiteLLM's WebhookEvent names where it has them)."""
    budget_text = f"{_usd(scope.soft_budget_nanos if event == SOFT_BUDGET_CROSSED else scope.budget_nanos):.6f}"
    who = scope.name or scope.id
    message = (
        f"The {scope.kind} {who} crossed its soft budget of {budget_text} USD."
        if event == SOFT_BUDGET_CROSSED
        else f"The {scope.kind} {who} exhausted its budget of {budget_text} USD: requests are refused "
        "until its next budget period."
    )
    ids = {"key": "token_id", "user": "user_id", "team": "team_id", "organization": "organization_id",
           "end_user": "customer_id"}
    return {
        "event": event,
        "event_group": scope.kind,
        "event_message": message,
        ids.get(scope.kind, "entity_id"): who,
        "max_budget": _usd(scope.budget_nanos),
        "soft_budget": _usd(scope.soft_budget_nanos),
        "budget_duration": scope.budget_duration or None,
        "timestamp": datetime.fromtimestamp(now or time.time(), timezone.utc).isoformat(),
    }


def soft_budget_crossed(scope: LimitScope) -> None:
    logger.warning("soft budget crossed: %s %s (soft budget %.6f USD)", scope.kind, scope.id,
                   (scope.soft_budget_nanos or 0) / 1e9)
    for listener in listeners:
        listener(scope)
    _deliver_soon(alert_payload(SOFT_BUDGET_CROSSED, scope))


async def budget_exhausted(scope: LimitScope) -> None:
    """A request was refused for the scope's budget: alert the first time in its period."""
    now = time.time()
    period, ttl = scope.period(now)
    if not await _first_in_period(scope.tag, period, scope.budget_nanos, ttl):
        return
    logger.warning("budget exhausted: %s %s (budget %.6f USD)", scope.kind, scope.id, (scope.budget_nanos or 0) / 1e9)
    _deliver_soon(alert_payload(BUDGET_CROSSED, scope, now=now))


async def _first_in_period(tag: str, period: str, budget, ttl: int) -> bool:
    """Once per scope, period and budget amount (a raised budget exhausted again alerts again)."""
    try:
        return await limiter().once(f"alert:{tag}:{period}:{budget}", ttl)
    except Exception:  # noqa: BLE001 - an alert twice beats none
        logger.warning("could not record the budget alert", exc_info=True)
        return True


def _deliver_soon(payload: dict) -> None:
    targets = []
    if settings.SLACK_WEBHOOK_URL:
        targets.append((settings.SLACK_WEBHOOK_URL, {"text": payload["event_message"]}))
    if settings.GATEWAY_ALERT_WEBHOOK_URL:
        targets.append((settings.GATEWAY_ALERT_WEBHOOK_URL, payload))
    if not targets:
        return

    spawn(_deliver(targets), name="budget-alert")  # alerts come from the request path's settle step


async def _deliver(targets: list[tuple[str, dict]]) -> None:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for url, body in targets:
            for attempt in range(DELIVERY_ATTEMPTS):
                try:
                    async with session.post(url, json=body) as response:
                        if response.status < 300:
                            break
                        # The URL is a secret (Slack's carries its token): never logged.
                        logger.warning("budget alert refused with status %s (attempt %d)", response.status,
                                       attempt + 1)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    logger.warning("budget alert not delivered: %s (attempt %d)", type(exc).__name__, attempt + 1)
                await asyncio.sleep(0.5 * 2**attempt)
