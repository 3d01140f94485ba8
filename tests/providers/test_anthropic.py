"""Anthropic translation details beyond the conformance table: what goes upstream (checked on
the strict fake's recorded requests), parameter mapping, errors, streaming edge cases."""

from __future__ import annotations

import asyncio
import base64
import functools
import json

import openai
import orjson
import pytest

from conftest import MASTER_KEY, wait_for
from tests.fakes.anthropic_upstream import (
    API_KEY,
    CHATTY_PREFACE,
    THINKING_SIGNATURE,
    THINKING_TEXT,
    THINKING_TOKENS,
    AnthropicFake,
)
from tests.fakes.brain import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS_BASE

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
HELLO = [{"role": "user", "content": "Hello"}]
PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a")).decode()


@pytest.fixture(scope="module")
def anthropic_fake():
    fake = AnthropicFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(anthropic_fake):
    anthropic_fake.requests.clear()
    return anthropic_fake


@pytest.fixture
def deploy(deploy, fake):
    return functools.partial(deploy, fake, default_model="claude-fake")


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0)


def text_block(text: str) -> dict:
    return {"type": "text", "text": text}


def weather_call(call_id: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}


def upstream_body(fake) -> dict:
    return fake.requests[-1]["body"]


def collect(stream) -> dict:
    """A streamed answer put together: content, tool calls in index order, finish reason, usage."""
    content, calls, finish, usage, reasoning = "", {}, None, None, ""
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                call["id"] = delta.id or call["id"]
                if delta.function:
                    call["name"] = delta.function.name or call["name"]
                    call["arguments"] += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    return {"content": content, "tool_calls": [calls[i] for i in sorted(calls)], "tool_indices": sorted(calls),
            "finish": finish, "usage": usage, "reasoning": reasoning}


# --- streaming equals non-streaming ----------------------------------------------------------


def test_streamed_tool_calls_equal_the_plain_call(deploy, client):
    """Text before two tool calls: block indices 0, 1, 2 upstream, tool indices 0, 1 downstream."""
    model = deploy("chatty-parallel-model")
    kwargs = {"model": model, "messages": [{"role": "user", "content": "Paris and Berlin?"}],
              "tools": [WEATHER_TOOL]}

    plain = client.chat.completions.create(**kwargs)
    streamed = collect(
        client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs)
    )

    message = plain.choices[0].message
    assert message.content == streamed["content"] == CHATTY_PREFACE
    assert plain.choices[0].finish_reason == streamed["finish"] == "tool_calls"
    assert streamed["tool_indices"] == [0, 1]  # OpenAI's tool indices, not Anthropic's block indices
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        (c["id"], c["name"], json.loads(c["arguments"])) for c in streamed["tool_calls"]
    ]
    assert [json.loads(c["arguments"])["city"] for c in streamed["tool_calls"]] == ["Paris", "Berlin"]
    assert streamed["tool_calls"][0]["id"].startswith("toolu_")  # Anthropic's ids are kept
    assert plain.usage.model_dump() == streamed["usage"].model_dump()
    assert plain.usage.prompt_tokens == PROMPT_TOKENS_BASE + 3
    assert plain.usage.completion_tokens == COMPLETION_TOKENS
    assert plain.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS


def test_first_chunk_carries_the_role(deploy, client):
    model = deploy()
    first = next(iter(client.chat.completions.create(model=model, messages=HELLO, stream=True)))
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""


# --- the request sent upstream ------------------------------------------------------------------


