"""Wallet state: what the data plane knows about each billing entity's Lago wallets.

Written by the background refresh (a Celery beat task, or the server's own refresher without a
broker) and by webhooks; read by the entitlement check. Lives in Redis, shared by every replica
(one key per entity), or without Redis in process memory, with the same interface.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation

import orjson
from django.conf import settings

from apps.core.redis import AsyncRedisPerLoop, redis_enabled, redis_key, sync_redis

KIND_WALLET = "billing_wallet"  # invalidation message: {"kind", "entity", "state": {...} | None}


def entity_key(kind: str, entity_id) -> str:
    """ "organization:<uuid>" or "team:<uuid>"."""
    return f"{kind}:{entity_id}"


@dataclass(slots=True)
class WalletState:
    customer: str  # the Lago external_customer_id
    # Active wallets: Lago id -> ongoing_balance_cents (the real-time balance, after current usage).
    wallets: dict[str, int] = field(default_factory=dict)
    credits: str | None = None  # the sum of credits_ongoing_balance, for display
    # Unix time of the last good word from Lago (a refresh or a webhook); 0: never.
    at: float = 0.0
    error: str = ""  # why the last refresh failed, if it did

    @property
    def has_wallet(self) -> bool:
        return bool(self.wallets)

    @property
    def balance_cents(self) -> int | None:
        return sum(self.wallets.values()) if self.wallets else None

    @property
    def depleted(self) -> bool:
        """No prepaid balance left. A customer without an active wallet is not prepaid: never depleted."""
        return bool(self.wallets) and sum(self.wallets.values()) <= 0

    def stale(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) - self.at > settings.BILLING_WALLET_STALE_AFTER

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str | dict) -> "WalletState":
        data = raw if isinstance(raw, dict) else orjson.loads(raw)
        return cls(
            customer=data.get("customer", ""),
            wallets={k: int(v) for k, v in (data.get("wallets") or {}).items()},
            credits=data.get("credits"),
            at=float(data.get("at") or 0.0),
            error=data.get("error") or "",
        )

    @classmethod
    def from_wallets(cls, customer: str, wallets: list[dict], *, now: float) -> "WalletState":
        active = [w for w in wallets if w.get("status", "active") == "active"]
        credits = Decimal(0)
        for wallet in active:
            try:
                credits += Decimal(str(wallet.get("credits_ongoing_balance") or "0"))
            except InvalidOperation:
                pass
        return cls(
            customer=customer,
            wallets={str(w["lago_id"]): _cents(w) for w in active},
            credits=format(credits, "f") if active else None,
            at=now,
        )


def _cents(wallet: dict) -> int:
    value = wallet.get("ongoing_balance_cents")
    if value is None:
        value = wallet.get("balance_cents") or 0
    return int(value)


# --- stores ------------------------------------------------------------------------------------


class MemoryWalletStore:
    """One process's wallet states (no Redis): correct for one process."""

    def __init__(self) -> None:
        self._states: dict[str, bytes] = {}
        self._meta: dict = {}
        self._lock = threading.Lock()

    async def aget(self, entity: str) -> WalletState | None:
        raw = self._states.get(entity)
        return WalletState.from_json(raw) if raw is not None else None

    def get(self, entity: str) -> WalletState | None:
        raw = self._states.get(entity)
        return WalletState.from_json(raw) if raw is not None else None

    def get_many(self, entities: list[str]) -> dict[str, WalletState]:
        return {e: s for e in entities if (s := self.get(e)) is not None}

    def put(self, states: dict[str, WalletState]) -> None:
        with self._lock:
            for entity, state in states.items():
                self._states[entity] = state.to_json()

    def prune(self, keep: set[str]) -> list[str]:
        with self._lock:
            gone = [e for e in self._states if e not in keep]
            for entity in gone:
                del self._states[entity]
        return gone

    def entities(self) -> list[str]:
        return list(self._states)

    def meta_get(self) -> dict:
        return dict(self._meta)

    def meta_put(self, **values) -> None:
        with self._lock:
            self._meta.update(values)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
            self._meta.clear()


class RedisWalletStore:
    """Wallet states in Redis, one key per entity, shared by every replica."""

    def __init__(self) -> None:
        # One hash tag: the states are read in one MGET and pruned with the index in one pipeline,
        # which Redis Cluster allows only within one slot.
        self._prefix = redis_key("billing", "{wallets}", "wallet") + ":"
        self._index = redis_key("billing", "{wallets}", "index")
        self._meta = redis_key("billing", "{wallets}", "refresh")
        self._clients = AsyncRedisPerLoop()

    def _async_client(self):
        return self._clients.get()

    @staticmethod
    def _sync():
        return sync_redis()

    async def aget(self, entity: str) -> WalletState | None:
        raw = await self._async_client().get(self._prefix + entity)
        return WalletState.from_json(raw) if raw is not None else None

    def get(self, entity: str) -> WalletState | None:
        raw = self._sync().get(self._prefix + entity)
        return WalletState.from_json(raw) if raw is not None else None

    def get_many(self, entities: list[str]) -> dict[str, WalletState]:
        if not entities:
            return {}
        values = self._sync().mget([self._prefix + e for e in entities])
        return {e: WalletState.from_json(v) for e, v in zip(entities, values) if v is not None}

    def put(self, states: dict[str, WalletState]) -> None:
        if not states:
            return
        pipe = self._sync().pipeline(transaction=False)
        for entity, state in states.items():
            pipe.set(self._prefix + entity, state.to_json())
        pipe.sadd(self._index, *states.keys())
        pipe.execute()

    def prune(self, keep: set[str]) -> list[str]:
        client = self._sync()
        gone = [m.decode() for m in client.smembers(self._index) if m.decode() not in keep]
        if gone:
            pipe = client.pipeline(transaction=False)
            for entity in gone:  # one key per DEL: a cluster pipeline refuses a DEL of several
                pipe.delete(self._prefix + entity)
            pipe.srem(self._index, *gone)
            pipe.execute()
        return gone

    def entities(self) -> list[str]:
        return [m.decode() for m in self._sync().smembers(self._index)]

    def meta_get(self) -> dict:
        raw = self._sync().get(self._meta)
        return orjson.loads(raw) if raw else {}

    def meta_put(self, **values) -> None:
        meta = self.meta_get()
        meta.update(values)
        self._sync().set(self._meta, orjson.dumps(meta))

    def clear(self) -> None:
        client = self._sync()
        entities = self.entities()
        keys = [self._prefix + e for e in entities] + [self._index, self._meta]
        client.delete(*keys)


_stores: dict[bool, object] = {}


def wallet_store() -> MemoryWalletStore | RedisWalletStore:
    """Redis when one is configured, else this process's memory."""
    use_redis = redis_enabled()
    store = _stores.get(use_redis)
    if store is None:
        store = _stores[use_redis] = RedisWalletStore() if use_redis else MemoryWalletStore()
    return store
