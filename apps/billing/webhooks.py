"""Verifying Lago's webhook signatures, in both of Lago's modes.

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

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from django.conf import settings

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
            from apps.billing.lago import LagoClient

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
