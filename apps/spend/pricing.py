"""Cost of a request from the provider's usage, the price catalog and the deployment's prices.

The catalog (ModelPrice versions) lives in process memory, like the deployment registry:
loaded once, reloaded after an invalidation ("prices", published when prices change in the
admin or by import_prices; "deployments" too, which is also what a Redis reconnect sends), and
looked up per request by dictionary. A deployment is priced by the first catalog key that has
a version in force when the request started, among: its `base_model` param, `provider/model`,
the bare upstream model (LiteLLM's keys: "gpt-4o", "gemini/gemini-2.5-flash",
"anthropic.claude-3-5-sonnet-20240620-v1:0"), and for Bedrock the model without its
cross-region prefix. Each price the deployment sets itself (its price fields, or LiteLLM's
price params in extra_params) wins over the catalog's.

The formula is LiteLLM's (generic_cost_per_token): uncached input at the input price, cache
reads and writes (5-minute and 1-hour) at theirs, output at the output price with reasoning at
its own price when the model has one; above a tier threshold the tier's prices apply to every
token; images, seconds and rerank search units at their prices. An unknown price is never a
zero cost: the cost is None and the log says "unpriced".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from apps.core import invalidation
from apps.providers.adapters.base import Usage
from apps.providers.registry import Deployment
from apps.spend.models import price_version_label
from apps.spend.price_format import TIERED_PRICE_FIELDS, prices_from_params

logger = logging.getLogger(__name__)

KIND_PRICES = "prices"  # the invalidation message kind: the price catalog changed
CATALOG_TTL_SECONDS = 300.0  # a backstop for a missed invalidation only
# On the event loop, how long a request may wait for the catalog after it changed before it is
# priced with the previous one (a database in trouble must not stall the loop for long).
BLOCKING_LOAD_TIMEOUT_SECONDS = 0.5
LOAD_RETRY_SECONDS = 5.0  # after a failed load, requests wait this long before the next try
HISTORY_KEPT_SECONDS = 3600.0  # versions replaced longer ago than this no longer price anything
BEDROCK_REGION_PREFIXES = ("us.", "eu.", "apac.", "au.", "jp.", "ca.", "us-gov.", "global.")
PRICE_VERSION_MAX_LENGTH = 255


class CostStatus:
    """SpendLog.CostStatus's values (kept here so the request path imports no model)."""

    PRICED = "priced"
    ESTIMATED = "estimated"
    UNPRICED = "unpriced"
    NO_USAGE = "no_usage"


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per token (per image, second or search unit where named so); None: no price."""

    input_cost_per_token: Decimal | None = None
    output_cost_per_token: Decimal | None = None
    cache_read_input_token_cost: Decimal | None = None
    cache_creation_input_token_cost: Decimal | None = None
    cache_creation_input_token_cost_above_1hr: Decimal | None = None
    output_cost_per_reasoning_token: Decimal | None = None
    input_cost_per_image: Decimal | None = None
    output_cost_per_image: Decimal | None = None
    input_cost_per_second: Decimal | None = None
    output_cost_per_second: Decimal | None = None
    input_cost_per_query: Decimal | None = None
    input_cost_per_character: Decimal | None = None
    input_cost_per_token_batches: Decimal | None = None
    output_cost_per_token_batches: Decimal | None = None
    tier_threshold_tokens: int | None = None
    input_cost_per_token_above_tier: Decimal | None = None
    output_cost_per_token_above_tier: Decimal | None = None
    cache_read_input_token_cost_above_tier: Decimal | None = None
    cache_creation_input_token_cost_above_tier: Decimal | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None


PRICES_FIELD_NAMES = tuple(f.name for f in fields(Prices))
_TIER_FIELDS = ("tier_threshold_tokens", *TIERED_PRICE_FIELDS.values())


@dataclass(frozen=True, slots=True)
class CatalogVersion:
    model_key: str
    effective_from: float  # epoch seconds
    version: str  # what spend logs record: "gpt-4o@2025-06-01T00:00:00Z"
    prices: Prices


class PricedUsage(NamedTuple):
    cost: Decimal | None
    status: str  # CostStatus
    version: str  # "" when nothing priced it


NOTHING_USED = PricedUsage(None, CostStatus.NO_USAGE, "")


# --- the formula ---------------------------------------------------------------------------------


def _rate(above: bool, tier_price: Decimal | None, price: Decimal | None) -> Decimal | None:
    return tier_price if above and tier_price is not None else price


def usage_cost(prices: Prices, usage: Usage) -> Decimal | None:
    """USD for `usage` at `prices`, or None when something used has no price."""
    prompt = max(usage.prompt_tokens, 0)
    cached = min(max(usage.cached_tokens, 0), prompt)
    written = min(max(usage.cache_write_tokens, 0), prompt - cached)
    written_1h = min(max(usage.cache_write_1h_tokens, 0), written)
    uncached = prompt - cached - written
    completion = max(usage.completion_tokens, 0)
    reasoning = min(max(usage.reasoning_tokens, 0), completion)

    above = prices.tier_threshold_tokens is not None and prompt > prices.tier_threshold_tokens
    input_rate = _rate(above, prices.input_cost_per_token_above_tier, prices.input_cost_per_token)
    output_rate = _rate(above, prices.output_cost_per_token_above_tier, prices.output_cost_per_token)
    cache_read_rate = _rate(above, prices.cache_read_input_token_cost_above_tier,
                            prices.cache_read_input_token_cost)
    cache_write_rate = _rate(above, prices.cache_creation_input_token_cost_above_tier,
                             prices.cache_creation_input_token_cost)
    if cache_read_rate is None:
        cache_read_rate = input_rate  # a provider without a cache discount
    if cache_write_rate is None:
        cache_write_rate = input_rate
    cache_write_1h_rate = prices.cache_creation_input_token_cost_above_1hr
    if cache_write_1h_rate is None:
        cache_write_1h_rate = cache_write_rate
    reasoning_rate = prices.output_cost_per_reasoning_token
    if reasoning_rate is None:
        reasoning_rate = output_rate

    cost = Decimal(0)
    for count, rate in (
        (uncached, input_rate),
        (cached, cache_read_rate),
        (written - written_1h, cache_write_rate),
        (written_1h, cache_write_1h_rate),
        (completion - reasoning, output_rate),
        (reasoning, reasoning_rate),
    ):
        if count:
            if rate is None:
                return None
            cost += count * rate
    if usage.search_units:
        if prices.input_cost_per_query is None:
            return None
        cost += Decimal(str(usage.search_units)) * prices.input_cost_per_query
    # Images and seconds are most often counted in tokens already (and priced above); where the
    # model has a price for them it is added, and they alone must be priced to be counted.
    tokens_used = bool(prompt or completion or usage.search_units)
    for count, rate in (
        (usage.input_images, prices.input_cost_per_image),
        (usage.output_images, prices.output_cost_per_image),
        (usage.input_seconds, prices.input_cost_per_second),
        (usage.output_seconds, prices.output_cost_per_second),
        (usage.input_characters, prices.input_cost_per_character),
    ):
        if count:
            if rate is not None:
                cost += Decimal(str(count)) * rate
            elif not tokens_used:
                return None
    return cost


def _nothing_used(usage: Usage) -> bool:
    return not (usage.prompt_tokens or usage.completion_tokens or usage.search_units or usage.input_images
                or usage.output_images or usage.input_seconds or usage.output_seconds or usage.input_characters)


# --- the catalog in memory -----------------------------------------------------------------------


@dataclass(slots=True)
class _Resolved:
    """What a deployment's pricing needs, worked out once per deployment object."""

    deployment: Deployment
    keys: tuple[str, ...]
    overrides: dict[str, Any]
    override_label: str
    merged_for: CatalogVersion | None = None
    merged: Prices | None = None
    label: str = ""


