"""JWT authentication on the data plane.

A bearer token that is a JWT is verified against the identity provider's signing keys
(fetched from GATEWAY_JWT_JWKS_URL on the event loop, cached for GATEWAY_JWT_KEYS_TTL,
fetched again early only for an unknown key id, at most every 30 s). Its claims name
the user, team and organization; the request then runs with their limits and models,
exactly as a key of that team and user would.
"""

from __future__ import annotations

import asyncio
import time

import jwt
from django.conf import settings

from apps.core import invalidation
from apps.core.errors import authentication_failed
from apps.keys.cache import KeyCache
from apps.keys.context import KeyContext
from apps.providers.transport import transport

REFETCH_COOLDOWN_SECONDS = 30.0


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


class SigningKeys:
    def __init__(self) -> None:
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock: asyncio.Lock | None = None

    async def _fetch(self) -> None:
        session = transport._get_session()
        async with session.get(settings.GATEWAY_JWT_JWKS_URL, timeout=10) as response:
            if response.status != 200:
                raise authentication_failed("The identity provider's signing keys are unavailable.",
                                            code="jwks_unavailable")
            data = await response.json(content_type=None)
        key_set = jwt.PyJWKSet.from_dict(data)
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        self._fetched_at = time.monotonic()

    async def get(self, key_id: str | None) -> jwt.PyJWK:
        age = time.monotonic() - self._fetched_at
        stale = age > settings.GATEWAY_JWT_KEYS_TTL
        unknown = key_id not in self._keys and age > REFETCH_COOLDOWN_SECONDS
        if stale or unknown:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if time.monotonic() - self._fetched_at > min(settings.GATEWAY_JWT_KEYS_TTL, REFETCH_COOLDOWN_SECONDS) \
                        or not self._keys:
                    await self._fetch()
        if key_id is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if key_id not in self._keys:
            raise authentication_failed("The token was signed with an unknown key.", code="invalid_token")
        return self._keys[key_id]


signing_keys = SigningKeys()
_contexts = KeyCache(loader="apps.keys.selectors.jwt_context_get")
invalidation.register_handler(_contexts.handle_message)


async def authenticate_jwt(token: str) -> KeyContext:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise authentication_failed("The token is not a valid JWT.", code="invalid_token") from None
    key = await signing_keys.get(header.get("kid"))
    try:
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=settings.GATEWAY_JWT_ALGORITHMS,
            audience=settings.GATEWAY_JWT_AUDIENCE,
            issuer=settings.GATEWAY_JWT_ISSUER,
            leeway=30,
            options={"require": ["exp"], "verify_aud": settings.GATEWAY_JWT_AUDIENCE is not None},
        )
    except jwt.ExpiredSignatureError:
        raise authentication_failed("The token has expired.", code="token_expired") from None
    except jwt.InvalidTokenError as exc:
        raise authentication_failed(f"The token is not valid: {exc}.", code="invalid_token") from None
    subject = claims.get(settings.GATEWAY_JWT_USER_CLAIM)
    if not isinstance(subject, str) or not subject:
        raise authentication_failed(f"The token has no '{settings.GATEWAY_JWT_USER_CLAIM}' claim.",
                                    code="invalid_token")
    team = claims.get(settings.GATEWAY_JWT_TEAM_CLAIM)
    organization = claims.get(settings.GATEWAY_JWT_ORGANIZATION_CLAIM)
    identity = f"{subject}\x1f{team or ''}\x1f{organization or ''}"
    context = await _contexts.get(identity)
    if context is None:
        raise authentication_failed("The token's team or organization is unknown to the gateway.",
                                    code="invalid_token")
    if context.blocked_reason:
        raise authentication_failed(context.blocked_reason, code="key_blocked")
    return context


