"""Retries, fallbacks, cooldowns and timeouts, seen by a client through the gateway.

Fake upstreams are scripted to fail (tests/fakes/openai_upstream.py): 500s, 429 with
Retry-After, hangs, a slow first token, streams cut before the first byte. Where a test
needs to know which deployment is tried first, its group uses cost-based routing and the
failing deployment is the cheaper one.
"""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import openai
import pytest

from tests.routing.conftest import MESSAGES, unique

pytestmark = pytest.mark.usefixtures("fast_retries")

CHEAP = {"input_cost_per_token": Decimal("0.000001"), "output_cost_per_token": Decimal("0.000001")}
DEAR = {"input_cost_per_token": Decimal("0.00001"), "output_cost_per_token": Decimal("0.00001")}


def ids(response: httpx.Response) -> tuple[str, str, str]:
    headers = response.headers
    return (headers.get("x-gateway-model-id"), headers["x-gateway-attempted-retries"],
            headers["x-gateway-attempted-fallbacks"])


# --- failover within a group ------------------------------------------------------------------


def test_with_one_of_two_deployments_down_200_requests_all_succeed(chat, make_deployment, fake_openai):
    down = make_deployment("pair", upstream_model="error-500")
    up = make_deployment("pair", upstream_model="gpt-test")
    responses = [chat("pair") for _ in range(200)]
    assert [r.status_code for r in responses] == [200] * 200
    assert {r.headers["x-gateway-model-id"] for r in responses} == {str(up.pk)}
    # After allowed_fails (3) failures in a minute the broken one cools down: most requests never try it.
    assert 3 <= fake_openai.count_for("error-500") < 20
    assert any(r.headers["x-gateway-attempted-retries"] == "1" for r in responses)
    assert str(down.pk) not in {r.headers["x-gateway-model-id"] for r in responses}


def test_a_failed_request_is_retried_on_the_same_deployment_after_a_backoff(chat, make_deployment, fake_openai):
    flaky = unique("fail-first-2")
    deployment = make_deployment("flaky", upstream_model=flaky)
    response = chat("flaky")
    assert response.status_code == 200
    assert ids(response) == (str(deployment.pk), "2", "0")
    assert fake_openai.count_for(flaky) == 3


def test_retries_are_configurable_per_error_class(chat, make_deployment, fake_openai, router_settings):
    router_settings(retry_policy={"InternalServerErrorRetries": 0})
    flaky = unique("fail-first-1")
    make_deployment("flaky", upstream_model=flaky)
    response = chat("flaky")
    assert response.status_code == 500
    assert response.headers["x-gateway-attempted-retries"] == "0"
    assert fake_openai.count_for(flaky) == 1


def test_a_400_is_never_retried_nor_sent_to_another_deployment(chat, make_deployment, fake_openai, group_settings):
    group_settings("strict", routing_strategy="cost-based-routing")
    make_deployment("strict", upstream_model="error-400", **CHEAP)
    make_deployment("strict", upstream_model="gpt-test", **DEAR)
    before = fake_openai.count_for("gpt-test")
    response = chat("strict")
    assert response.status_code == 400
    assert response.headers["x-gateway-attempted-retries"] == "0"
    assert fake_openai.count_for("gpt-test") == before


def test_a_timeout_fails_over_to_the_next_deployment(chat, make_deployment, group_settings):
    group_settings("hangs", routing_strategy="cost-based-routing")
    make_deployment("hangs", upstream_model=unique("hang"), timeout=0.3, **CHEAP)
    healthy = make_deployment("hangs", upstream_model="gpt-test", **DEAR)
    started = time.monotonic()
    response = chat("hangs")
    assert response.status_code == 200
    assert ids(response) == (str(healthy.pk), "1", "0")
    assert time.monotonic() - started < 3


def test_a_stream_cut_before_its_first_byte_fails_over(gateway, openai_client, make_deployment, group_settings):
    group_settings("cut", routing_strategy="cost-based-routing")
    make_deployment("cut", upstream_model=unique("cut-before-first-byte"), **CHEAP)
    healthy = make_deployment("cut", upstream_model="gpt-test", **DEAR)
    with openai_client().chat.completions.with_streaming_response.create(
        model="cut", messages=MESSAGES, stream=True
    ) as response:
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
        assert response.headers["x-gateway-model-id"] == str(healthy.pk)
        assert response.headers["x-gateway-attempted-retries"] == "1"
    assert text == "Hello from the fake upstream."


