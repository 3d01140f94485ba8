"""LiteLLM's key fields, made through the management API, hold on /v1: per-model budgets, model
aliases, tags and spend_logs_metadata on spend logs, enforced_params, a temporary budget
increase (ending by itself at its expiry) and a budget tier (budget_id)."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone

from apps.keys.models import VirtualKey
from apps.keys.services import virtual_key_update
from tests.management.conftest import Api

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def api(gateway):
    return Api()


def generate(api, **body) -> str:
    response = api.post("/key/generate", body)
    assert response.status_code == 200, response.content
    return response.json()["key"]


def chat(gateway, key: str, model: str = "gpt-test", **body):
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, **body},
        headers={"Authorization": f"Bearer {key}"},
    )


def test_a_model_max_budget_in_litellms_shape_refuses_that_model_only(gateway, api, make_deployment):
    make_deployment("gpt-test")
    make_deployment("gpt-other")
    key = generate(api, model_max_budget={"gpt-test": {"budget_limit": "0.0000001", "time_period": "1d"}})

    refused = chat(gateway, key, "gpt-test")
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "insufficient_quota"
    assert chat(gateway, key, "gpt-other").status_code == 200


def test_model_aliases_route_to_their_target_which_the_key_may_use(gateway, api, make_deployment, spend_logs):
    make_deployment("my-free-tier")
    make_deployment("gpt-4o")
    key = generate(api, models=["my-free-tier"], aliases={"gpt-3.5-turbo": "my-free-tier", "cheap": "gpt-4o"},
                   duration="30min")

    response = chat(gateway, key, "gpt-3.5-turbo")
    assert response.status_code == 200, response.text
    assert response.headers["x-litellm-model-group"] == "my-free-tier"
    (log,) = spend_logs(1)
    assert log.model == "my-free-tier"
    # An alias never widens the key's models: the target's access is checked.
    assert chat(gateway, key, "cheap").status_code == 403


def test_key_tags_and_spend_logs_metadata_reach_the_spend_logs(gateway, api, make_deployment, spend_logs):
    make_deployment("gpt-test")
    key = generate(api, tags=["production"], metadata={"spend_logs_metadata": {"team": "core-infra"}})

    response = chat(gateway, key, metadata={"tags": ["nightly"], "spend_logs_metadata": {"job": "etl"}})
    assert response.status_code == 200, response.text
    (log,) = spend_logs(1)
    assert log.metadata["tags"] == ["production", "nightly"]
    assert log.metadata["spend_logs_metadata"] == {"team": "core-infra", "job": "etl"}


def test_enforced_params_must_be_in_every_request(gateway, api, make_deployment):
    make_deployment("gpt-test")
    key = generate(api, enforced_params=["user", "metadata.generation_name"])

    missing_user = chat(gateway, key)
    assert missing_user.status_code == 400
    assert missing_user.json()["error"]["param"] == "user"
    missing_nested = chat(gateway, key, user="u1", metadata={"other": 1})
    assert missing_nested.json()["error"]["param"] == "metadata.generation_name"
    assert chat(gateway, key, user="u1", metadata={"generation_name": "g"}).status_code == 200
    # The provider pass-through is no way around them.
    native = httpx.post(gateway.url + "/openai/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert native.status_code == 400 and native.json()["error"]["param"] == "user"


def test_a_temporary_budget_increase_holds_until_its_expiry_then_falls_back(gateway, api, make_deployment):
    make_deployment("gpt-test")
    key = generate(api, max_budget=0.0000001)  # rounded up to a millionth: exhausted at once
    assert chat(gateway, key).status_code == 429

    response = api.post("/key/update", {"key": key, "temp_budget_increase": 100, "temp_budget_expiry": "10d"})
    assert response.status_code == 200, response.content
    assert Decimal(str(response.json()["key_max_budget"])) == Decimal("100.000001")
    raised = chat(gateway, key)
    assert raised.status_code == 200, raised.text
    assert Decimal(raised.headers["x-litellm-key-max-budget"]) == Decimal("100.000001")

    # An expiry a moment away: the cached context is dropped then, with no change to the key.
    virtual_key = VirtualKey.objects.get(token_hash=response.json()["token"])
    virtual_key_update(key=virtual_key, temp_budget_expiry=timezone.now() + timedelta(seconds=1.5))
    assert chat(gateway, key).status_code == 200
    time.sleep(1.7)
    fallen_back = chat(gateway, key)
    assert fallen_back.status_code == 429
    assert Decimal(fallen_back.headers["x-litellm-key-max-budget"]) == Decimal("0.000001")


def test_a_budget_tier_holds_where_the_key_sets_no_limit_itself(gateway, api, make_deployment):
    make_deployment("gpt-test")
    assert api.post("/budget/new", {"budget_id": "tier-1rpm", "rpm_limit": 1}).status_code == 200
    key = generate(api, budget_id="tier-1rpm")
    own = generate(api, budget_id="tier-1rpm", rpm_limit=5)

    assert chat(gateway, key).status_code == 200
    assert chat(gateway, key).status_code == 429
    assert [chat(gateway, own).status_code for _ in range(2)] == [200, 200]

    # A tier's change reaches the keys held to it at once.
    assert api.post("/budget/update", {"budget_id": "tier-1rpm", "rpm_limit": 10}).status_code == 200
    assert chat(gateway, key).status_code == 200
