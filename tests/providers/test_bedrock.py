"""Bedrock (Converse) translation details the conformance table does not cover.

Through the gateway (openai SDK → gateway → fake Bedrock, checking what reached the fake),
and through the adapter's public methods for what a fake cannot easily produce. The fake
itself is checked against botocore, AWS's own client, so its wire format is the real one.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
from urllib.parse import unquote

import botocore.session
import openai
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from apps.core.errors import GatewayError
from apps.providers.adapters.base import Operation
from apps.providers.adapters.bedrock import BedrockAdapter
from apps.providers.registry import Deployment
from conftest import MASTER_KEY
from tests.fakes.bedrock_upstream import (
    ACCESS_KEY_ID,
    API_KEY,
    REGION,
    SECRET_ACCESS_KEY,
    BedrockFake,
    event_frame,
)
from tests.fakes.brain import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS_BASE

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082"
    )
).decode()
HELLO = [{"role": "user", "content": "Hi"}]
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION_NAME", "AWS_REGION",
           "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK")


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch):
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def bedrock():
    fake = BedrockFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def deploy(deploy, bedrock):
    bedrock.requests.clear()  # the fake outlives the test; what it records is this test's
    # An API key by default (the fake's own fields are SigV4's); tests of SigV4 pass those.
    connection = {"api_base": bedrock.url, "api_key": API_KEY, "extra_params": {"aws_region_name": REGION}}
    return functools.partial(deploy, bedrock, default_model=CLAUDE, connection=connection)


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0)


def sent(bedrock) -> dict:
    """The last request body that reached the fake."""
    return bedrock.requests[-1]["body"]


def deployment(**fields) -> Deployment:
    values = dict(
        id=1, model_name="claude", provider="bedrock", upstream_model=CLAUDE, adapter=BedrockAdapter(),
        api_base=None, api_key=None, api_version=None, weight=1, timeout=None, rpm=None, tpm=None,
        input_cost_per_token=None, output_cost_per_token=None, cache_read_input_token_cost=None,
        extra_params={}, secret_params={},
    )
    return Deployment(**{**values, **fields})


def build(target: Deployment, body: dict | None = None, *, stream: bool = False):
    body = body or {"model": "claude", "messages": [{"role": "user", "content": "Hi"}]}
    return asyncio.run(target.adapter.build_request(Operation.CHAT, target, body, stream=stream))


def collect(stream) -> tuple[str | None, dict, object, object]:
    """(content, tool calls by index, finish_reason, usage) of a streamed answer."""
    text, calls, finish, usage = None, {}, None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            if choice.delta.content:
                text = (text or "") + choice.delta.content
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                call["id"] = call["id"] or delta.id
                call["name"] = call["name"] or (delta.function.name if delta.function else None)
                call["arguments"] += (delta.function.arguments or "") if delta.function else ""
            finish = choice.finish_reason or finish
    return text, calls, finish, usage


# --- the request Bedrock receives ---------------------------------------------------------------


def test_conversation_and_parameters_become_a_converse_request(deploy, client, bedrock):
    model = deploy()
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        temperature=0.2, top_p=0.9, max_tokens=256, stop="STOP", user="user-42@example.com",
    )
    assert reply.choices[0].message.content.startswith("system=Be terse.\nAnswer in English.; turns=3")
    path = bedrock.requests[-1]["path"]
    assert path.endswith("/converse") and unquote(path.split("/")[2]) == CLAUDE
    assert sent(bedrock) == {
        "system": [{"text": "Be terse."}, {"text": "Answer in English."}],
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}, {"text": "there"}]},  # same-role turns merged
            {"role": "assistant", "content": [{"text": "Hello!"}]},
            {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        ],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.2, "topP": 0.9, "stopSequences": ["STOP"]},
        "requestMetadata": {"user": "user-42@example.com"},
    }


def test_max_completion_tokens_wins_over_max_tokens(deploy, client, bedrock):
    model = deploy()
    client.chat.completions.create(model=model, messages=HELLO,
                                   max_tokens=100, max_completion_tokens=50)
    assert sent(bedrock)["inferenceConfig"] == {"maxTokens": 50}


@pytest.mark.parametrize("tool_choice, expected", [
    ("auto", {"auto": {}}),
    ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
])
def test_tools_and_tool_choice(deploy, client, bedrock, tool_choice, expected):
    model = deploy()
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Weather in Paris?"}],
                                   tools=[WEATHER_TOOL], tool_choice=tool_choice)
    assert sent(bedrock)["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "The weather in a city",
                                "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]}}}],
        "toolChoice": expected,
    }


def test_tool_choice_none_offers_no_tools(deploy, client, bedrock):
    model = deploy()
    reply = client.chat.completions.create(model=model, messages=HELLO,
                                           tools=[WEATHER_TOOL], tool_choice="none")
    assert "toolConfig" not in sent(bedrock)
    assert reply.choices[0].finish_reason == "stop"


def parallel_round_trip(client, model, **kwargs):
    """Ask for two tool calls, answer both, and return the follow-up reply."""
    question = [{"role": "user", "content": "Paris and Berlin?"}]
    first = client.chat.completions.create(model=model, messages=question, tools=[WEATHER_TOOL])
    message = first.choices[0].message
    results = [{"role": "tool", "tool_call_id": call.id, "content": f"{index}C"}
               for index, call in enumerate(message.tool_calls)]
    return client.chat.completions.create(
        model=model, messages=[*question, message.model_dump(exclude_none=True), *results], **kwargs
    )


def test_tool_calls_and_results_go_back_as_tool_use_and_one_user_turn(deploy, client, bedrock):
    model = deploy("parallel-model")
    reply = parallel_round_trip(client, model, tools=[WEATHER_TOOL])
    assert reply.choices[0].message.content == "tool results: get_weather=0C; get_weather=1C"
    _, assistant, results = sent(bedrock)["messages"]
    assert assistant == {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "tooluse_call_1", "name": "get_weather", "input": {"city": "Paris"}}},
        {"toolUse": {"toolUseId": "tooluse_call_2", "name": "get_weather", "input": {"city": "Berlin"}}},
    ]}
    assert results == {"role": "user", "content": [
        {"toolResult": {"toolUseId": "tooluse_call_1", "content": [{"text": "0C"}], "status": "success"}},
        {"toolResult": {"toolUseId": "tooluse_call_2", "content": [{"text": "1C"}], "status": "success"}},
    ]}


def test_tool_history_without_tools_still_sends_a_tool_config(deploy, client, bedrock):
    # Converse refuses toolUse/toolResult blocks without a toolConfig (the fake does too).
    model = deploy("parallel-model")
    reply = parallel_round_trip(client, model, tools=[WEATHER_TOOL], tool_choice="none")
    assert reply.choices[0].message.content.startswith("tool results:")
    [tool] = sent(bedrock)["toolConfig"]["tools"]
    assert tool["toolSpec"]["name"] != "get_weather" and "toolChoice" not in sent(bedrock)["toolConfig"]


def test_history_from_other_providers_is_made_acceptable_to_converse(deploy, client, bedrock):
    # Ids Converse would refuse get stable stand-ins; blank text before a tool call (which models
    # write and clients send back) is left out, as Converse refuses blank text blocks.
    model = deploy()
    odd_id = "call/with spaces|" + "x" * 80
    call = {"id": odd_id, "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    client.chat.completions.create(model=model, tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "\n\n", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": odd_id, "content": "3C"},
    ])
    _, assistant, result = sent(bedrock)["messages"]
    [tool_use], [tool_result] = assistant["content"], result["content"]
    assert tool_use["toolUse"]["toolUseId"] == tool_result["toolResult"]["toolUseId"]
    assert re.fullmatch(r"[a-zA-Z0-9_.:-]{1,64}", tool_result["toolResult"]["toolUseId"])


def test_image_goes_as_base64_bytes(deploy, client, bedrock):
    model = deploy()
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
    ]}])
    image = sent(bedrock)["messages"][0]["content"][1]
    assert image == {"image": {"format": "png", "source": {"bytes": PNG}}}


@pytest.mark.parametrize("url, code", [
    ("https://example.com/cat.png", "unsupported_image_url"),
    ("data:image/bmp;base64,Qk0=", "unsupported_image_type"),
])
def test_images_bedrock_cannot_take_are_a_400(deploy, client, bedrock, url, code):
    model = deploy()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}])
    assert info.value.body["code"] == code
    assert info.value.body["param"] == "messages[0].content[0].image_url.url"
    assert not bedrock.requests


def test_cache_control_becomes_a_cache_point(deploy, client, bedrock):
    model = deploy()
    ephemeral = {"type": "ephemeral"}
    client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "Long instructions.", "cache_control": ephemeral},
        {"role": "user", "content": [{"type": "text", "text": "Long document.", "cache_control": ephemeral},
                                     {"type": "text", "text": "Question?"}]},
    ])
    assert sent(bedrock)["system"] == [{"text": "Long instructions."}, {"cachePoint": {"type": "default"}}]
    assert sent(bedrock)["messages"][0]["content"] == [
        {"text": "Long document."}, {"cachePoint": {"type": "default"}}, {"text": "Question?"}]


def test_json_schema_response_format_becomes_structured_output(deploy, client, bedrock):
    model = deploy()
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    response_format = {"type": "json_schema",
                       "json_schema": {"name": "place", "schema": schema, "strict": True}}
    client.chat.completions.create(model=model, messages=HELLO, response_format=response_format)
    text_format = sent(bedrock)["outputConfig"]["textFormat"]
    assert text_format["type"] == "json_schema"
    assert text_format["structure"]["jsonSchema"]["name"] == "place"
    assert json.loads(text_format["structure"]["jsonSchema"]["schema"]) == schema


@pytest.mark.parametrize("extra, param", [
    ({"seed": 7}, "seed"),
    ({"logprobs": True}, "logprobs"),
    ({"n": 2}, "n"),
    ({"parallel_tool_calls": False, "tools": [WEATHER_TOOL]}, "parallel_tool_calls"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
])
def test_what_converse_cannot_do_is_a_400_unless_dropped(deploy, client, bedrock, extra, param):
    model = deploy()
    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=messages, **extra)
    assert info.value.body["param"] == param
    assert not bedrock.requests
    client.chat.completions.create(model=model, messages=messages, extra_body={"drop_params": True}, **extra)
    assert param not in sent(bedrock) and "outputConfig" not in sent(bedrock)


def test_harmless_defaults_pass(deploy, client, bedrock):
    model = deploy()
    client.chat.completions.create(model=model, messages=HELLO, n=1, parallel_tool_calls=True,
                                   tools=[WEATHER_TOOL], response_format={"type": "text"})
    assert set(sent(bedrock)) == {"messages", "toolConfig"}


@pytest.mark.parametrize("extra, param", [
    ({"temperature": 1.5}, "temperature"),
    ({"user": "has|pipe"}, "user"),
    ({"tool_choice": "required"}, "tool_choice"),
])
def test_values_converse_would_refuse_are_a_clear_400(deploy, client, bedrock, extra, param):
    model = deploy()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=HELLO, **extra)
    assert info.value.body["param"] == param


def test_an_inference_profile_arn_is_one_path_segment(deploy, client, bedrock):
    arn = f"arn:aws:bedrock:{REGION}:123456789012:inference-profile/eu.{CLAUDE}"
    model = deploy(arn)
    client.chat.completions.create(model=model, messages=HELLO)
    segment = bedrock.requests[-1]["path"].split("/")[2]
    assert "%2F" in segment and unquote(segment) == arn


# --- what the client gets back --------------------------------------------------------------------


def test_streamed_tool_calls_equal_the_plain_ones_through_the_openai_sdk(deploy, client):
    model = deploy("parallel-model")
    kwargs = {"model": model, "messages": [{"role": "user", "content": "Paris and Berlin?"}],
              "tools": [WEATHER_TOOL]}
    plain = client.chat.completions.create(**kwargs)
    text, calls, finish, usage = collect(
        client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs)
    )
    message = plain.choices[0].message
    assert (text, finish) == (message.content, plain.choices[0].finish_reason) == (None, "tool_calls")
    assert [calls[i] for i in sorted(calls)] == [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in message.tool_calls
    ]
    assert [c.id for c in message.tool_calls] == ["tooluse_call_1", "tooluse_call_2"]  # Bedrock's own ids
    assert usage.model_dump() == plain.usage.model_dump()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details.cached_tokens) == (
        PROMPT_TOKENS_BASE + 3, COMPLETION_TOKENS, CACHED_TOKENS)


def test_an_exception_frame_before_any_content_is_an_ordinary_error_response(deploy, client):
    model = deploy("stream-throttled")
    with pytest.raises(openai.RateLimitError) as info:
        for _ in client.chat.completions.create(model=model, messages=HELLO, stream=True):
            pass
    assert info.value.status_code == 429
    assert info.value.body["code"] == "throttlingException"
    assert "Too many tokens" in info.value.body["message"]


def test_an_exception_frame_after_content_is_an_error_event(deploy, client):
    model = deploy("stream-throttled-late")
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model=model, messages=HELLO,
                                                    stream=True):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "system=-; turns=1;"
    assert "Too many tokens" in info.value.message


def test_a_corrupt_frame_before_any_content_is_a_502(deploy, client):
    model = deploy("stream-bad-crc")
    with pytest.raises(openai.InternalServerError) as info:
        for _ in client.chat.completions.create(model=model, messages=HELLO, stream=True):
            pass
    assert info.value.status_code == 502
    assert info.value.body["code"] == "bad_upstream_response"


def test_upstream_error_keeps_status_aws_error_type_and_message(deploy, client):
    model = deploy("error-429")
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=model, messages=HELLO)
    assert info.value.body["code"] == "ThrottlingException"
    assert info.value.body["message"] == "bedrock error: fake error 429"
    assert info.value.response.headers["retry-after"] == "7"


def test_a_validation_error_from_bedrock_reaches_the_client(deploy, client, bedrock):
    # A conversation that starts with the assistant: Converse refuses it with its own message.
    model = deploy()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "assistant", "content": "Hello"}])
    assert info.value.body["code"] == "ValidationException"
    assert "must start with a user message" in info.value.body["message"]


def converse_response(**fields) -> bytes:
    response = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        "metrics": {"latencyMs": 10},
    }
    return orjson.dumps({**response, **fields})


@pytest.mark.parametrize("stop_reason, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
    ("model_context_window_exceeded", "length"),
])
def test_stop_reasons(stop_reason, finish):
    target = deployment()
    raw = converse_response(stopReason=stop_reason)
    translated = target.adapter.translate_response(Operation.CHAT, target, raw)
    assert orjson.loads(translated.body)["choices"][0]["finish_reason"] == finish


def test_cache_reads_and_writes_count_in_the_prompt_tokens():
    target = deployment()
    usage = {"inputTokens": 10, "outputTokens": 5, "totalTokens": 45, "cacheReadInputTokens": 20,
             "cacheWriteInputTokens": 10}
    translated = target.adapter.translate_response(Operation.CHAT, target, converse_response(usage=usage))
    assert orjson.loads(translated.body)["usage"] == {
        "prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45,
        "prompt_tokens_details": {"cached_tokens": 20, "cache_creation_tokens": 10},
    }
    assert (translated.usage.cached_tokens, translated.usage.cache_write_tokens) == (20, 10)


def test_reasoning_is_returned_as_reasoning_content():
    target = deployment()
    content = [{"reasoningContent": {"reasoningText": {"text": "Think.", "signature": "sig"}}},
               {"text": "Answer."}]
    raw = converse_response(output={"message": {"role": "assistant", "content": content}})
    body = orjson.loads(target.adapter.translate_response(Operation.CHAT, target, raw).body)
    message = body["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("Answer.", "Think.")


def test_stream_translator_ignores_padding_and_unknown_events_and_needs_message_stop():
    target = deployment()
    translator = target.adapter.stream_translator(Operation.CHAT, target)
    events = [("messageStart", {"role": "assistant", "p": "abc"}),
              ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hmm."}},
                                     "p": "x"}),
              ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hi"}}),
              ("somethingNew", {"whatever": 1})]
    chunks = [c for name, payload in events for c in translator.feed(name, orjson.dumps(payload))]
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "reasoning_content": "Hmm."}, {"content": "Hi"}]
    with pytest.raises(GatewayError) as info:
        translator.finish()  # the stream ended without messageStop: a cut answer, not a complete one
    assert info.value.status == 502


def test_non_json_answer_is_a_502():
    target = deployment()
    with pytest.raises(GatewayError) as info:
        target.adapter.translate_response(Operation.CHAT, target, b"<html>oops</html>")
    assert info.value.status == 502


def test_aws_front_door_errors_with_capitalized_message_keep_their_text():
    error = BedrockAdapter().translate_error(
        403, b'{"Message":"User: arn:aws:iam::1:user/x is not authorized"}',
        {"x-amzn-ErrorType": "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral/"},
    )
    assert (error.status, error.code, error.type) == (403, "AccessDeniedException", "permission_error")
    assert error.message == "bedrock error: User: arn:aws:iam::1:user/x is not authorized"


# --- where and how the gateway calls Bedrock ------------------------------------------------------


def test_default_endpoint_is_the_regions_bedrock_runtime():
    request = build(deployment(api_key="k", extra_params={"aws_region_name": "eu-central-1"}), stream=True)
    assert request.url == f"https://bedrock-runtime.eu-central-1.amazonaws.com/model/{CLAUDE}/converse-stream"


@pytest.mark.parametrize("env, region", [
    ({}, "us-east-1"), ({"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
    ({"AWS_REGION": "sa-east-1", "AWS_DEFAULT_REGION": "ap-south-1"}, "sa-east-1"),
    ({"AWS_REGION_NAME": "ca-central-1", "AWS_REGION": "sa-east-1"}, "ca-central-1"),
])
def test_region_from_the_environment(monkeypatch, env, region):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert build(deployment(api_key="k")).url.startswith(f"https://bedrock-runtime.{region}.amazonaws.com/")


def test_sigv4_signs_with_the_deployments_keys_scope_and_session_token():
    target = deployment(
        extra_params={"aws_region_name": "us-west-2", "aws_access_key_id": "AKIAEXAMPLE"},
        secret_params={"aws_secret_access_key": "secret", "aws_session_token": "session-token"},
        api_key="ignored-when-aws-keys-are-set",
    )
    request = build(target)
    assert re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/\d{8}/us-west-2/bedrock/aws4_request, "
        r"SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}",
        request.headers["Authorization"],
    )
    assert request.headers["X-Amz-Security-Token"] == "session-token" and request.headers["X-Amz-Date"]


def test_a_bedrock_api_key_is_a_bearer_token():
    request = build(deployment(api_key="ABSK-key"))
    assert request.headers == {"Content-Type": "application/json", "Authorization": "Bearer ABSK-key"}


@pytest.mark.parametrize("fields, message", [
    ({}, "no credentials"),
    ({"secret_params": {"aws_secret_access_key": "secret"}}, "no aws_access_key_id"),
])
def test_missing_credentials_are_a_deployment_error(fields, message):
    with pytest.raises(GatewayError) as info:
        build(deployment(**fields))
    assert (info.value.status, info.value.code) == (500, "deployment_misconfigured")
    assert message in info.value.message


def signature_as_aws_computes_it(bedrock, recorded: dict, session_token: str | None = None) -> str:
    """The signature AWS would expect for the request as it arrived (its path, headers, body)."""
    headers = recorded["headers"]
    signed = re.search(r"SignedHeaders=([^,]+)", headers["Authorization"])[1].split(";")
    lower = {name.lower(): value for name, value in headers.items()}
    request = AWSRequest(method="POST", url=bedrock.url + recorded["path"], data=recorded["raw"],
                         headers={name: lower[name] for name in signed})
    request.context["timestamp"] = lower["x-amz-date"]
    signer = SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, session_token), "bedrock", REGION)
    return signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_sigv4_with_environment_keys_signs_exactly_what_is_sent(deploy, client, bedrock, monkeypatch, stream):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "temporary-session")
    model = deploy(api_key="", extra_params={"aws_region_name": REGION})
    reply = client.chat.completions.create(model=model, messages=HELLO, stream=stream)
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in reply if c.choices).startswith("system=-")
    recorded = bedrock.requests[-1]
    assert recorded["headers"]["X-Amz-Security-Token"] == "temporary-session"
    signature = re.search(r"Signature=([0-9a-f]{64})", recorded["headers"]["Authorization"])[1]
    assert signature == signature_as_aws_computes_it(bedrock, recorded, "temporary-session")


def test_sigv4_with_keys_stored_on_the_deployment(deploy, client, bedrock):
    model = deploy(api_key="", **bedrock.deployment_fields())
    client.chat.completions.create(model=model, messages=HELLO)
    recorded = bedrock.requests[-1]
    assert recorded["headers"]["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")
    signature = re.search(r"Signature=([0-9a-f]{64})", recorded["headers"]["Authorization"])[1]
    assert signature == signature_as_aws_computes_it(bedrock, recorded)


def test_a_wrong_region_is_refused_by_bedrock(deploy, client, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    model = deploy(api_key="", extra_params={"aws_region_name": "us-west-2"})
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model=model, messages=HELLO)
    assert info.value.body["code"] == "InvalidSignatureException"


def test_a_deployment_without_credentials_is_a_500(deploy, client, bedrock):
    model = deploy(api_key="")
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=model, messages=HELLO)
    assert (info.value.status_code, info.value.body["code"]) == (500, "deployment_misconfigured")
    assert not bedrock.requests


# --- the fake speaks what AWS's own client speaks --------------------------------------------------


def test_the_fake_talks_with_botocore(bedrock):
    aws = botocore.session.get_session().create_client(
        "bedrock-runtime", endpoint_url=bedrock.url, region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    messages = [{"role": "user", "content": [{"text": "Paris and Berlin?"}]}]
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
    reply = aws.converse(modelId="parallel-model", messages=messages, toolConfig=tools)
    content = reply["output"]["message"]["content"]
    assert [block["toolUse"]["input"] for block in content] == [{"city": "Paris"}, {"city": "Berlin"}]
    events = list(aws.converse_stream(modelId=CLAUDE, messages=messages)["stream"])
    assert [next(iter(e)) for e in events][-2:] == ["messageStop", "metadata"]
    assert events[-1]["metadata"]["usage"]["cacheReadInputTokens"] == CACHED_TOKENS
    with pytest.raises(aws.exceptions.ValidationException):
        aws.converse(modelId=CLAUDE, messages=[*messages, *messages])  # two user turns in a row


def test_the_fake_frames_carry_valid_crcs():
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(event_frame("messageStop", {"stopReason": "end_turn"}))
    [message] = list(buffer)
    assert message.headers[":event-type"] == "messageStop"
    assert orjson.loads(message.payload)["stopReason"] == "end_turn"


def test_an_exception_frame_in_the_same_read_as_content_keeps_the_content():
    """Events decoded before an exception frame in one network read are delivered first."""
    import struct
    import zlib

    import orjson

    from apps.core.errors import GatewayError
    from apps.providers.streaming import AWSEventStreamDecoder

    def frame(headers: dict, payload: bytes) -> bytes:
        encoded = b"".join(
            bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode() for k, v in headers.items()
        )
        prelude = struct.pack(">II", 16 + len(encoded) + len(payload), len(encoded))
        body = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
        return body + struct.pack(">I", zlib.crc32(body))

    text = frame({":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"},
                 orjson.dumps({"contentBlockIndex": 0, "delta": {"text": "Hel"}}))
    throttled = frame({":exception-type": "throttlingException", ":content-type": "application/json",
                       ":message-type": "exception"}, b'{"message": "slow down"}')
    decoder = AWSEventStreamDecoder()
    assert [name for name, _ in decoder.feed(text + throttled)] == ["contentBlockDelta"]
    with pytest.raises(GatewayError) as info:
        decoder.feed(b"")
    assert (info.value.status, info.value.type) == (429, "rate_limit_error")