def test_request_url_headers_and_parameters(fake, deploy, client):
    model = deploy()
    client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
        temperature=0.2,
        top_p=0.9,
        stop="\n\n",
        user="user-42",
        tools=[WEATHER_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    request = fake.requests[-1]
    assert request["path"] == "/v1/messages"
    assert request["headers"]["x-api-key"] == API_KEY
    assert request["headers"]["anthropic-version"] == "2023-06-01"
    assert request["body"] == {
        "model": "claude-fake",
        "max_tokens": 4096,
        "system": "Be terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "tools": [{
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["\n\n"],
        "metadata": {"user_id": "user-42"},
    }


def test_api_base_ending_in_v1_is_not_doubled(fake, deploy, client):
    model = deploy(api_base=fake.deployment_fields()["api_base"] + "/v1/")
    client.chat.completions.create(model=model, messages=HELLO)
    assert fake.requests[-1]["path"] == "/v1/messages"


@pytest.mark.parametrize(
    "choice, expected",
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
    ids=["auto", "none", "named"],
)
def test_tool_choice(fake, deploy, client, choice, expected):
    model = deploy()
    client.chat.completions.create(model=model, messages=HELLO, tools=[WEATHER_TOOL], tool_choice=choice)
    assert upstream_body(fake)["tool_choice"] == expected


def test_messages_merge_into_alternating_turns(fake, deploy, client):
    """Consecutive user messages become one turn; consecutive tool results one user turn,
    with the results first; system messages anywhere go to `system`."""
    model = deploy()
    reply = client.chat.completions.create(
        model=model,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "Paris"},
            {"role": "user", "content": [{"type": "text", "text": "and Berlin?"}]},
            {"role": "assistant", "content": "", "tool_calls": [
                weather_call("toolu_a", '{"city":"Paris"}'), weather_call("toolu_b", '{"city":"Berlin"}'),
            ]},
            {"role": "tool", "tool_call_id": "toolu_a", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_b", "content": [{"type": "text", "text": "rain"}]},
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Thanks"},
        ],
    )
    body = upstream_body(fake)
    assert body["system"] == [text_block("Be terse."), text_block("Answer in English.")]
    assert body["messages"] == [
        {"role": "user", "content": [text_block("Paris"), text_block("and Berlin?")]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Berlin"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": "rain"},
            text_block("Thanks"),
        ]},
    ]
    assert reply.choices[0].message.content == "tool results: get_weather=18C; get_weather=rain"


def test_images_as_base64_and_url_sources(fake, deploy, client):
    model = deploy()
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg", "detail": "low"}},
    ]}])
    assert upstream_body(fake)["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}},
    ]
    assert reply.choices[0].message.content == "images: image/png,url"


@pytest.mark.parametrize(
    "url", [f"data:image/bmp;base64,{PNG}", "file:///etc/passwd", "data:image/png,notbase64"],
    ids=["bmp", "file-scheme", "not-base64"],
)
def test_images_anthropic_cannot_take_are_a_400(fake, deploy, client, url):
    model = deploy()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}},
        ]}])
    assert info.value.body["param"] == "messages[0].content[0].image_url.url"
    assert not fake.requests


def test_pdf_file_part_becomes_a_document_and_audio_is_a_400(fake, deploy, client):
    model = deploy()
    pdf = base64.b64encode(b"%PDF-1.4").decode()
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Summarise"},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}},
    ]}])
    assert upstream_body(fake)["messages"][0]["content"][1] == {
        "type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
    }
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        ]}])
    assert info.value.body["param"] == "messages[0].content[0].type"


def test_tool_call_arguments_that_are_not_json_are_a_400(fake, deploy, client):
    model = deploy()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, tools=[WEATHER_TOOL], messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "tool_calls": [weather_call("toolu_a", "{city")]},
            {"role": "tool", "tool_call_id": "toolu_a", "content": "18C"},
        ])
    assert info.value.body["param"] == "messages[1].tool_calls[0].function.arguments"
    assert not fake.requests


def test_max_tokens_mapping_and_length_finish(fake, deploy, client):
    model = deploy()
    client.chat.completions.create(model=model, messages=HELLO, max_completion_tokens=321)
    assert upstream_body(fake)["max_tokens"] == 321

    reply = client.chat.completions.create(model=model, messages=HELLO, max_tokens=2)
    assert upstream_body(fake)["max_tokens"] == 2
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 2


def test_default_max_tokens_comes_from_the_deployment(fake, deploy, client):
    model = deploy(extra_params={"max_tokens": 1000})
    client.chat.completions.create(model=model, messages=HELLO)
    assert upstream_body(fake)["max_tokens"] == 1000


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_stop_sequence_ends_with_stop(deploy, client, stream):
    model = deploy()
    reply = client.chat.completions.create(model=model, messages=HELLO, stop=["; turns"], stream=stream)
    if stream:
        answer = collect(reply)
        content, finish = answer["content"], answer["finish"]
    else:
        content, finish = reply.choices[0].message.content, reply.choices[0].finish_reason
    assert (content, finish) == ("system=-", "stop")


