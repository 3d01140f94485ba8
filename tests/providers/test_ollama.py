"""Ollama's translation details beyond the conformance table: what reaches /api/chat and
/api/embed, parameter mapping and refusals, and the NDJSON stream's edge cases."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import struct

import openai
import orjson
import pytest

from apps.core.errors import GatewayError
from apps.providers.adapters.base import Operation
from apps.providers.adapters.ollama import OllamaAdapter
from apps.providers.registry import Deployment
from tests.fakes.brain import COMPLETION_TOKENS
from tests.fakes.ollama_upstream import EMBEDDING, MID_STREAM_ERROR, THINKING, OllamaFake

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PNG_BASE64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def ollama():
    fake = OllamaFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def deploy(deploy, ollama):
    return functools.partial(deploy, ollama, default_model="llama3.2")


@pytest.fixture
def client(gateway, ollama):
    ollama.requests.clear()
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-master-test", max_retries=0)


def last_sent(ollama) -> dict:
    return ollama.requests[-1]


# --- the request sent upstream -------------------------------------------------------------


def test_chat_goes_to_api_chat_with_stream_false_and_options(deploy, client, ollama):
    model = deploy()
    client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be terse."}, *HELLO],
        temperature=0.2, top_p=0.9, seed=7, max_tokens=50, stop="END",
        presence_penalty=0.1, frequency_penalty=0.3,
    )
    sent = last_sent(ollama)
    assert sent["path"] == "/api/chat"
    assert "Authorization" not in sent["headers"]  # a local Ollama takes no key
    assert sent["body"] == {
        "model": "llama3.2",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hello"}],
        "stream": False,  # always explicit: Ollama streams by default
        "options": {
            "temperature": 0.2, "top_p": 0.9, "seed": 7, "num_predict": 50, "stop": ["END"],
            "presence_penalty": 0.1, "frequency_penalty": 0.3,
        },
    }


def test_streamed_chat_asks_for_a_stream(deploy, client, ollama):
    model = deploy()
    list(client.chat.completions.create(model=model, messages=HELLO, stream=True))
    assert last_sent(ollama)["body"]["stream"] is True


def test_max_completion_tokens_wins_over_max_tokens_and_length_is_reported(deploy, client, ollama):
    model = deploy()
    reply = client.chat.completions.create(
        model=model, messages=HELLO, max_tokens=100, max_completion_tokens=3
    )
    assert last_sent(ollama)["body"]["options"] == {"num_predict": 3}
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


def test_a_key_is_sent_as_bearer_for_hosted_ollama(deploy, client, ollama):
    model = deploy(api_key="ollama-cloud-key")
    client.chat.completions.create(model=model, messages=HELLO)
    assert last_sent(ollama)["headers"]["Authorization"] == "Bearer ollama-cloud-key"


def test_deployment_options_and_keep_alive_are_sent(deploy, client, ollama):
    model = deploy(extra_params={"num_ctx": 8192, "keep_alive": "10m", "aws_region_name": "ignored"})
    client.chat.completions.create(model=model, messages=HELLO, temperature=0)
    body = last_sent(ollama)["body"]
    assert body["options"] == {"num_ctx": 8192, "temperature": 0}
    assert body["keep_alive"] == "10m"
    assert "aws_region_name" not in body


def test_images_go_as_raw_base64(deploy, client, ollama):
    model = deploy()
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_BASE64}"}},
        ]}],
    )
    assert reply.choices[0].message.content == "images: image/png"
    assert last_sent(ollama)["body"]["messages"] == [
        {"role": "user", "content": "What is this?", "images": [PNG_BASE64]}
    ]


def test_an_image_link_is_refused_naming_the_part(deploy, client, ollama):
    model = deploy()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ]}],
        )
    assert info.value.body["param"] == "messages[0].content[1].image_url"
    assert not ollama.requests


def test_tool_round_trip_sends_object_arguments_and_the_tools_name(deploy, client, ollama):
    model = deploy()
    first = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Paris?"}],
                                           tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert call.id.startswith("call_")
    client.chat.completions.create(
        model=model,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Paris?"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18C"},
        ],
    )
    body = last_sent(ollama)["body"]
    assert body["tools"] == [WEATHER_TOOL]
    assert body["messages"][1:] == [
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "18C", "tool_name": "get_weather"},
    ]


def test_tool_choice_none_sends_no_tools(deploy, client, ollama):
    model = deploy()
    reply = client.chat.completions.create(
        model=model, messages=HELLO, tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert reply.choices[0].finish_reason == "stop"
    assert "tools" not in last_sent(ollama)["body"]


@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_a_forced_tool_choice_is_refused(deploy, client, tool_choice):
    model = deploy()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model, messages=HELLO, tools=[WEATHER_TOOL], tool_choice=tool_choice
        )
    assert info.value.body["param"] == "tool_choice"


@pytest.mark.parametrize(
    "response_format, expected",
    [
        ({"type": "json_object"}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
            {"type": "object"},
        ),
    ],
)
def test_response_format_becomes_format(deploy, client, ollama, response_format, expected):
    model = deploy()
    client.chat.completions.create(model=model, messages=HELLO, response_format=response_format)
    assert last_sent(ollama)["body"]["format"] == expected


def test_reasoning_effort_turns_thinking_on_and_thinking_comes_back(deploy, client, ollama):
    model = deploy()
    reply = client.chat.completions.create(model=model, messages=HELLO, reasoning_effort="high")
    assert last_sent(ollama)["body"]["think"] is True
    assert reply.choices[0].message.model_extra["reasoning_content"] == THINKING

    chunks = list(
        client.chat.completions.create(model=model, messages=HELLO, reasoning_effort="low", stream=True)
    )
    assert "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                   for c in chunks if c.choices) == THINKING


def test_an_unsupported_parameter_is_refused_unless_dropped(deploy, client, ollama):
    model = deploy()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=HELLO, logit_bias={"1": 1})
    assert info.value.body["param"] == "logit_bias"

    client.chat.completions.create(
        model=model, messages=HELLO, logit_bias={"1": 1}, extra_body={"drop_params": True}
    )
    assert "logit_bias" not in last_sent(ollama)["body"]


# --- answers and errors --------------------------------------------------------------------


def test_ollamas_not_found_message_reaches_the_client(deploy, client):
    model = deploy("error-404")
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model=model, messages=HELLO)
    assert 'model "error-404" not found' in info.value.body["message"]


def test_an_error_line_mid_stream_becomes_an_error_event(deploy, client):
    model = deploy("mid-stream-error")
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model=model, messages=HELLO, stream=True):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "system=-;"
    assert MID_STREAM_ERROR in str(info.value)


def test_streamed_usage_is_recorded_for_spend(deploy, client, spend_logs):
    model = deploy()
    list(client.chat.completions.create(model=model, messages=HELLO, stream=True))
    [log] = spend_logs(1)
    assert log.usage_reported and log.completion_tokens == COMPLETION_TOKENS and log.cost


# --- embeddings ----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding_format", [None, "float"], ids=["sdk-default-base64", "float"])
def test_embeddings_in_both_encodings(deploy, client, ollama, encoding_format):
    model = deploy("nomic-embed-text")
    kwargs = {"encoding_format": encoding_format} if encoding_format else {}
    result = client.embeddings.create(model=model, input=["a", "b"], **kwargs)

    # Without encoding_format the SDK asks for base64 and decodes it itself.
    assert [d.embedding for d in result.data] == [EMBEDDING, EMBEDDING]
    assert result.usage.prompt_tokens == 8
    sent = last_sent(ollama)
    assert sent["path"] == "/api/embed"
    assert sent["body"] == {"model": "nomic-embed-text", "input": ["a", "b"]}


def test_embeddings_in_base64_are_little_endian_float32(deploy, client):
    model = deploy("nomic-embed-text")
    raw = client.embeddings.with_raw_response.create(model=model, input="a", encoding_format="base64")
    encoded = json.loads(raw.text)["data"][0]["embedding"]
    assert list(struct.unpack("<3f", base64.b64decode(encoded))) == EMBEDDING


def test_token_inputs_cannot_be_embedded(deploy, client):
    model = deploy("nomic-embed-text")
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=model, input=[[1, 2, 3]])
    assert info.value.body["param"] == "input"


# --- the stream translator on its own ------------------------------------------------------


def _deployment(**fields) -> Deployment:
    values = dict(
        id=1, model_name="m", provider="ollama", upstream_model="llama3.2", adapter=OllamaAdapter(),
        api_base="http://127.0.0.1:9", api_key=None, api_version=None, weight=1, timeout=None, rpm=None,
        tpm=None, input_cost_per_token=None, output_cost_per_token=None, cache_read_input_token_cost=None,
        extra_params={},
    )
    values.update(fields)
    return Deployment(**values)


def _feed(translator, *lines: dict) -> list[dict]:
    chunks = []
    for line in lines:
        chunks.extend(translator.feed(None, orjson.dumps(line)))
    return chunks


def _message(**message) -> dict:
    return {"model": "llama3.2", "message": {"role": "assistant", "content": "", **message}, "done": False}


def test_tool_calls_over_several_lines_get_running_indexes_and_kept_ids():
    translator = OllamaAdapter().stream_translator(Operation.CHAT, _deployment())
    chunks = _feed(
        translator,
        _message(tool_calls=[{"function": {"name": "a", "arguments": {"x": 1}}}]),
        _message(tool_calls=[{"id": "call_upstream", "function": {"name": "b", "arguments": {}}}]),
        {"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": True,
         "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 2},
    )
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"] and
             c["choices"][0]["delta"].get("tool_calls")]
    assert [(c["index"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (0, "a", '{"x":1}'), (1, "b", "{}"),
    ]
    assert calls[0]["id"].startswith("call_") and calls[1]["id"] == "call_upstream"
    finish, usage = chunks[-2:]
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 7
    usage = translator.usage
    assert (usage.prompt_tokens, usage.completion_tokens, translator.done) == (5, 2, True)


def test_a_stream_without_its_done_line_is_an_error():
    translator = OllamaAdapter().stream_translator(Operation.CHAT, _deployment())
    _feed(translator, _message(content="Hel"))
    with pytest.raises(GatewayError) as info:
        translator.finish()
    assert info.value.status == 502
    assert not translator.usage.reported


def test_an_error_line_raises_with_its_message():
    translator = OllamaAdapter().stream_translator(Operation.CHAT, _deployment())
    with pytest.raises(GatewayError) as info:
        _feed(translator, {"error": "out of memory"})
    assert info.value.status == 502 and "out of memory" in info.value.message


def test_a_role_ollama_does_not_know_is_refused_before_sending():
    body = {"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]}
    with pytest.raises(GatewayError) as info:
        asyncio.run(OllamaAdapter().build_request(Operation.CHAT, _deployment(), body, stream=False))
    assert info.value.status == 400 and info.value.param == "messages[0].role"
