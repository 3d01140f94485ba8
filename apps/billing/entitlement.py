"""Entitlement before the upstream call: may this billing entity spend?

On the request path this is a dict lookup: each server process keeps the wallet states it read
(from Redis, at most one GET per entity per BILLING_WALLET_CACHE_TTL; without Redis straight
from process memory). Lago is never called here and the database never read. The states are
refreshed in the background (the `billing.wallets_refresh` beat task, or this process's own
refresher when there is no broker), and a webhook updates every replica at once through the
invalidation channel. With no LAGO_API_BASE the check returns at its first line.

- No state for the entity: it is not billed through Lago (no customer id), or not known yet: served.
- Its wallets are depleted (ongoing balance <= 0): 429 insufficient_quota, x-should-retry: false.
- The state is older than BILLING_WALLET_STALE_AFTER (Lago unreachable for that long, or the
  refresh not running): BILLING_FAIL_OPEN serves and alerts, else 503 billing_unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings
from django.db import close_old_connections

from apps.billing.services import billing_events_send, wallets_refresh
from apps.billing.wallets import KIND_WALLET, WalletState, entity_key, wallet_store
from apps.core import invalidation
from apps.core.cache import SingleFlightCache
from apps.core.errors import GatewayError
from apps.core.hot_settings import setting
from apps.keys.context import KeyContext

logger = logging.getLogger(__name__)
alerts_logger = logging.getLogger("gateway.alerts")

_UNREADABLE = WalletState(customer="", at=0.0, error="wallet state unreadable")

# Called with (entity, state) when a request is served although the wallet state is unknown
# (fail-open); tests and integrations subscribe here.
fail_open_listeners: list = []

_ALERT_EVERY = 60.0  # seconds between two fail-open alerts for the same entity, per process


async def _load(entity: str) -> WalletState:
    try:
        return await wallet_store().aget(entity)
    except Exception:  # Redis down: the state is unknown, the fail mode decides
        logger.warning("wallet state of %s unreadable", entity, exc_info=True)
        return _UNREADABLE


_states: SingleFlightCache[WalletState | None] = SingleFlightCache(
    _load, ttl=lambda state: settings.BILLING_WALLET_CACHE_TTL
)
_alerted: dict[str, float] = {}  # entity -> when its last fail-open alert went out


async def entitlement_check(context: KeyContext) -> None:
    """Raise GatewayError (429 insufficient_quota, or 503 when failing closed) if the request's
    billing entity may not spend; return None if it may."""
    if not setting("LAGO_API_BASE"):
        return
    kind = settings.BILLING_ENTITY
    entity_id = context.organization_id if kind == "organization" else context.team_id
    if entity_id is None:
        return
    entity = entity_key(kind, entity_id)
    state = await _states.get(entity)
    if state is None:
        return
    if state.depleted:
        raise GatewayError(
            f"You exceeded your current quota: the {kind}'s prepaid {settings.BILLING_CREDITS_NAME} are "
            "used up. Top up its wallet to continue.",
            status=429,
            type="insufficient_quota",
            code="insufficient_quota",
            headers={"x-should-retry": "false"},
        )
    if state.stale():
        _unknown(entity, state)


def _unknown(entity: str, state: WalletState) -> None:
    age = time.time() - state.at if state.at else None
    why = state.error or ("never refreshed" if age is None else f"last refreshed {age:.0f} s ago")
    if not settings.BILLING_FAIL_OPEN:
        raise GatewayError(
            "Billing is unavailable: the wallet balance could not be verified. Try again later.",
            status=503,
            type="api_error",
            code="billing_unavailable",
            headers={
                "Retry-After": str(max(int(settings.BILLING_WALLET_REFRESH_INTERVAL), 1)),
                "x-should-retry": "true",
            },
        )
    now = time.monotonic()
    if now - _alerted.get(entity, -_ALERT_EVERY) >= _ALERT_EVERY:
        _alerted[entity] = now
        alerts_logger.error(
            "billing: wallet state of %s unknown (%s; is Lago reachable?): serving it "
            "anyway (BILLING_FAIL_OPEN); its usage is still reported",
            entity,
            why,
        )
    for listener in fail_open_listeners:
        listener(entity, state)


# --- invalidation: webhooks reach every process at once ------------------------------------------


def handle_message(message: dict) -> None:
    kind = message.get("kind")
    if kind == KIND_WALLET:
        entity = message.get("entity")
        if not entity:
            return
        state = message.get("state")
        if state is None:
            _states.invalidate(entity)
        else:
            _states.put(entity, WalletState.from_json(state))
    elif kind == invalidation.KIND_ALL_KEYS:
        _states.invalidate()


invalidation.register_handler(handle_message)


def entitlement_cache_clear() -> None:
    _states.invalidate()
    _alerted.clear()


# --- the process's own refresher (no broker, or no Redis) ----------------------------------------

_refresher: asyncio.Task | None = None


def _refresher_jobs() -> tuple[bool, bool]:
    """(refresh wallets here, send the outbox here). With a broker, beat does both, unless there is
    no Redis: then the wallet states live in this process's memory and only it can refresh them."""
    no_broker = bool(settings.CELERY_TASK_ALWAYS_EAGER)
    return (no_broker or not settings.REDIS_MODE), no_broker


async def entitlement_refresher_start() -> None:
    """Start this server process's billing background work, where nothing else does it (see
    _refresher_jobs). A no-op when billing is off or a Celery beat covers everything."""
    global _refresher
    if not settings.LAGO_API_BASE or (_refresher is not None and not _refresher.done()):
        return
    wallets, outbox = _refresher_jobs()
    if wallets or outbox:
        _refresher = asyncio.get_running_loop().create_task(
            _refresh_forever(wallets, outbox), name="billing-refresher"
        )


async def entitlement_refresher_stop() -> None:
    global _refresher
    task, _refresher = _refresher, None
    if task is not None:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass


def _run_in_thread(name: str) -> None:
    try:
        if name == "wallets":
            wallets_refresh()
        else:
            billing_events_send()
    except Exception:
        logger.exception("billing background %s failed", name)
    finally:
        close_old_connections()


async def _refresh_forever(wallets: bool, outbox: bool) -> None:
    due = {"wallets": 0.0, "outbox": 0.0}
    while True:
        if settings.LAGO_API_BASE:
            now = time.monotonic()
            if wallets and now >= due["wallets"]:
                # A thread of its own: a slow Lago must not hold the thread the ORM calls share.
                await asyncio.to_thread(_run_in_thread, "wallets")
                due["wallets"] = time.monotonic() + settings.BILLING_WALLET_REFRESH_INTERVAL
            if outbox and time.monotonic() >= due["outbox"]:
                await asyncio.to_thread(_run_in_thread, "outbox")
                due["outbox"] = time.monotonic() + settings.BILLING_OUTBOX_INTERVAL
        waits = [due[name] for name, on in (("wallets", wallets), ("outbox", outbox)) if on]
        await asyncio.sleep(max(min(waits) - time.monotonic(), 0.05) if waits else 1.0)