_NOT_MERGED = object()


def catalog_keys(deployment: Deployment) -> tuple[str, ...]:
    """The catalog keys that may price a deployment, best first."""
    upstream = deployment.upstream_model
    keys: list[str] = []
    base_model = (deployment.extra_params or {}).get("base_model")
    if isinstance(base_model, str) and base_model:
        keys.append(base_model)
    keys += [f"{deployment.provider}/{upstream}", upstream]
    if deployment.provider == "bedrock":
        for prefix in BEDROCK_REGION_PREFIXES:
            if upstream.startswith(prefix):
                keys += [upstream[len(prefix):], f"bedrock/{upstream[len(prefix):]}"]
                break
    return tuple(dict.fromkeys(k for k in keys if k))


def deployment_overrides(deployment: Deployment) -> dict[str, Any]:
    """The prices a deployment sets itself: its price fields, and LiteLLM's price params."""
    overrides = prices_from_params(deployment.extra_params or {})
    for name in ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost"):
        value = getattr(deployment, name)
        if value is not None:
            overrides[name] = Decimal(value)
    return overrides


def merged_prices(catalog: Prices | None, overrides: dict[str, Any]) -> Prices | None:
    """The catalog's prices with the deployment's over them. A deployment that sets its own input
    or output price but no tier does not inherit the catalog's tier: it belongs to other prices."""
    if catalog is None and not overrides:
        return None
    prices = catalog or Prices()
    if not overrides:
        return prices
    changes = dict(overrides)
    sets_base = "input_cost_per_token" in overrides or "output_cost_per_token" in overrides
    if sets_base and not any(name in overrides for name in _TIER_FIELDS):
        changes.update({name: None for name in _TIER_FIELDS})
    return replace(prices, **changes)


