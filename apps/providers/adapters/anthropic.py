"""Anthropic's Messages API (`POST {api_base}/v1/messages`) behind OpenAI's chat format.

What differs from OpenAI, and where it is handled:
- the system prompt is a top-level field, and user/assistant turns must alternate
  (`_Conversation` hoists the one and merges consecutive turns for the other);
- tool calls are `tool_use` content blocks with parsed JSON input, and tool results are
  `tool_result` blocks inside a user turn;
- `max_tokens` is required (the deployment's `max_tokens` extra param, else 4096);
- `input_tokens` excludes cache reads and writes, which OpenAI counts in prompt_tokens;
- the stream is named SSE events, one content block at a time, with no `[DONE]`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from apps.core.errors import GatewayError, invalid_request
from apps.providers.adapters.base import (
    Operation,
    ProviderAdapter,
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
    passthrough_body,
    stop_sequences,
    tool_arguments_object,
    upstream_error,
)

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# The HTTP status an error type comes with, for errors sent inside a 200 stream.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# reasoning_effort → extended-thinking budget. Anthropic's minimum budget is 1024 tokens.
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192}
MIN_THINKING_BUDGET = 1024


# --- request: OpenAI chat body → Anthropic Messages body ------------------------------------


def messages_url(api_base: str) -> str:
    base = api_base.rstrip("/")
    if base.endswith("/v1/messages"):
        return base
    if base.endswith("/v1"):
        return base + "/messages"
    return base + "/v1/messages"


def _text_block(text: str, part: Mapping[str, Any] | None = None) -> dict:
    block = {"type": "text", "text": text}
    if part and part.get("cache_control"):
        block["cache_control"] = part["cache_control"]  # prompt caching, as LiteLLM clients send it
    return block


def _text_of(content: Any, param: str) -> str:
    """The text of a content that may only hold text (tool results)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                part_param = f"{param}[{index}]"
                raise invalid_request(f"'{part_param}' must be a text part here.", param=part_param)
            texts.append(str(part.get("text") or ""))
        return "".join(texts)
    raise invalid_request(f"'{param}' must be a string or an array of text parts.", param=param)


def _data_url_source(url: str, param: str) -> dict:
    parsed = parse_data_url(url, param=param)
    return {"type": "base64", "media_type": parsed.media_type, "data": parsed.data}


def _image_block(part: Mapping[str, Any], param: str) -> dict:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise invalid_request(f"'{param}.image_url.url' is required.", param=f"{param}.image_url.url")
    if url.startswith("data:"):
        source = _data_url_source(url, f"{param}.image_url.url")
        if source["media_type"] not in IMAGE_MEDIA_TYPES:
            raise invalid_request(
                f"anthropic does not accept images of type '{source['media_type']}' "
                f"(only {', '.join(sorted(IMAGE_MEDIA_TYPES))}).",
                param=f"{param}.image_url.url",
            )
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise invalid_request(
            "anthropic takes images as base64 data URLs or http(s) URLs.", param=f"{param}.image_url.url"
        )
    block = {"type": "image", "source": source}
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _document_block(part: Mapping[str, Any], param: str) -> dict:
    """An OpenAI `file` part holding a PDF as a data URL → a document block."""
    file = part.get("file") if isinstance(part.get("file"), dict) else {}
    data = file.get("file_data")
    if not isinstance(data, str) or not data.startswith("data:"):
        raise invalid_request(
            "anthropic takes files only inline, as file.file_data with a base64 data URL.",
            param=f"{param}.file",
        )
    source = _data_url_source(data, f"{param}.file.file_data")
    if source["media_type"] != "application/pdf":
        raise invalid_request(
            f"anthropic does not accept files of type '{source['media_type']}' (only application/pdf).",
            param=f"{param}.file.file_data",
        )
    return {"type": "document", "source": source}


