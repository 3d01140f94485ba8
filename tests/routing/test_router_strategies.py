"""Strategies, model groups (aliases, wildcards, tags), capacity and the headers of every answer."""

from __future__ import annotations

import concurrent.futures
import time
from collections import Counter
from decimal import Decimal

import httpx
import pytest

from apps.routing.selection import policy
from apps.routing.selection.deployment_state import DeploymentLoad
from apps.routing.selection.strategies import deployment_pick, shuffle_weights
from conftest import MASTER_KEY
from tests.routing.conftest import MESSAGES, unique

pytestmark = pytest.mark.usefixtures("fast_retries")


def _deployment(i: int, **fields):
    from apps.providers.adapters import adapter_for
    from apps.providers.registry import Deployment

    values = {
        "id": i, "model_name": "g", "provider": "openai", "upstream_model": f"m{i}", "adapter": adapter_for("openai"),
        "api_base": None, "api_key": None, "api_version": None, "weight": 1, "timeout": None, "rpm": None,
        "tpm": None, "input_cost_per_token": None, "output_cost_per_token": None,
        "cache_read_input_token_cost": None, "extra_params": {}, "state_key": f"{i}.0",
    }
    return Deployment(**{**values, **fields})


# --- the strategies on their own ----------------------------------------------------------------


def test_shuffle_weights_come_from_weights_else_rpm_else_tpm():
    assert shuffle_weights([_deployment(1, weight=1), _deployment(2, weight=3)]) == [1, 3]
    assert shuffle_weights([_deployment(1, rpm=100), _deployment(2, rpm=300)]) == [100, 300]
    assert shuffle_weights([_deployment(1, tpm=10), _deployment(2, tpm=30)]) == [10, 30]
    assert shuffle_weights([_deployment(1, rpm=100), _deployment(2)]) == [1, 1]


def test_least_busy_picks_the_fewest_in_flight():
    group = [_deployment(1), _deployment(2), _deployment(3)]
    loads = [DeploymentLoad(in_flight=4), DeploymentLoad(in_flight=1), DeploymentLoad(in_flight=2)]
    assert {deployment_pick(policy.LEAST_BUSY, group, loads).id for _ in range(50)} == {2}


def test_lowest_latency_shares_near_ties_within_the_buffer():
    group = [_deployment(1), _deployment(2), _deployment(3)]
    loads = [DeploymentLoad(latency=1.00), DeploymentLoad(latency=1.05), DeploymentLoad(latency=2.0)]
    picks = Counter(deployment_pick(policy.LATENCY_BASED, group, loads, latency_buffer=0.1).id for _ in range(400))
    assert set(picks) == {1, 2} and min(picks.values()) > 100
    # Streams go by time to first token.
    loads = [DeploymentLoad(latency=1.0, time_to_first_token=0.9), DeploymentLoad(latency=3.0, time_to_first_token=0.1),
             DeploymentLoad(latency=2.0)]
    assert {deployment_pick(policy.LATENCY_BASED, group, loads, stream=True, latency_buffer=0).id
            for _ in range(20)} == {2}


def test_lowest_cost_picks_the_cheapest_known_price():
    group = [_deployment(1, input_cost_per_token=Decimal("0.002"), output_cost_per_token=Decimal("0.002")),
             _deployment(2, input_cost_per_token=Decimal("0.001"), output_cost_per_token=Decimal("0.001")),
             _deployment(3)]
    assert {deployment_pick(policy.COST_BASED, group, [DeploymentLoad()] * 3).id for _ in range(20)} == {2}


@pytest.mark.django_db
def test_lowest_cost_counts_prices_from_the_catalog_too():
    """A deployment priced only by the shipped catalog (gpt-4o-mini) is cheaper than one with a
    price of its own; it used to come last, as if unpriced."""
    from apps.spend.pricing import price_catalog, prices_in_force

    price_catalog.reload()
    catalog_only = _deployment(1, upstream_model="gpt-4o-mini")
    own_price = _deployment(2, input_cost_per_token=Decimal("0.0001"), output_cost_per_token=Decimal("0.0001"))
    assert prices_in_force(catalog_only).input_cost_per_token < Decimal("0.0001")
    picks = {deployment_pick(policy.COST_BASED, [catalog_only, own_price], [DeploymentLoad()] * 2).id
             for _ in range(20)}
    assert picks == {1}


def test_usage_based_picks_the_most_remaining_capacity():
    group = [_deployment(1, rpm=100), _deployment(2, tpm=1000), _deployment(3, rpm=10)]
    loads = [DeploymentLoad(requests=50), DeploymentLoad(tokens=200), DeploymentLoad(requests=9)]
    assert {deployment_pick(policy.USAGE_BASED, group, loads).id for _ in range(20)} == {2}


# --- strategies through the gateway -------------------------------------------------------------


def test_weighted_shuffle_splits_1000_requests_within_5_percent_of_the_weights(gateway, make_deployment, fake_openai):
    light, heavy = unique("light"), unique("heavy")
    make_deployment("weighted", upstream_model=light, weight=1)
    make_deployment("weighted", upstream_model=heavy, weight=3)
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as client:
        def call(_):
            return client.post("/v1/chat/completions", json={"model": "weighted", "messages": MESSAGES}).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(1000)))
    assert statuses == [200] * 1000
    share = fake_openai.count_for(heavy) / 1000
    assert fake_openai.count_for(light) + fake_openai.count_for(heavy) == 1000
    assert abs(share - 0.75) <= 0.05, share


