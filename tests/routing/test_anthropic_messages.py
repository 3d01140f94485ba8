"""POST /v1/messages in Anthropic's format, served by an OpenAI-format deployment, driven by the
official anthropic SDK (which sends its key as x-api-key)."""

import httpx
import anthropic
import pytest

from conftest import MASTER_KEY, wait_for
from tests.fakes.brain import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS_BASE, expected_text

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CONVERSATION = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
]


@pytest.fixture
def model(provider_fakes, transactional_db):
    """A model served by the OpenAI-format fake upstream."""
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("openai")
    ModelDeployment.objects.create(model_name="gpt-fake", provider="openai", upstream_model="fake-model",
                                   **fake.deployment_fields())
    ModelDeployment.objects.create(model_name="gpt-parallel", provider="openai", upstream_model="parallel-model",
                                   **fake.deployment_fields())
    for status in (429, 529):
        ModelDeployment.objects.create(model_name=f"gpt-{status}", provider="openai",
                                       upstream_model=f"error-{status}", **fake.deployment_fields())
    return "gpt-fake"


@pytest.fixture
def client(gateway):
    def make(api_key: str = MASTER_KEY) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=gateway.url, api_key=api_key, max_retries=0)

    return make


def test_message_with_system_and_turns(client, model):
    reply = client().messages.create(model=model, max_tokens=100, system="Be terse.", messages=CONVERSATION)
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.content[0].type == "text"
    assert reply.content[0].text == expected_text("Be terse.", 3, "Weather in Paris?")
    assert reply.stop_reason == "end_turn"
    prompt = PROMPT_TOKENS_BASE + 9
    assert reply.usage.input_tokens == prompt - CACHED_TOKENS
    assert reply.usage.cache_read_input_tokens == CACHED_TOKENS
    assert reply.usage.output_tokens == COMPLETION_TOKENS


def test_streamed_message_equals_the_plain_one(client, model):
    plain = client().messages.create(model=model, max_tokens=100, system="Be terse.", messages=CONVERSATION)
    with client().messages.stream(model=model, max_tokens=100, system="Be terse.", messages=CONVERSATION) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text
    assert final.content[0].text == plain.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens


def test_tool_use_and_tool_result_round_trip(client, model):
    first = client().messages.create(model=model, max_tokens=100, tools=[WEATHER],
                                     messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    [tool_use] = [b for b in first.content if b.type == "tool_use"]
    assert tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"} and tool_use.id

    second = client().messages.create(
        model=model, max_tokens=100, tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C and sunny"}]},
        ],
    )
    assert second.content[0].text == "tool results: get_weather=18C and sunny"


def test_streamed_parallel_tool_use_equals_the_plain_one(client, model):
    kwargs = {"model": "gpt-parallel", "max_tokens": 100, "tools": [WEATHER],
              "messages": [{"role": "user", "content": "Paris and Berlin?"}]}
    plain = client().messages.create(**kwargs)
    with client().messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == plain.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in final.content] == [(b.name, b.input) for b in plain.content]
    assert [b.input["city"] for b in final.content] == ["Paris", "Berlin"]


def test_virtual_key_in_x_api_key(client, model, make_key):
    _, raw_key = make_key(models=["gpt-fake"])
    assert client(raw_key).messages.create(model=model, max_tokens=10, messages=CONVERSATION).content
    with pytest.raises(anthropic.PermissionDeniedError):
        client(raw_key).messages.create(model="gpt-parallel", max_tokens=10, messages=CONVERSATION)


def test_errors_in_anthropic_shape_keep_openai_fields(client, model, gateway):
    with pytest.raises(anthropic.AuthenticationError) as info:
        client("sk-wrong").messages.create(model=model, max_tokens=10, messages=CONVERSATION)
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "authentication_error"
    assert set(info.value.body["error"]) == {"message", "type", "param", "code"}

    response = httpx.post(gateway.url + "/v1/messages", headers={"x-api-key": MASTER_KEY},
                          json={"model": model, "messages": CONVERSATION})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "max_tokens"

    with pytest.raises(anthropic.RateLimitError) as info:
        client().messages.create(model="gpt-429", max_tokens=10, messages=CONVERSATION)
    assert info.value.response.headers["retry-after"] == "7"
    with pytest.raises(anthropic.APIStatusError) as info:
        client().messages.create(model="gpt-529", max_tokens=10, messages=CONVERSATION)
    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"


def test_count_tokens(client, model):
    count = client().messages.count_tokens(model=model, system="Be terse.", messages=CONVERSATION)
    assert count.input_tokens > 0


def test_streamed_message_is_logged_with_its_usage(client, model):
    from apps.spend.models import SpendLog

    with client().messages.stream(model=model, max_tokens=100, messages=CONVERSATION) as stream:
        stream.get_final_message()
    wait_for(lambda: SpendLog.objects.exists())
    log = SpendLog.objects.get()
    assert log.is_stream and log.usage_reported
    assert (log.prompt_tokens, log.completion_tokens) == (PROMPT_TOKENS_BASE + 9, COMPLETION_TOKENS)


def test_native_anthropic_deployment_keeps_prompt_caching(client, provider_fakes, transactional_db):
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("anthropic")
    ModelDeployment.objects.create(model_name="claude-fake", provider="anthropic", upstream_model="fake-model",
                                   **fake.deployment_fields())
    reply = client().messages.create(
        model="claude-fake", max_tokens=100,
        system=[{"type": "text", "text": "A long, cacheable instruction.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}]}],
    )
    assert reply.content[0].text == expected_text("A long, cacheable instruction.", 1, "Hello")
    sent = fake.requests[-1]["body"]
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert reply.usage.cache_read_input_tokens == CACHED_TOKENS
