"""Authentication on the data plane: header → sha256 → in-process key cache."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import replace

from django.conf import settings
from django.http import HttpRequest

from apps.core.errors import authentication_failed
from apps.keys.cache import key_cache
from apps.keys.context import MASTER_KEY_CONTEXT, KeyContext
from apps.keys.jwt_auth import authenticate_jwt, looks_like_jwt

_master_key_hash: bytes | None = None
_master_key_loaded = False
_master_context: KeyContext = MASTER_KEY_CONTEXT


def master_key_set(raw_key: str | None, *, store_prompts: bool = False) -> None:
    """Set the master key of this process (from GATEWAY_MASTER_KEY or the config file), and
    whether its requests' prompts are stored (the gateway's default)."""
    global _master_key_hash, _master_key_loaded, _master_context
    _master_key_hash = hashlib.sha256(raw_key.encode()).digest() if raw_key else None
    _master_key_loaded = True
    _master_context = replace(MASTER_KEY_CONTEXT, store_prompts=store_prompts)


def _master_hash() -> bytes | None:
    if not _master_key_loaded:
        master_key_set(settings.GATEWAY_MASTER_KEY)
    return _master_key_hash


def raw_key_from_request(request: HttpRequest) -> str | None:
    meta = request.META
    authorization = meta.get("HTTP_AUTHORIZATION")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return meta.get("HTTP_API_KEY") or meta.get("HTTP_X_API_KEY") or None


async def authenticate(request: HttpRequest) -> KeyContext:
    raw_key = raw_key_from_request(request)
    if not raw_key:
        raise authentication_failed(
            "No API key provided. Send it as 'Authorization: Bearer <key>', 'api-key' or 'x-api-key'.",
            code="missing_api_key",
        )
    if settings.GATEWAY_JWT_JWKS_URL and looks_like_jwt(raw_key):
        return await authenticate_jwt(raw_key)
    digest = hashlib.sha256(raw_key.encode())
    master = _master_hash()
    if master is not None and hmac.compare_digest(digest.digest(), master):
        return _master_context
    context = await key_cache.get(digest.hexdigest())
    if context is None:
        raise authentication_failed("Invalid API key.")
    if context.blocked_reason:
        raise authentication_failed(context.blocked_reason, code="key_blocked")
    if context.expires_at is not None and context.expires_at <= time.time():
        raise authentication_failed("This key has expired.", code="key_expired")
    return context