def test_lowest_latency_sends_most_traffic_to_the_faster_of_two(chat, make_deployment, group_settings, fake_openai):
    fast, slow = unique("latency-5"), unique("latency-80")
    make_deployment("timed", upstream_model=fast)
    make_deployment("timed", upstream_model=slow)
    group_settings("timed", routing_strategy=policy.LATENCY_BASED)
    for _ in range(60):
        assert chat("timed").status_code == 200
        time.sleep(0.005)  # lets the latency sample of the last answer land
    assert fake_openai.count_for(fast) >= 50, (fake_openai.count_for(fast), fake_openai.count_for(slow))


def test_least_busy_spreads_concurrent_requests(gateway, make_deployment, group_settings, fake_openai):
    first, second = unique("latency-400"), unique("latency-400")
    make_deployment("busy", upstream_model=first)
    make_deployment("busy", upstream_model=second)
    group_settings("busy", routing_strategy=policy.LEAST_BUSY)

    def call(delay: float) -> int:
        time.sleep(delay)
        return httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                          json={"model": "busy", "messages": MESSAGES}, timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(call, [0, 0.1, 0.2, 0.3])) == [200] * 4
    assert (fake_openai.count_for(first), fake_openai.count_for(second)) == (2, 2)


def test_deployments_at_their_rpm_capacity_are_skipped_then_429(chat, make_deployment, group_settings):
    a = make_deployment("capped", upstream_model="gpt-test", rpm=1)
    b = make_deployment("capped", upstream_model="gpt-test", rpm=1)
    group_settings("capped", routing_strategy=policy.USAGE_BASED)
    served = {chat("capped").headers["x-gateway-model-id"] for _ in range(2)}
    assert served == {str(a.pk), str(b.pk)}
    refused = chat("capped")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "deployments_at_capacity"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


# --- groups -----------------------------------------------------------------------------------


def test_an_alias_reaches_its_group_and_is_listed_unless_hidden(gateway, chat, make_deployment, router_settings):
    target = make_deployment("gpt-test")
    router_settings(model_group_alias={"gpt-4": "gpt-test", "secret": {"model": "gpt-test", "hidden": True}})
    assert chat("gpt-4").headers["x-gateway-model-id"] == str(target.pk)
    assert chat("secret").status_code == 200
    listed = httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    names = {m["id"] for m in listed["data"]}
    assert {"gpt-test", "gpt-4"} <= names and "secret" not in names


def test_an_alias_is_usable_by_keys_allowed_its_group(chat, make_deployment, make_key, router_settings):
    make_deployment("gpt-test")
    make_deployment("other")
    router_settings(model_group_alias={"gpt-4": "gpt-test", "sneaky": "other"})
    _, raw_key = make_key(models=["gpt-test"])
    assert chat("gpt-4", key=raw_key).status_code == 200
    assert chat("sneaky", key=raw_key).status_code == 403


def test_a_wildcard_group_passes_the_model_through(chat, make_deployment, fake_openai):
    wildcard = make_deployment("openai/*", upstream_model="*")
    response = chat("openai/gpt-4o-mini-2024")
    assert response.status_code == 200
    assert response.headers["x-gateway-model-id"] == str(wildcard.pk)
    assert fake_openai.requests[-1]["body"]["model"] == "gpt-4o-mini-2024"
    assert chat("anthropic/claude").status_code == 404


def test_request_tags_restrict_the_deployments(chat, make_deployment, fake_openai):
    free = make_deployment("tagged", upstream_model="gpt-test", tags=["free", "default"])
    paid = make_deployment("tagged", upstream_model="gpt-test", tags=["paid"])
    assert {chat("tagged", metadata={"tags": ["paid"]}).headers["x-gateway-model-id"] for _ in range(10)} == {str(paid.pk)}
    assert {chat("tagged", tags=["free"]).headers["x-gateway-model-id"] for _ in range(10)} == {str(free.pk)}
    # No tags: the deployments tagged "default".
    assert {chat("tagged").headers["x-gateway-model-id"] for _ in range(10)} == {str(free.pk)}
    sent = fake_openai.requests[-1]["body"]
    assert "tags" not in sent and "metadata" not in sent
    unknown = chat("tagged", metadata={"tags": ["gold"]})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "no_deployment_for_tags"
    invalid = chat("tagged", metadata={"tags": "paid"})
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "metadata.tags"


def test_tags_label_requests_to_a_group_without_tagged_deployments(chat, make_deployment, spend_logs):
    plain = make_deployment("untagged", upstream_model="gpt-test")
    for tags in ({"metadata": {"tags": ["team-a", "batch"]}}, {"tags": ["team-b"]}):
        response = chat("untagged", **tags)
        assert response.status_code == 200, response.text
        assert response.headers["x-gateway-model-id"] == str(plain.pk)
    assert sorted(tag for log in spend_logs(2) for tag in log.metadata.get("tags", [])) == ["batch", "team-a", "team-b"]


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_every_answer_carries_the_routing_headers(chat, make_deployment, stream):
    deployment = make_deployment("gpt-test")
    for response in (chat("gpt-test", stream=stream), chat("no-such-model", stream=stream)):
        headers = response.headers
        assert headers["x-gateway-attempted-retries"] == "0"
        assert headers["x-gateway-attempted-fallbacks"] == "0"
        assert 0 <= float(headers["x-gateway-overhead-ms"]) < 1000
        assert headers["x-request-id"]
    assert chat("gpt-test", stream=stream).headers["x-gateway-model-id"] == str(deployment.pk)
    assert "x-gateway-model-id" not in chat("no-such-model").headers


def test_overhead_excludes_the_time_spent_upstream(chat, make_deployment):
    make_deployment("slowish", upstream_model=unique("latency-300"))
    response = chat("slowish")
    assert response.elapsed.total_seconds() >= 0.3
    assert float(response.headers["x-gateway-overhead-ms"]) < 150
