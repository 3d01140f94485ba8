"""Ollama through its native API (`/api/chat`, `/api/embed`), not the OpenAI-compatible one.

The native API is the one every Ollama version has: it takes `options` such as num_ctx,
reports usage on the last line of every stream, and accepts images as raw base64.
It differs from OpenAI's in ways the translation has to cover:

- it streams unless told otherwise, so `stream` is always sent;
- tool-call arguments are JSON objects, not strings, and calls carry no ids (older
  versions) — ids are made up here and kept stable across a stream;
- a tool result names its tool (`tool_name`) instead of pointing at a call id;
- usage (`prompt_eval_count`, `eval_count`) comes only on the `done: true` object;
- errors are `{"error": "<message>"}`, also as a line in the middle of a stream.
"""

from __future__ import annotations

import base64
import contextvars
import struct
import time
import uuid
from typing import Any

import orjson

from apps.core.errors import GatewayError, invalid_request
from apps.providers.adapters.base import (
    Operation,
    ProviderAdapter,
    StreamFormat,
    StreamTranslator,
    TranslatedResponse,
    UpstreamRequest,
    Usage,
    chat_chunk,
    chat_completion,
    load_json_response,
    new_completion_id,
    output_token_limit,
    parse_data_url,
    stop_sequences,
    tool_arguments_object,
    upstream_error,
)

PROVIDER = "ollama"

_CHAT_PARAMS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "temperature", "top_p", "seed", "stop",
        "max_tokens", "max_completion_tokens", "presence_penalty", "frequency_penalty",
        "tools", "tool_choice", "response_format", "reasoning_effort",
    }
)
# OpenAI parameters Ollama takes in `options` under the same name and meaning.
_SAME_NAME_OPTIONS = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
# Ollama options a deployment may pin in its extra_params (litellm_params in config),
# e.g. num_ctx: Ollama's default context window is small and silently truncates prompts.
_DEPLOYMENT_OPTIONS = frozenset(
    {
        "num_ctx", "num_keep", "num_batch", "num_gpu", "main_gpu", "num_thread", "top_k", "min_p",
        "typical_p", "repeat_last_n", "repeat_penalty", "mirostat", "mirostat_tau", "mirostat_eta",
    }
)
# Top-level request fields a deployment may pin in its extra_params.
_DEPLOYMENT_FIELDS = ("keep_alive", "think")

# The embeddings encoding the client asked for, from build_request to translate_response.
# translate_response is not given the request body, and both run in the request's task.
_embedding_encoding: contextvars.ContextVar[str] = contextvars.ContextVar(
    "ollama_embedding_encoding", default="float"
)


# --- requests ---------------------------------------------------------------------------------


def _text_of(content: Any, param: str) -> str:
    """The text of a message's content: a string, or text parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid_request("Message content must be a string or an array of parts.", param=param)
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise invalid_request(
                "Ollama accepts only text parts here.", param=f"{param}[{index}]", code="unsupported_content"
            )
        texts.append(part["text"])
    return "\n".join(texts)


def _image_base64(part: dict, param: str) -> str:
    """The raw base64 of a `data:<type>;base64,` image URL; Ollama cannot fetch URLs."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url.startswith("data:"):
        raise invalid_request(
            "Ollama accepts images only as base64 data URLs (data:image/png;base64,...), not as links.",
            param=param,
            code="unsupported_content",
        )
    return parse_data_url(url, param=param).data


def _user_message(message: dict, param: str) -> dict:
    content = message.get("content")
    if not isinstance(content, list):
        return {"role": "user", "content": _text_of(content, f"{param}.content")}
    texts, images = [], []
    for index, part in enumerate(content):
        part_param = f"{param}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            images.append(_image_base64(part, f"{part_param}.image_url"))
        else:
            raise invalid_request(
                f"Ollama does not accept '{kind}' content parts.",
                param=part_param,
                code="unsupported_content",
            )
    translated = {"role": "user", "content": "\n".join(texts)}
    if images:
        translated["images"] = images
    return translated


def _assistant_message(message: dict, param: str, tool_names: dict[str, str]) -> dict:
    translated = {"role": "assistant", "content": _text_of(message.get("content"), f"{param}.content")}
    calls = []
    for index, call in enumerate(message.get("tool_calls") or []):
        call_param = f"{param}.tool_calls[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid_request("A tool call needs a function with a name.", param=call_param)
        if isinstance(call.get("id"), str):
            tool_names[call["id"]] = function["name"]
        arguments = tool_arguments_object(function.get("arguments"), param=f"{call_param}.function.arguments")
        calls.append({"function": {"name": function["name"], "arguments": arguments}})
    if calls:
        translated["tool_calls"] = calls
    return translated


def _tool_message(message: dict, param: str, tool_names: dict[str, str]) -> dict:
    translated = {"role": "tool", "content": _text_of(message.get("content"), f"{param}.content")}
    # Ollama matches a result to its call by the tool's name, known from the assistant turn.
    name = tool_names.get(message.get("tool_call_id"))
    if name:
        translated["tool_name"] = name
    return translated


