"""The data plane's in-process registry of active deployments, grouped by public model name.

Loaded whole from the database on first use and after an invalidation (a deployment
changed anywhere: apps.core.invalidation), so an unknown model name never costs a
query. The TTL only backs up a missed pub/sub message.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from apps.core import invalidation
from apps.core.cache import SingleFlightCache
from apps.core.db import db_call
from apps.providers.adapters import adapter_for
from apps.providers.adapters.base import ProviderAdapter
from apps.providers.selectors import deployment_list_active

logger = logging.getLogger(__name__)

ENV_REFERENCE_PREFIX = "os.environ/"
REGISTRY_TTL_SECONDS = 300.0


def resolve_secret(value: str | None) -> str | None:
    """A secret as written in config or the admin: the value, or `os.environ/NAME`."""
    if not value:
        return None
    if value.startswith(ENV_REFERENCE_PREFIX):
        return os.environ.get(value[len(ENV_REFERENCE_PREFIX) :]) or None
    return value


@dataclass(slots=True)
class Deployment:
    id: int
    model_name: str
    provider: str
    upstream_model: str
    adapter: ProviderAdapter
    api_base: str | None
    api_key: str | None = field(repr=False)
    api_version: str | None
    weight: int
    timeout: float | None
    rpm: int | None
    tpm: int | None
    input_cost_per_token: Decimal | None
    output_cost_per_token: Decimal | None
    cache_read_input_token_cost: Decimal | None
    extra_params: dict[str, Any]
    created: int = 0
    organization_id: str | None = None  # None: shared by every organization
    team_id: str | None = None  # None: any team's keys; else only that team's (LiteLLM's team models)
    team_rpm_limit: int | None = None  # the team's requests per minute to this model
    team_tpm_limit: int | None = None  # the team's tokens per minute to this model
    access_groups: tuple[str, ...] = ()
    secret_params: dict[str, str] = field(default_factory=dict, repr=False)
    # Routing: request tags it serves, the largest prompt it takes (tokens), and its
    # timeouts beyond `timeout` (seconds; None: the router's default).
    tags: tuple[str, ...] = ()
    max_input_tokens: int | None = None
    connect_timeout: float | None = None
    stream_timeout: float | None = None  # time to the first token of a stream
    mode: str = "chat"  # what a health check sends it: chat, completion, embedding, rerank
    # Identity of its shared routing state (cooldowns, counters) in Redis: the id alone
    # could be reused by a later row on SQLite, and must not inherit a cooldown.
    state_key: str = ""
    # Until when (unix seconds) its failed health check keeps it out of routing: the last check
    # failed, and is not older than a few check intervals (a stopped checker decides nothing).
    unhealthy_until: float = 0.0

    @property
    def is_wildcard(self) -> bool:
        """`openai/*`-style: the requested model fills in the upstream model."""
        return "*" in self.model_name


def deployment_state_key(pk: int, created_at) -> str:
    """A deployment's identity for shared routing state: its id and its creation time."""
    return f"{pk}.{int(created_at.timestamp() * 1_000_000)}"


def deployment_from_row(row) -> Deployment | None:
    """A ModelDeployment row as the data plane holds it; None when its provider is unknown."""
    adapter = adapter_for(row.provider, row.upstream_model)
    if adapter is None:
        logger.warning("deployment %s has unknown provider %r; skipped", row.pk, row.provider)
        return None
    api_key = resolve_secret(row.api_key)
    if api_key is None and adapter.api_key_env:
        api_key = os.environ.get(adapter.api_key_env) or None
    return Deployment(
        id=row.pk,
        model_name=row.model_name,
        provider=row.provider,
        upstream_model=row.upstream_model,
        adapter=adapter,
        api_base=row.api_base or adapter.default_api_base,
        api_key=api_key,
        api_version=row.api_version or None,
        weight=row.weight,
        timeout=row.timeout,
        rpm=row.rpm,
        tpm=row.tpm,
        input_cost_per_token=row.input_cost_per_token,
        output_cost_per_token=row.output_cost_per_token,
        cache_read_input_token_cost=row.cache_read_input_token_cost,
        extra_params=row.extra_params or {},
        created=int(row.created_at.timestamp()),
        organization_id=str(row.organization_id) if row.organization_id else None,
        team_id=str(row.team_id) if row.team_id else None,
        team_rpm_limit=row.team_model_rpm_limit,
        team_tpm_limit=row.team_model_tpm_limit,
        access_groups=tuple(row.access_groups or ()),
        secret_params={
            name: resolved
            for name, value in (row.secret_params or {}).items()
            if (resolved := resolve_secret(str(value))) is not None
        },
        tags=tuple(row.tags or ()),
        max_input_tokens=row.max_input_tokens,
        connect_timeout=row.connect_timeout,
        stream_timeout=row.stream_timeout,
        mode=row.mode or "chat",
        state_key=deployment_state_key(row.pk, row.created_at),
        unhealthy_until=_unhealthy_until(row),
    )


def _deployments_load() -> dict[str, list[Deployment]]:
    groups: dict[str, list[Deployment]] = {}
    for row in deployment_list_active():
        deployment = deployment_from_row(row)
        if deployment is not None:
            groups.setdefault(row.model_name, []).append(deployment)
    return groups


def _unhealthy_until(row) -> float:
    from django.conf import settings

    if row.health_status != row.Health.UNHEALTHY or row.health_checked_at is None:
        return 0.0
    return row.health_checked_at.timestamp() + 3 * settings.GATEWAY_HEALTH_CHECK_INTERVAL


def deployments_load() -> dict[str, list[Deployment]]:
    """Every active deployment, grouped by public name, read from the database now
    (for background work such as health checks; the request path uses the registry)."""
    return _deployments_load()


class DeploymentRegistry:
    def __init__(self) -> None:
        self._cache: SingleFlightCache[dict[str, list[Deployment]]] = SingleFlightCache(
            self._load, ttl=lambda groups: REGISTRY_TTL_SECONDS
        )
        # Wildcard group names (`openai/*`), most specific (longest) first.
        self._wildcards: tuple[str, ...] = ()

    async def _load(self, _key) -> dict[str, list[Deployment]]:
        groups = await db_call(_deployments_load)
        self._wildcards = tuple(sorted((n for n in groups if "*" in n), key=len, reverse=True))
        return groups

    async def groups(self) -> dict[str, list[Deployment]]:
        return await self._cache.get(None)

    async def deployment(self, deployment_id: int | None) -> Deployment | None:
        """One deployment by its id (a scan of the in-process registry: for calls that stored it)."""
        for group in (await self.groups()).values():
            for deployment in group:
                if deployment.id == deployment_id:
                    return deployment
        return None

    def wildcard_names(self) -> tuple[str, ...]:
        """The wildcard group names as of the last load (call after `await groups()`)."""
        return self._wildcards

    def invalidate(self) -> None:
        self._cache.invalidate()

    def handle_message(self, message: dict) -> None:
        if message.get("kind") == invalidation.KIND_DEPLOYMENTS:
            self.invalidate()


deployment_registry = DeploymentRegistry()
invalidation.register_handler(deployment_registry.handle_message)
