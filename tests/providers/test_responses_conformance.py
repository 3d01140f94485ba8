"""The Responses API conformance table: the same /v1/responses cases, plain and streamed, against
each provider's fake upstream through the gateway, with the official openai SDK as the client.

OpenAI and Azure answer from their own Responses API (tests/fakes/openai_responses.py); the
others get the request translated to chat and their answers translated back, so every row
must give the same text, tool calls and usage (tests/fakes/brain.py decides them all).
"""

from __future__ import annotations

import base64
import functools
import json

import openai
import pytest

from conftest import MASTER_KEY, wait_for
from tests.fakes.brain import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS_BASE, expected_text

PROVIDERS = ["anthropic", "azure", "bedrock", "gemini", "groq", "ollama", "openai", "vertex_ai", "vertex_ai/claude"]
NATIVE = {"openai", "azure"}
# Providers without structured output: text.format's JSON schema becomes one forced tool call.
JSON_BY_TOOL = {"anthropic", "vertex_ai/claude"}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082"
)).decode()
SCHEMA = {"type": "json_schema", "name": "answer", "strict": True,
          "schema": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
                     "additionalProperties": False}}


@pytest.fixture(params=PROVIDERS)
def fake(request, provider_fakes):
    return provider_fakes(request.param)


@pytest.fixture
def deploy(deploy, fake):
    return functools.partial(deploy, fake)


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0)


@pytest.fixture(params=[False, True], ids=["plain", "stream"])
def ask(request, client):
    """ask(**kwargs) → the Response, created plainly or streamed (then the events are checked)."""
    if not request.param:
        return client.responses.create

    def streamed(**kwargs):
        with client.responses.stream(**kwargs) as stream:
            events = list(stream)
            final = stream.get_final_response()
        kinds = [e.type for e in events]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert [e.sequence_number for e in events] == list(range(len(events)))
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert text == final.output_text
        for item in final.output:
            if item.type == "function_call":
                deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta"
                                 and e.item_id == item.id)
                assert deltas == item.arguments
        return final

    return streamed


def test_plain(fake, deploy, ask):
    response = ask(model=deploy(), input="Hello")
    assert response.status == "completed"
    assert response.output_text == expected_text(None, 1, "Hello")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (PROMPT_TOKENS_BASE + 3, COMPLETION_TOKENS)
    assert response.usage.total_tokens == PROMPT_TOKENS_BASE + 3 + COMPLETION_TOKENS
    if "cache_usage" in fake.features:
        assert response.usage.input_tokens_details.cached_tokens == CACHED_TOKENS


def test_instructions_and_input_turns(fake, deploy, ask):
    response = ask(model=deploy(), instructions="Be terse.", input=[
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
    ])
    assert response.output_text == expected_text("Be terse.", 3, "Weather in Paris?")
    assert response.instructions == "Be terse."


def test_multi_turn_via_previous_response_id(fake, deploy, ask):
    model = deploy()
    first = ask(model=model, input="Hi")
    second = ask(model=model, input="Weather in Paris?", previous_response_id=first.id)
    assert second.output_text == expected_text(None, 3, "Weather in Paris?")
    assert second.usage.input_tokens == PROMPT_TOKENS_BASE + 9


def test_function_tool_round_trip(fake, deploy, ask):
    model = deploy()
    first = ask(model=model, input="Weather in Paris?", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"} and call.call_id
    second = ask(model=model, tools=[WEATHER], previous_response_id=first.id,
                 input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}])
    assert second.output_text == "tool results: get_weather=18C"


def test_function_call_output_without_stored_state(fake, deploy, ask):
    """The client sends the whole exchange itself (store: false), as the Agents SDK can."""
    model = deploy()
    first = ask(model=model, input="Weather in Paris?", tools=[WEATHER], store=False)
    [call] = [item for item in first.output if item.type == "function_call"]
    second = ask(model=model, tools=[WEATHER], store=False, input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C"},
    ])
    assert second.output_text == "tool results: get_weather=18C"


def test_json_schema_output(fake, deploy, ask):
    model = deploy()
    if (fake.table_name or fake.provider) in JSON_BY_TOOL:
        # One forced tool call carries the JSON (the fake fills any tool's arguments with a city).
        response = ask(model=model, input="Hello", text={"format": SCHEMA})
        assert json.loads(response.output_text) == {"city": "Paris"}
        assert [item.type for item in response.output] == ["message"]
        sent = fake.requests[-1]["body"]
        assert sent["tool_choice"] == {"type": "tool", "name": "answer"}
        assert sent["tools"][0]["input_schema"] == SCHEMA["schema"]
        with pytest.raises(openai.BadRequestError) as info:  # other tools beside it: not forced
            ask(model=model, input="Hello", text={"format": SCHEMA}, tools=[WEATHER])
        assert info.value.body["param"] == "text.format"
        return
    response = ask(model=model, input="Hello", text={"format": SCHEMA})
    assert response.output_text == expected_text(None, 1, "Hello")
    assert response.text.format.type == "json_schema"
    sent = fake.requests[-1]["body"]
    if fake.provider in NATIVE:
        assert sent["text"]["format"]["schema"] == SCHEMA["schema"]
    elif fake.provider == "groq":
        assert sent["response_format"]["json_schema"]["schema"] == SCHEMA["schema"]
    elif fake.provider == "bedrock":
        structure = sent["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
        assert json.loads(structure["schema"]) == SCHEMA["schema"]
    elif fake.provider == "ollama":
        assert sent["format"] == SCHEMA["schema"]
    else:  # gemini, vertex_ai
        assert sent["generationConfig"]["responseMimeType"] == "application/json"


def test_image_input(fake, deploy, ask):
    response = ask(model=deploy(), input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
    ]}])
    assert response.output_text == "images: image/png"


def test_max_output_tokens_reaches_the_upstream(fake, deploy, ask):
    response = ask(model=deploy(), input="Hello", max_output_tokens=64)
    assert response.max_output_tokens == 64
    assert "64" in json.dumps(fake.requests[-1]["body"])


def test_streamed_and_plain_usage_and_cost_agree(fake, deploy, client):
    from apps.spend.models import SpendLog

    model = deploy()
    plain = client.responses.create(model=model, input="Hello")
    with client.responses.stream(model=model, input="Hello") as stream:
        list(stream)
        streamed = stream.get_final_response()
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (
        plain.usage.input_tokens, plain.usage.output_tokens)
    wait_for(lambda: SpendLog.objects.count() >= 2)
    first, second = SpendLog.objects.order_by("start_time")
    assert first.call_type == second.call_type == "responses"
    assert second.is_stream and second.usage_reported
    assert first.cost == second.cost is not None


def test_builtin_tools(fake, deploy, client):
    model = deploy()
    if fake.provider in NATIVE:
        client.responses.create(model=model, input="Hello", tools=[{"type": "web_search_preview"}])
        assert fake.requests[-1]["body"]["tools"] == [{"type": "web_search_preview"}]
        return
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=model, input="Hello", tools=[{"type": "code_interpreter",
                                                                     "container": {"type": "auto"}}])
    assert info.value.body["param"] == "tools[0].type" and "code_interpreter" in info.value.body["message"]