@pytest.mark.parametrize(
    "param, value", [("n", 2), ("logprobs", True), ("response_format", {"type": "json_object"})]
)
def test_unsupported_parameters_are_a_400_unless_dropped(fake, deploy, client, param, value):
    model = deploy()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=HELLO, extra_body={param: value})
    assert info.value.body["param"] == param
    assert not fake.requests

    reply = client.chat.completions.create(
        model=model, messages=HELLO, extra_body={param: value, "drop_params": True}
    )
    assert reply.choices[0].message.content
    assert param not in upstream_body(fake) and "drop_params" not in upstream_body(fake)


# --- extended thinking ------------------------------------------------------------------------


def test_reasoning_effort_turns_on_thinking_and_returns_it(fake, deploy, client):
    model = deploy()
    reply = client.chat.completions.create(model=model, messages=HELLO, reasoning_effort="medium")
    body = upstream_body(fake)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 4096
    message = reply.choices[0].message.model_dump()
    assert message["reasoning_content"] == THINKING_TEXT
    assert message["thinking_blocks"] == [
        {"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE}
    ]
    assert reply.usage.completion_tokens_details.reasoning_tokens == THINKING_TOKENS

    streamed = collect(client.chat.completions.create(model=model, messages=HELLO, reasoning_effort="medium",
                                                      stream=True))
    assert streamed["reasoning"] == THINKING_TEXT
    assert streamed["content"] == message["content"]


def test_reasoning_budget_fits_within_max_tokens(fake, deploy, client):
    model = deploy()
    client.chat.completions.create(model=model, messages=HELLO, reasoning_effort="high", max_tokens=3000)
    assert upstream_body(fake)["thinking"]["budget_tokens"] == 2999
    client.chat.completions.create(model=model, messages=HELLO, reasoning_effort="high")
    assert upstream_body(fake)["max_tokens"] > upstream_body(fake)["thinking"]["budget_tokens"]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=HELLO, reasoning_effort="low", max_tokens=500)
    assert info.value.body["param"] == "max_tokens"


def test_thinking_blocks_go_back_with_the_tool_results(fake, deploy, client):
    """With thinking on, Anthropic refuses tool results whose tool-using turn lost its thinking."""
    model = deploy()
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.chat.completions.create(model=model, messages=[question], tools=[WEATHER_TOOL],
                                           reasoning_effort="low")
    assistant = first.choices[0].message.model_dump(exclude_none=True)
    call_id = assistant["tool_calls"][0]["id"]
    reply = client.chat.completions.create(
        model=model,
        tools=[WEATHER_TOOL],
        reasoning_effort="low",
        messages=[question, assistant, {"role": "tool", "tool_call_id": call_id, "content": "18C"}],
    )
    assert reply.choices[0].message.content == "tool results: get_weather=18C"
    assert upstream_body(fake)["messages"][1]["content"][0]["type"] == "thinking"


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status, code", [(529, "overloaded_error"), (429, "rate_limit_error"),
                                          (404, "not_found_error")])
def test_errors_keep_anthropic_type_as_code(deploy, client, status, code):
    model = deploy(f"error-{status}")
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=model, messages=HELLO)
    assert info.value.status_code == status
    assert info.value.body["code"] == code
    assert "req_fake0001" in info.value.body["message"]


def test_wrong_key_is_a_401_authentication_error(deploy, client):
    model = deploy(api_key="sk-ant-wrong")
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model=model, messages=HELLO)
    assert info.value.body["code"] == "authentication_error"


def test_error_event_before_any_content_is_an_error_response(deploy, client):
    model = deploy("overloaded-at-start")
    with pytest.raises(openai.InternalServerError) as info:
        list(client.chat.completions.create(model=model, messages=HELLO, stream=True))
    assert info.value.status_code == 529
    assert info.value.body["code"] == "overloaded_error"


def test_error_event_midstream_ends_the_stream_in_an_error(deploy, client):
    from apps.spend.models import SpendLog

    model = deploy("overloaded-midstream")
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model=model, messages=HELLO, stream=True):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "system=-;"
    assert "Overloaded" in str(info.value)
    wait_for(lambda: SpendLog.objects.exists())
    log = SpendLog.objects.get()
    assert (log.status, log.http_status, log.error_type) == ("error", 529, "overloaded_error")
    assert log.usage_reported and log.prompt_tokens == PROMPT_TOKENS_BASE + 3


# --- the translator on its own ------------------------------------------------------------------