def _in_force(history: tuple[CatalogVersion, ...], at: float) -> CatalogVersion | None:
    for version in reversed(history):  # newest first: almost always the first one
        if version.effective_from <= at:
            return version
    return None


class PriceCatalog:
    def __init__(self) -> None:
        self._versions: dict[str, tuple[CatalogVersion, ...]] = {}
        self._generation = 0
        self._loaded_generation = -1  # the generation the versions reflect; -1: never loaded
        self._loaded_at = 0.0
        self._blocking_tried = -1  # the generation a request last waited for
        self._inflight: concurrent.futures.Future | None = None
        self._inflight_generation = -1
        self._inflight_started = 0.0
        self._installed_generation = -1
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._resolved: dict[int, _Resolved] = {}
        self.unpriced: dict[str, int] = {}  # "provider/model" → unpriced requests in this process

    # Loading.

    def _load(self, generation: int) -> None:
        from apps.spend.selectors import (
            model_price_catalog_rows,  # selectors import PRICES_FIELD_NAMES from here
        )

        versions = _versions_from_rows(model_price_catalog_rows(), time.time())
        with self._lock:
            if generation < self._installed_generation:
                return  # a newer load got there first
            self._versions = versions
            self._installed_generation = generation
            if generation == self._generation:
                self._loaded_generation = generation
                self._loaded_at = time.monotonic()

    def _load_in_thread(self, generation: int) -> None:
        from django.db import connection

        try:
            self._load(generation)
        finally:
            connection.close()  # this thread's own connection; loads are rare

    def _start_load(self) -> concurrent.futures.Future:
        with self._lock:
            inflight = self._inflight
            if inflight is not None and self._inflight_generation == self._generation:
                if not inflight.done():
                    return inflight  # a load that will see the latest change
                if time.monotonic() - self._inflight_started < LOAD_RETRY_SECONDS:
                    return inflight  # it just failed (or finished): no load per request
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="price-catalog")
            self._inflight_generation = self._generation
            self._inflight_started = time.monotonic()
            self._inflight = self._executor.submit(self._load_in_thread, self._generation)
            self._inflight.add_done_callback(_log_load_failure)
            return self._inflight

    def reload(self) -> None:
        """Load the catalog now, in this thread (outside an event loop: commands, tests)."""
        self._load(self._generation)

    async def aload(self) -> None:
        """Load the catalog without blocking the loop (a server process at start)."""
        await asyncio.wrap_future(self._start_load())

    def versions(self) -> dict[str, tuple[CatalogVersion, ...]]:
        if self._loaded_generation == self._generation:
            if time.monotonic() - self._loaded_at > CATALOG_TTL_SECONDS:
                self._start_load()  # serve these meanwhile
            return self._versions
        # Never loaded, or changed since: wait for the load (bounded on the event loop).
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            try:
                self.reload()
            except Exception:
                logger.exception("the price catalog could not be loaded")
            return self._versions
        if self._blocking_tried != self._generation:
            self._blocking_tried = self._generation
            try:
                self._start_load().result(timeout=BLOCKING_LOAD_TIMEOUT_SECONDS)
            except concurrent.futures.TimeoutError:
                logger.warning("the price catalog is slow to load; pricing with the previous one meanwhile")
            except Exception:
                pass  # logged by _log_load_failure
        else:
            self._start_load()
        return self._versions

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1

    def handle_message(self, message: dict) -> None:
        if message.get("kind") in (KIND_PRICES, invalidation.KIND_DEPLOYMENTS):
            self.invalidate()
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # the next request loads it
            self._start_load()  # a server process: have it ready before the next request

    # Lookup.

    def _resolve(self, deployment: Deployment) -> _Resolved:
        resolved = self._resolved.get(deployment.id)
        if resolved is None or resolved.deployment is not deployment:
            overrides = deployment_overrides(deployment)
            resolved = _Resolved(
                deployment=deployment,
                keys=catalog_keys(deployment),
                overrides=overrides,
                override_label=f"deployment:{deployment.id}" if overrides else "",
                merged_for=_NOT_MERGED,  # type: ignore[arg-type]
            )
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            self._resolved[deployment.id] = resolved
        return resolved

    def prices_for(self, deployment: Deployment, at: float | None = None,
                   variants: tuple[str, ...] = ()) -> tuple[Prices | None, str]:
        """The prices in force for a deployment at `at` (epoch seconds; now by default), and the
        version label a spend log records; (None, "") when no price is known. `variants`: key
        prefixes tried first ("hd/1024-x-1792" finds "hd/1024-x-1792/dall-e-3")."""
        versions = self.versions()
        at = time.time() if at is None else at
        resolved = self._resolve(deployment)
        for variant in variants:
            for key in resolved.keys:
                history = versions.get(f"{variant}/{key}")
                if history and (catalog := _in_force(history, at)) is not None:
                    labels = [label for label in (resolved.override_label, catalog.version) if label]
                    return (merged_prices(catalog.prices, resolved.overrides),
                            "+".join(labels)[:PRICE_VERSION_MAX_LENGTH])
        catalog = None
        for key in resolved.keys:
            history = versions.get(key)
            if history and (catalog := _in_force(history, at)) is not None:
                break
        if catalog is not resolved.merged_for:
            resolved.merged = merged_prices(catalog.prices if catalog else None, resolved.overrides)
            labels = [label for label in (resolved.override_label, catalog.version if catalog else "") if label]
            resolved.label = "+".join(labels)[:PRICE_VERSION_MAX_LENGTH]
            resolved.merged_for = catalog
        return resolved.merged, resolved.label

    def model_keys(self) -> set[str]:
        return set(self.versions())