def ollama_messages(messages: list[dict]) -> list[dict]:
    tool_names: dict[str, str] = {}
    translated = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        role = message.get("role")
        if role in ("system", "developer"):
            content = _text_of(message.get("content"), f"{param}.content")
            translated.append({"role": "system", "content": content})
        elif role == "user":
            translated.append(_user_message(message, param))
        elif role == "assistant":
            translated.append(_assistant_message(message, param, tool_names))
        elif role == "tool":
            translated.append(_tool_message(message, param, tool_names))
        else:
            raise invalid_request(
                f"Ollama does not accept messages with the role '{role}'.", param=f"{param}.role"
            )
    return translated


def _tools(tools: Any, tool_choice: Any) -> list[dict] | None:
    """OpenAI function tools, which Ollama takes as they are; tool_choice it can only honour
    as "auto" (its behaviour) or "none" (no tools sent)."""
    if tool_choice not in (None, "auto", "none"):
        raise invalid_request(
            "Ollama cannot force a tool call: tool_choice may only be 'auto' or 'none'.",
            param="tool_choice",
            code="unsupported_parameter",
        )
    if not tools or tool_choice == "none":
        return None
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be an array.", param="tools", code="invalid_type")
    for index, tool in enumerate(tools):
        is_function = isinstance(tool, dict) and tool.get("type") == "function"
        if not is_function or not isinstance(tool.get("function"), dict):
            raise invalid_request("Ollama accepts only function tools.", param=f"tools[{index}]")
    return tools


def _format(response_format: Any) -> str | dict | None:
    if not response_format:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise invalid_request(
                "response_format.json_schema.schema must be a JSON schema object.",
                param="response_format.json_schema.schema",
            )
        return schema
    raise invalid_request(f"Ollama does not support the response format '{kind}'.", param="response_format")


def _options(body: dict, deployment) -> dict:
    options = {k: v for k, v in deployment.extra_params.items() if k in _DEPLOYMENT_OPTIONS}
    for name in _SAME_NAME_OPTIONS:
        if body.get(name) is not None:
            options[name] = body[name]
    max_tokens = output_token_limit(body)
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = body.get("stop")
    if stop:
        options["stop"] = stop_sequences(body)
    return options


def _think(reasoning_effort: Any) -> bool | None:
    """OpenAI's effort as Ollama's switch. Levels are sent as a plain "on": only gpt-oss takes
    level strings and other thinking models refuse them; a deployment can pin `think`."""
    if reasoning_effort is None:
        return None
    return reasoning_effort not in ("none", "minimal")


def chat_body(body: dict, deployment, *, stream: bool) -> dict:
    payload: dict[str, Any] = {
        "model": deployment.upstream_model,
        "messages": ollama_messages(body["messages"]),
        "stream": stream,  # Ollama streams unless told not to
    }
    for name in _DEPLOYMENT_FIELDS:
        if deployment.extra_params.get(name) is not None:
            payload[name] = deployment.extra_params[name]
    tools = _tools(body.get("tools"), body.get("tool_choice"))
    if tools:
        payload["tools"] = tools
    response_format = _format(body.get("response_format"))
    if response_format is not None:
        payload["format"] = response_format
    think = _think(body.get("reasoning_effort"))
    if think is not None:
        payload["think"] = think
    options = _options(body, deployment)
    if options:
        payload["options"] = options
    return payload


