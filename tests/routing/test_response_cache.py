"""The exact response cache, driven with the official SDKs: a repeated request is answered without
an upstream call (also as a stream, and to /v1/messages), the client's controls and the per-team
namespaces hold, and a hit is logged as a hit that cost nothing and saved the call's price."""

from __future__ import annotations

import os
import time

import anthropic
import httpx
import openai
import pytest

from conftest import MASTER_KEY, wait_for

MESSAGES = [{"role": "user", "content": "what is cached?"}]


@pytest.fixture
def cached_gateway(settings, transactional_db, fake_openai):
    """A gateway with the response cache on (in memory; in front of Redis when REDIS_URL is set)."""
    from apps.core import invalidation
    from tests.fakes.gateway import GatewayServer

    settings.GATEWAY_CACHE = "redis+local" if os.environ.get("REDIS_URL") else "local"
    invalidation.apply_everything()
    fake_openai.requests.clear()
    server = GatewayServer().start()
    yield server
    server.stop()
    if os.environ.get("REDIS_URL"):  # entries of this test stay out of the next one's
        from apps.core.redis import redis_key, sync_redis

        client = sync_redis()
        for key in client.scan_iter(match=redis_key("cache", "response") + ":*", count=1000):
            client.delete(key)


def client_for(gateway, key=MASTER_KEY):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def upstream_calls(fake_openai, model: str) -> int:
    return sum(1 for r in fake_openai.requests if r["body"].get("model") == model)


def logs(count: int) -> list:
    from apps.spend.models import SpendLog

    wait_for(lambda: SpendLog.objects.count() >= count)
    return list(SpendLog.objects.order_by("start_time", "id"))


def test_a_repeated_request_is_answered_from_the_cache_and_logged_as_a_free_hit(cached_gateway, make_deployment,
                                                                                fake_openai):
    make_deployment("cached", upstream_model="gpt-test")
    client = client_for(cached_gateway)
    first = client.chat.completions.with_raw_response.create(model="cached", messages=MESSAGES, user="alice",
                                                               metadata={"run": "1"})
    second = client.chat.completions.with_raw_response.create(model="cached", messages=MESSAGES, user="bob",
                                                                metadata={"run": "2"})
    assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit")
    assert first.headers["x-litellm-cache-key"] == second.headers["x-litellm-cache-key"]
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().usage.prompt_tokens == 11
    assert upstream_calls(fake_openai, "gpt-test") == 1
    miss, hit = logs(2)
    assert (miss.cache_hit, hit.cache_hit) == (False, True)
    assert miss.cost > 0 and hit.cost == 0 and hit.saved_cost == miss.cost
    assert (hit.prompt_tokens, hit.completion_tokens) == (11, 7) and hit.status == "success"


def test_what_changes_the_answer_misses(cached_gateway, make_deployment, fake_openai):
    make_deployment("cached-params", upstream_model="gpt-test")
    client = client_for(cached_gateway)
    client.chat.completions.create(model="cached-params", messages=MESSAGES)
    client.chat.completions.create(model="cached-params", messages=MESSAGES, temperature=0.2)
    client.chat.completions.create(model="cached-params", messages=[{"role": "user", "content": "other"}])
    assert upstream_calls(fake_openai, "gpt-test") == 3


def test_a_stream_is_replayed_from_a_plain_answer_and_a_stream_is_kept_whole(cached_gateway, make_deployment,
                                                                             fake_openai):
    make_deployment("cached-stream", upstream_model="gpt-test")
    client = client_for(cached_gateway)
    plain = client.chat.completions.create(model="cached-stream", messages=MESSAGES)
    chunks = list(client.chat.completions.create(model="cached-stream", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    assert upstream_calls(fake_openai, "gpt-test") == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == 7 and chunks[-2].choices[0].finish_reason == "stop"
    # A streamed answer (another prompt) is kept once whole, and answers a plain request after it.
    other = [{"role": "user", "content": "stream me"}]
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="cached-stream", messages=other, stream=True) if c.choices)
    again = client.chat.completions.with_raw_response.create(model="cached-stream", messages=other)
    assert again.headers["x-gateway-cache"] == "hit" and again.parse().choices[0].message.content == streamed
    assert upstream_calls(fake_openai, "gpt-test") == 2


