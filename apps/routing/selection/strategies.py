"""How a group's strategy picks one deployment among those free to take the request.

Each strategy is a pure function of the candidates and their shared state
(apps.routing.selection.deployment_state), so it is the same on every replica and easy to test.
"""

from __future__ import annotations

import random
from decimal import Decimal

from apps.providers.registry import Deployment
from apps.routing.selection import policy
from apps.routing.selection.deployment_state import COOLDOWNS_ONLY, DeploymentLoad, StateNeeds
from apps.spend.pricing import prices_in_force

_NEEDS = {
    policy.SIMPLE_SHUFFLE: COOLDOWNS_ONLY,
    policy.LEAST_BUSY: StateNeeds(in_flight=True),
    policy.LATENCY_BASED: StateNeeds(latency=True),
    policy.COST_BASED: COOLDOWNS_ONLY,
    policy.USAGE_BASED: StateNeeds(usage=True),
}


def strategy_needs(strategy: str) -> StateNeeds:
    return _NEEDS[strategy]


def shuffle_weights(candidates: list[Deployment]) -> list[float]:
    """Explicit weights when they differ; else rpm, else tpm, when every deployment has one."""
    weights = [d.weight for d in candidates]
    if len(set(weights)) > 1:
        return weights
    if all(d.rpm for d in candidates):
        return [d.rpm for d in candidates]
    if all(d.tpm for d in candidates):
        return [d.tpm for d in candidates]
    return [1] * len(candidates)


def simple_shuffle(candidates: list[Deployment], loads: list[DeploymentLoad], **_) -> Deployment:
    weights = shuffle_weights(candidates)
    if not any(weights):
        return random.choice(candidates)
    return random.choices(candidates, weights=weights, k=1)[0]


def least_busy(candidates: list[Deployment], loads: list[DeploymentLoad], **_) -> Deployment:
    fewest = min(load.in_flight for load in loads)
    return random.choice([d for d, load in zip(candidates, loads) if load.in_flight == fewest])


def lowest_latency(candidates: list[Deployment], loads: list[DeploymentLoad], *, stream: bool,
                   latency_buffer: float, **_) -> Deployment:
    """The fastest by moving average (time to first token for streams, where known); every
    deployment within `latency_buffer` of it shares the load, so near-ties do not flap.
    A deployment without statistics counts as fastest: it gets tried, then measured."""

    def seconds(load: DeploymentLoad) -> float:
        preferred = load.time_to_first_token if stream else load.latency
        fallback = load.latency if stream else load.time_to_first_token
        value = preferred if preferred is not None else fallback
        return 0.0 if value is None else value

    times = [seconds(load) for load in loads]
    limit = min(times) * (1 + latency_buffer)
    return random.choice([d for d, t in zip(candidates, times) if t <= limit])


def _price(deployment: Deployment) -> Decimal | None:
    """Input + output per token at the prices in force: the deployment's own, else the catalog's."""
    prices = prices_in_force(deployment)
    if prices is None or (prices.input_cost_per_token is None and prices.output_cost_per_token is None):
        return None
    return (prices.input_cost_per_token or Decimal(0)) + (prices.output_cost_per_token or Decimal(0))


def lowest_cost(candidates: list[Deployment], loads: list[DeploymentLoad], **_) -> Deployment:
    """The cheapest per input + output token; deployments without a price come last."""
    prices = [_price(d) for d in candidates]
    known = [p for p in prices if p is not None]
    if not known:
        return random.choice(candidates)
    cheapest = min(known)
    return random.choice([d for d, p in zip(candidates, prices) if p == cheapest])


def most_capacity(candidates: list[Deployment], loads: list[DeploymentLoad], **_) -> Deployment:
    """The deployment using the smallest share of its rpm/tpm in the last minute (one
    without limits has all its capacity left); ties go to the fewest tokens, then at random."""

    def used_share(deployment: Deployment, load: DeploymentLoad) -> float:
        shares = []
        if deployment.rpm:
            shares.append(load.requests / deployment.rpm)
        if deployment.tpm:
            shares.append(load.tokens / deployment.tpm)
        return max(shares, default=0.0)

    scores = [(used_share(d, load), load.tokens) for d, load in zip(candidates, loads)]
    best = min(scores)
    return random.choice([d for d, score in zip(candidates, scores) if score == best])


_PICKERS = {
    policy.SIMPLE_SHUFFLE: simple_shuffle,
    policy.LEAST_BUSY: least_busy,
    policy.LATENCY_BASED: lowest_latency,
    policy.COST_BASED: lowest_cost,
    policy.USAGE_BASED: most_capacity,
}


def deployment_pick(strategy: str, candidates: list[Deployment], loads: list[DeploymentLoad], *,
                    stream: bool = False, latency_buffer: float = policy.DEFAULT_LATENCY_BUFFER) -> Deployment:
    if len(candidates) == 1:
        return candidates[0]
    return _PICKERS[strategy](candidates, loads, stream=stream, latency_buffer=latency_buffer)
