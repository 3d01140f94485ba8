"""Celery tasks of usage billing: thin, each a service call.

The beat entries (gateway_project/settings.py, only when LAGO_API_BASE is set) run
`billing.events_send` every BILLING_OUTBOX_INTERVAL and `billing.wallets_refresh` every
BILLING_WALLET_REFRESH_INTERVAL. Both are safe to run concurrently and to run again: the outbox
is claimed row by row (FOR UPDATE SKIP LOCKED) and Lago deduplicates on transaction_id, and a
refresh only overwrites a cache; hence acks_late. A worker killed mid-run loses nothing either
way: the rows it claimed stay pending in the database and the next beat tick sends them once
its claim (BILLING_CLAIM_LEASE) has run out.
"""

from celery import shared_task

from apps.billing.services import billing_events_send, billing_records_purge, wallets_refresh
from apps.billing.webhooks import wallets_reread_now


@shared_task(name="billing.events_send", ignore_result=True, acks_late=True)
def events_send_task() -> int:
    return billing_events_send().delivered


@shared_task(name="billing.wallets_refresh", ignore_result=True, acks_late=True)
def wallets_refresh_task() -> int:
    return wallets_refresh().refreshed


@shared_task(name="billing.wallets_reread", ignore_result=True, acks_late=True,
             autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def wallets_reread_task(what: str) -> None:
    """The read a webhook left for the end of its rate-limit interval ("customer:<id>" or "wallet:<id>")."""
    wallets_reread_now(what)


@shared_task(name="billing.records_purge", ignore_result=True)
def records_purge_task() -> int:
    """Delivered usage events and old webhook receipts, past their retention."""
    result = billing_records_purge()
    return result.events + result.webhooks