def embed_body(body: dict, deployment) -> dict:
    texts = body.get("input")
    if not (isinstance(texts, str) or (isinstance(texts, list) and all(isinstance(t, str) for t in texts))):
        raise invalid_request(
            "Ollama embeds text only: 'input' must be a string or an array of strings, not tokens.",
            param="input",
            code="invalid_type",
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid_request("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    _embedding_encoding.set(encoding)
    payload: dict[str, Any] = {"model": deployment.upstream_model, "input": texts}
    if body.get("dimensions") is not None:
        payload["dimensions"] = body["dimensions"]
    if deployment.extra_params.get("keep_alive") is not None:
        payload["keep_alive"] = deployment.extra_params["keep_alive"]
    options = {k: v for k, v in deployment.extra_params.items() if k in _DEPLOYMENT_OPTIONS}
    if options:
        payload["options"] = options
    return payload


# --- responses --------------------------------------------------------------------------------


def new_tool_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _usage(payload: dict) -> Usage:
    return Usage(
        prompt_tokens=int(payload.get("prompt_eval_count") or 0),
        completion_tokens=int(payload.get("eval_count") or 0),
        reported=True,
    )


def _finish_reason(payload: dict, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_calls"
    return "length" if payload.get("done_reason") == "length" else "stop"


def _openai_tool_call(call: dict) -> dict:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    return {
        "id": call.get("id") or new_tool_call_id(),  # recent Ollama versions send one
        "type": "function",
        "function": {
            "name": function.get("name") or "",
            "arguments": arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode(),
        },
    }


def _raise_if_error(payload: dict, raw: bytes) -> None:
    if "error" in payload and "message" not in payload:
        raise upstream_error(PROVIDER, 502, raw, {})


def _model_of(payload: dict, deployment) -> str:
    return payload.get("model") or deployment.upstream_model


def chat_response(payload: dict, raw: bytes, deployment) -> TranslatedResponse:
    _raise_if_error(payload, raw)
    upstream_message = payload.get("message") or {}
    tool_calls = [_openai_tool_call(call) for call in upstream_message.get("tool_calls") or []]
    message: dict[str, Any] = {"role": "assistant", "content": upstream_message.get("content") or ""}
    if tool_calls:
        message["content"] = message["content"] or None
        message["tool_calls"] = tool_calls
    if upstream_message.get("thinking"):
        message["reasoning_content"] = upstream_message["thinking"]
    usage = _usage(payload)
    finish_reason = _finish_reason(payload, bool(tool_calls))
    body = chat_completion(new_completion_id(), _model_of(payload, deployment), message, finish_reason, usage)
    return TranslatedResponse(body=body, usage=usage)


def _pack_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_response(payload: dict, raw: bytes, deployment) -> TranslatedResponse:
    _raise_if_error(payload, raw)
    vectors = payload.get("embeddings")
    if not isinstance(vectors, list):
        raise GatewayError(
            "ollama returned an embeddings response without embeddings.",
            status=502, type="api_error", code="bad_upstream_response",
        )
    as_base64 = _embedding_encoding.get() == "base64"
    data = [
        {"object": "embedding", "index": index, "embedding": _pack_base64(vector) if as_base64 else vector}
        for index, vector in enumerate(vectors)
    ]
    usage = Usage(prompt_tokens=int(payload.get("prompt_eval_count") or 0), reported=True)
    body = orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": _model_of(payload, deployment),
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        }
    )
    return TranslatedResponse(body=body, usage=usage)


class OllamaStreamTranslator(StreamTranslator):
    """One NDJSON object per event: content and thinking deltas, whole tool calls, and a last
    `done: true` object with the finish reason and the usage."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.completion_id = new_completion_id()
        self.created = int(time.time())
        self.model = model
        self.tool_calls = 0  # the running index of the tool calls sent so far
        self.started = False

    def _chunk(self, delta: dict | None = None, finish_reason: str | None = None) -> dict:
        return chat_chunk(self.completion_id, self.model, self.created, delta, finish_reason)

    def feed(self, event: str | None, data: bytes) -> list[dict]:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise GatewayError(
                "ollama sent a stream line that is not JSON.",
                status=502, type="api_error", code="bad_upstream_response",
            ) from None
        if not isinstance(payload, dict):
            return []
        _raise_if_error(payload, data)
        chunks = self._message_chunks(payload.get("message") or {})
        if payload.get("done"):
            chunks.extend(self._final_chunks(payload))
        return chunks

    def _message_chunks(self, message: dict) -> list[dict]:
        delta: dict[str, Any] = {}
        if not self.started:
            delta["role"] = "assistant"
            self.started = True
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        if message.get("content"):
            delta["content"] = message["content"]
        chunks = [self._chunk(delta)] if delta else []
        for call in message.get("tool_calls") or []:
            # A tool call arrives whole: one delta with its id, name and all its arguments.
            tool_call = {"index": self.tool_calls, **_openai_tool_call(call)}
            self.tool_calls += 1
            chunks.append(self._chunk({"tool_calls": [tool_call]}))
        return chunks

    def _final_chunks(self, payload: dict) -> list[dict]:
        self.usage = _usage(payload)
        self.done = True
        usage_chunk = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self.usage.openai(),
        }
        return [self._chunk(finish_reason=_finish_reason(payload, self.tool_calls > 0)), usage_chunk]

    def finish(self) -> list[dict]:
        if not self.done:
            # Ollama always ends with done: true; without it the answer is incomplete.
            raise GatewayError(
                "The ollama stream ended before its final (done) line.",
                status=502, type="api_error", code="upstream_disconnected",
            )
        return []


class OllamaAdapter(ProviderAdapter):
    name = PROVIDER
    default_api_base = "http://localhost:11434"
    api_key_env = "OLLAMA_API_KEY"  # only hosted Ollama (ollama.com) wants a key
    stream_format = StreamFormat.NDJSON
    chat_params = _CHAT_PARAMS
    operations = frozenset({Operation.CHAT, Operation.EMBEDDING})

    def url(self, operation: Operation, deployment) -> str:
        base = (deployment.api_base or self.default_api_base).rstrip("/")
        return base + ("/api/embed" if operation is Operation.EMBEDDING else "/api/chat")

    async def build_request(self, operation, deployment, body, *, stream):
        headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        if operation is Operation.EMBEDDING:
            payload = embed_body(body, deployment)
        else:
            payload = chat_body(body, deployment, stream=stream)
        return UpstreamRequest(
            url=self.url(operation, deployment), headers=headers, body=orjson.dumps(payload)
        )

    def translate_response(self, operation, deployment, raw):
        payload = load_json_response(self.name, raw)
        if operation is Operation.EMBEDDING:
            return embeddings_response(payload, raw, deployment)
        return chat_response(payload, raw, deployment)

    def stream_translator(self, operation, deployment):
        return OllamaStreamTranslator(deployment.upstream_model)