def _deployment(**overrides):
    from apps.providers.adapters.anthropic import AnthropicAdapter
    from apps.providers.registry import Deployment

    fields = {
        "id": 1, "model_name": "claude", "provider": "anthropic", "upstream_model": "claude-x",
        "adapter": AnthropicAdapter(), "api_base": "https://anthropic.invalid", "api_key": "k",
        "api_version": None, "weight": 1, "timeout": None, "rpm": None, "tpm": None,
        "input_cost_per_token": None, "output_cost_per_token": None, "cache_read_input_token_cost": None,
        "extra_params": {},
    }
    return Deployment(**{**fields, **overrides})


def _events(*pairs) -> list[tuple[str, bytes]]:
    return [(name, orjson.dumps({"type": name, **data})) for name, data in pairs]


def _feed(translator, events) -> list[dict]:
    return [chunk for name, data in events for chunk in translator.feed(name, data)]


def test_usage_counts_cache_reads_and_writes_in_the_prompt():
    from apps.providers.adapters.base import Operation

    deployment = _deployment()
    raw = orjson.dumps({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "hi"}], "stop_reason": "refusal",
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000,
                  "output_tokens": 5},
    })
    translated = deployment.adapter.translate_response(Operation.CHAT, deployment, raw)
    usage = translated.usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.completion_tokens) == (
        1110, 1000, 100, 5)
    body = orjson.loads(translated.body)
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 1000, "cache_creation_tokens": 100}


def test_stream_usage_takes_the_latest_counts():
    from apps.providers.adapters.base import Operation

    deployment = _deployment()
    translator = deployment.adapter.stream_translator(Operation.CHAT, deployment)
    chunks = _feed(translator, _events(
        ("message_start", {"message": {"id": "msg_1", "model": "claude-x", "content": [],
                                       "usage": {"input_tokens": 10, "cache_read_input_tokens": 4,
                                                 "output_tokens": 1}}}),
        ("ping", {}),
        ("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                               "name": "now", "input": {}}}),
        ("content_block_stop", {"index": 0}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"},
                           "usage": {"input_tokens": 12, "cache_creation_input_tokens": 3,
                                     "output_tokens": 7}}),
        ("message_stop", {}),
    ))
    assert translator.done and translator.usage.reported
    assert (translator.usage.prompt_tokens, translator.usage.cached_tokens,
            translator.usage.cache_write_tokens, translator.usage.completion_tokens) == (19, 4, 3, 7)
    tool_deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"]
                   and "tool_calls" in c["choices"][0]["delta"]]
    # A call without arguments streams "{}", as the plain answer gives it.
    assert "".join(d["function"]["arguments"] for d in tool_deltas) == "{}"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 26
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


def test_stream_ending_before_the_stop_reason_is_an_error():
    from apps.core.errors import GatewayError
    from apps.providers.adapters.base import Operation

    deployment = _deployment()
    translator = deployment.adapter.stream_translator(Operation.CHAT, deployment)
    _feed(translator, _events(
        ("message_start", {"message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 10,
                                                                                     "output_tokens": 1}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
    ))
    with pytest.raises(GatewayError) as info:
        translator.finish()
    assert info.value.status == 502
    assert translator.usage.reported and translator.usage.prompt_tokens == 10


def test_stream_missing_only_message_stop_still_reports_usage():
    from apps.providers.adapters.base import Operation

    deployment = _deployment()
    translator = deployment.adapter.stream_translator(Operation.CHAT, deployment)
    _feed(translator, _events(
        ("message_start", {"message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 10,
                                                                                     "output_tokens": 1}}}),
        ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}}),
    ))
    [usage_chunk] = translator.finish()
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 4


def test_anthropic_beta_and_version_headers():
    from apps.providers.adapters.base import Operation

    deployment = _deployment(
        extra_params={"anthropic_beta": ["a-2025", "b-2025"]}, api_base="https://x.invalid/v1"
    )
    request = asyncio.run(deployment.adapter.build_request(
        Operation.CHAT, deployment, {"model": "claude", "messages": HELLO}, stream=True))
    assert request.url == "https://x.invalid/v1/messages"
    assert request.headers["anthropic-beta"] == "a-2025,b-2025"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert orjson.loads(request.body)["stream"] is True


def test_one_hour_cache_writes_are_counted_apart():
    from apps.providers.adapters.anthropic import usage_from_anthropic

    usage = usage_from_anthropic({"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 300,
                                  "cache_read_input_tokens": 0,
                                  "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200}})
    assert (usage.prompt_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == (310, 300, 200)
