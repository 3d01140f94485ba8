"""Bodies OpenAI (or Anthropic, or Cohere) refuses are refused at the gateway: a 400 in the route's
own shape, naming the offending `param`, and no upstream hears of them. Valid bodies still reach
the upstream exactly as the client sent them.

Each table row is (what is wrong, the body, the `param` the 400 names; None for a body that is
not a JSON object at all).
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from conftest import MASTER_KEY
from tests.fakes.cohere_rerank import API_KEY as COHERE_KEY
from tests.fakes.cohere_rerank import CohereRerankServer

MODEL = "validated"
USER = {"role": "user", "content": "hi"}
CHAT = {"model": MODEL, "messages": [USER]}


def chat(**fields):
    return {**CHAT, **fields}


def chat_messages(*messages):
    return chat(messages=list(messages))


def part(**fields):
    return chat_messages({"role": "user", "content": [fields]})


def tools(*entries):
    return chat(tools=list(entries))


def function(**fields):
    return {"type": "function", "function": fields}


_long_name = "f" * 65

CHAT_CASES = [
    ("no messages", {"model": MODEL}, "messages"),
    ("messages empty", chat(messages=[]), "messages"),
    ("messages a string", chat(messages="hi"), "messages"),
    ("a message not an object", chat(messages=[1]), "messages[0]"),
    ("a message without role", chat_messages({"content": "hi"}), "messages[0].role"),
    ("role wizard", chat_messages({"role": "wizard", "content": "hi"}), "messages[0].role"),
    ("role a number", chat_messages({"role": 5, "content": "hi"}), "messages[0].role"),
    ("content a number", chat_messages({"role": "user", "content": 7}), "messages[0].content"),
    ("user without content", chat_messages({"role": "user"}), "messages[0].content"),
    ("content an empty array", chat_messages({"role": "user", "content": []}), "messages[0].content"),
    ("content an object", chat_messages({"role": "user", "content": {"text": "hi"}}), "messages[0].content"),
    ("text part without text", part(type="text"), "messages[0].content[0].text"),
    ("text part with number text", part(type="text", text=5), "messages[0].content[0].text"),
    ("unknown part type", part(type="video", video="x"), "messages[0].content[0].type"),
    ("part without type", part(text="hi"), "messages[0].content[0].type"),
    ("image part without image_url", part(type="image_url"), "messages[0].content[0].image_url"),
    ("image_url without url", part(type="image_url", image_url={"detail": "high"}),
     "messages[0].content[0].image_url.url"),
    ("image detail unknown", part(type="image_url", image_url={"url": "https://x/y.png", "detail": "ultra"}),
     "messages[0].content[0].image_url.detail"),
    ("audio format unknown", part(type="input_audio", input_audio={"data": "AAAA", "format": "ogg"}),
     "messages[0].content[0].input_audio.format"),
    ("file part not an object", part(type="file", file="x"), "messages[0].content[0].file"),
    ("image in a system message", chat_messages(
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, USER),
     "messages[0].content[0].type"),
    ("tool message without tool_call_id", chat_messages(USER, {"role": "tool", "content": "42"}),
     "messages[1].tool_call_id"),
    ("tool message without content", chat_messages(USER, {"role": "tool", "tool_call_id": "c1"}),
     "messages[1].content"),
    ("assistant with neither content nor tool calls", chat_messages(USER, {"role": "assistant"}),
     "messages[1].content"),
    ("tool call without id", chat_messages(USER, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}), "messages[1].tool_calls[0].id"),
    ("tool call arguments an object", chat_messages(USER, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {}}}]}),
     "messages[1].tool_calls[0].function.arguments"),
    ("tool call of unknown type", chat_messages(USER, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "magic"}]}), "messages[1].tool_calls[0].type"),
    ("message name a number", chat_messages({"role": "user", "content": "hi", "name": 5}), "messages[0].name"),
    ("no model", {"messages": [USER]}, "model"),
    ("model a number", chat(model=5), "model"),
    ("model empty", chat(model=""), "model"),
    ("temperature a string", chat(temperature="hot"), "temperature"),
    ("temperature above 2", chat(temperature=3), "temperature"),
    ("temperature negative", chat(temperature=-1), "temperature"),
    ("temperature a boolean", chat(temperature=True), "temperature"),
    ("top_p above 1", chat(top_p=1.5), "top_p"),
    ("top_p a string", chat(top_p="x"), "top_p"),
    ("n zero", chat(n=0), "n"),
    ("n an array", chat(n=[]), "n"),
    ("n a decimal", chat(n=1.5), "n"),
    ("n above 128", chat(n=129), "n"),
    ("max_tokens negative", chat(max_tokens=-5), "max_tokens"),
    ("max_tokens 10**30", chat(max_tokens=10**30), "max_tokens"),
    ("max_tokens a string", chat(max_tokens="str"), "max_tokens"),
    ("max_tokens zero", chat(max_tokens=0), "max_tokens"),
    ("max_tokens a boolean", chat(max_tokens=True), "max_tokens"),
    ("max_completion_tokens zero", chat(max_completion_tokens=0), "max_completion_tokens"),
    ("presence_penalty above 2", chat(presence_penalty=3), "presence_penalty"),
    ("frequency_penalty below -2", chat(frequency_penalty=-2.5), "frequency_penalty"),
    ("logit_bias a string", chat(logit_bias="x"), "logit_bias"),
    ("logit_bias key not a token", chat(logit_bias={"abc": 1}), "logit_bias.abc"),
    ("logit_bias key of non-ASCII digits", chat(logit_bias={"\u00b2": 1}), "logit_bias.\u00b2"),
    ("logit_bias above 100", chat(logit_bias={"50256": 101}), "logit_bias.50256"),
    ("logprobs a string", chat(logprobs="yes"), "logprobs"),
    ("top_logprobs above 20", chat(logprobs=True, top_logprobs=21), "top_logprobs"),
    ("top_logprobs without logprobs", chat(top_logprobs=5), "top_logprobs"),
    ("tools of numbers", chat(tools=[1, 2]), "tools[0]"),
    ("tools a string", chat(tools="f"), "tools"),
    ("tool without function", tools({"type": "function"}), "tools[0].function"),
    ("tool without name", tools(function()), "tools[0].function.name"),
    ("tool name with a space", tools(function(name="has space")), "tools[0].function.name"),
    ("tool name too long", tools(function(name=_long_name)), "tools[0].function.name"),
    ("tool of unknown type", tools({"type": "retrieval"}), "tools[0].type"),
    ("tool parameters a string", tools(function(name="f", parameters="x")), "tools[0].function.parameters"),
    ("tool strict a string", tools(function(name="f", strict="yes")), "tools[0].function.strict"),
    ("tool_choice unknown", chat(tool_choice="sometimes"), "tool_choice"),
    ("tool_choice without function", chat(tool_choice={"type": "function"}), "tool_choice.function"),
    ("tool_choice a number", chat(tool_choice=5), "tool_choice"),
    ("parallel_tool_calls a string", chat(parallel_tool_calls="no"), "parallel_tool_calls"),
    ("response_format a string", chat(response_format="json"), "response_format"),
    ("response_format unknown type", chat(response_format={"type": "yaml"}), "response_format.type"),
    ("json_schema missing", chat(response_format={"type": "json_schema"}), "response_format.json_schema"),
    ("json_schema without name", chat(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
     "response_format.json_schema.name"),
    ("stop a number", chat(stop=5), "stop"),
    ("stop of five", chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    ("stop of numbers", chat(stop=[1]), "stop[0]"),
    ("user a number", chat(user=5), "user"),
    ("metadata a string", chat(metadata="x"), "metadata"),
    ("stream a string", chat(stream="yes"), "stream"),
    ("stream_options without stream", chat(stream_options={"include_usage": True}), "stream_options"),
    ("stream_options a string", chat(stream=True, stream_options="x"), "stream_options"),
    ("include_usage a string", chat(stream=True, stream_options={"include_usage": "y"}),
     "stream_options.include_usage"),
    ("seed a string", chat(seed="x"), "seed"),
    ("modalities unknown", chat(modalities=["video"]), "modalities[0]"),
    ("functions empty", chat(functions=[]), "functions"),
    ("function_call unknown", chat(function_call="maybe"), "function_call"),
    ("store a string", chat(store="y"), "store"),
    ("max_tokens above the model's output limit", chat(max_tokens=100_000), "max_tokens"),
    ("max_completion_tokens above the model's output limit", chat(max_completion_tokens=100_000),
     "max_completion_tokens"),
]

COMPLETION = {"model": MODEL, "prompt": "hi"}


def completion(**fields):
    return {**COMPLETION, **fields}


COMPLETION_CASES = [
    ("no prompt", {"model": MODEL}, "prompt"),
    ("prompt a number", completion(prompt=5), "prompt"),
    ("prompt of decimals", completion(prompt=[1.5]), "prompt"),
    ("prompt empty array", completion(prompt=[]), "prompt"),
    ("prompt of objects", completion(prompt=[{"a": 1}]), "prompt"),
    ("no model", {"prompt": "hi"}, "model"),
    ("model a number", completion(model=7), "model"),
    ("max_tokens negative", completion(max_tokens=-1), "max_tokens"),
    ("max_tokens a string", completion(max_tokens="x"), "max_tokens"),
    ("best_of above 20", completion(best_of=21), "best_of"),
    ("echo a string", completion(echo="y"), "echo"),
    ("logprobs above 5", completion(logprobs=6), "logprobs"),
    ("suffix a number", completion(suffix=5), "suffix"),
    ("temperature above 2", completion(temperature=9), "temperature"),
    ("top_p negative", completion(top_p=-0.1), "top_p"),
    ("n zero", completion(n=0), "n"),
    ("stop a number", completion(stop=5), "stop"),
    ("logit_bias key not a token", completion(logit_bias={"x": 1}), "logit_bias.x"),
    ("presence_penalty above 2", completion(presence_penalty=5), "presence_penalty"),
    ("user an array", completion(user=[]), "user"),
    ("stream a string", completion(stream="y"), "stream"),
    ("seed a decimal", completion(seed=1.5), "seed"),
    ("max_tokens above the model's output limit", completion(max_tokens=100_000), "max_tokens"),
]

EMBEDDING = {"model": MODEL, "input": "hi"}


def embedding(**fields):
    return {**EMBEDDING, **fields}


EMBEDDING_CASES = [
    ("no input", {"model": MODEL}, "input"),
    ("input empty", embedding(input=""), "input"),
    ("input an empty array", embedding(input=[]), "input"),
    ("input a number", embedding(input=5), "input"),
    ("input of empty strings", embedding(input=[""]), "input"),
    ("input of decimals", embedding(input=[1.5]), "input"),
    ("input of empty arrays", embedding(input=[[]]), "input"),
    ("input of objects", embedding(input=[{"a": 1}]), "input"),
    ("input of 2049", embedding(input=["x"] * 2049), "input"),
    ("encoding_format unknown", embedding(encoding_format="hex"), "encoding_format"),
    ("dimensions zero", embedding(dimensions=0), "dimensions"),
    ("dimensions a string", embedding(dimensions="x"), "dimensions"),
    ("user a number", embedding(user=5), "user"),
    ("streamed", embedding(stream=True), "stream"),
    ("no model", {"input": "hi"}, "model"),
    ("model a number", embedding(model=5), "model"),
]

RERANK_MODEL = "validated-rerank"
RERANK = {"model": RERANK_MODEL, "query": "capital", "documents": ["Paris", "Rome"]}


def rerank(**fields):
    return {**RERANK, **fields}


RERANK_CASES = [
    ("no query", {"model": RERANK_MODEL, "documents": ["a"]}, "query"),
    ("query empty", rerank(query=" "), "query"),
    ("query a number", rerank(query=5), "query"),
    ("no documents", {"model": RERANK_MODEL, "query": "q"}, "documents"),
    ("documents empty", rerank(documents=[]), "documents"),
    ("documents a string", rerank(documents="x"), "documents"),
    ("documents of numbers", rerank(documents=[1]), "documents[0]"),
    ("document without text", rerank(documents=[{"title": "x"}]), "documents[0].text"),
    ("top_n zero", rerank(top_n=0), "top_n"),
    ("top_n a string", rerank(top_n="x"), "top_n"),
    ("return_documents a string", rerank(return_documents="y"), "return_documents"),
    ("rank_fields a string", rerank(rank_fields="x"), "rank_fields"),
    ("max_chunks_per_doc zero", rerank(max_chunks_per_doc=0), "max_chunks_per_doc"),
    ("streamed", rerank(stream=True), "stream"),
    ("no model", {"query": "q", "documents": ["a"]}, "model"),
]

MESSAGES = {"model": MODEL, "max_tokens": 10, "messages": [USER]}


def message(**fields):
    return {**MESSAGES, **fields}


def block(role="user", **fields):
    return message(messages=[{"role": role, "content": [fields]}])


MESSAGES_CASES = [
    ("no model", {"max_tokens": 10, "messages": [USER]}, "model"),
    ("no max_tokens", {"model": MODEL, "messages": [USER]}, "max_tokens"),
    ("max_tokens zero", message(max_tokens=0), "max_tokens"),
    ("max_tokens a string", message(max_tokens="x"), "max_tokens"),
    ("max_tokens 10**30", message(max_tokens=10**30), "max_tokens"),
    ("no messages", {"model": MODEL, "max_tokens": 10}, "messages"),
    ("messages empty", message(messages=[]), "messages"),
    ("role system", message(messages=[{"role": "system", "content": "hi"}]), "messages[0].role"),
    ("role wizard", message(messages=[{"role": "wizard", "content": "hi"}]), "messages[0].role"),
    ("content a number", message(messages=[{"role": "user", "content": 7}]), "messages[0].content"),
    ("unknown block", block(type="video"), "messages[0].content[0].type"),
    ("text block without text", block(type="text"), "messages[0].content[0].text"),
    ("image without source", block(type="image"), "messages[0].content[0].source"),
    ("tool_use from the user", block(type="tool_use", id="t", name="f", input={}), "messages[0].content[0].type"),
    ("tool_use without id", block("assistant", type="tool_use", name="f", input={}), "messages[0].content[0]"),
    ("tool_result without tool_use_id", block(type="tool_result", content="x"),
     "messages[0].content[0].tool_use_id"),
    ("temperature above 1", message(temperature=1.5), "temperature"),
    ("temperature a string", message(temperature="hot"), "temperature"),
    ("top_p above 1", message(top_p=2), "top_p"),
    ("top_k negative", message(top_k=-1), "top_k"),
    ("top_k a decimal", message(top_k=1.5), "top_k"),
    ("stop_sequences a string", message(stop_sequences="x"), "stop_sequences"),
    ("stop_sequences of numbers", message(stop_sequences=[1]), "stop_sequences"),
    ("system a number", message(system=5), "system"),
    ("system of images", message(system=[{"type": "image"}]), "system[0]"),
    ("metadata a string", message(metadata="x"), "metadata"),
    ("metadata.user_id a number", message(metadata={"user_id": 5}), "metadata.user_id"),
    ("tools a string", message(tools="x"), "tools"),
    ("tool without name", message(tools=[{}]), "tools[0].name"),
    ("tool_choice unknown", message(tool_choice={"type": "maybe"}), "tool_choice.type"),
    ("tool_choice tool without name", message(tool_choice={"type": "tool"}), "tool_choice.name"),
    ("thinking of unknown type", message(thinking={"type": "maybe"}), "thinking.type"),
    ("thinking without budget", message(max_tokens=4096, thinking={"type": "enabled"}),
     "thinking.budget_tokens"),
    ("thinking budget below 1024", message(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 100}),
     "thinking.budget_tokens"),
    ("thinking budget not below max_tokens",
     message(max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 2048}), "thinking.budget_tokens"),
    ("stream a string", message(stream="y"), "stream"),
    ("max_tokens above the model's output limit", message(max_tokens=100_000), "max_tokens"),
]

ROUTE_CASES = {
    "/v1/chat/completions": (CHAT, CHAT_CASES),
    "/v1/completions": (COMPLETION, COMPLETION_CASES),
    "/v1/embeddings": (EMBEDDING, EMBEDDING_CASES),
    "/v1/rerank": (RERANK, RERANK_CASES),
    "/v1/messages": (MESSAGES, MESSAGES_CASES),
}


def raw_cases(valid: dict) -> list[tuple[str, bytes, str | None, str]]:
    """(what is wrong, raw body, param, content type): bodies that are not one JSON object."""
    text = json.dumps(valid)
    inner = next(name for name, value in valid.items() if isinstance(value, list) and value
                 and isinstance(value[0], dict)) if any(isinstance(v, list) and v and isinstance(v[0], dict)
                                                        for v in valid.values()) else None
    cases = [
        ("text/plain", text.encode(), None, "text/plain"),
        ("multipart", text.encode(), None, "multipart/form-data; boundary=x"),
        ("a top-level key twice", (text[:-1] + ', "model": "other"}').encode(), None, "application/json"),
        ("empty", b"", None, "application/json"),
        ("an array", b"[]", None, "application/json"),
        ("not JSON", b"{model: x}", None, "application/json"),
        ("truncated", text[:-3].encode(), None, "application/json"),
    ]
    if inner:  # a key repeated inside a nested object (messages[0] names "content" twice)
        twice = json.dumps(valid).replace('"content": "hi"', '"content": "hi", "content": "bye"', 1)
        cases.append(("a nested key twice", twice.encode(), None, "application/json"))
    return cases


@pytest.fixture
def upstreams(gateway, make_deployment, fake_openai, transactional_db):
    from apps.providers.models import ModelDeployment

    # gpt-4o-mini: the price catalog knows its output limit (16,384 tokens).
    make_deployment(MODEL, upstream_model="gpt-4o-mini")
    cohere = CohereRerankServer().start()
    ModelDeployment.objects.create(model_name=RERANK_MODEL, provider="cohere", upstream_model="rerank-v3.5",
                                   api_base=cohere.url, api_key=COHERE_KEY, mode="rerank")
    yield fake_openai, cohere
    cohere.stop()


def _seen(upstreams) -> int:
    return sum(len(upstream.requests) for upstream in upstreams)


def _error_of(route: str, response: httpx.Response) -> dict:
    payload = response.json()
    if route == "/v1/messages":
        assert payload["type"] == "error", payload
        assert payload["error"]["type"] == "invalid_request_error", payload
    else:
        assert set(payload) == {"error"}, payload
        assert payload["error"]["type"] == "invalid_request_error", payload
    assert set(payload["error"]) >= {"message", "type", "param", "code"}, payload
    return payload["error"]


@pytest.mark.parametrize("route", list(ROUTE_CASES))
def test_invalid_bodies_are_a_400_naming_the_param_and_reach_no_upstream(gateway, upstreams, route):
    valid, cases = ROUTE_CASES[route]
    rows = [(what, json.dumps(body).encode(), param, "application/json") for what, body, param in cases]
    rows += raw_cases(valid)
    wrong = []
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as client:
        for what, raw, param, content_type in rows:
            before = _seen(upstreams)
            response = client.post(route, content=raw, headers={"content-type": content_type})
            if response.status_code != 400:
                wrong.append((what, response.status_code, response.text[:300]))
                continue
            error = _error_of(route, response)
            if error["param"] != param:
                wrong.append((what, "param", error["param"], "expected", param, error["message"]))
            if _seen(upstreams) != before:
                wrong.append((what, "reached the upstream"))
    assert not wrong, "\n".join(map(repr, wrong))
    assert len(rows) >= 20


VALID = {
    "/v1/chat/completions": [
        CHAT,
        chat(temperature=2, top_p=0, n=1, max_tokens=16384, stop="x", user="u", metadata={"k": "v"},
             presence_penalty=-2, frequency_penalty=2, logit_bias={"50256": -100}, seed=7),
        chat_messages({"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
                      {"role": "user", "content": [
                          {"type": "text", "text": "what is this?"},
                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                      ]},
                      {"role": "assistant", "content": None, "tool_calls": [
                          {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": "c1", "content": "a cat"}),
        chat(tools=[function(name="look_up-1", description="d", parameters={"type": "object"}, strict=True)],
             tool_choice={"type": "function", "function": {"name": "look_up-1"}}, parallel_tool_calls=False,
             response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}),
        chat(max_completion_tokens=5, logprobs=True, top_logprobs=2, temperature=None, user=None,
             provider_specific_field={"anything": [1, 2]}, top_k=3),
    ],
    "/v1/completions": [COMPLETION, completion(prompt=[1, 2, 3], max_tokens=0, echo=True, logprobs=5, best_of=2)],
    "/v1/embeddings": [EMBEDDING, embedding(input=[[1, 2], [3]], encoding_format="float", dimensions=8)],
}


@pytest.mark.parametrize("route", list(VALID))
def test_valid_bodies_reach_the_upstream_as_sent(gateway, upstreams, route):
    fake_openai, _ = upstreams
    for body in VALID[route]:
        fake_openai.requests.clear()
        response = httpx.post(gateway.url + route, json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"},
                              timeout=30)
        assert response.status_code == 200, (body, response.text)
        (received,) = fake_openai.requests
        assert received["body"] == {**body, "model": "gpt-4o-mini"}, (body, received["body"])


def test_rerank_and_messages_still_answer(gateway, upstreams):
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    assert httpx.post(gateway.url + "/v1/rerank", json=rerank(top_n=1), headers=headers).status_code == 200
    assert httpx.post(gateway.url + "/v1/messages", json=message(temperature=1, top_k=5),
                      headers=headers).status_code == 200


def test_the_sdks_see_the_param(gateway, upstreams):
    import anthropic

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[USER], temperature=5)
    assert caught.value.param == "temperature"
    assert caught.value.code == "decimal_above_max_value"
    assert "Invalid value for 'temperature'" in caught.value.message

    claude = anthropic.Anthropic(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(model=MODEL, max_tokens=10, messages=[USER], extra_body={"temperature": 1.5})
    assert refused.value.body["error"]["param"] == "temperature"
    assert not upstreams[0].requests and not upstreams[1].requests
