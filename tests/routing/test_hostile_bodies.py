"""Hostile request bodies on every /v1 route never get a 5xx, and each error comes in the route's
own shape: Anthropic's on /v1/messages, OpenAI's elsewhere.

The bodies are valid ones with one field (at any depth) replaced by arbitrary JSON, sent by a
budgeted key (its limits step reads max_tokens and the prompt) through a real server to an
OpenAI deployment and an Anthropic one (whose translation reads every field).
"""

from __future__ import annotations

import copy
import json
import os
from decimal import Decimal

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# `make test` tries a few dozen bodies per route; HYPOTHESIS_PROFILE=long, hundreds.
EXAMPLES = 600 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 40

ROUTES = {
    "/v1/chat/completions": {
        "model": "MODEL", "max_tokens": 5, "temperature": 0.5, "user": "u", "stop": ["x"],
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "response_format": {"type": "text"}, "metadata": {"k": "v"}, "n": 1,
    },
    "/v1/responses": {
        "model": "MODEL", "max_output_tokens": 16, "instructions": "be brief", "temperature": 0.5,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"},
                                               {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]},
                  {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": "c1", "output": "ok"}],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}], "tool_choice": "auto",
        "text": {"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}}},
        "reasoning": {"effort": "low"}, "metadata": {"k": "v"}, "store": False, "user": "u",
    },
    "/v1/completions": {"model": "MODEL", "prompt": "hi", "max_tokens": 5},
    "/v1/embeddings": {"model": "MODEL", "input": ["hi", "there"]},
    "/v1/messages": {
        "model": "MODEL", "max_tokens": 5, "system": "be brief", "metadata": {"user_id": "u"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "auto"},
        "stop_sequences": ["x"], "thinking": {"type": "enabled", "budget_tokens": 1024},
    },
    "/v1/messages/count_tokens": {
        "model": "MODEL", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    },
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every place in a body a value could be replaced."""
    yield prefix
    if isinstance(value, dict):
        for name, child in value.items():
            yield from _paths(child, (*prefix, name))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replace(body, path, new):
    if not path:
        return new
    body = copy.deepcopy(body)
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return body


@st.composite
def hostile(draw, route):
    body = ROUTES[route]
    path = draw(st.sampled_from([p for p in _paths(body) if p]))
    return _replace(body, path, draw(json_values))


@pytest.fixture
def budgeted_key(gateway, make_key, make_deployment, provider_fakes):
    from apps.providers.models import ModelDeployment

    make_deployment("openai-model")
    anthropic = provider_fakes("anthropic")
    ModelDeployment.objects.create(
        model_name="anthropic-model", provider="anthropic", upstream_model="claude-test",
        input_cost_per_token=Decimal("0.000001"), output_cost_per_token=Decimal("0.000002"),
        **anthropic.deployment_fields(),
    )
    _, raw = make_key(alias="budgeted", max_budget=Decimal("100"), rpm_limit=100000, tpm_limit=10**9)
    return raw


def _assert_shaped(route: str, response: httpx.Response, body) -> None:
    assert response.status_code < 500, (route, body, response.status_code, response.text[:500])
    if response.status_code < 400:
        return
    error = response.json()
    if route.startswith("/v1/messages"):
        assert error["type"] == "error" and {"type", "message"} <= set(error["error"]), (body, error)
    else:
        assert set(error) == {"error"} and set(error["error"]) == {"message", "type", "param", "code"}, (body, error)


@pytest.mark.parametrize("model", ["openai-model", "anthropic-model"])
@pytest.mark.parametrize("route", list(ROUTES))
def test_hostile_bodies_get_a_4xx_in_the_routes_shape(gateway, budgeted_key, route, model):
    client = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {budgeted_key}"}, timeout=30)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=hostile(route))
    def check(body):
        body = _replace(body, ("model",), model) if isinstance(body, dict) and body.get("model") == "MODEL" else body
        _assert_shaped(route, client.post(route, content=json.dumps(body),
                                          headers={"content-type": "application/json"}), body)

    with client:
        check()


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("raw", [
    b"", b"{", b"[]", b"null", b'"x"', b"\xff\xfe", b'{"model": "a", "model": "b"}',
    b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
    # Valid JSON nested deeper than the gateway serializes again (orjson: 254 levels), in a
    # field passed through to the provider and in the client's metadata.
    b'{"model":"openai-model","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"x":'
    + b"[" * 600 + b"]" * 600 + b"}",
    b'{"model":"openai-model","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"metadata":'
    + b'{"a":' * 600 + b"{}" + b"}" * 600 + b"}",
])
def test_bodies_that_are_not_json_objects_are_a_400(gateway, budgeted_key, route, raw):
    response = httpx.post(gateway.url + route, content=raw, timeout=30,
                          headers={"Authorization": f"Bearer {budgeted_key}", "content-type": "application/json"})
    _assert_shaped(route, response, raw)


def test_the_reviews_cases(gateway, budgeted_key):
    headers = {"Authorization": f"Bearer {budgeted_key}"}
    base = ROUTES["/v1/messages"]
    for field, value in (("tools", [1]), ("tools", [None]), ("tools", [[]]), ("metadata", "x")):
        response = httpx.post(gateway.url + "/v1/messages", json={**base, "model": "openai-model", field: value},
                              headers=headers, timeout=30)
        assert response.status_code == 400, response.text
        error = response.json()
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error", error
    chat = {**ROUTES["/v1/chat/completions"], "model": "openai-model", "max_tokens": "abc"}
    response = httpx.post(gateway.url + "/v1/chat/completions", json=chat, headers=headers, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == "max_tokens", response.text