def _content_blocks(content: Any, param: str) -> list[dict]:
    """An OpenAI user/assistant content (string or parts) as Anthropic blocks; empty text dropped,
    because Anthropic refuses empty text blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [_text_block(content)] if content else []
    if not isinstance(content, list):
        raise invalid_request(f"'{param}' must be a string or an array of content parts.", param=param)
    blocks = []
    for index, part in enumerate(content):
        part_param = f"{param}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append(_text_block(str(part["text"]), part))
        elif kind == "image_url":
            blocks.append(_image_block(part, part_param))
        elif kind == "file":
            blocks.append(_document_block(part, part_param))
        elif kind == "refusal":
            continue  # an earlier refusal sent back: nothing Anthropic can take
        else:
            raise invalid_request(
                f"anthropic does not support content parts of type '{kind}'.", param=f"{part_param}.type"
            )
    return blocks


def _tool_use_block(call: Any, param: str) -> dict:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise invalid_request(f"'{param}' must be a function tool call.", param=param)
    function = call.get("function") or {}
    name, call_id = function.get("name"), call.get("id")
    if not name or not call_id:
        raise invalid_request(f"'{param}' needs an id and a function name.", param=param)
    tool_input = tool_arguments_object(function.get("arguments"), param=f"{param}.function.arguments")
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


class _Conversation:
    """OpenAI messages → Anthropic's `system` and alternating user/assistant turns."""

    def __init__(self) -> None:
        self.system: list[dict] = []
        self.turns: list[dict] = []

    def add(self, index: int, message: Mapping[str, Any]) -> None:
        param = f"messages[{index}]"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            self.system.extend(_content_blocks(content, f"{param}.content"))
        elif role == "user":
            self._append("user", _content_blocks(content, f"{param}.content"))
        elif role == "assistant":
            blocks = [dict(b) for b in message.get("thinking_blocks") or [] if isinstance(b, dict)]
            blocks += _content_blocks(content, f"{param}.content")
            blocks += [
                _tool_use_block(call, f"{param}.tool_calls[{n}]")
                for n, call in enumerate(message.get("tool_calls") or [])
            ]
            self._append("assistant", blocks)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not call_id:
                raise invalid_request(f"'{param}.tool_call_id' is required.", param=f"{param}.tool_call_id")
            result = {"type": "tool_result", "tool_use_id": call_id,
                      "content": _text_of(content, f"{param}.content")}
            self._append("user", [result])
        else:
            raise invalid_request(
                f"anthropic does not support messages with role '{role}'.", param=f"{param}.role"
            )

    def _append(self, role: str, blocks: list[dict]) -> None:
        if not blocks:
            return
        if self.turns and self.turns[-1]["role"] == role:
            self.turns[-1]["content"].extend(blocks)  # Anthropic needs alternating roles
        else:
            self.turns.append({"role": role, "content": blocks})

    def messages(self) -> list[dict]:
        for turn in self.turns:
            if turn["role"] == "user":
                # Tool results must open the user turn that answers the tool calls.
                turn["content"].sort(key=lambda block: block["type"] != "tool_result")
        return self.turns

    def system_param(self) -> str | list[dict] | None:
        if not self.system:
            return None
        if len(self.system) == 1 and set(self.system[0]) == {"type", "text"}:
            return self.system[0]["text"]
        return self.system


def _tools_param(tools: Any) -> list[dict]:
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be an array.", param="tools")
    converted = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
            raise invalid_request(
                f"'tools[{index}]' must be a function tool with a name.", param=f"tools[{index}]"
            )
        entry = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        if tool.get("cache_control"):
            entry["cache_control"] = tool["cache_control"]
        converted.append(entry)
    return converted


def _tool_choice_param(choice: Any, parallel_tool_calls: Any) -> dict | None:
    function = choice.get("function") if isinstance(choice, dict) else None
    if choice is None:
        converted = {"type": "auto"} if parallel_tool_calls is False else None
    elif choice == "auto":
        converted = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        converted = {"type": "any"}
    elif isinstance(function, dict) and function.get("name"):
        converted = {"type": "tool", "name": function["name"]}
    else:
        raise invalid_request(
            "'tool_choice' must be 'auto', 'none', 'required' or a named function.", param="tool_choice"
        )
    if converted is not None and parallel_tool_calls is False:
        converted["disable_parallel_tool_use"] = True
    return converted


def _max_tokens(deployment, body: Mapping[str, Any]) -> tuple[int, bool]:
    """(max_tokens, whether the client set it)."""
    client_max_tokens = output_token_limit(body)
    if client_max_tokens is not None:
        return client_max_tokens, True
    return int(deployment.extra_params.get("max_tokens") or DEFAULT_MAX_TOKENS), False


