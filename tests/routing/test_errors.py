"""Every error a client sees: OpenAI's shape, the right status, and the SDK's matching exception."""

from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

from conftest import MASTER_KEY

MESSAGES = [{"role": "user", "content": "hi"}]


def assert_openai_shape(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def post(gateway, body, key=MASTER_KEY, path="/v1/chat/completions", **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(gateway.url + path, headers=headers, timeout=10, **({"json": body} if body is not None else {}), **kwargs)


def test_missing_key_is_401(gateway, openai_client):
    error = assert_openai_shape(post(gateway, {"model": "x", "messages": MESSAGES}, key=None), 401)
    assert error["code"] == "missing_api_key"


def test_invalid_key_is_401_and_the_sdk_raises_authentication_error(gateway, openai_client, make_deployment):
    make_deployment("gpt-test")
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client("sk-not-a-key").chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert info.value.status_code == 401
    assert info.value.body["code"] == "invalid_api_key"


def test_blocked_key_is_401(gateway, openai_client, make_deployment, make_key):
    make_deployment("gpt-test")
    _, raw_key = make_key(alias="blocked")
    openai_client(raw_key).chat.completions.create(model="gpt-test", messages=MESSAGES)  # now cached
    from apps.keys.selectors import virtual_key_get_by_raw
    from apps.keys.services import virtual_key_set_blocked

    virtual_key_set_blocked(key=virtual_key_get_by_raw(raw_key), blocked=True)
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(raw_key).chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert info.value.body["code"] == "key_blocked"


def test_key_of_a_blocked_team_is_401(gateway, openai_client, make_deployment, make_key, team):
    make_deployment("gpt-test")
    _, raw_key = make_key(team=team)
    team.blocked = True
    team.save()
    with pytest.raises(openai.AuthenticationError):
        openai_client(raw_key).chat.completions.create(model="gpt-test", messages=MESSAGES)


def test_expired_key_is_401(gateway, openai_client, make_deployment, make_key):
    make_deployment("gpt-test")
    _, raw_key = make_key(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(raw_key).chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert info.value.body["code"] == "key_expired"


def test_model_the_key_may_not_use_is_403(gateway, openai_client, make_deployment, make_key):
    make_deployment("gpt-a")
    make_deployment("gpt-b")
    _, raw_key = make_key(models=["gpt-a"])
    with pytest.raises(openai.PermissionDeniedError) as info:
        openai_client(raw_key).chat.completions.create(model="gpt-b", messages=MESSAGES)
    assert info.value.status_code == 403
    assert info.value.body["param"] == "model"


def test_model_the_team_may_not_use_is_403(gateway, openai_client, make_deployment, make_key, team):
    make_deployment("gpt-a")
    make_deployment("gpt-b")
    team.models = ["gpt-a"]
    team.save()
    _, raw_key = make_key(team=team)
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(raw_key).chat.completions.create(model="gpt-b", messages=MESSAGES)


def test_unknown_model_is_404(gateway, openai_client):
    with pytest.raises(openai.NotFoundError) as info:
        openai_client().chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert info.value.body["code"] == "model_not_found"


def test_malformed_json_is_400(gateway):
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
        content=b'{"model": "gpt-test", "messages": [',
    )
    assert assert_openai_shape(response, 400)["code"] == "invalid_json"


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("/v1/chat/completions", {"messages": MESSAGES}, "model"),
        ("/v1/chat/completions", {"model": 42, "messages": MESSAGES}, "model"),
        ("/v1/chat/completions", {"model": "gpt-test"}, "messages"),
        ("/v1/chat/completions", {"model": "gpt-test", "messages": []}, "messages"),
        ("/v1/chat/completions", {"model": "gpt-test", "messages": [{"content": "x"}]}, "messages[0].role"),
        ("/v1/chat/completions", {"model": "gpt-test", "messages": MESSAGES, "stream": "yes"}, "stream"),
        ("/v1/completions", {"model": "gpt-test"}, "prompt"),
        ("/v1/embeddings", {"model": "gpt-test", "input": []}, "input"),
        ("/v1/embeddings", {"model": "gpt-test"}, "input"),
    ],
)
def test_missing_or_invalid_field_is_400_naming_it(gateway, make_deployment, path, body, param):
    make_deployment("gpt-test")
    assert assert_openai_shape(post(gateway, body, path=path), 400)["param"] == param


def test_bad_request_through_the_sdk_raises_bad_request_error(gateway, openai_client):
    with pytest.raises(openai.BadRequestError) as info:
        openai_client().chat.completions.create(model="gpt-test", messages=[])
    assert info.value.body["param"] == "messages"


@pytest.mark.parametrize(
    "status, exception",
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_upstream_errors_keep_their_status(gateway, openai_client, make_deployment, status, exception):
    make_deployment("flaky", upstream_model=f"error-{status}")
    with pytest.raises(exception) as info:
        openai_client().chat.completions.create(model="flaky", messages=MESSAGES)
    assert info.value.status_code == status
    assert "fake upstream error" in info.value.message
    assert set(info.value.body) == {"message", "type", "param", "code"}


def test_upstream_429_keeps_retry_after(gateway, make_deployment):
    make_deployment("limited", upstream_model="error-429")
    response = post(gateway, {"model": "limited", "messages": MESSAGES})
    assert assert_openai_shape(response, 429)["code"] == "rate_limit_exceeded"
    assert response.headers["retry-after"] == "7"


def test_upstream_error_while_streaming_is_a_status_not_a_broken_stream(gateway, openai_client, make_deployment):
    make_deployment("flaky", upstream_model="error-500")
    with pytest.raises(openai.InternalServerError):
        openai_client().chat.completions.create(model="flaky", messages=MESSAGES, stream=True)


def test_upstream_answer_that_is_not_json_is_502(gateway, make_deployment):
    make_deployment("broken", upstream_model="bad-json")
    assert assert_openai_shape(post(gateway, {"model": "broken", "messages": MESSAGES}), 502)["code"] == (
        "bad_upstream_response"
    )


def test_unreachable_upstream_is_502(gateway, make_deployment):
    make_deployment("down", api_base="http://127.0.0.1:9/v1")
    assert assert_openai_shape(post(gateway, {"model": "down", "messages": MESSAGES}), 502)["code"] == (
        "upstream_unreachable"
    )


def test_upstream_slower_than_the_deployment_timeout_is_504(gateway, make_deployment):
    make_deployment("sluggish", upstream_model="slow", timeout=0.3)
    assert assert_openai_shape(post(gateway, {"model": "sluggish", "messages": MESSAGES}), 504)["code"] == (
        "upstream_timeout"
    )


def test_unknown_route_and_wrong_method_have_the_openai_shape(gateway):
    assert assert_openai_shape(post(gateway, {}, path="/v1/no/such/route"), 404)["code"] == "unknown_route"
    response = httpx.get(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert assert_openai_shape(response, 405)["code"] == "method_not_allowed"


def test_oversized_body_is_413(gateway, settings):
    from gateway_project import asgi

    asgi.data_plane.max_body_bytes, previous = 1000, asgi.data_plane.max_body_bytes
    try:
        response = post(gateway, {"model": "gpt-test", "messages": [{"role": "user", "content": "x" * 2000}]})
    finally:
        asgi.data_plane.max_body_bytes = previous
    assert assert_openai_shape(response, 413)["code"] == "request_too_large"