def _log_load_failure(future: concurrent.futures.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("the price catalog could not be loaded", exc_info=future.exception())


def _versions_from_rows(rows, now: float) -> dict[str, tuple[CatalogVersion, ...]]:
    """Rows ordered by model_key, effective_from → each key's versions that can still price a
    request: the future ones, the one in force, and any it replaced within the last hour."""
    by_key: dict[str, list[CatalogVersion]] = {}
    for row in rows:
        effective = row["effective_from"]
        values = {name: row.get(name) for name in PRICES_FIELD_NAMES}
        by_key.setdefault(row["model_key"], []).append(
            CatalogVersion(
                model_key=row["model_key"],
                effective_from=effective.timestamp(),
                version=price_version_label(row["model_key"], effective),
                prices=Prices(**{k: (v.normalize() if isinstance(v, Decimal) else v) for k, v in values.items()}),
            )
        )
    horizon = now - HISTORY_KEPT_SECONDS
    catalog = {}
    for key, history in by_key.items():
        first = 0
        for index, version in enumerate(history):
            if version.effective_from <= horizon:
                first = index
        catalog[key] = tuple(history[first:])
    return catalog


price_catalog = PriceCatalog()
invalidation.register_handler(price_catalog.handle_message)


# --- what the request path calls -----------------------------------------------------------------


def prices_in_force(deployment: Deployment, at: float | None = None) -> Prices | None:
    """A deployment's prices now (or at `at`): for reservations, routing by cost, context windows."""
    return price_catalog.prices_for(deployment, at)[0]


def price_usage(deployment: Deployment | None, usage: Usage, at: float | None = None) -> PricedUsage:
    """The cost of a request that started at `at` (epoch seconds), how it was had, and the
    prices' version. Usage the provider did not report (apps.spend.tokens counted it) is
    priced and marked estimated; a used model with no known price is unpriced, never $0."""
    if deployment is None or (not usage.reported and _nothing_used(usage)):
        return NOTHING_USED  # refused or failed before anything was used
    prices, version = price_catalog.prices_for(deployment, at, usage.price_variants)
    cost = usage_cost(prices, usage) if prices is not None else None
    if cost is None:
        model = f"{deployment.provider}/{deployment.upstream_model}"
        if model not in price_catalog.unpriced:
            logger.warning("no price known for %s (deployment %s): its requests are logged unpriced",
                           model, deployment.id)
        if len(price_catalog.unpriced) < 10_000 or model in price_catalog.unpriced:
            price_catalog.unpriced[model] = price_catalog.unpriced.get(model, 0) + 1
        return PricedUsage(None, CostStatus.UNPRICED, version)
    return PricedUsage(cost, CostStatus.PRICED if usage.reported else CostStatus.ESTIMATED, version)


def batch_prices(prices: Prices) -> Prices | None:
    """The prices of a Batch API request: the batch columns for input and output, cache reads
    discounted as the input is (OpenAI halves both); None when the model has no batch price."""
    if prices.input_cost_per_token_batches is None or prices.output_cost_per_token_batches is None:
        return None
    cache_read = prices.cache_read_input_token_cost
    if cache_read is not None and prices.input_cost_per_token:
        cache_read = cache_read * prices.input_cost_per_token_batches / prices.input_cost_per_token
    return replace(
        prices, input_cost_per_token=prices.input_cost_per_token_batches,
        output_cost_per_token=prices.output_cost_per_token_batches, cache_read_input_token_cost=cache_read,
        output_cost_per_reasoning_token=None, tier_threshold_tokens=None,
    )


def price_batch_usage(deployment: Deployment, usage: Usage, at: float | None = None) -> PricedUsage:
    """The cost of one Batch API request: at the model's batch prices; a model without them is
    priced at its standard prices and marked estimated (an upper bound, never $0)."""
    if not usage.reported and _nothing_used(usage):
        return NOTHING_USED
    prices, version = price_catalog.prices_for(deployment, at, usage.price_variants)
    discounted = batch_prices(prices) if prices is not None else None
    if discounted is None:
        priced = price_usage(deployment, usage, at)
        if priced.status == CostStatus.PRICED:
            return PricedUsage(priced.cost, CostStatus.ESTIMATED, priced.version)
        return priced
    cost = usage_cost(discounted, usage)
    if cost is None:
        return PricedUsage(None, CostStatus.UNPRICED, version)
    return PricedUsage(cost, CostStatus.PRICED if usage.reported else CostStatus.ESTIMATED, version)


def cost_for_usage(deployment: Deployment, usage: Usage) -> Decimal | None:
    """USD, or None when a price is missing: an unknown price is never a zero cost."""
    return price_usage(deployment, usage).cost


# --- what the management API calls ---------------------------------------------------------------


def catalog_prices(model_key: str, at: float | None = None) -> Prices | None:
    """The catalog's prices in force for a model key now (or at `at`); None: no such key."""
    history = price_catalog.versions().get(model_key)
    version = _in_force(history, time.time() if at is None else at) if history else None
    return version.prices if version is not None else None


def calculated_cost(model: str, usage_of: Callable[[str], Usage],
                    deployments: Sequence[Deployment]) -> Decimal | None:
    """LiteLLM's /spend/calculate: what `model` costs for the usage `usage_of(upstream model)`
    gives (token counts depend on the model's tokenizer). A model the gateway serves
    (`deployments`: the ones the caller may see) is priced as its requests are, at its priciest
    deployment, as budget reservations count; any other name is looked up in the catalog, as given
    and without a provider prefix ("openai/gpt-4o" → "gpt-4o"). None: no price is known."""
    if deployments:
        costs = [
            cost for deployment in deployments
            if (prices := prices_in_force(deployment)) is not None
            and (cost := usage_cost(prices, usage_of(deployment.upstream_model))) is not None
        ]
        return max(costs) if costs else None
    keys = [model] + ([model.split("/", 1)[1]] if "/" in model else [])
    for key in keys:
        prices = catalog_prices(key)
        if prices is not None:
            return usage_cost(prices, usage_of(key))
    return None
