"""Wallet refresh: the billed entities' wallet balances, read from Lago into the wallet store
(apps.billing.wallets), which the entitlement check reads. Run by the beat task and the server's
own refresher; webhooks only trigger it (apps.billing.webhooks)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

from django.conf import settings

from apps.billing.lago import LagoClient, LagoError, LagoUnavailable
from apps.billing.selectors import billing_entities_list
from apps.billing.wallets import KIND_WALLET, WalletState, entity_key, wallet_store
from apps.core import invalidation


@dataclass
class RefreshResult:
    refreshed: int = 0  # entities whose state came from Lago now
    failed: int = 0  # entities Lago could not be asked about (their last state ages)
    pruned: int = 0  # states of entities no longer billed, removed
    error: str = ""


def _wallet_states_apply(states: dict[str, WalletState], *, publish: bool) -> None:
    wallet_store().put(states)
    if publish:
        for entity, state in states.items():
            invalidation.publish({"kind": KIND_WALLET, "entity": entity, "state": asdict(state)})


def wallets_refresh(*, customer_id: str | None = None, client: LagoClient | None = None) -> RefreshResult:
    """Read the billed entities' wallets from Lago into the wallet store (every entity, or those of
    one customer, which is then published to every process at once). An entity Lago cannot be
    asked about keeps its last state, whose age then decides (BILLING_WALLET_STALE_AFTER)."""
    result = RefreshResult()
    if not settings.LAGO_API_BASE:
        return result
    kind = settings.BILLING_ENTITY
    by_customer: dict[str, list[str]] = defaultdict(list)
    for entity in billing_entities_list(kind=kind, with_customer=True, customer_id=customer_id):
        by_customer[entity.customer_id].append(entity_key(kind, entity.id))
    store = wallet_store()
    started = time.time()
    states: dict[str, WalletState] = {}
    failed: dict[str, str] = {}  # entity -> customer
    own_client = client is None
    client = client or LagoClient()
    try:
        for customer, entities in by_customer.items():
            if result.error:  # Lago is down: do not wait out a timeout per customer
                failed.update({e: customer for e in entities})
                continue
            try:
                wallets = client.wallets_list(customer)
            except LagoError as err:
                if err.status == 404:  # no such customer: nothing prepaid
                    wallets = []
                else:
                    result.error = str(err)
                    failed.update({e: customer for e in entities})
                    continue
            except LagoUnavailable as exc:
                result.error = f"Lago unavailable: {exc}"
                failed.update({e: customer for e in entities})
                continue
            state = WalletState.from_wallets(customer, wallets, now=time.time())
            for entity in entities:
                states[entity] = state
    finally:
        if own_client:
            client.close()
    existing = store.get_many(list(states) + list(failed))
    for entity, customer in failed.items():
        old = existing.get(entity)
        states[entity] = WalletState(
            customer=customer,
            wallets=old.wallets if old else {},
            credits=old.credits if old else None,
            at=old.at if old else 0.0,
            error=result.error,
        )
    # A webhook that landed while Lago was being read is newer than what was read: keep it.
    states = {e: s for e, s in states.items() if not (e in existing and existing[e].at > started)}
    _wallet_states_apply(states, publish=customer_id is not None)
    if customer_id is None:
        result.pruned = len(store.prune(keep={e for entities in by_customer.values() for e in entities}))
    result.refreshed = len(states) - len(failed)
    result.failed = len(failed)
    meta = {"last_attempt": started}
    if not result.error:
        meta["last_success"] = time.time()
    meta["last_error"] = result.error
    store.meta_put(**meta)
    if result.error:
        logging.getLogger("gateway.alerts").error(
            "billing: wallet refresh failed for %d entities (%s); BILLING_FAIL_OPEN=%s decides once their "
            "state is %ss old",
            result.failed,
            result.error,
            settings.BILLING_FAIL_OPEN,
            int(settings.BILLING_WALLET_STALE_AFTER),
        )
    return result


def wallet_refresh_for_wallet(*, lago_wallet_id: str) -> RefreshResult:
    """Refresh the customer a wallet belongs to (after a wallet transaction webhook)."""
    if not settings.LAGO_API_BASE:
        return RefreshResult()
    with LagoClient() as client:
        try:
            wallet = client.wallet_get(lago_wallet_id)
        except (LagoError, LagoUnavailable) as exc:
            return RefreshResult(error=str(exc))
        return wallets_refresh(customer_id=wallet["external_customer_id"], client=client)
