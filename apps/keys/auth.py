"""Authentication on the data plane: header → sha256 → in-process key cache."""

from __future__ import annotations

import hashlib
import hmac
import time

from django.http import HttpRequest

from apps.core.errors import authentication_failed
from apps.core.hot_settings import setting
from apps.keys.cache import key_cache
from apps.keys.context import KeyContext
from apps.keys.jwt_auth import authenticate_jwt, looks_like_jwt
from apps.keys.master import master_key_context, master_key_hash, master_key_set  # noqa: F401 (master_key_set: re-exported)
from apps.keys.playground import is_playground_credential, playground_context_get


def raw_key_from_request(request: HttpRequest) -> str | None:
    meta = request.META
    authorization = meta.get("HTTP_AUTHORIZATION")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    # LiteLLM's own header (with or without "Bearer "), then Azure's, Anthropic's and Google's.
    litellm = meta.get("HTTP_X_LITELLM_API_KEY")
    if litellm:
        scheme, _, value = litellm.partition(" ")
        return (value if scheme.lower() == "bearer" else litellm).strip() or None
    header_key = meta.get("HTTP_API_KEY") or meta.get("HTTP_X_API_KEY") or meta.get("HTTP_X_GOOG_API_KEY")
    if header_key:
        return header_key
    if request.path.startswith("/gemini/"):
        # Google's clients may send the key as ?key= (the pass-through never sends it on, and
        # the server keeps no access log, so it is written nowhere).
        return request.GET.get("key") or None
    return None


async def authenticate(request: HttpRequest) -> KeyContext:
    raw_key = raw_key_from_request(request)
    if not raw_key:
        raise authentication_failed(
            "No API key provided. Send it as 'Authorization: Bearer <key>', 'x-litellm-api-key', 'api-key', "
            "'x-api-key' or 'x-goog-api-key'.",
            code="missing_api_key",
        )
    if setting("GATEWAY_JWT_JWKS_URL") and looks_like_jwt(raw_key):
        return await authenticate_jwt(raw_key)
    if is_playground_credential(raw_key):
        context = await playground_context_get(raw_key)
    else:
        context = await _key_context_get(raw_key)
    if context is None:
        raise authentication_failed("Invalid API key.")
    if context.blocked_reason:
        raise authentication_failed(context.blocked_reason, code="key_blocked")
    if context.expires_at is not None and context.expires_at <= time.time():
        raise authentication_failed("This key has expired.", code="key_expired")
    return context


async def _key_context_get(raw_key: str) -> KeyContext | None:
    digest = hashlib.sha256(raw_key.encode())
    master = master_key_hash()
    if master is not None and hmac.compare_digest(digest.digest(), master):
        return master_key_context()
    return await key_cache.get(digest.hexdigest())
