"""The conformance table: the same cases against every provider's fake upstream, through the
gateway, with the official openai SDK as the client.

Each fake speaks its provider's real wire format (tests/fakes/*_upstream.py) and answers
from one shared script (tests/fakes/brain.py), so every provider must give the same
content, tool calls and usage, streamed or not, and the same errors.
"""

from __future__ import annotations

import base64
import functools
import json

import openai
import pytest

from conftest import MASTER_KEY, wait_for
from tests.fakes.brain import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS_BASE, expected_text
from tests.fakes.providers import load_all

PROVIDERS = sorted(load_all())
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
# A 1×1 PNG.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082"
    )
).decode()


@pytest.fixture(params=PROVIDERS)
def fake(request, provider_fakes):
    return provider_fakes(request.param)


@pytest.fixture
def deploy(deploy, fake):
    return functools.partial(deploy, fake)


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0)


def needs(fake, feature: str) -> None:
    if feature not in fake.features:
        pytest.skip(f"{fake.provider} has no {feature}")


def prompt_tokens(turns: int) -> int:
    return PROMPT_TOKENS_BASE + 3 * turns


def collect_stream(stream) -> tuple[str, dict, list, object]:
    """(content, tool calls by index, chunks, finish_reason) of a streamed answer."""
    text, calls, chunks, finish = "", {}, [], None
    for chunk in stream:
        chunks.append(chunk)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                if delta.id:
                    assert call["id"] in (None, delta.id), "a tool call's id changed mid-stream"
                    call["id"] = delta.id
                if delta.function and delta.function.name:
                    call["name"] = delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
            finish = choice.finish_reason or finish
    return text, calls, chunks, finish


# --- answers ---------------------------------------------------------------------------


def test_plain_reply(fake, deploy, client):
    model = deploy()
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}])
    assert reply.choices[0].message.content == expected_text(None, 1, "Hello")
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt_tokens(1), COMPLETION_TOKENS)
    if "cache_usage" in fake.features:
        assert reply.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS


MULTI_TURN = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Weather in Paris?"},
]


def test_system_prompt_and_multi_turn(fake, deploy, client):
    model = deploy()
    reply = client.chat.completions.create(model=model, messages=MULTI_TURN)
    assert reply.choices[0].message.content == expected_text("Be terse.", 3, "Weather in Paris?")
    assert reply.usage.prompt_tokens == prompt_tokens(3)


def test_tool_call(fake, deploy, client):
    needs(fake, "tools")
    model = deploy()
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.id and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_tool_result_sent_back(fake, deploy, client):
    needs(fake, "tools")
    model = deploy()
    first = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL]
    )
    call = first.choices[0].message.tool_calls[0]
    reply = client.chat.completions.create(
        model=model,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
        ],
    )
    assert reply.choices[0].message.content == "tool results: get_weather=18C and sunny"
    assert reply.choices[0].finish_reason == "stop"


def test_parallel_tool_calls(fake, deploy, client):
    needs(fake, "parallel_tools")
    model = deploy("parallel-model")
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Paris and Berlin?"}], tools=[WEATHER_TOOL]
    )
    calls = reply.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Berlin"]
    assert len({c.id for c in calls}) == 2


def test_image(fake, deploy, client):
    needs(fake, "images")
    model = deploy()
    reply = client.chat.completions.create(
        model=model,
        messages=[{
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        }],
    )
    assert reply.choices[0].message.content == "images: image/png"


# --- the same, streamed -----------------------------------------------------------------


def test_streamed_reply_equals_the_plain_one(fake, deploy, client):
    needs(fake, "stream")
    model = deploy()
    text, calls, chunks, finish = collect_stream(
        client.chat.completions.create(model=model, messages=MULTI_TURN, stream=True)
    )
    assert text == expected_text("Be terse.", 3, "Weather in Paris?")
    assert finish == "stop" and not calls
    assert all(c.usage is None for c in chunks)


def test_streamed_tool_calls_equal_the_plain_ones(fake, deploy, client):
    needs(fake, "stream")
    needs(fake, "parallel_tools")
    model = deploy("parallel-model")
    kwargs = {"model": model, "messages": [{"role": "user", "content": "Paris and Berlin?"}], "tools": [WEATHER_TOOL]}
    plain = client.chat.completions.create(**kwargs).choices[0].message.tool_calls
    _, calls, _, finish = collect_stream(client.chat.completions.create(stream=True, **kwargs))
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == [c.function.name for c in plain]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [json.loads(c.function.arguments) for c in plain]
    assert all(calls[i]["id"] for i in (0, 1)) and calls[0]["id"] != calls[1]["id"]


def test_usage_arrives_in_the_final_chunk(fake, deploy, client):
    needs(fake, "stream")
    model = deploy()
    plain = client.chat.completions.create(model=model, messages=MULTI_TURN)
    _, _, chunks, _ = collect_stream(
        client.chat.completions.create(
            model=model, messages=MULTI_TURN, stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        plain.usage.prompt_tokens,
        plain.usage.completion_tokens,
    )


def test_streamed_and_plain_requests_cost_the_same(fake, deploy, client):
    needs(fake, "stream")
    from apps.spend.models import SpendLog

    model = deploy()
    client.chat.completions.create(model=model, messages=MULTI_TURN)
    collect_stream(client.chat.completions.create(model=model, messages=MULTI_TURN, stream=True))
    wait_for(lambda: SpendLog.objects.count() >= 2)
    plain, streamed = SpendLog.objects.order_by("start_time")
    assert streamed.is_stream and streamed.usage_reported
    assert streamed.cost == plain.cost is not None
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (plain.prompt_tokens, plain.completion_tokens)


# --- errors -------------------------------------------------------------------------------

ERRORS = [
    (400, openai.BadRequestError),
    (401, openai.AuthenticationError),
    (404, openai.NotFoundError),
    (429, openai.RateLimitError),
    (500, openai.InternalServerError),
    (529, openai.InternalServerError),
]


@pytest.mark.parametrize("status, exception", ERRORS, ids=[str(s) for s, _ in ERRORS])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_upstream_errors_keep_status_and_shape(fake, deploy, client, status, exception, stream):
    if stream:
        needs(fake, "stream")
    model = deploy(f"error-{status}")
    with pytest.raises(exception) as info:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hello"}], stream=stream
        )
    assert info.value.status_code == status
    assert set(info.value.body) == {"message", "type", "param", "code"}
    assert info.value.body["message"]
    if status == 429:
        assert info.value.response.headers["retry-after"] == "7"


def test_malformed_upstream_json_is_502(fake, deploy, client):
    model = deploy("bad-json")
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}])
    assert info.value.status_code == 502


def test_upstream_timeout_is_504(fake, deploy, client):
    model = deploy("slow", timeout=0.3)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}])
    assert info.value.status_code == 504


def test_stream_cut_midway_ends_in_an_error_event(fake, deploy, client):
    needs(fake, "stream")
    from apps.spend.models import SpendLog

    model = deploy("cut")
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hello"}], stream=True
        ):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received).startswith("system=")
    wait_for(lambda: SpendLog.objects.exists())
    assert SpendLog.objects.get().status == "error"