def test_the_clients_controls_as_litellm_spells_them(cached_gateway, make_deployment, fake_openai):
    make_deployment("cached-controls", upstream_model="gpt-test")
    client = client_for(cached_gateway)

    def ask(**kwargs):
        return client.chat.completions.with_raw_response.create(model="cached-controls", messages=MESSAGES, **kwargs)

    assert ask(extra_body={"cache": {"no-store": True}}).headers["x-gateway-cache"] == "miss"
    assert ask().headers["x-gateway-cache"] == "miss"  # the first answer was not kept
    assert ask().headers["x-gateway-cache"] == "hit"
    assert ask(extra_body={"cache": {"no-cache": True}}).headers["x-gateway-cache"] == "miss"
    assert ask(extra_headers={"Cache-Control": "no-cache"}).headers["x-gateway-cache"] == "miss"
    time.sleep(1.1)
    assert ask(extra_body={"cache": {"s-maxage": 1}}).headers["x-gateway-cache"] == "miss"  # too old for it
    assert ask(extra_headers={"Cache-Control": "max-age=60"}).headers["x-gateway-cache"] == "hit"
    assert ask(extra_body={"cache": {"namespace": "experiment"}}).headers["x-gateway-cache"] == "miss"
    assert ask(extra_body={"cache": {"namespace": "experiment"}}).headers["x-gateway-cache"] == "hit"
    assert upstream_calls(fake_openai, "gpt-test") == 6
    # `cache` itself never reaches the upstream.
    assert all("cache" not in r["body"] for r in fake_openai.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        ask(extra_body={"cache": "yes please"})
    assert refused.value.body["param"] == "cache"


def test_a_ttl_of_the_request_expires_its_entry(cached_gateway, make_deployment, fake_openai):
    make_deployment("cached-ttl", upstream_model="gpt-test")
    client = client_for(cached_gateway)
    for _ in range(2):
        client.chat.completions.create(model="cached-ttl", messages=MESSAGES, extra_body={"cache": {"ttl": 1}})
    assert upstream_calls(fake_openai, "gpt-test") == 1
    time.sleep(1.2)
    client.chat.completions.create(model="cached-ttl", messages=MESSAGES)
    assert upstream_calls(fake_openai, "gpt-test") == 2


def test_teams_never_see_each_others_entries(cached_gateway, make_deployment, fake_openai, make_key):
    from apps.teams.services import organization_create, team_create

    make_deployment("cached-teams", upstream_model="gpt-test")
    alpha = team_create(organization=organization_create(name="Alpha"), alias="alpha")
    beta = team_create(organization=organization_create(name="Beta"), alias="beta")
    _, alpha_key = make_key(team=alpha)
    _, alpha_other = make_key(team=alpha)
    _, beta_key = make_key(team=beta)
    answers = [client_for(cached_gateway, key).chat.completions.with_raw_response.create(
        model="cached-teams", messages=MESSAGES).headers["x-gateway-cache"] for key in (alpha_key, alpha_other, beta_key)]
    assert answers == ["miss", "hit", "miss"]  # the team shares; the other team does not see it


def test_a_key_or_team_turns_the_cache_off_for_itself(cached_gateway, make_deployment, fake_openai, make_key):
    make_deployment("cached-off", upstream_model="gpt-test")
    _, raw = make_key(metadata={"cache": {"enabled": False}})
    client = client_for(cached_gateway, raw)
    for _ in range(2):
        response = client.chat.completions.with_raw_response.create(model="cached-off", messages=MESSAGES)
        assert "x-gateway-cache" not in response.headers
    assert upstream_calls(fake_openai, "gpt-test") == 2


def test_embeddings_and_anthropic_messages_are_cached_too(cached_gateway, make_deployment, fake_openai):
    make_deployment("cached-embed", upstream_model="text-embedding-3-small")
    make_deployment("cached-claude", upstream_model="gpt-test")
    client = client_for(cached_gateway)
    first = client.embeddings.create(model="cached-embed", input=["a", "b"])
    second = client.embeddings.with_raw_response.create(model="cached-embed", input=["a", "b"])
    assert second.headers["x-gateway-cache"] == "hit"
    assert [d.embedding for d in second.parse().data] == [d.embedding for d in first.data]
    assert upstream_calls(fake_openai, "text-embedding-3-small") == 1
    messages = anthropic.Anthropic(base_url=cached_gateway.url, api_key=MASTER_KEY, max_retries=0)
    ask = {"model": "cached-claude", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]}
    plain = messages.messages.create(**ask)
    with messages.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].text == plain.content[0].text
    assert upstream_calls(fake_openai, "gpt-test") == 1


