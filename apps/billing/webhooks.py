"""Lago's webhooks: verifying their signatures, then treating each as a notification only.

A verified webhook changes nothing by what its body says: it makes the gateway re-read the
customer's wallets from Lago's API (the source of truth), at most once per
BILLING_WEBHOOK_REFRESH_INTERVAL per customer (a later webhook in the interval gets one more
read after it). It is applied once: by its X-Lago-Unique-Key and by the hash of its signed
content, so a replay under a new key (or none) is a duplicate; and an event older than the
last one applied for the same wallet is ignored. A replay therefore changes nothing, and a
real top-up reaches every replica as soon as Lago's answer does.

Signatures, in both of Lago's modes:

- hmac: X-Lago-Signature = base64(HMAC-SHA256(the organization's HMAC key, raw body));
  the key is LAGO_WEBHOOK_SECRET.
- jwt: X-Lago-Signature is an RS256 JWT whose `data` claim is the payload JSON, signed with
  the key Lago publishes at /api/v1/webhooks/json_public_key (base64 of a PEM). The key is
  fetched once and kept; a signature that fails against it refetches it (at most once a minute),
  so a rotated key is picked up.

The algorithm is X-Lago-Signature-Algorithm (Lago sends it; absent means jwt, Lago's default).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
from datetime import datetime

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from apps.billing.lago import LagoClient, LagoUnavailable
from apps.billing.models import BillingWebhook, LagoWebhookCursor
from apps.billing.services import wallet_refresh_for_wallet, wallets_refresh

logger = logging.getLogger(__name__)

_REFETCH_EVERY = 60.0


class SignatureInvalid(Exception):
    pass


def hmac_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class _PublicKey:
    def __init__(self) -> None:
        self.key = None
        self.fetched_at = 0.0
        self.lock = threading.Lock()

    def get(self, *, refresh: bool = False):
        with self.lock:
            if self.key is not None and not refresh:
                return self.key
            if refresh and time.monotonic() - self.fetched_at < _REFETCH_EVERY:
                return self.key
            self.fetched_at = time.monotonic()
            with LagoClient() as client:
                encoded = client.webhook_public_key()
            self.key = serialization.load_pem_public_key(base64.b64decode(encoded))
            return self.key

    def clear(self) -> None:
        with self.lock:
            self.key = None
            self.fetched_at = 0.0


public_key = _PublicKey()


def signature_verify(*, algorithm: str | None, signature: str | None, body: bytes) -> None:
    """Raise SignatureInvalid unless `signature` signs `body` in `algorithm`."""
    if not signature:
        raise SignatureInvalid("no X-Lago-Signature")
    algorithm = (algorithm or "jwt").strip().lower()
    if algorithm == "hmac":
        secret = settings.LAGO_WEBHOOK_SECRET
        if not secret:
            raise SignatureInvalid("an HMAC-signed webhook, but LAGO_WEBHOOK_SECRET is not set")
        if not hmac.compare_digest(hmac_signature(secret, body).encode(), signature.strip().encode()):
            raise SignatureInvalid("HMAC signature mismatch")
        return
    if algorithm == "jwt":
        claims = _jwt_claims(signature.strip())
        data = claims.get("data")
        if not isinstance(data, str):
            raise SignatureInvalid("the JWT has no data claim")
        if data.encode() != body:
            # The signed payload must be the body, byte for byte or as the same JSON.
            try:
                same = orjson.loads(data) == orjson.loads(body)
            except orjson.JSONDecodeError:
                same = False
            if not same:
                raise SignatureInvalid("the JWT's data is not the body")
        return
    raise SignatureInvalid(f"unknown signature algorithm {algorithm!r}")


def _jwt_claims(token: str) -> dict:
    try:
        key = public_key.get()
    except Exception as exc:
        logger.warning("Lago's webhook public key could not be fetched: %s", exc)
        raise SignatureInvalid("the public key is not available") from None
    options = {"require": ["data"], "verify_aud": False}
    try:
        return jwt.decode(token, key, algorithms=["RS256"], options=options)
    except jwt.InvalidSignatureError:
        pass  # maybe a rotated key: fetch it again (rate-limited) and retry once
    except jwt.PyJWTError as exc:
        raise SignatureInvalid(f"invalid JWT: {exc}") from None
    try:
        fresh = public_key.get(refresh=True)
    except Exception:
        raise SignatureInvalid("JWT signature mismatch") from None
    if fresh is key:
        raise SignatureInvalid("JWT signature mismatch")
    try:
        return jwt.decode(token, fresh, algorithms=["RS256"], options=options)
    except jwt.PyJWTError as exc:
        raise SignatureInvalid(f"invalid JWT: {exc}") from None


# --- handling a verified webhook -----------------------------------------------------------------

WALLET_TYPES = {"wallet.created", "wallet.updated", "wallet.terminated", "wallet.depleted_ongoing_balance"}
WALLET_TRANSACTION_TYPES = {
    "wallet_transaction.created",
    "wallet_transaction.updated",
    "wallet_transaction.payment_failure",
}
# Lago's own times on each object, the newest of which dates the event.
_WALLET_TIMES = ("updated_at", "last_balance_sync_at", "last_consumed_credit_at", "terminated_at", "created_at")
_TRANSACTION_TIMES = ("updated_at", "settled_at", "failed_at", "created_at")


class WebhookMalformed(Exception):
    """A verified body that is not a webhook this gateway can read (400)."""


def payload_sha256(payload: dict) -> str:
    """The hash of what a signature covers, whatever the whitespace and key order."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _event_time(obj: dict, names: tuple[str, ...]) -> datetime | None:
    times = []
    for name in names:
        value = obj.get(name)
        if isinstance(value, str):
            try:
                times.append(datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                continue
    times = [t for t in times if t.tzinfo is not None]
    return max(times) if times else None


def _target(webhook_type: str, payload: dict) -> tuple[str, str, datetime | None] | None:
    """(what to re-read: "customer:<id>" or "wallet:<lago id>", the cursor's key, the event's
    time) for a webhook billing acts on; None for the others."""
    if webhook_type in WALLET_TYPES:
        wallet = payload.get("wallet")
        if not isinstance(wallet, dict):
            raise WebhookMalformed("a wallet webhook without a wallet object")
        customer, lago_id = wallet.get("external_customer_id"), wallet.get("lago_id")
        if not isinstance(customer, str) or not customer or not isinstance(lago_id, (str, type(None))):
            raise WebhookMalformed("the wallet has no external_customer_id")
        return f"customer:{customer}", f"wallet:{lago_id or customer}", _event_time(wallet, _WALLET_TIMES)
    if webhook_type in WALLET_TRANSACTION_TYPES:
        wallet_transaction = payload.get("wallet_transaction")
        if not isinstance(wallet_transaction, dict):
            raise WebhookMalformed("a wallet transaction webhook without a wallet_transaction object")
        lago_wallet_id = wallet_transaction.get("lago_wallet_id")
        if not isinstance(lago_wallet_id, str) or not lago_wallet_id:
            raise WebhookMalformed("the wallet transaction has no lago_wallet_id")
        return (f"wallet:{lago_wallet_id}", f"wallet_transaction:{lago_wallet_id}",
                _event_time(wallet_transaction, _TRANSACTION_TIMES))
    return None


def _cursor_advance(key: str, event_at: datetime | None) -> bool:
    """False if an event newer than this one was applied for the same object already."""
    if event_at is None:
        return True  # undatable: re-reading Lago is harmless, and the body hash stops exact replays
    cursor = LagoWebhookCursor.objects.select_for_update().filter(object_key=key).first()
    if cursor is None:
        LagoWebhookCursor.objects.create(object_key=key, event_at=event_at)
        return True
    if event_at < cursor.event_at:
        return False
    cursor.event_at = event_at
    cursor.save(update_fields=["event_at", "updated_at"])
    return True


def lago_webhook_handle(*, unique_key: str | None, payload: dict) -> str:
    """Handle a verified webhook: "duplicate" (seen already, under this key or this content),
    "stale" (older than one applied), "applied" (Lago re-read, or a re-read scheduled) or
    "ignored" (a type billing does not act on; recorded all the same).

    Raises WebhookMalformed (400), or LagoUnavailable when Lago cannot be re-read: then nothing
    is recorded, so Lago's retry of the webhook is handled afresh."""
    webhook_type = payload.get("webhook_type")
    if not isinstance(webhook_type, str):
        raise WebhookMalformed("no webhook_type")
    target = _target(webhook_type, payload)
    digest = payload_sha256(payload)
    with transaction.atomic():
        try:
            with transaction.atomic():
                BillingWebhook.objects.create(
                    unique_key=(unique_key or f"sha256:{digest}")[:255], body_sha256=digest,
                    webhook_type=webhook_type[:100], payload=payload,
                )
        except IntegrityError:
            return "duplicate"
        if target is None:
            return "ignored"
        what, cursor_key, event_at = target
        if not _cursor_advance(cursor_key, event_at):
            return "stale"
        wallets_reread(what)  # inside: if Lago fails, the receipt is rolled back with it
    return "applied"


def wallets_reread(what: str) -> None:
    """Re-read from Lago the wallets a webhook is about (`customer:<id>` or `wallet:<lago id>`),
    at most once per BILLING_WEBHOOK_REFRESH_INTERVAL for each; within the interval one more
    read is scheduled for its end, so the last change is never missed. Across replicas with Redis.
    Without a broker (Celery eager, the embedded default) nothing can wait: every webhook reads."""
    interval = settings.BILLING_WEBHOOK_REFRESH_INTERVAL
    key = f"billing:reread:{what}"
    if interval <= 0 or settings.CELERY_TASK_ALWAYS_EAGER or cache.add(key, 1, timeout=interval):
        wallets_reread_now(what)
        return
    if cache.add(f"{key}:trailing", 1, timeout=interval):
        from apps.billing.tasks import (
            wallets_reread_task,  # imported here: apps.billing.tasks imports this module
        )

        transaction.on_commit(lambda: wallets_reread_task.apply_async((what,), countdown=interval))


def wallets_reread_now(what: str) -> None:
    kind, _, ref = what.partition(":")
    result = (wallets_refresh(customer_id=ref) if kind == "customer"
              else wallet_refresh_for_wallet(lago_wallet_id=ref))
    if result.error:
        cache.delete(f"billing:reread:{what}")  # the next webhook (Lago's retry) reads again
        raise LagoUnavailable(result.error)