def test_a_stream_without_a_first_token_in_time_fails_over(gateway, openai_client, make_deployment, group_settings):
    group_settings("sluggish", routing_strategy="cost-based-routing")
    make_deployment("sluggish", upstream_model=unique("slow-first-token-3000"), stream_timeout=0.3, **CHEAP)
    healthy = make_deployment("sluggish", upstream_model="gpt-test", **DEAR)
    started = time.monotonic()
    with openai_client().chat.completions.with_streaming_response.create(
        model="sluggish", messages=MESSAGES, stream=True
    ) as response:
        chunks = list(response.parse())
        assert response.headers["x-gateway-model-id"] == str(healthy.pk)
    assert chunks and time.monotonic() - started < 2.5


def test_the_router_wide_first_token_timeout_applies_to_every_group(
    gateway, openai_client, make_deployment, router_settings
):
    router_settings(stream_timeout=0.3, num_retries=0)
    make_deployment("sluggish", upstream_model=unique("slow-first-token-3000"))
    with pytest.raises(openai.InternalServerError) as info:
        list(openai_client().chat.completions.create(model="sluggish", messages=MESSAGES, stream=True))
    assert info.value.status_code == 504
    assert "first token" in info.value.message


def test_a_slow_first_token_within_the_timeout_is_kept(gateway, openai_client, make_deployment):
    make_deployment("patient", upstream_model=unique("slow-first-token-200"), stream_timeout=2)
    chunks = list(openai_client().chat.completions.create(model="patient", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake upstream."


# --- cooldowns ------------------------------------------------------------------------------------


def test_a_429_cools_the_deployment_down_for_its_retry_after(chat, make_deployment, fake_openai):
    limited = unique("rate-limited-2")
    make_deployment("limited", upstream_model=limited)
    first = chat("limited")
    assert first.status_code == 429 and first.headers["retry-after"] == "2"  # the upstream's own answer
    second = chat("limited")
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "deployments_cooling_down"
    assert 1 <= int(second.headers["retry-after"]) <= 2
    assert fake_openai.count_for(limited) == 1  # the cooling deployment was not called again
    time.sleep(2.1)
    assert chat("limited").status_code == 429
    assert fake_openai.count_for(limited) == 2  # back from cooldown: tried again


def test_every_deployment_down_gives_429_with_retry_after(
    chat, openai_client, make_deployment, fake_openai, router_settings
):
    router_settings(allowed_fails=2, cooldown_time=30)
    make_deployment("doomed", upstream_model="error-500")
    make_deployment("doomed", upstream_model="error-503")
    statuses = []
    for _ in range(6):
        response = chat("doomed")
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429 and all(s >= 500 for s in statuses[:-1])
    assert response.json()["error"]["code"] == "deployments_cooling_down"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert 25 <= int(response.headers["retry-after"]) <= 30
    calls = fake_openai.count_for("error-500") + fake_openai.count_for("error-503")
    assert chat("doomed").status_code == 429
    assert fake_openai.count_for("error-500") + fake_openai.count_for("error-503") == calls
    with pytest.raises(openai.RateLimitError):
        openai_client().chat.completions.create(model="doomed", messages=MESSAGES)


def test_cooldowns_can_be_disabled(chat, make_deployment, fake_openai, router_settings):
    router_settings(disable_cooldowns=True, num_retries=0)
    limited = unique("rate-limited-30")
    make_deployment("limited", upstream_model=limited)
    assert [chat("limited").status_code for _ in range(3)] == [429, 429, 429]
    assert fake_openai.count_for(limited) == 3


def test_a_client_error_does_not_cool_a_deployment_down(chat, make_deployment, router_settings):
    router_settings(allowed_fails=1)
    make_deployment("picky", upstream_model="error-400")
    assert [chat("picky").json()["error"]["code"] for _ in range(3)] == ["invalid_value"] * 3


# --- fallbacks ----------------------------------------------------------------------------------


def test_a_context_length_error_falls_back_to_the_larger_model(chat, make_deployment, group_settings, fake_openai):
    small_upstream = unique("context-50")
    make_deployment("small", upstream_model=small_upstream)
    large = make_deployment("large", upstream_model="gpt-test")
    group_settings("small", context_window_fallbacks=["large"], fallbacks=["elsewhere"])
    assert chat("small").headers["x-gateway-attempted-fallbacks"] == "0"  # a short prompt fits

    response = chat("small", messages=[{"role": "user", "content": "x" * 200}])
    assert response.status_code == 200
    assert ids(response) == (str(large.pk), "0", "1")
    assert fake_openai.count_for(small_upstream) == 2  # never retried: the prompt stays too long


def test_a_prompt_over_a_known_context_window_skips_that_deployment_without_calling_it(
    chat, make_deployment, group_settings, fake_openai
):
    tiny_upstream = unique("latency-1")
    make_deployment("tiny", upstream_model=tiny_upstream, max_input_tokens=20)
    large = make_deployment("large", upstream_model="gpt-test")
    group_settings("tiny", context_window_fallbacks=["large"])
    response = chat("tiny", messages=[{"role": "user", "content": "word " * 100}])
    assert response.status_code == 200 and ids(response) == (str(large.pk), "0", "1")
    assert fake_openai.count_for(tiny_upstream) == 0

    make_deployment("tiny-only", upstream_model=tiny_upstream, max_input_tokens=20)
    error = chat("tiny-only", messages=[{"role": "user", "content": "word " * 100}])
    assert error.status_code == 400
    assert error.json()["error"]["code"] == "context_length_exceeded"


def test_a_content_policy_error_falls_back_to_the_content_policy_fallback(chat, make_deployment, group_settings):
    make_deployment("prude", upstream_model=unique("content-policy"))
    lenient = make_deployment("lenient", upstream_model="gpt-test")
    group_settings("prude", content_policy_fallbacks=["lenient"])
    response = chat("prude")
    assert response.status_code == 200 and ids(response) == (str(lenient.pk), "0", "1")


def test_group_fallbacks_are_tried_in_order(chat, make_deployment, group_settings, fake_openai):
    make_deployment("primary", upstream_model="error-503")
    make_deployment("second", upstream_model="error-500")
    third = make_deployment("third", upstream_model="gpt-test")
    group_settings("primary", fallbacks=["second", "third"], num_retries=0)
    group_settings("second", num_retries=0)
    response = chat("primary")
    assert response.status_code == 200
    assert ids(response) == (str(third.pk), "0", "2")


def test_default_fallbacks_serve_groups_without_their_own(chat, make_deployment, router_settings):
    make_deployment("lonely", upstream_model="error-500")
    rescue = make_deployment("rescue", upstream_model="gpt-test")
    router_settings(default_fallbacks=["rescue"], num_retries=0)
    response = chat("lonely")
    assert response.status_code == 200 and ids(response) == (str(rescue.pk), "0", "1")


def test_fallbacks_sent_in_the_request_body(chat, make_deployment, make_key, fake_openai):
    make_deployment("broken", upstream_model="error-500")
    backup = make_deployment("backup", upstream_model="gpt-test")
    response = chat("broken", fallbacks=["backup"])
    assert response.status_code == 200 and ids(response) == (str(backup.pk), "2", "1")
    assert "fallbacks" not in fake_openai.requests[-1]["body"]  # the gateway's own field

    # A key may not reach a model through fallbacks that it may not use directly.
    make_deployment("broken-too", upstream_model="error-500")
    _, raw_key = make_key(models=["broken-too"])
    assert chat("broken-too", key=raw_key, fallbacks=["backup"]).status_code == 500

    invalid = chat("broken", fallbacks="backup")
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "fallbacks"


def test_a_streamed_request_falls_back_to_another_group_before_its_first_byte(
    gateway, openai_client, make_deployment, group_settings
):
    make_deployment("flaky-stream", upstream_model=unique("cut-before-first-byte"))
    steady = make_deployment("steady", upstream_model="gpt-test")
    group_settings("flaky-stream", fallbacks=["steady"], num_retries=0)
    with openai_client().chat.completions.with_streaming_response.create(
        model="flaky-stream", messages=MESSAGES, stream=True
    ) as response:
        assert response.headers["x-gateway-model-id"] == str(steady.pk)
        assert response.headers["x-gateway-attempted-fallbacks"] == "1"
        assert [c for c in response.parse()]


def test_a_request_is_settled_once_whatever_it_tried(chat, make_deployment, group_settings, spend_logs):
    make_deployment("primary", upstream_model="error-503")
    backup = make_deployment("backup", upstream_model="gpt-test")
    group_settings("primary", fallbacks=["backup"])
    assert chat("primary").status_code == 200
    logs = spend_logs(1)
    assert len(logs) == 1
    assert (logs[0].status, logs[0].deployment_id, logs[0].model) == ("success", backup.pk, "primary")


def test_a_parameter_one_provider_lacks_is_served_by_another_deployment_of_the_group(
    chat, make_deployment, group_settings, provider_fakes
):
    anthropic = provider_fakes("anthropic")
    group_settings("mixed", routing_strategy="cost-based-routing")
    make_deployment("mixed", provider="anthropic", upstream_model="claude-test",
                    **{**anthropic.deployment_fields(), **CHEAP})
    openai_deployment = make_deployment("mixed", upstream_model="gpt-test", **DEAR)
    response = chat("mixed", seed=7)  # Anthropic has no seed
    assert response.status_code == 200
    assert ids(response) == (str(openai_deployment.pk), "1", "0")
    # Not the deployment's fault: it is not cooling down.
    assert chat("mixed").headers["x-gateway-model-id"] != str(openai_deployment.pk)