def _thinking_param(effort: Any, payload: dict, client_max_tokens: bool) -> dict | None:
    """reasoning_effort → extended thinking. The budget counts within max_tokens, as OpenAI's
    reasoning tokens count within max_completion_tokens."""
    if effort in (None, "none"):
        return None
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        raise invalid_request(
            f"'reasoning_effort' must be one of none, {', '.join(THINKING_BUDGETS)}.",
            param="reasoning_effort",
        )
    max_tokens = payload["max_tokens"]
    if not client_max_tokens:
        if max_tokens <= budget:
            payload["max_tokens"] = budget + max_tokens
    else:
        if not isinstance(max_tokens, int) or max_tokens <= MIN_THINKING_BUDGET:
            raise invalid_request(
                f"With reasoning_effort, anthropic needs max_tokens above {MIN_THINKING_BUDGET}.",
                param="max_tokens",
            )
        budget = min(budget, max_tokens - 1)
    return {"type": "enabled", "budget_tokens": budget}


def anthropic_body(deployment, body: Mapping[str, Any], *, stream: bool) -> dict:
    conversation = _Conversation()
    for index, message in enumerate(body["messages"]):
        conversation.add(index, message)
    max_tokens, client_max_tokens = _max_tokens(deployment, body)
    payload: dict[str, Any] = {"model": deployment.upstream_model, "max_tokens": max_tokens}
    system = conversation.system_param()
    if system is not None:
        payload["system"] = system
    payload["messages"] = conversation.messages()
    if body.get("tools"):
        payload["tools"] = _tools_param(body["tools"])
        choice = _tool_choice_param(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            payload["tool_choice"] = choice
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            payload[key] = body[key]
    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = stop_sequences(body)
    user = body.get("safety_identifier") or body.get("user")
    if user:
        payload["metadata"] = {"user_id": str(user)}
    thinking = _thinking_param(body.get("reasoning_effort"), payload, client_max_tokens)
    if thinking is not None:
        payload["thinking"] = thinking
    if stream:
        payload["stream"] = True
    return payload


# --- response: Anthropic → OpenAI -----------------------------------------------------------


def usage_from_anthropic(raw: Any, usage: Usage | None = None) -> Usage:
    """Anthropic's usage as OpenAI counts it. `usage` is what an earlier stream event reported:
    a field missing here keeps its earlier value (message_delta may repeat only output_tokens)."""
    usage = usage or Usage()
    if not isinstance(raw, dict):
        return usage

    def count(key: str, previous: int) -> int:
        value = raw.get(key)
        return int(value) if isinstance(value, (int, float)) else previous

    cache_read = count("cache_read_input_tokens", usage.cached_tokens)
    cache_write = count("cache_creation_input_tokens", usage.cache_write_tokens)
    previous_input = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    input_tokens = count("input_tokens", previous_input)
    details = raw.get("output_tokens_details") if isinstance(raw.get("output_tokens_details"), dict) else {}
    # Writes to the 1-hour cache cost more than to the 5-minute one: counted apart.
    creation = raw.get("cache_creation") if isinstance(raw.get("cache_creation"), dict) else {}
    written_1h = creation.get("ephemeral_1h_input_tokens")
    return Usage(
        prompt_tokens=input_tokens + cache_read + cache_write,
        completion_tokens=count("output_tokens", usage.completion_tokens),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=int(written_1h) if isinstance(written_1h, int) else usage.cache_write_1h_tokens,
        reasoning_tokens=int(details.get("thinking_tokens") or usage.reasoning_tokens),
        reported=True,
    )


def _arguments_json(tool_input: Any) -> str:
    return orjson.dumps(tool_input if tool_input is not None else {}).decode()


def message_from_anthropic(content: list) -> dict:
    """Anthropic content blocks → an OpenAI assistant message."""
    texts, reasoning, thinking_blocks, tool_calls = [], [], [], []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            tool_calls.append({
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": _arguments_json(block.get("input"))},
            })
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            thinking_blocks.append(block)
        elif kind == "redacted_thinking":
            thinking_blocks.append(block)
        # Server-tool blocks (web search and the like) have no OpenAI counterpart.
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None,
                               "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thinking_blocks:
        # Sent back on the next turn, the blocks let Claude continue a tool-using thought.
        message["reasoning_content"] = "".join(reasoning)
        message["thinking_blocks"] = thinking_blocks
    return message


def error_from_event(provider: str, data: bytes) -> GatewayError:
    """An `error` event inside a 200 stream, with the status its type comes with."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    error_type = error.get("type") if isinstance(error, dict) else None
    return anthropic_error(provider, ERROR_STATUS.get(error_type, 502), data, {})


def anthropic_error(provider: str, status: int, raw: bytes, headers: Mapping[str, str]) -> GatewayError:
    """Anthropic's {"type":"error","error":{"type","message"},"request_id"} with its type as the code."""
    error = upstream_error(provider, status, raw, headers)
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict):
        details = payload.get("error")
        if error.code is None and isinstance(details, dict) and isinstance(details.get("type"), str):
            error.code = details["type"]
        request_id = payload.get("request_id") or headers.get("request-id")
        if request_id:
            error.message = f"{error.message} (request_id: {request_id})"
    return error


