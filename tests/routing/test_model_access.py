"""Which models a key may use: names, wildcards such as "openai/*", named access groups, and
per-model limits on a key."""

import openai
import pytest

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def models(make_deployment):
    make_deployment("gpt-a", upstream_model="gpt-a-upstream", access_groups=["beta"])
    make_deployment("gpt-b", upstream_model="gpt-b-upstream")
    make_deployment("groq-llama", provider="groq", upstream_model="llama-3.3")


def allowed(openai_client, raw_key) -> list[str]:
    return sorted(m.id for m in openai_client(raw_key).models.list())


def test_wildcards_match_the_public_name_and_provider_model(gateway, openai_client, models, make_key):
    _, by_provider = make_key(models=["openai/*"])
    _, by_name = make_key(models=["gpt-*"])
    assert allowed(openai_client, by_provider) == ["gpt-a", "gpt-b"]
    assert allowed(openai_client, by_name) == ["gpt-a", "gpt-b"]
    assert openai_client(by_provider).chat.completions.create(model="gpt-b", messages=MESSAGES).choices
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(by_provider).chat.completions.create(model="groq-llama", messages=MESSAGES)


def test_access_groups(gateway, openai_client, models, make_key):
    _, raw_key = make_key(models=["beta"])
    assert allowed(openai_client, raw_key) == ["gpt-a"]
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(raw_key).chat.completions.create(model="gpt-b", messages=MESSAGES)


def test_every_level_must_allow_the_model(gateway, openai_client, models, make_key, team):
    team.models = ["gpt-*"]
    team.save()
    _, raw_key = make_key(team=team, models=["gpt-a", "groq-llama"])
    assert allowed(openai_client, raw_key) == ["gpt-a"]


def test_per_model_rpm_limit_on_a_key(gateway, openai_client, models, make_key):
    key, raw_key = make_key()
    key.model_rpm_limit = {"gpt-a": 1}
    key.save()
    client = openai_client(raw_key)
    client.chat.completions.create(model="gpt-a", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-a", messages=MESSAGES)
    assert client.chat.completions.create(model="gpt-b", messages=MESSAGES).choices  # other models unaffected