def test_a_batch_of_embeddings_is_cached_per_item_and_only_new_items_go_upstream(cached_gateway, make_deployment,
                                                                                  fake_openai):
    make_deployment("cached-items", upstream_model="text-embedding-3-small")
    client = client_for(cached_gateway)
    first = client.embeddings.create(model="cached-items", input=["alpha", "beta"], encoding_format="float")
    mixed = client.embeddings.with_raw_response.create(model="cached-items", input=["gamma", "beta", "alpha", "omega"],
                                                       encoding_format="float")
    sent = [r["body"]["input"] for r in fake_openai.requests if r["body"].get("model") == "text-embedding-3-small"]
    assert sent == [["alpha", "beta"], ["gamma", "omega"]]  # only what the cache did not have
    data = mixed.parse().data
    assert [d.index for d in data] == [0, 1, 2, 3]
    by_input = {"alpha": first.data[0].embedding, "beta": first.data[1].embedding}
    assert data[1].embedding == by_input["beta"] and data[2].embedding == by_input["alpha"]
    assert data[0].embedding != data[3].embedding  # gamma's and omega's own, from the upstream
    assert mixed.headers["x-gateway-cache"] == "miss"
    again = client.embeddings.with_raw_response.create(model="cached-items", input=["omega", "alpha"],
                                                       encoding_format="float")
    assert again.headers["x-gateway-cache"] == "hit" and len(sent) == 2
    assert [d.embedding for d in again.parse().data] == [data[3].embedding, by_input["alpha"]]
    first_log, mixed_log, hit_log = logs(3)
    assert mixed_log.prompt_tokens == 8 and mixed_log.saved_cost > 0  # 2 items sent, 2 saved
    assert hit_log.cache_hit and hit_log.cost == 0


def test_a_hit_is_counted_by_the_rate_limits_but_charged_to_no_budget(cached_gateway, make_deployment, fake_openai,
                                                                      make_key):
    from decimal import Decimal

    make_deployment("cached-limits", upstream_model="gpt-test")
    key, raw = make_key(rpm_limit=2, max_budget=Decimal("1"))
    client = client_for(cached_gateway, raw)
    client.chat.completions.create(model="cached-limits", messages=MESSAGES)
    client.chat.completions.create(model="cached-limits", messages=MESSAGES)  # a hit, counted
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="cached-limits", messages=MESSAGES)
    miss, hit, refused = logs(3)
    key.refresh_from_db()
    wait_for(lambda: (key.refresh_from_db() or key.spend) == miss.cost)
    assert key.spend == miss.cost and hit.cost == 0


def test_the_cache_off_adds_no_header_and_no_cost(gateway, openai_client, make_deployment):
    make_deployment("uncached", upstream_model="gpt-test")
    response = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                          json={"model": "uncached", "messages": MESSAGES})
    assert response.status_code == 200 and "x-gateway-cache" not in response.headers


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="replicas share entries through Redis")
def test_an_entry_kept_by_one_replica_answers_another_through_redis(cached_gateway, make_deployment, fake_openai):
    from apps.routing.response_cache import response_cache

    make_deployment("cached-shared", upstream_model="gpt-test")
    client = client_for(cached_gateway)
    client.chat.completions.create(model="cached-shared", messages=MESSAGES)
    wait_for(lambda: response_cache.backend.memory.size)  # kept (written in the background)
    response_cache.backend.memory.clear()  # another replica: nothing of it in its own memory
    again = client.chat.completions.with_raw_response.create(model="cached-shared", messages=MESSAGES)
    assert again.headers["x-gateway-cache"] == "hit" and upstream_calls(fake_openai, "gpt-test") == 1


