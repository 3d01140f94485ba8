"""Gemini and Vertex AI translation details the conformance table does not cover.

Through the gateway (openai SDK → gateway → fake upstream, checking what reached the fake),
and through the adapters' public methods for wire details a fake cannot easily produce.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import struct

import openai
import orjson
import pytest

from apps.core.errors import GatewayError
from apps.providers.adapters.base import Operation
from apps.providers.adapters.gemini import GeminiAdapter
from apps.providers.adapters.vertex import VertexAIAdapter
from apps.providers.registry import Deployment
from tests.fakes.brain import CACHED_TOKENS, COMPLETION_TOKENS
from tests.fakes.gemini_upstream import (
    API_KEY,
    PROJECT,
    STATIC_TOKEN,
    THOUGHT_TOKENS,
    GeminiFake,
    VertexAIFake,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                # A property may be called like a JSON-schema keyword: it stays.
                "additionalProperties": {
                    "type": "object",
                    "properties": {"unit": {"type": "string"}},
                    "additionalProperties": False,
                },
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def gemini():
    fake = GeminiFake().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def vertex():
    fake = VertexAIFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def client(openai_client):
    return openai_client()


def sent(fake) -> dict:
    """The last request that reached the fake: path, headers, body."""
    return fake.requests[-1]


def deployment(fake=None, **fields) -> Deployment:
    values = {
        "id": 1,
        "model_name": "m",
        "provider": "vertex_ai",
        "upstream_model": "gemini-2.5-flash",
        "adapter": None,
        "api_base": fake.server.url if fake else None,
        "api_key": None,
        "api_version": None,
        "weight": 1,
        "timeout": None,
        "rpm": None,
        "tpm": None,
        "input_cost_per_token": None,
        "output_cost_per_token": None,
        "cache_read_input_token_cost": None,
        "extra_params": {"vertex_project": PROJECT},
        "secret_params": {},
    }
    values.update(fields)
    return Deployment(**values)


# --- the request body sent upstream -------------------------------------------------------------


def test_messages_become_contents_with_system_instruction_and_merged_turns(gemini, deploy, client):
    model = deploy(gemini)
    client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {"role": "assistant", "content": "Where?"},
            {"role": "user", "content": "Paris"},
        ],
    )
    request = sent(gemini)
    assert request["path"] == "/v1beta/models/fake-model:generateContent"
    assert request["headers"]["x-goog-api-key"] == API_KEY
    assert request["body"]["systemInstruction"] == {
        "parts": [{"text": "Be terse."}, {"text": "Use metric units."}]
    }
    assert request["body"]["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}, {"text": "Weather?"}]},
        {"role": "model", "parts": [{"text": "Where?"}]},
        {"role": "user", "parts": [{"text": "Paris"}]},
    ]


def test_sampling_parameters_become_generation_config(gemini, deploy, client):
    model = deploy(gemini)
    client.chat.completions.create(
        model=model,
        messages=HELLO,
        temperature=0.2,
        top_p=0.9,
        max_completion_tokens=64,
        stop="END",
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        n=1,
        user="end-user-1",
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "additionalProperties": False,
                },
            },
        },
        reasoning_effort="low",
    )
    assert sent(gemini)["body"]["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "candidateCount": 1,
        "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
        "thinkingConfig": {"thinkingBudget": 1024},
    }
    assert "user" not in sent(gemini)["body"]


def test_json_object_and_max_tokens(gemini, deploy, client):
    model = deploy(gemini)
    client.chat.completions.create(
        model=model, messages=HELLO, max_tokens=10, stop=["a", "b"], response_format={"type": "json_object"}
    )
    assert sent(gemini)["body"]["generationConfig"] == {
        "maxOutputTokens": 10,
        "stopSequences": ["a", "b"],
        "responseMimeType": "application/json",
    }


def test_tools_are_cleaned_of_schema_keywords_gemini_rejects(gemini, deploy, client):
    model = deploy(gemini)
    no_parameters = {
        "type": "function",
        "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
    }
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL, no_parameters],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"
    body = sent(gemini)["body"]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string"},
                            "additionalProperties": {
                                "type": "object",
                                "properties": {"unit": {"type": "string"}},
                            },
                        },
                        "required": ["city"],
                    },
                },
                {"name": "now"},
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


@pytest.mark.parametrize("choice, mode", [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")])
def test_tool_choice_modes(gemini, deploy, client, choice, mode):
    model = deploy(gemini)
    client.chat.completions.create(model=model, messages=HELLO, tools=[WEATHER_TOOL], tool_choice=choice)
    assert sent(gemini)["body"]["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_parallel_tool_results_go_back_by_name_in_one_turn(gemini, deploy, client):
    model = deploy(gemini, "parallel-model")
    question = {"role": "user", "content": "Paris and Berlin?"}
    first = client.chat.completions.create(model=model, messages=[question], tools=[WEATHER_TOOL])
    message = first.choices[0].message
    assert all(call.id.startswith("call_") for call in message.tool_calls)
    paris, berlin = message.tool_calls
    # Gemini signed the turn's first call: the signature comes back to the client with it.
    assert paris.model_extra["extra_content"] == {"google": {"thought_signature": "c2lnbmF0dXJl"}}
    assert "extra_content" not in berlin.model_extra
    reply = client.chat.completions.create(
        model=model,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": paris.id, "content": "18C"},
            {"role": "tool", "tool_call_id": berlin.id, "content": [{"type": "text", "text": "12C"}]},
        ],
    )
    assert reply.choices[0].message.content == "tool results: get_weather=18C; get_weather=12C"
    contents = sent(gemini)["body"]["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnbmF0dXJl"},
            {"functionCall": {"name": "get_weather", "args": {"city": "Berlin"}}},
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"content": "18C"}}},
            {"functionResponse": {"name": "get_weather", "response": {"content": "12C"}}},
        ],
    }


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_3_multi_turn_tool_use_keeps_the_thought_signature(gemini, deploy, client, stream):
    """Gemini 3 refuses a history whose function call lost its signature (the fake enforces it)."""
    model = deploy(gemini, "gemini-3-pro-preview")
    question = {"role": "user", "content": "Weather in Paris?"}
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=[question], tools=[WEATHER_TOOL],
                                                     stream=True))
        [delta_call] = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or ()]
        call = {"id": delta_call.id, "type": "function",
                "function": {"name": delta_call.function.name, "arguments": delta_call.function.arguments},
                **delta_call.model_extra}
        assistant = {"role": "assistant", "tool_calls": [call]}
    else:
        first = client.chat.completions.create(model=model, messages=[question], tools=[WEATHER_TOOL])
        assistant = first.choices[0].message.model_dump(exclude_none=True)
    call_id = assistant["tool_calls"][0]["id"]

    reply = client.chat.completions.create(model=model, tools=[WEATHER_TOOL], messages=[
        question, assistant, {"role": "tool", "tool_call_id": call_id, "content": "18C"},
    ])

    assert reply.choices[0].message.content == "tool results: get_weather=18C"
    assert sent(gemini)["body"]["contents"][1]["parts"][0]["thoughtSignature"] == "c2lnbmF0dXJl"


def test_a_client_that_keeps_only_the_tool_call_id_keeps_the_signature(gemini, deploy, client):
    model = deploy(gemini, "gemini-3-flash-preview")
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.chat.completions.create(model=model, messages=[question], tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    rebuilt = {"role": "assistant", "tool_calls": [  # only the OpenAI fields, as many frameworks keep them
        {"id": call.id, "type": "function", "function": {"name": call.function.name,
                                                          "arguments": call.function.arguments}}]}

    reply = client.chat.completions.create(model=model, tools=[WEATHER_TOOL], messages=[
        question, rebuilt, {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ])

    assert reply.choices[0].message.content == "tool results: get_weather=18C"


def test_gemini_3_refuses_a_history_whose_call_has_no_signature(gemini, deploy, client):
    model = deploy(gemini, "gemini-3-pro-preview")
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_calls": [{"id": "call_x", "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_x", "content": "18C"},
    ]
    with pytest.raises(openai.BadRequestError, match="thought_signature"):
        client.chat.completions.create(model=model, tools=[WEATHER_TOOL], messages=history)


def test_tool_result_for_an_unknown_call_is_a_400(gemini, deploy, client):
    model = deploy(gemini)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model, messages=[*HELLO, {"role": "tool", "tool_call_id": "call_nope", "content": "x"}]
        )
    assert info.value.body["param"] == "messages[1].tool_call_id"


def test_images_inline_and_from_cloud_storage(gemini, deploy, client):
    # The operator lets tenants name objects of this bucket (its credentials read them).
    model = deploy(gemini, extra_params={"allowed_file_uri_prefixes": ["gs://bucket/"]})
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type": "image_url", "image_url": {"url": "gs://bucket/cat.png"}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content == "images: image/jpeg,image/png"
    assert sent(gemini)["body"]["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
        {"fileData": {"fileUri": "gs://bucket/cat.png", "mimeType": "image/png"}},
    ]


@pytest.mark.parametrize(
    "url", ["https://example.com/cat.png", "data:image/png,notbase64", "gs://bucket/noext"]
)
def test_image_forms_gemini_cannot_take_are_a_400(gemini, deploy, client, url):
    model = deploy(gemini)
    count = len(gemini.requests)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
        )
    assert info.value.body["param"] == "messages[0].content[0].image_url.url"
    assert len(gemini.requests) == count  # refused before reaching the upstream


# --- parameters ---------------------------------------------------------------------------------


def test_unsupported_parameter_is_refused_or_dropped(gemini, deploy, client):
    model = deploy(gemini)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=HELLO, logit_bias={"1": 5})
    assert info.value.body["param"] == "logit_bias"
    reply = client.chat.completions.create(
        model=model, messages=HELLO, logit_bias={"1": 5}, extra_body={"drop_params": True}
    )
    assert reply.choices[0].message.content
    assert "logit_bias" not in json.dumps(sent(gemini)["body"])


def test_parallel_tool_calls_false_cannot_be_promised(gemini, deploy, client):
    model = deploy(gemini)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model, messages=HELLO, tools=[WEATHER_TOOL], parallel_tool_calls=False
        )
    assert info.value.body["param"] == "parallel_tool_calls"
    client.chat.completions.create(
        model=model, messages=HELLO, tools=[WEATHER_TOOL], parallel_tool_calls=True
    )
    assert "parallel_tool_calls" not in sent(gemini)["body"]


# --- answers, usage, errors ---------------------------------------------------------------------


def test_thinking_tokens_count_as_completion_and_thoughts_stay_out(gemini, deploy, client):
    model = deploy(gemini, "thinking-model")
    reply = client.chat.completions.create(model=model, messages=HELLO)
    assert "think" not in reply.choices[0].message.content
    assert reply.usage.completion_tokens == COMPLETION_TOKENS + THOUGHT_TOKENS
    assert reply.usage.completion_tokens_details.reasoning_tokens == THOUGHT_TOKENS
    assert reply.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    chunks = list(
        client.chat.completions.create(
            model=model, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == reply.choices[0].message.content
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage.completion_tokens == COMPLETION_TOKENS + THOUGHT_TOKENS


def test_stream_asks_for_sse(gemini, deploy, client):
    model = deploy(gemini)
    list(client.chat.completions.create(model=model, messages=HELLO, stream=True))
    assert sent(gemini)["path"] == "/v1beta/models/fake-model:streamGenerateContent?alt=sse"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_blocked_prompt_is_a_content_filter_400(gemini, deploy, client, stream):
    model = deploy(gemini, "blocked-prompt")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=HELLO, stream=stream)
    assert info.value.body["code"] == "content_filter"
    assert "SAFETY" in info.value.body["message"]


def test_wrong_api_key_is_an_authentication_error(gemini, deploy, client):
    model = deploy(gemini, api_key="wrong-key")
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model=model, messages=HELLO)
    assert info.value.body["code"] == "API_KEY_INVALID"
    assert "API key not valid" in info.value.body["message"]


def test_google_error_status_becomes_the_code():
    error = GeminiAdapter().translate_error(
        429,
        orjson.dumps(
            [
                {
                    "error": {
                        "code": 429,
                        "message": "Quota exceeded",
                        "status": "RESOURCE_EXHAUSTED",
                        "details": [
                            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"},
                        ],
                    }
                }
            ]
        ),
        {},
    )
    assert (error.status, error.code, error.type) == (429, "RESOURCE_EXHAUSTED", "rate_limit_error")
    assert error.headers["Retry-After"] == "3"  # from RetryInfo when the header is missing
    assert "Quota exceeded" in error.message


@pytest.mark.parametrize(
    "gemini_reason, openai_reason",
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ],
)
def test_finish_reasons(gemini_reason, openai_reason):
    raw = orjson.dumps(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": gemini_reason}
            ]
        }
    )
    translated = GeminiAdapter().translate_response(Operation.CHAT, deployment(), raw)
    assert orjson.loads(translated.body)["choices"][0]["finish_reason"] == openai_reason
    assert not translated.usage.reported


def test_several_candidates_become_several_choices():
    raw = orjson.dumps(
        {
            "candidates": [
                {"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP", "index": 0},
                {"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1},
            ],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "toolUsePromptTokenCount": 4},
        }
    )
    translated = GeminiAdapter().translate_response(Operation.CHAT, deployment(), raw)
    choices = orjson.loads(translated.body)["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "a", "stop"),
        (1, "b", "length"),
    ]
    assert (translated.usage.prompt_tokens, translated.usage.completion_tokens) == (7, 2)


def test_stream_translator_keeps_the_last_usage_and_finishes_what_upstream_did_not():
    translator = GeminiAdapter().stream_translator(Operation.CHAT, deployment())
    chunks = translator.feed(
        None,
        orjson.dumps(
            {
                "candidates": [
                    {
                        "content": {
                            "parts": [{"text": "Hi"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]
                        }
                    }
                ],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1},
            }
        ),
    )
    chunks += translator.feed(
        None,
        orjson.dumps(
            {
                "candidates": [{"content": {"parts": [{"functionCall": {"name": "g", "args": {}}}]}}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 2},
            }
        ),
    )
    chunks += translator.finish()
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hi"}
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [(c["index"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (0, "f", '{"a":1}'),
        (1, "g", "{}"),
    ]
    assert calls[0]["id"] != calls[1]["id"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert (translator.usage.prompt_tokens, translator.usage.reasoning_tokens) == (5, 2)


def test_an_error_inside_the_stream_keeps_its_status():
    translator = GeminiAdapter().stream_translator(Operation.CHAT, deployment())
    with pytest.raises(GatewayError) as info:
        translator.feed(
            None, b'{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}'
        )
    assert (info.value.status, info.value.code) == (503, "UNAVAILABLE")


# --- embeddings ---------------------------------------------------------------------------------


def test_gemini_embeddings(gemini, deploy, client):
    model = deploy(gemini, "text-embedding-004")
    # The openai SDK asks for base64 unless told otherwise, and decodes it.
    result = client.embeddings.create(model=model, input=["hello", "hi there"], dimensions=3)
    assert [item.embedding for item in result.data] == [[5.0, 0.5, -0.25], [8.0, 0.5, -0.25]]
    assert sent(gemini)["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent(gemini)["body"]["requests"][1] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "hi there"}]},
        "outputDimensionality": 3,
    }
    floats = client.embeddings.create(model=model, input="hello", encoding_format="float")
    assert floats.data[0].embedding == [5.0, 0.5, -0.25, 1.0]
    packed = client.embeddings.create(model=model, input="hello", encoding_format="base64").data[0].embedding
    assert struct.unpack("<4f", base64.b64decode(packed)) == (5.0, 0.5, -0.25, 1.0)
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=model, input=[[1, 2, 3]])
    assert info.value.body["param"] == "input"


def test_vertex_embeddings_report_tokens(vertex, deploy, client):
    model = deploy(vertex, "text-embedding-005", api_key=STATIC_TOKEN, secret_params={})
    result = client.embeddings.create(model=model, input=["one two", "three"], encoding_format="float")
    assert [item.embedding[0] for item in result.data] == [7.0, 5.0]
    assert result.usage.prompt_tokens == 3
    assert sent(vertex)["path"].endswith(
        f"/projects/{PROJECT}/locations/us-central1/publishers/google/models/text-embedding-005:predict"
    )
    assert sent(vertex)["body"] == {"instances": [{"content": "one two"}, {"content": "three"}]}


# --- Vertex AI: URL and credentials -------------------------------------------------------------


def test_vertex_with_a_service_account_file_through_the_gateway(
    vertex, deploy, client, tmp_path, monkeypatch
):
    credentials = tmp_path / "service-account.json"
    credentials.write_text(json.dumps(vertex.server.service_account_info()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials))
    model = deploy(vertex, secret_params={}, api_key="")
    tokens_before = len(vertex.server.token_requests)
    for _ in range(2):
        reply = client.chat.completions.create(model=model, messages=HELLO)
        assert reply.choices[0].message.content.startswith("system=-")
    request = sent(vertex)
    assert request["path"] == (
        f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/fake-model:generateContent"
    )
    assert request["headers"]["Authorization"].startswith("Bearer ya29.fake-")
    assert len(vertex.server.token_requests) == tokens_before + 1  # the token is reused


def test_vertex_service_account_token_is_fetched_once_for_concurrent_requests(vertex):
    adapter = VertexAIAdapter()
    target = deployment(
        vertex, secret_params={"vertex_credentials": json.dumps(vertex.server.service_account_info())}
    )
    before = len(vertex.server.token_requests)

    async def build_many():
        return await asyncio.gather(
            *(
                adapter.build_request(Operation.CHAT, target, {"messages": HELLO}, stream=True)
                for _ in range(5)
            )
        )

    requests = asyncio.run(build_many())
    assert len(vertex.server.token_requests) == before + 1
    assert len({r.headers["Authorization"] for r in requests}) == 1
    assert requests[0].url == (
        f"{vertex.server.url}/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/"
        "gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert requests[0].headers["Authorization"].removeprefix("Bearer ") in vertex.server.issued_tokens

    # A token about to expire is refreshed before use (google-auth keeps naive UTC times).
    soon = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(minutes=1)
    adapter.credentials_for(target).credentials.expiry = soon
    refreshed = asyncio.run(adapter.build_request(Operation.CHAT, target, {"messages": HELLO}, stream=False))
    assert len(vertex.server.token_requests) == before + 2
    assert refreshed.headers["Authorization"] != requests[0].headers["Authorization"]


def test_vertex_project_from_the_service_account_and_the_global_location(vertex):
    info = vertex.server.service_account_info(project="sa-project")
    target = deployment(
        vertex,
        api_base=None,
        extra_params={"vertex_location": "global"},
        secret_params={"vertex_credentials": json.dumps(info)},
    )
    request = asyncio.run(
        VertexAIAdapter().build_request(Operation.CHAT, target, {"messages": HELLO}, stream=False)
    )
    assert request.url == (
        "https://aiplatform.googleapis.com/v1/projects/sa-project/locations/global/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    )


def test_vertex_api_key_is_a_bearer_token(vertex):
    target = deployment(
        vertex,
        api_base=None,
        api_key="ya29.given",
        extra_params={
            "vertex_project": "p",
            "vertex_location": "europe-west4",
        },
    )
    request = asyncio.run(
        VertexAIAdapter().build_request(Operation.CHAT, target, {"messages": HELLO}, stream=False)
    )
    assert request.headers["Authorization"] == "Bearer ya29.given"
    assert request.url.startswith(
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/"
    )


def test_vertex_credentials_problems_are_clear_errors(vertex, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    adapter = VertexAIAdapter()

    def build(target):
        return asyncio.run(adapter.build_request(Operation.CHAT, target, {"messages": HELLO}, stream=False))

    with pytest.raises(GatewayError) as info:
        build(deployment(vertex))
    assert (info.value.status, info.value.code) == (500, "deployment_misconfigured")

    with pytest.raises(GatewayError) as info:
        build(deployment(vertex, id=2, secret_params={"vertex_credentials": "/nonexistent/sa.json"}))
    assert (info.value.status, info.value.code) == (500, "deployment_misconfigured")

    # A key the token endpoint does not know: Google refuses the grant.
    other = VertexAIFake().start()
    try:
        foreign = dict(other.server.service_account_info(), token_uri=f"{vertex.server.url}/token")
        with pytest.raises(GatewayError) as info:
            build(deployment(vertex, id=3, secret_params={"vertex_credentials": json.dumps(foreign)}))
        assert (info.value.status, info.value.code) == (401, "token_refresh_failed")
    finally:
        other.stop()


def test_vertex_without_a_token_is_unauthenticated(vertex, deploy, client):
    model = deploy(vertex, secret_params={}, api_key="ya29.expired")
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model=model, messages=HELLO)
    assert info.value.body["code"] == "UNAUTHENTICATED"


def test_a_file_uri_outside_the_deployments_allowed_prefixes_is_a_403_before_any_call(gemini, deploy, client):
    """The deployment's credentials read what a fileData part names: a tenant must not make them
    read the operator's buckets, or another tenant's files."""
    model = deploy(gemini, extra_params={"allowed_file_uri_prefixes": ["gs://shared-media/"]})
    count = len(gemini.requests)
    for url in ("gs://operator-private/secrets.png", "gs://shared-media-evil/x.png"):
        with pytest.raises(openai.PermissionDeniedError) as info:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}]}])
        assert info.value.body["code"] == "file_uri_not_allowed"
    unlisted = deploy(gemini, "other-model")  # no prefixes: no file URI at all
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model=unlisted, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "gs://shared-media/cat.png"}}]}])
    assert len(gemini.requests) == count
