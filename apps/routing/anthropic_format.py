"""Anthropic's Messages format at the gateway's edge: POST /v1/messages served by any deployment.

The request is translated to OpenAI's chat format, routed like any chat request, and the
answer (or each stream chunk) translated back into Anthropic's: message_start,
content_block_start/delta/stop, message_delta, message_stop. Errors keep OpenAI's
fields inside Anthropic's envelope, so both SDKs read them.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from django.http import HttpResponse

from apps.core.errors import GatewayError, invalid_request
from apps.providers.adapters.base import TranslatedResponse, Usage
from apps.routing.proxy import ClientFormat
from apps.routing.validation import (
    array_of,
    integer,
    missing,
    number,
    obj,
    one_of,
    positive_int_check,
    string,
)

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                 "function_call": "tool_use", "content_filter": "refusal"}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def anthropic_error_response(error: GatewayError) -> HttpResponse:
    body = error.body()
    body["error"]["type"] = _ERROR_TYPES.get(error.status, "api_error" if error.status >= 500 else "invalid_request_error")
    response = HttpResponse(orjson.dumps({"type": "error", **body}), status=error.status,
                            content_type="application/json")
    for name, value in error.headers.items():
        response[name] = value
    return response


# --- request: Anthropic → OpenAI -------------------------------------------------------------


def _text_part(block: dict, where: str = "") -> dict:
    if not isinstance(block.get("text"), str):
        raise invalid_request(f"'{where}.text' must be a string.", param=f"{where}.text")
    part = {"type": "text", "text": block["text"]}
    if block.get("cache_control"):
        part["cache_control"] = block["cache_control"]  # prompt caching survives the translation
    return part


def _system_content(blocks: Any, param: str) -> str | list[dict]:
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise invalid_request(f"'{param}' must be a string or an array of content blocks.", param=param)
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise invalid_request(f"'{param}[{index}]' must be a text block.", param=f"{param}[{index}]")
    if any(block.get("cache_control") for block in blocks):
        return [_text_part(block, f"{param}[{index}]") for index, block in enumerate(blocks)]
    return "\n".join(block["text"] for block in blocks)


def _image_part(block: dict, where: str) -> dict:
    source = block.get("source")
    source = source if isinstance(source, dict) else {}
    if source.get("type") == "base64" and _strings(source.get("media_type"), source.get("data")):
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif source.get("type") == "url" and _strings(source.get("url")):
        url = source["url"]
    else:
        raise invalid_request(f"'{where}.source' must be a base64 or url image source.", param=f"{where}.source")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        if all(isinstance(text, str) for text in texts):
            return "".join(texts)
    raise invalid_request(f"'{where}.content' must be a string or an array of blocks.", param=f"{where}.content")


def _convert_message(index: int, message: Any) -> list[dict]:
    where = f"messages[{index}]"
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise invalid_request(f"'{where}.role' must be 'user' or 'assistant'.", param=f"{where}.role")
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise invalid_request(f"'{where}.content' is required: a string or an array of blocks.",
                              param=f"{where}.content")
    out: list[dict] = []
    parts: list[dict] = []
    tool_calls: list[dict] = []
    for position, block in enumerate(content):
        block_where = f"{where}.content[{position}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(_text_part(block, block_where))
        elif kind == "image" and role == "user":
            parts.append(_image_part(block, block_where))
        elif kind == "tool_use" and role == "assistant":
            if not _strings(block.get("id"), block.get("name")) or not isinstance(block.get("input", {}), dict):
                raise invalid_request(f"'{block_where}' must have a string id and name and an object input.",
                                      param=block_where)
            tool_calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()}})
        elif kind == "tool_result" and role == "user":
            if not _strings(block.get("tool_use_id")):
                raise invalid_request(f"'{block_where}.tool_use_id' must be a string.",
                                      param=f"{block_where}.tool_use_id")
            # OpenAI answers tool calls with role "tool" messages, right after the assistant turn.
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                        "content": _tool_result_text(block.get("content"), block_where)})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # earlier reasoning has no OpenAI equivalent; it is not sent on
        else:
            raise invalid_request(f"'{block_where}.type' {kind!r} is not supported here.",
                                  param=f"{block_where}.type")
    if role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        message_out: dict = {"role": "assistant", "content": text or None}
        if tool_calls:
            message_out["tool_calls"] = tool_calls
        out.append(message_out)
    elif parts:
        only_text = all(p["type"] == "text" and "cache_control" not in p for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    return out


def _strings(*values) -> bool:
    return all(isinstance(value, str) and value for value in values)


def _tools(tools: Any) -> list[dict]:
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be an array.", param="tools")
    out = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or not _strings(tool.get("name")):
            raise invalid_request(f"'{where}' must be an object with a string name.", param=f"{where}.name")
        schema = tool.get("input_schema")
        if schema is not None and not isinstance(schema, dict):
            raise invalid_request(f"'{where}.input_schema' must be an object.", param=f"{where}.input_schema")
        description = tool.get("description", "")
        if not isinstance(description, str):
            raise invalid_request(f"'{where}.description' must be a string.", param=f"{where}.description")
        out.append({"type": "function", "function": {"name": tool["name"], "description": description,
                                                      "parameters": schema or {"type": "object"}}})
    return out


# Anthropic's ranges, narrower than OpenAI's (temperature up to 1).
_SAMPLING = {"temperature": number(0, 1), "top_p": number(0, 1), "top_k": integer(0)}


def _optional(body: dict, name: str, kinds: tuple, what: str) -> Any:
    value = body.get(name)
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds):
        raise invalid_request(f"'{name}' must be {what}.", param=name)
    return value


def openai_body_from_anthropic(body: dict) -> dict:
    """An OpenAI chat request from an Anthropic Messages request (validated as it goes)."""
    for name in ("model", "max_tokens", "messages"):
        if body.get(name) is None:
            raise missing(name)
    string(body["model"], "model")
    if not body["model"]:
        raise invalid_request("Invalid 'model': empty string. Expected a non-empty string.", param="model",
                              code="empty_string")
    max_tokens = body["max_tokens"]
    positive_int_check(body, "max_tokens")
    messages = body["messages"]
    array_of(obj, min_items=1)(messages, "messages")
    converted: list[dict] = []
    if body.get("system") is not None:
        converted.append({"role": "system", "content": _system_content(body["system"], "system")})
    for index, message in enumerate(messages):
        converted.extend(_convert_message(index, message))
    openai_body: dict[str, Any] = {"model": body["model"], "messages": converted, "max_tokens": max_tokens}
    for name, check in _SAMPLING.items():
        if body.get(name) is not None:
            check(body[name], name)
            if name != "top_k":  # OpenAI's chat has no top_k
                openai_body[name] = body[name]
    stop = _optional(body, "stop_sequences", (list,), "an array of strings")
    if stop and not all(isinstance(item, str) for item in stop):
        raise invalid_request("'stop_sequences' must be an array of strings.", param="stop_sequences")
    if stop:
        openai_body["stop"] = stop
    metadata = _optional(body, "metadata", (dict,), "an object")
    user_id = (metadata or {}).get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise invalid_request("'metadata.user_id' must be a string.", param="metadata.user_id")
    if user_id:
        openai_body["user"] = user_id
    tools = body.get("tools")
    if tools is not None:
        if converted_tools := _tools(tools):
            openai_body["tools"] = converted_tools
    choice = _optional(body, "tool_choice", (dict,), "an object")
    if choice is not None and choice.get("type") not in ("auto", "any", "tool", "none"):
        raise invalid_request("'tool_choice.type' must be auto, any, tool or none.", param="tool_choice.type")
    if choice is not None and choice["type"] == "tool" and not _strings(choice.get("name")):
        raise invalid_request("'tool_choice.name' must name a tool.", param="tool_choice.name")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "any":
            openai_body["tool_choice"] = "required"
        elif kind == "tool":
            openai_body["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in ("auto", "none"):
            openai_body["tool_choice"] = kind
        if choice.get("disable_parallel_tool_use") and tools:
            openai_body["parallel_tool_calls"] = False
    thinking = _optional(body, "thinking", (dict,), "an object")
    if thinking is not None:
        one_of("enabled", "disabled", "adaptive")(thinking.get("type"), "thinking.type")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        if thinking.get("budget_tokens") is None:
            raise missing("thinking.budget_tokens")
        integer(1024, max_tokens - 1)(thinking["budget_tokens"], "thinking.budget_tokens")
        budget = thinking["budget_tokens"]
        openai_body["reasoning_effort"] = "low" if budget <= 1024 else "medium" if budget <= 4096 else "high"
    _optional(body, "stream", (bool,), "a boolean")
    if body.get("stream") is True:
        openai_body["stream"] = True
        openai_body["stream_options"] = {"include_usage": True}
    return openai_body


# --- response: OpenAI → Anthropic ------------------------------------------------------------


def _anthropic_usage(usage: Usage) -> dict:
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def _tool_use_id(call_id: str | None) -> str:
    return call_id or "toolu_" + uuid.uuid4().hex[:24]


def _arguments(text: str) -> dict:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class AnthropicFormat(ClientFormat):
    def response_body(self, translated: TranslatedResponse, model: str) -> bytes:
        completion = orjson.loads(translated.body)
        choice = (completion.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        content: list[dict] = []
        if message.get("content"):
            content.append({"type": "text", "text": message["content"]})
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            content.append({"type": "tool_use", "id": _tool_use_id(call.get("id")), "name": function.get("name"),
                            "input": _arguments(function.get("arguments"))})
        return orjson.dumps({
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": _STOP_REASONS.get(choice.get("finish_reason"), "end_turn"),
            "stop_sequence": None,
            "usage": _anthropic_usage(translated.usage),
        })

    def stream_writer(self, *, include_usage: bool, model: str):
        return AnthropicSSEWriter(model)

    def request_body(self, body: dict) -> dict:
        return openai_body_from_anthropic(body)


ANTHROPIC_FORMAT = AnthropicFormat()


def _event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class AnthropicSSEWriter:
    """OpenAI chunks in, Anthropic stream events out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.block_index = -1
        self.open_block: str | None = None  # "text", or "tool:<openai index>"
        self.stop_reason = "end_turn"
        self.usage = Usage()

    def _start(self) -> bytes:
        self.started = True
        return _event("message_start", {"type": "message_start", "message": {
            "id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})

    def _close_block(self) -> bytes:
        if self.open_block is None:
            return b""
        self.open_block = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self.block_index})

    def _open_block(self, key: str, block: dict) -> bytes:
        out = self._close_block()
        self.block_index += 1
        self.open_block = key
        return out + _event("content_block_start",
                            {"type": "content_block_start", "index": self.block_index, "content_block": block})

    def write(self, chunks: list[dict]) -> bytes:
        out = b"" if self.started else self._start()
        for chunk in chunks:
            if chunk.get("usage"):
                usage = chunk["usage"]
                details = usage.get("prompt_tokens_details") or {}
                self.usage = Usage(prompt_tokens=usage.get("prompt_tokens") or 0,
                                   completion_tokens=usage.get("completion_tokens") or 0,
                                   cached_tokens=details.get("cached_tokens") or 0,
                                   cache_write_tokens=details.get("cache_creation_tokens") or 0, reported=True)
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    if self.open_block != "text":
                        out += self._open_block("text", {"type": "text", "text": ""})
                    out += _event("content_block_delta", {"type": "content_block_delta", "index": self.block_index,
                                                          "delta": {"type": "text_delta", "text": delta["content"]}})
                for call in delta.get("tool_calls") or []:
                    key = f"tool:{call.get('index', 0)}"
                    function = call.get("function") or {}
                    if self.open_block != key:
                        out += self._open_block(key, {"type": "tool_use", "id": _tool_use_id(call.get("id")),
                                                      "name": function.get("name"), "input": {}})
                    if function.get("arguments"):
                        out += _event("content_block_delta", {
                            "type": "content_block_delta", "index": self.block_index,
                            "delta": {"type": "input_json_delta", "partial_json": function["arguments"]}})
                if choice.get("finish_reason"):
                    self.stop_reason = _STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def error(self, error: GatewayError) -> bytes:
        error_type = _ERROR_TYPES.get(error.status, "api_error")
        return _event("error", {"type": "error", "error": {"type": error_type, "message": error.message}})

    def close(self) -> bytes:
        out = (b"" if self.started else self._start()) + self._close_block()
        out += _event("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                                        "usage": _anthropic_usage(self.usage)})
        return out + _event("message_stop", {"type": "message_stop"})