def _bad_stream_event(provider: str) -> GatewayError:
    return GatewayError(
        f"{provider} sent a stream event that is not a JSON object.",
        status=502, type="api_error", code="bad_upstream_response",
    )


class AnthropicStreamTranslator(StreamTranslator):
    """Anthropic's named events → OpenAI chunks.

    Content blocks are numbered across text and tool use; OpenAI numbers tool calls on
    their own, so each tool_use block gets the next tool index when it starts.
    """

    def __init__(self, provider: str, model: str) -> None:
        super().__init__()
        self.provider = provider
        self.model = model
        self.completion_id = new_completion_id()
        self.created = int(time.time())
        self.tool_index_by_block: dict[int, int] = {}
        self.arguments_sent: dict[int, bool] = {}
        self.thinking_by_block: dict[int, str] = {}
        self.finish_reason: str | None = None
        self.handlers = {
            "message_start": self.on_message_start,
            "content_block_start": self.on_content_block_start,
            "content_block_delta": self.on_content_block_delta,
            "content_block_stop": self.on_content_block_stop,
            "message_delta": self.on_message_delta,
            "message_stop": self.on_message_stop,
            "error": self.on_error,
        }

    def chunk(self, delta: dict | None = None, finish_reason: str | None = None) -> dict:
        return chat_chunk(self.completion_id, self.model, self.created, delta, finish_reason)

    def usage_chunk(self) -> dict:
        return {"id": self.completion_id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": self.usage.openai()}

    def feed(self, event: str | None, data: bytes) -> list[dict]:
        if event == "error":
            raise error_from_event(self.provider, data)
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _bad_stream_event(self.provider) from None
        if not isinstance(payload, dict):
            raise _bad_stream_event(self.provider)
        handler = self.handlers.get(payload.get("type") or event)
        return handler(payload) if handler else []  # ping, and event types added later

    def on_error(self, payload: dict) -> list[dict]:
        raise error_from_event(self.provider, orjson.dumps(payload))

    def on_message_start(self, payload: dict) -> list[dict]:
        message = payload.get("message") or {}
        if message.get("id"):
            self.completion_id = message["id"]
        self.model = message.get("model") or self.model
        if isinstance(message.get("usage"), dict):
            self.usage = usage_from_anthropic(message["usage"], self.usage)
        return [self.chunk({"role": "assistant", "content": ""})]

    def on_content_block_start(self, payload: dict) -> list[dict]:
        block = payload.get("content_block") or {}
        index = payload.get("index")
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [self.chunk({"content": block["text"]})]
        if kind == "thinking":
            self.thinking_by_block[index] = ""
            return []
        if kind == "redacted_thinking":
            return [self.chunk({"thinking_blocks": [block]})]
        if kind != "tool_use":
            return []
        tool_index = len(self.tool_index_by_block)
        self.tool_index_by_block[index] = tool_index
        self.arguments_sent[index] = False
        return [self.chunk({"tool_calls": [{
            "index": tool_index, "id": block.get("id"), "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }]})]

    def on_content_block_delta(self, payload: dict) -> list[dict]:
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self.chunk({"content": delta["text"]})]
        index = payload.get("index")
        if kind == "thinking_delta" and delta.get("thinking"):
            self.thinking_by_block[index] = self.thinking_by_block.get(index, "") + delta["thinking"]
            return [self.chunk({"reasoning_content": delta["thinking"]})]
        if kind == "signature_delta" and delta.get("signature"):
            # The whole block once signed, so the client can send it back as the answer gives it.
            block = {"type": "thinking", "thinking": self.thinking_by_block.get(index, ""),
                     "signature": delta["signature"]}
            return [self.chunk({"thinking_blocks": [block]})]
        if kind == "input_json_delta" and delta.get("partial_json") and index in self.tool_index_by_block:
            self.arguments_sent[index] = True
            return [self.tool_arguments(index, delta["partial_json"])]
        return []  # citations_delta and delta types added later

    def on_content_block_stop(self, payload: dict) -> list[dict]:
        index = payload.get("index")
        if index in self.arguments_sent and not self.arguments_sent[index]:
            # A call without arguments: "{}", as the non-streamed answer gives it.
            self.arguments_sent[index] = True
            return [self.tool_arguments(index, "{}")]
        return []

    def tool_arguments(self, block_index: int, fragment: str) -> dict:
        tool_index = self.tool_index_by_block[block_index]
        return self.chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": fragment}}]})

    def on_message_delta(self, payload: dict) -> list[dict]:
        if isinstance(payload.get("usage"), dict):
            self.usage = usage_from_anthropic(payload["usage"], self.usage)
        stop_reason = (payload.get("delta") or {}).get("stop_reason")
        if stop_reason is None or self.finish_reason is not None:
            return []
        self.finish_reason = FINISH_REASONS.get(stop_reason, "stop")
        return [self.chunk({}, self.finish_reason)]

    def on_message_stop(self, payload: dict) -> list[dict]:
        self.done = True
        chunks = [] if self.finish_reason else [self.chunk({}, "stop")]
        self.finish_reason = self.finish_reason or "stop"
        return chunks + [self.usage_chunk()]

    def finish(self) -> list[dict]:
        if self.done:
            return []
        if self.finish_reason is not None:
            # Only message_stop is missing: the answer itself is complete.
            self.done = True
            return [self.usage_chunk()]
        raise GatewayError(
            f"The {self.provider} stream ended before the message was complete.",
            status=502, type="api_error", code="incomplete_upstream_stream",
        )


class AnthropicAdapter(ProviderAdapter):
    name = "anthropic"
    default_api_base = "https://api.anthropic.com"
    api_key_env = "ANTHROPIC_API_KEY"
    operations = frozenset({Operation.CHAT})
    # n, logprobs, penalties, seed, response_format... have no Anthropic counterpart.
    chat_params = frozenset({
        "model", "messages", "stream", "stream_options", "temperature", "top_p", "top_k", "stop",
        "max_tokens", "max_completion_tokens", "user", "safety_identifier", "tools", "tool_choice",
        "parallel_tool_calls", "reasoning_effort",
    })

    def headers(self, deployment) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "anthropic-version": deployment.api_version or ANTHROPIC_VERSION,
        }
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        beta = deployment.extra_params.get("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        return headers

    passthrough = True
    passthrough_paths = re.compile(r"/v1/(messages(/count_tokens)?|models(/[^/]+)?)/?")

    def passthrough_operation(self, path: str) -> Operation | None:
        return Operation.CHAT if path.rstrip("/") == "/v1/messages" else None

    def passthrough_stream_error(self, message: str) -> bytes:
        error = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"

    async def passthrough_request(self, deployment, *, method, path, query, headers, body, json_body):
        base = (deployment.api_base or self.default_api_base).rstrip("/")
        root = base.removesuffix("/v1/messages").removesuffix("/v1")
        return UpstreamRequest(
            url=root + path + (f"?{query}" if query else ""),
            # The client's anthropic-version and betas win: it speaks the API it was written for.
            # Its headers carry no credential (apps.routing.passthrough), so x-api-key stays ours.
            headers={**self.headers(deployment), **headers},
            body=passthrough_body(body, json_body, deployment),
            method=method,
        )

    async def build_request(self, operation, deployment, body, *, stream):
        payload = anthropic_body(deployment, body, stream=stream)
        return UpstreamRequest(
            url=messages_url(deployment.api_base or self.default_api_base),
            headers=self.headers(deployment),
            body=orjson.dumps(payload),
        )

    def translate_response(self, operation, deployment, raw):
        payload = load_json_response(self.name, raw)
        if payload.get("type") == "error":
            error_type = (payload.get("error") or {}).get("type")
            raise anthropic_error(self.name, ERROR_STATUS.get(error_type, 502), raw, {})
        content = payload.get("content")
        if not isinstance(content, list):
            raise GatewayError(
                f"{self.name} returned a message without content.",
                status=502, type="api_error", code="bad_upstream_response",
            )
        usage = usage_from_anthropic(payload.get("usage"))
        body = chat_completion(
            payload.get("id") or new_completion_id(),
            payload.get("model") or deployment.upstream_model,
            message_from_anthropic(content),
            FINISH_REASONS.get(payload.get("stop_reason"), "stop"),
            usage,
        )
        return TranslatedResponse(body=body, usage=usage)

    def stream_translator(self, operation, deployment):
        return AnthropicStreamTranslator(self.name, deployment.upstream_model)

    def translate_error(self, status, raw, headers):
        return anthropic_error(self.name, status, raw, headers)
