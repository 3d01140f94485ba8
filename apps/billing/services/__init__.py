"""Usage billing through Lago: the writes, one module per concern.

- events: the billing-event outbox (queueing, delivery to Lago, replay of dead letters).
- wallet_refresh: wallet balances from Lago into the wallet store (apps.billing.wallets).
- customers: customers and subscriptions into Lago.
- purge: delivered events and old webhook receipts past their retention.

The public functions and result types are re-exported here: callers import from
apps.billing.services.
"""

from apps.billing.services.customers import SyncReport, lago_customers_sync
from apps.billing.services.events import (
    SendResult,
    billing_events_add,
    billing_events_replay,
    billing_events_send,
)
from apps.billing.services.purge import PurgeResult, billing_records_purge
from apps.billing.services.wallet_refresh import RefreshResult, wallet_refresh_for_wallet, wallets_refresh

__all__ = [
    "PurgeResult",
    "RefreshResult",
    "SendResult",
    "SyncReport",
    "billing_events_add",
    "billing_events_replay",
    "billing_events_send",
    "billing_records_purge",
    "lago_customers_sync",
    "wallet_refresh_for_wallet",
    "wallets_refresh",
]
