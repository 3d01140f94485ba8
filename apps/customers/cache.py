"""The data plane's in-process view of the end users that have limits or are blocked.

Per organization namespace (the organization of the request's key; None outside every
organization) one dict holds only the end users that carry limits, loaded in one query on a miss
and dropped by invalidation when an end user or budget of that namespace changes. So the common
case, an end user without limits (and every id a client makes up), is a dict miss: no database
query and no Redis round trip, however many different ids arrive, and nothing is kept for them.
"""

from __future__ import annotations

from django.conf import settings

from apps.core import invalidation
from apps.core.cache import SingleFlightCache
from apps.core.db import db_call
from apps.customers.selectors import EndUserLimits, end_users_with_limits

KIND_END_USERS = "end_users"  # invalidation message: {"kind", "organization": id | None}


class EndUserLimitsCache:
    def __init__(self) -> None:
        self._cache: SingleFlightCache[dict[str, EndUserLimits]] = SingleFlightCache(
            self._load, ttl=lambda _: settings.GATEWAY_KEY_CACHE_TTL
        )

    async def _load(self, organization_id: str | None) -> dict[str, EndUserLimits]:
        return await db_call(end_users_with_limits, organization_id=organization_id)

    async def get(self, organization_id: str | None, user_id: str) -> EndUserLimits | None:
        """The end user's limits, or None when it has none (a dict lookup once its namespace is loaded)."""
        return (await self._cache.get(organization_id)).get(user_id)

    def peek(self, organization_id: str | None) -> dict[str, EndUserLimits] | None:
        """The namespace's limited end users if loaded (no load)."""
        return self._cache.peek(organization_id)

    def handle_message(self, message: dict) -> None:
        kind = message.get("kind")
        if kind == KIND_END_USERS:
            self._cache.invalidate(message.get("organization"))
        elif kind == invalidation.KIND_ALL_KEYS:
            # Sent on an organization's change or deletion, and after a reconnect to Redis
            # (messages may have been missed).
            self._cache.invalidate()


def end_users_invalidate(organization_id) -> None:
    """Every process reloads this namespace's limited end users (after the transaction commits)."""
    invalidation.publish_on_commit(
        {"kind": KIND_END_USERS, "organization": None if organization_id is None else str(organization_id)}
    )


end_user_limits_cache = EndUserLimitsCache()
invalidation.register_handler(end_user_limits_cache.handle_message)
