"""The headers LiteLLM's clients send and read: its key headers are accepted, and its x-litellm-*
response headers come beside the gateway's own."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from conftest import MASTER_KEY

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def key(gateway, make_deployment, make_key):
    make_deployment("gpt-test")
    _, raw = make_key(alias="litellm-user")
    return raw


@pytest.mark.parametrize("header", ["x-litellm-api-key", "x-goog-api-key"])
def test_litellm_and_google_key_headers_authenticate(gateway, key, header):
    values = [key, f"Bearer {key}"] if header == "x-litellm-api-key" else [key]
    for value in values:
        response = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers={header: value})
        assert response.status_code == 200, response.text
    wrong = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers={header: "sk-wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


def test_litellm_response_headers(gateway, key, spend_logs):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=CHAT["messages"])
    headers = raw.headers
    assert headers["x-litellm-call-id"] == headers["x-request-id"]
    assert headers["x-litellm-model-id"] == headers["x-gateway-model-id"]
    assert headers["x-litellm-model-group"] == "gpt-test"
    assert headers["x-litellm-attempted-retries"] == "0" and headers["x-litellm-attempted-fallbacks"] == "0"
    assert float(headers["x-litellm-overhead-duration-ms"]) >= 0
    # The cost is the spend log's, to the last digit (cached tokens at their own price included).
    (log,) = spend_logs(1)
    assert log.cost and Decimal(headers["x-litellm-response-cost"]) == log.cost
    assert Decimal(headers["x-litellm-key-spend"]) == 0  # as loaded, before this request's spend


def test_key_spend_is_the_spend_the_key_was_loaded_with(gateway, make_deployment, make_key):
    make_deployment("gpt-test")
    key, raw = make_key(alias="spender")
    type(key).objects.filter(pk=key.pk).update(spend=Decimal("1.25"))
    response = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers={"x-litellm-api-key": raw})
    assert response.status_code == 200
    assert Decimal(response.headers["x-litellm-key-spend"]) == Decimal("1.25")
    master = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT,
                        headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert "x-litellm-key-spend" not in master.headers  # the master key is no virtual key


def test_a_refusal_carries_the_call_id_but_no_cost(gateway, key):
    response = httpx.post(gateway.url + "/v1/chat/completions", json={**CHAT, "model": "nope"},
                          headers={"x-litellm-api-key": key})
    assert response.status_code == 404
    assert response.headers["x-litellm-call-id"] == response.headers["x-request-id"]
    assert "x-litellm-response-cost" not in response.headers