def test_a_dead_redis_is_a_miss_not_an_error(settings, transactional_db, fake_openai, make_deployment):
    """The cache's Redis unreachable: requests are answered by the upstream as if they missed."""
    from apps.core import invalidation
    from tests.fakes.gateway import GatewayServer
    from tests.fakes.server import free_socket

    with free_socket() as sock:
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    settings.GATEWAY_CACHE = "redis"
    from apps.routing.response_cache import RedisBackend, response_cache

    invalidation.apply_everything()
    fake_openai.requests.clear()
    server = GatewayServer().start()
    try:
        from redis.asyncio import Redis

        response_cache.backend = RedisBackend(
            client_factory=lambda: Redis.from_url(dead, socket_connect_timeout=0.2, socket_timeout=0.2))
        make_deployment("cached-dead", upstream_model="gpt-test")
        client = client_for(server)
        for _ in range(2):
            answer = client.chat.completions.with_raw_response.create(model="cached-dead", messages=MESSAGES)
            assert answer.status_code == 200 and answer.headers["x-gateway-cache"] == "miss"
    finally:
        server.stop()
    assert upstream_calls(fake_openai, "gpt-test") == 2


def test_a_model_group_turns_the_cache_off_or_sets_its_ttl(cached_gateway, make_deployment, fake_openai,
                                                            group_settings):
    make_deployment("uncached-group", upstream_model="gpt-test")
    make_deployment("short-group", upstream_model="gpt-short")
    group_settings("uncached-group", cache_enabled=False)
    group_settings("short-group", cache_ttl=1)
    client = client_for(cached_gateway)
    for _ in range(2):
        client.chat.completions.create(model="uncached-group", messages=MESSAGES)
        client.chat.completions.create(model="short-group", messages=MESSAGES)
    assert (upstream_calls(fake_openai, "gpt-test"), upstream_calls(fake_openai, "gpt-short")) == (2, 1)
    time.sleep(1.2)
    client.chat.completions.create(model="short-group", messages=MESSAGES)
    assert upstream_calls(fake_openai, "gpt-short") == 2


def test_completions_responses_and_rerank_are_cached_too(cached_gateway, make_deployment, fake_openai,
                                                         provider_fakes):
    from apps.providers.models import ModelDeployment
    from tests.fakes.cohere_rerank import API_KEY as COHERE_KEY
    from tests.fakes.cohere_rerank import CohereRerankServer

    make_deployment("cached-text", upstream_model="gpt-instruct")
    client = client_for(cached_gateway)
    first = client.completions.create(model="cached-text", prompt="Say hello")
    again = client.completions.with_raw_response.create(model="cached-text", prompt="Say hello")
    assert again.headers["x-gateway-cache"] == "hit" and again.parse().choices[0].text == first.choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="cached-text", prompt="Say hello", stream=True) if c.choices)
    assert streamed == first.choices[0].text and upstream_calls(fake_openai, "gpt-instruct") == 1

    responses_fake = provider_fakes("openai")
    ModelDeployment.objects.create(model_name="cached-responses", provider="openai",
                                   upstream_model=responses_fake.upstream_model("fake-model"),
                                   **responses_fake.deployment_fields())
    responses_fake.requests.clear()
    answer = client.responses.create(model="cached-responses", input="hello there")
    hit = client.responses.with_raw_response.create(model="cached-responses", input="hello there")
    assert hit.headers["x-gateway-cache"] == "hit" and hit.parse().output_text == answer.output_text
    assert hit.parse().id == answer.id  # the same response, which the team's store holds
    assert client.responses.retrieve(answer.id).output_text == answer.output_text
    continued = client.responses.create(model="cached-responses", input="and then?", previous_response_id=hit.parse().id)
    assert continued.output_text and len(responses_fake.requests) == 2

    cohere = CohereRerankServer().start()
    try:
        ModelDeployment.objects.create(model_name="cached-rerank", provider="cohere", upstream_model="rerank-v3.5",
                                       api_base=cohere.url, api_key=COHERE_KEY)
        body = {"model": "cached-rerank", "query": "capital", "documents": ["Paris is a capital.", "A cat."]}
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}
        one = httpx.post(cached_gateway.url + "/v1/rerank", headers=headers, json=body)
        two = httpx.post(cached_gateway.url + "/v1/rerank", headers=headers, json=body)
        assert (one.headers["x-gateway-cache"], two.headers["x-gateway-cache"]) == ("miss", "hit")
        assert two.json()["results"] == one.json()["results"]
        assert len(cohere.requests) == 1
    finally:
        cohere.stop()
