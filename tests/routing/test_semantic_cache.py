"""The semantic cache with the packaged all-MiniLM-L6-v2 model and Qdrant embedded: a paraphrase is
answered from the cache (x-gateway-cache: semantic-hit, with its similarity), an unrelated prompt or
other parameters miss, and one team never gets another's answers."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from conftest import MASTER_KEY

pytest.importorskip("sentence_transformers", reason="the semantic cache's local model: pip install '.[semantic]'")
pytest.importorskip("qdrant_client")


@pytest.fixture
def semantic_gateway(settings, transactional_db, fake_openai):
    from apps.core import invalidation
    from tests.fakes.gateway import GatewayServer

    settings.GATEWAY_CACHE = "local"
    settings.GATEWAY_SEMANTIC_CACHE = True
    invalidation.apply_everything()
    fake_openai.requests.clear()
    server = GatewayServer().start()
    yield server
    server.stop()


def kept(count: int, timeout: float = 60.0) -> None:
    """Wait until the semantic cache holds `count` answers (they are kept in the background)."""
    from apps.routing.semantic_cache import COLLECTION, semantic_cache

    async def held() -> int:
        if not await semantic_cache.client.collection_exists(COLLECTION):
            return 0
        return (await semantic_cache.client.count(COLLECTION)).count

    deadline = time.monotonic() + timeout
    while asyncio.run(held()) < count:
        assert time.monotonic() < deadline, "the answer was not kept"
        time.sleep(0.1)


def ask(gateway, text, key=MASTER_KEY, **kwargs):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=120)
    return client.chat.completions.with_raw_response.create(
        model="semantic", messages=[{"role": "user", "content": text}], **kwargs)


def upstream_calls(fake_openai) -> int:
    return sum(1 for r in fake_openai.requests if r["body"].get("model") == "gpt-test")


def test_a_paraphrase_is_answered_from_the_cache_and_an_unrelated_prompt_is_not(semantic_gateway, make_deployment,
                                                                               fake_openai):
    make_deployment("semantic", upstream_model="gpt-test")
    first = ask(semantic_gateway, "What is the capital of France?")
    assert first.headers["x-gateway-cache"] == "miss"
    kept(1)
    paraphrase = ask(semantic_gateway, "Which city is the capital of France?")
    assert paraphrase.headers["x-gateway-cache"] == "semantic-hit"
    assert float(paraphrase.headers["x-gateway-cache-similarity"]) >= 0.9
    assert paraphrase.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert upstream_calls(fake_openai) == 1
    assert ask(semantic_gateway, "How do I bake sourdough bread?").headers["x-gateway-cache"] == "miss"
    assert ask(semantic_gateway, "Which city is the capital of France?", temperature=1.5).headers[
        "x-gateway-cache"] == "miss"  # other parameters: another answer
    assert upstream_calls(fake_openai) == 3
    from apps.spend.models import SpendLog

    hit = SpendLog.objects.get(request_id=paraphrase.headers["x-request-id"])
    assert hit.cache_hit and hit.cost == 0 and hit.metadata["cache_similarity"] >= 0.9


def test_another_team_never_gets_the_answer(semantic_gateway, make_deployment, fake_openai, make_key):
    from apps.teams.services import organization_create, team_create

    make_deployment("semantic", upstream_model="gpt-test")
    alpha = team_create(organization=organization_create(name="Alpha"), alias="alpha")
    beta = team_create(organization=organization_create(name="Beta"), alias="beta")
    _, alpha_key = make_key(team=alpha)
    _, beta_key = make_key(team=beta)
    ask(semantic_gateway, "What is the capital of France?", key=alpha_key)
    kept(1)
    assert ask(semantic_gateway, "Which city is the capital of France?", key=beta_key).headers[
        "x-gateway-cache"] == "miss"
    assert ask(semantic_gateway, "Which city is the capital of France?", key=alpha_key).headers[
        "x-gateway-cache"] == "semantic-hit"
