"""Cost of a request from the provider's usage and the deployment's prices."""

from __future__ import annotations

from decimal import Decimal

from apps.providers.adapters.base import Usage
from apps.providers.registry import Deployment


def cost_for_usage(deployment: Deployment, usage: Usage) -> Decimal | None:
    """USD, or None when a price is missing: an unknown price is never a zero cost.

    Usage the provider did not report is an estimate (apps.spend.tokens); the spend
    log says so (usage_reported=False), and it is still priced, never left at zero.
    """
    if usage.search_units:
        price = deployment.extra_params.get("input_cost_per_query")
        return None if price is None else Decimal(str(usage.search_units)) * Decimal(str(price))
    if not usage.reported and not (usage.prompt_tokens or usage.completion_tokens):
        return None  # nothing was used or reported (a refused or failed request)
    input_price = deployment.input_cost_per_token
    output_price = deployment.output_cost_per_token
    if input_price is None or (output_price is None and usage.completion_tokens):
        return None
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cache_price = deployment.cache_read_input_token_cost
    if cache_price is None:
        cache_price = input_price
    cost = (usage.prompt_tokens - cached) * input_price + cached * cache_price
    if usage.completion_tokens:
        cost += usage.completion_tokens * output_price
    return cost
