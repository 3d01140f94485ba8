"""OpenAI's Responses API at the gateway's edge: POST /v1/responses served by any deployment.

OpenAI and Azure deployments get the request natively (Operation.RESPONSES, their own
/responses endpoint); every other deployment gets it translated to the chat format, and
the answer (or each stream chunk) translated back: response.created, output_item.added,
content_part.added, output_text.delta, function_call_arguments.delta, output_item.done,
response.completed, each with its sequence_number.

One ResponsesFormat per request: it knows the stored response a previous_response_id
names (looked up by the view before routing), and which kind of deployment the current
attempt goes to, so it stores the answer (apps.routing.responses_store) once it is known.
"""

from __future__ import annotations

import base64
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson

from apps.core.errors import GatewayError, invalid_request
from apps.keys.context import KeyContext
from apps.providers.adapters.base import Operation, TranslatedResponse, Usage
from apps.providers.registry import Deployment
from apps.routing.proxy import ClientFormat
from apps.routing.responses_store import ResponseRecord, response_store
from apps.routing.validation import (
    array_of,
    boolean,
    either,
    integer,
    missing,
    number,
    obj,
    one_of,
    shaped,
    string,
    tagged,
)

# Request fields of OpenAI's Responses API (the gateway's own routing fields beside them).
RESPONSES_PARAMS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "temperature", "top_p", "text", "stream", "stream_options", "store", "previous_response_id", "metadata",
    "user", "reasoning", "truncation", "include", "background", "service_tier", "prompt_cache_key",
    "safety_identifier", "top_logprobs", "max_tool_calls", "prompt", "conversation",
})
GATEWAY_FIELDS = frozenset({"drop_params", "fallbacks", "tags"})
# Tools OpenAI runs itself: only its own Responses API (OpenAI, Azure) can serve them.
BUILTIN_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11",
    "file_search", "code_interpreter", "computer_use", "computer_use_preview", "image_generation", "mcp",
    "local_shell", "shell", "apply_patch", "custom",
})
_FINISHED_STATUS = {"length": ("incomplete", {"reason": "max_output_tokens"}),
                    "content_filter": ("incomplete", {"reason": "content_filter"})}


def new_response_id() -> str:
    return "resp_" + uuid.uuid4().hex + uuid.uuid4().hex[:16]


def _item_id(prefix: str) -> str:
    return f"{prefix}_" + uuid.uuid4().hex


# --- request: Responses → chat ---------------------------------------------------------------


def _text_of_parts(content: Any, param: str, allowed: tuple[str, ...]) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for index, part in enumerate(content or []):
        if not isinstance(part, dict) or part.get("type") not in allowed or not isinstance(part.get("text"), str):
            raise invalid_request(f"'{param}[{index}]' must be one of: {', '.join(allowed)}.",
                                  param=f"{param}[{index}]")
        texts.append(part["text"])
    return "".join(texts)


_THINKING_PREFIX = "gw-thinking:"


def thinking_blocks_encode(blocks: list) -> str:
    """A provider's signed thinking blocks as a reasoning item's opaque encrypted_content."""
    return _THINKING_PREFIX + base64.b64encode(orjson.dumps(blocks)).decode()


def thinking_blocks_decode(value: Any) -> list | None:
    if not isinstance(value, str) or not value.startswith(_THINKING_PREFIX):
        return None
    try:
        blocks = orjson.loads(base64.b64decode(value[len(_THINKING_PREFIX):], validate=True))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else None


def _summary_text(item: dict) -> str:
    summary = item.get("summary")
    return "".join(p.get("text") or "" for p in summary if isinstance(p, dict)) if isinstance(summary, list) else ""


def _reasoning_item(text: str, blocks: list | None, status: str = "completed", item_id: str | None = None) -> dict:
    return {"id": item_id or _item_id("rs"), "type": "reasoning", "status": status,
            "summary": [{"type": "summary_text", "text": text}] if text else [],
            "encrypted_content": thinking_blocks_encode(blocks) if blocks else None}


def responses_error(message: str, param: str) -> GatewayError:
    return invalid_request(message, param=param, code="unsupported_parameter")


def _user_content(content: Any, param: str, native_only: list[GatewayError]) -> str | list[dict]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid_request(f"'{param}' must be a string or an array of content parts.", param=param)
    parts: list[dict] = []
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            if not isinstance(part.get("text"), str):
                raise invalid_request(f"'{where}.text' must be a string.", param=f"{where}.text")
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image":
            if isinstance(part.get("image_url"), str):
                image = {"url": part["image_url"]}
                if part.get("detail") in ("low", "high", "auto"):
                    image["detail"] = part["detail"]
                parts.append({"type": "image_url", "image_url": image})
            elif part.get("file_id"):
                native_only.append(responses_error(
                    "Images given by file_id are read from OpenAI's file store: only OpenAI and Azure "
                    "deployments take them. Send image_url (a URL or a data URL) instead.", f"{where}.file_id"))
            else:
                raise invalid_request(f"'{where}.image_url' is required.", param=f"{where}.image_url")
        elif kind == "input_file":
            native_only.append(responses_error(
                "input_file parts are served by OpenAI and Azure deployments only.", f"{where}.type"))
        else:
            raise invalid_request(f"'{where}.type' must be input_text, input_image or input_file.",
                                  param=f"{where}.type")
    return parts


def input_items(value: Any) -> list[dict]:
    """`input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_request("'input' must be a string or an array of input items.", param="input")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid_request(f"'input[{index}]' must be an object.", param=f"input[{index}]")
    return value


def chat_messages(items: list[dict], native_only: list[GatewayError], *, param: str = "input") -> list[dict]:
    """Response items (input and earlier output) as chat messages."""
    messages: list[dict] = []
    pending_thinking: tuple[list, str] | None = None
    for index, item in enumerate(items):
        where = f"{param}[{index}]"
        kind = item.get("type", "message")
        if pending_thinking is not None and kind != "reasoning":
            if kind in ("message", "function_call") and (kind == "function_call" or item.get("role") == "assistant"):
                if not (messages and messages[-1]["role"] == "assistant" and kind == "function_call"):
                    messages.append({"role": "assistant", "content": None})
                messages[-1]["thinking_blocks"], messages[-1]["reasoning_content"] = pending_thinking
            pending_thinking = None
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise invalid_request(f"'{where}.role' must be user, assistant, system or developer.",
                                      param=f"{where}.role")
            content = item.get("content")
            if role == "assistant":
                text = _text_of_parts(content, f"{where}.content", ("output_text", "input_text", "text", "refusal"))
                last = messages[-1] if messages else None
                if last is not None and last.get("thinking_blocks") and last["content"] is None \
                        and not last.get("tool_calls"):
                    last["content"] = text  # the thinking opened this assistant turn
                else:
                    messages.append({"role": "assistant", "content": text})
            elif role in ("system", "developer"):
                text = _text_of_parts(content, f"{where}.content", ("input_text", "text"))
                messages.append({"role": "system", "content": text})
            else:
                messages.append({"role": "user", "content": _user_content(content, f"{where}.content", native_only)})
        elif kind == "function_call":
            if not isinstance(item.get("call_id"), str) or not isinstance(item.get("name"), str):
                raise invalid_request(f"'{where}' needs call_id and name.", param=f"{where}.call_id")
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and (last.get("tool_calls") or not last["content"]
                                                                     or last.get("thinking_blocks")):
                last.setdefault("tool_calls", []).append(call)
            elif last is not None and last["role"] == "assistant":
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise invalid_request(f"'{where}.call_id' is required.", param=f"{where}.call_id")
            output = item.get("output")
            if not isinstance(output, str):
                output = _text_of_parts(output, f"{where}.output", ("input_text", "output_text", "text"))
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
        elif kind == "reasoning":
            # The gateway's own reasoning items carry the provider's signed thinking blocks, which it
            # needs back to continue a tool-using thought; others (OpenAI's) cannot carry over.
            blocks = thinking_blocks_decode(item.get("encrypted_content"))
            if blocks:
                pending_thinking = (blocks, _summary_text(item))
            continue
        else:
            native_only.append(responses_error(
                f"Input items of type '{kind}' are served by OpenAI and Azure deployments only.", f"{where}.type"))
    for message in messages:
        if message["role"] == "assistant" and message.get("tool_calls") and message["content"] == "":
            message["content"] = None
    return messages


def _chat_tools(tools: Any, native_only: list[GatewayError]) -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be an array.", param="tools")
    chat_tools = []
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                raise invalid_request(f"Missing required parameter: 'tools[{index}].name'.",
                                      param=f"tools[{index}].name")
            function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object",
                                                                                        "properties": {}}}
            if tool.get("description"):
                function["description"] = tool["description"]
            if tool.get("strict") is not None:
                function["strict"] = tool["strict"]
            chat_tools.append({"type": "function", "function": function})
        elif isinstance(kind, str):
            native_only.append(responses_error(
                f"The built-in tool '{kind}' is run by OpenAI itself: only OpenAI and Azure deployments "
                f"serve it, not this model's provider.", f"tools[{index}].type"))
        else:
            raise invalid_request(f"'tools[{index}].type' is required.", param=f"tools[{index}].type")
    return chat_tools


def _chat_tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise invalid_request("'tool_choice' must be none, auto, required or a function.", param="tool_choice")


def _response_format(text: Any) -> dict | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise invalid_request("'text' must be an object.", param="text")
    fmt = text.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if not isinstance(fmt, dict):
        raise invalid_request("'text.format' must be an object.", param="text.format")
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise invalid_request("'text.format' of type json_schema needs name and schema.",
                                  param="text.format.schema")
        schema = {"name": fmt["name"], "schema": fmt["schema"]}
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    raise invalid_request("'text.format.type' must be text, json_object or json_schema.", param="text.format.type")


# --- the request schema (OpenAI's refusals, in its words, before anything is routed) ------------

_INPUT_PARTS = tagged(
    input_text=shaped({"text": string}), output_text=shaped({"text": string}), text=shaped({"text": string}),
    refusal=shaped({"refusal": string}),
    input_image=shaped(image_url=string, file_id=string, detail=one_of("auto", "low", "high")),
    input_file=shaped(file_id=string, file_data=string, file_url=string, filename=string),
)
_content = either((str, string), (list, array_of(_INPUT_PARTS)), expected="a string or an array of content parts")
_MESSAGE = shaped({"role": one_of("user", "assistant", "system", "developer"), "content": _content})
_ITEM_SHAPES = {
    "message": _MESSAGE,
    "function_call": shaped({"call_id": string, "name": string, "arguments": string}),
    "function_call_output": shaped({"call_id": string, "output": _content}),
}


def _input_item(value: Any, param: str) -> None:
    obj(value, param)
    kind = value.get("type", "message")
    string(kind, f"{param}.type")
    shape = _ITEM_SHAPES.get(kind)
    if shape is not None:
        shape(value, param)


_TOOL = tagged(function=shaped({"name": string}, parameters=obj, description=string, strict=boolean),
               **{kind: obj for kind in BUILTIN_TOOLS}, file_search_2025=obj)
_FORMAT = tagged(text=obj, json_object=obj, json_schema=shaped({"name": string, "schema": obj}, strict=boolean,
                                                                description=string))
_FIELDS = {
    "model": string, "input": either((str, string), (list, array_of(_input_item)), expected="a string or an array"),
    "instructions": string, "tools": array_of(_TOOL),
    "tool_choice": either((str, one_of("none", "auto", "required")), (dict, shaped({"type": string}, name=string)),
                          expected="a string or an object"),
    "parallel_tool_calls": boolean, "max_output_tokens": integer(16), "temperature": number(0, 2),
    "top_p": number(0, 1), "text": shaped(format=_FORMAT, verbosity=one_of("low", "medium", "high")),
    "stream": boolean, "stream_options": obj, "store": boolean, "previous_response_id": string, "metadata": obj,
    "user": string, "reasoning": shaped(effort=one_of("none", "minimal", "low", "medium", "high", "xhigh"),
                                        summary=one_of("auto", "concise", "detailed")),
    "truncation": one_of("auto", "disabled"), "include": array_of(string), "background": boolean,
    "service_tier": string, "prompt_cache_key": string, "safety_identifier": string, "top_logprobs": integer(0, 20),
    "max_tool_calls": integer(1), "prompt": obj, "conversation": either((str, string), (dict, obj),
                                                                        expected="a string or an object"),
}


def responses_body_check(body: dict) -> None:
    """OpenAI's own refusals, before anything is routed."""
    for name in body:
        if name not in RESPONSES_PARAMS and name not in GATEWAY_FIELDS:
            raise invalid_request(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    if body.get("model") is None:
        raise missing("model")
    for name, check in _FIELDS.items():
        if body.get(name) is not None:
            check(body[name], name)
    if body.get("background"):
        raise invalid_request("Background responses are not served by this gateway; send background: false.",
                              param="background", code="unsupported_parameter")
    if body.get("conversation") is not None:
        raise invalid_request("Conversations are not served by this gateway; use previous_response_id.",
                              param="conversation", code="unsupported_parameter")
    if body.get("conversation") is not None and body.get("previous_response_id"):
        raise invalid_request("Give conversation or previous_response_id, not both.", param="previous_response_id")
    limit = body.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 16):
        raise invalid_request("'max_output_tokens' must be an integer of at least 16.", param="max_output_tokens",
                              code="integer_below_min_value")
    if body.get("instructions") is not None and not isinstance(body["instructions"], str):
        raise invalid_request("'instructions' must be a string.", param="instructions")


# --- response: chat → Responses --------------------------------------------------------------


def responses_usage(usage: Usage) -> dict:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _usage_from_chunk(raw: dict) -> Usage:
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return Usage(prompt_tokens=raw.get("prompt_tokens") or 0, completion_tokens=raw.get("completion_tokens") or 0,
                 cached_tokens=prompt.get("cached_tokens") or 0,
                 reasoning_tokens=completion.get("reasoning_tokens") or 0, reported=True)


def _message_item(text: str, status: str = "completed", item_id: str | None = None) -> dict:
    return {"id": item_id or _item_id("msg"), "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _function_call_item(call: dict, status: str = "completed", item_id: str | None = None) -> dict:
    function = call.get("function") or {}
    return {"id": item_id or _item_id("fc"), "type": "function_call", "status": status,
            "call_id": call.get("id") or _item_id("call"), "name": function.get("name") or "",
            "arguments": function.get("arguments") or ""}


class ResponsesFormat(ClientFormat):
    """One /v1/responses request (see the module's docstring)."""

    def __init__(self, context: KeyContext, body: dict, previous: ResponseRecord | None) -> None:
        responses_body_check(body)
        self.context = context
        self.client_body = body
        self.previous = previous
        self.store = body.get("store") is not False
        self.native = False  # the current attempt goes to the provider's own Responses API
        self.json_tool: str | None = None  # the forced tool answering text.format (see _json_by_tool)
        self.deployment: Deployment | None = None
        self.native_only: list[GatewayError] = []
        # The conversation before this request's input (the stored one's input and output).
        self.history: list[dict] = (previous.input_items + previous.output_items) if previous else []
        self.new_items = input_items(body.get("input"))
        self.created_at = int(time.time())

    # The chat translation, validated and used for limits and routing before any attempt.
    def request_body(self, body: dict) -> dict:
        body = self.client_body
        native_only = self.native_only
        messages: list[dict] = []
        if body.get("instructions"):
            messages.append({"role": "system", "content": body["instructions"]})
        messages += chat_messages(self.history, native_only, param="previous_response_id")
        messages += chat_messages(self.new_items, native_only)
        if not messages:
            raise invalid_request("Missing required parameter: 'input'.", param="input",
                                  code="missing_required_parameter")
        chat: dict[str, Any] = {"model": body["model"], "messages": messages}
        tools = _chat_tools(body.get("tools"), native_only)
        if tools:
            chat["tools"] = tools
            if body.get("parallel_tool_calls") is False:
                chat["parallel_tool_calls"] = False
        if body.get("tool_choice") is not None and tools:
            chat["tool_choice"] = _chat_tool_choice(body["tool_choice"])
        for name in ("temperature", "top_p", "user", "stream"):
            if body.get(name) is not None:
                chat[name] = body[name]
        if body.get("max_output_tokens") is not None:
            chat["max_tokens"] = body["max_output_tokens"]
        response_format = _response_format(body.get("text"))
        if response_format:
            chat["response_format"] = response_format
        effort = (body.get("reasoning") or {}).get("effort") if isinstance(body.get("reasoning"), dict) else None
        if effort:
            chat["reasoning_effort"] = effort
        for name in GATEWAY_FIELDS:
            if name in body:
                chat[name] = body[name]
        return chat

    def upstream_call(self, deployment: Deployment, operation: Operation, body: dict) -> tuple[Operation, dict]:
        self.deployment = deployment
        self.native = Operation.RESPONSES in deployment.adapter.operations
        if self.native:
            return Operation.RESPONSES, self._native_body(deployment)
        if self.native_only:
            raise self.native_only[0]
        allowed = deployment.adapter.chat_params
        self.json_tool = None
        if body.get("response_format") and allowed is not None and "response_format" not in allowed:
            return Operation.CHAT, self._json_by_tool(deployment, body)
        return Operation.CHAT, body

    def _json_by_tool(self, deployment: Deployment, body: dict) -> dict:
        """A provider without structured output (Anthropic) answers text.format's JSON schema
        through one forced tool call, whose arguments become the output text."""
        response_format = body["response_format"]
        if response_format.get("type") != "json_schema" or body.get("tools"):
            raise responses_error(f"{deployment.provider} has no structured output: text.format json_schema "
                                  "is served there through a forced tool call, so only without other tools "
                                  "and only for json_schema.", "text.format")
        schema = response_format["json_schema"]
        function = {"name": schema["name"], "parameters": schema["schema"]}
        if schema.get("description"):
            function["description"] = schema["description"]
        self.json_tool = schema["name"]
        body = {k: v for k, v in body.items() if k != "response_format"}
        body["tools"] = [{"type": "function", "function": function}]
        body["tool_choice"] = {"type": "function", "function": {"name": schema["name"]}}
        return body

    def _native_body(self, deployment: Deployment) -> dict:
        body = {k: v for k, v in self.client_body.items() if k not in GATEWAY_FIELDS}
        previous = self.previous
        if previous is not None:
            if previous.native and previous.deployment_id == deployment.id:
                body["previous_response_id"] = previous.id  # the upstream has it: reuse its id
            else:
                body.pop("previous_response_id", None)
                history = [_as_input(item) for item in self.history]
                body["input"] = [item for item in history if item is not None] + self.new_items
        return body

    # --- answers ---------------------------------------------------------------------------

    def response_object(self, *, response_id: str, output: list[dict], usage: Usage, status: str = "completed",
                        incomplete: dict | None = None) -> dict:
        body = self.client_body
        text = body.get("text") if isinstance(body.get("text"), dict) else {}
        return {
            "id": response_id, "object": "response", "created_at": self.created_at, "status": status,
            "background": False, "completed_at": int(time.time()) if status != "in_progress" else None,
            "error": None, "incomplete_details": incomplete, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": body.get("max_tool_calls"),
            "model": body["model"], "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
            "service_tier": "default", "store": self.store, "temperature": body.get("temperature", 1.0),
            "text": {"format": (text or {}).get("format") or {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"),
            "usage": responses_usage(usage) if status != "in_progress" else None,
            "user": body.get("user"), "metadata": body.get("metadata") or {},
        }

    def response_body(self, translated: TranslatedResponse, model: str) -> bytes:
        if self.native:
            response = orjson.loads(translated.body)
            self.remember(response)
            return translated.body
        completion = orjson.loads(translated.body)
        choice = (completion.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        output = []
        text = message.get("content") or ""
        calls = message.get("tool_calls") or []
        if self.json_tool:
            text += "".join((c.get("function") or {}).get("arguments") or "" for c in calls
                            if (c.get("function") or {}).get("name") == self.json_tool)
            calls = [c for c in calls if (c.get("function") or {}).get("name") != self.json_tool]
        if message.get("reasoning_content") or message.get("thinking_blocks"):
            output.append(_reasoning_item(message.get("reasoning_content") or "", message.get("thinking_blocks")))
        if text:
            output.append(_message_item(text))
        for call in calls:
            output.append(_function_call_item(call))
        status, incomplete = _FINISHED_STATUS.get(choice.get("finish_reason"), ("completed", None))
        response = self.response_object(response_id=new_response_id(), output=output, usage=translated.usage,
                                        status=status, incomplete=incomplete)
        self.remember(response)
        return orjson.dumps(response)

    def stream_writer(self, *, include_usage: bool, model: str):
        if self.native:
            return NativeResponsesWriter(self)
        return ResponsesSSEWriter(self)

    def remember(self, response: dict) -> None:
        """Store the answer for GET and previous_response_id (off the request path)."""
        if not self.store or not isinstance(response.get("id"), str):
            return
        context = self.context
        deployment = self.deployment
        items = [_with_id(item) for item in self.new_items]
        response_store.add(ResponseRecord(
            id=response["id"], key_hash=context.token_hash, key_id=context.key_id, team_id=context.team_id,
            organization_id=context.organization_id, model=self.client_body["model"],
            deployment_id=deployment.id if deployment else None, native=self.native,
            previous_response_id=self.client_body.get("previous_response_id") or "",
            input_items=self.history + items, output_items=list(response.get("output") or []),
            response=response, created_at=datetime.now(timezone.utc),
        ))


def _with_id(item: dict) -> dict:
    if item.get("id"):
        return item
    prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}.get(item.get("type", "message"),
                                                                                          "item")
    return {"id": _item_id(prefix), **({"type": "message"} if "type" not in item else {}), **item}


def _as_input(item: dict) -> dict | None:
    """A stored item sent back as input to a native upstream that never saw it: without the
    gateway's ids (the upstream would look them up) and output-only fields."""
    item = {k: v for k, v in item.items() if k not in ("id", "status")}
    if item.get("type") == "reasoning":
        return None  # reasoning is only readable by the account (or gateway) that made it
    if item.get("type") == "message" and isinstance(item.get("content"), list):
        item["content"] = [{k: v for k, v in part.items() if k not in ("annotations", "logprobs")}
                           for part in item["content"]]
    return item


def _event(payload: dict) -> bytes:
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class NativeResponsesWriter:
    """The upstream's Responses events passed on; the completed response is stored."""

    def __init__(self, fmt: ResponsesFormat) -> None:
        self.fmt = fmt
        self.sequence = 0

    def write(self, events: list[dict]) -> bytes:
        out = []
        for event in events:
            self.sequence = max(self.sequence, int(event.get("sequence_number") or 0) + 1)
            if event.get("type") == "response.completed" and isinstance(event.get("response"), dict):
                self.fmt.remember(event["response"])
            out.append(_event(event))
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        return _event({"type": "error", "code": error.code or error.type, "message": error.message,
                       "param": error.param, "sequence_number": self.sequence})

    def close(self) -> bytes:
        return b""


class ResponsesSSEWriter:
    """OpenAI chat chunks in, the Responses API's semantic events out."""

    def __init__(self, fmt: ResponsesFormat) -> None:
        self.fmt = fmt
        self.response_id = new_response_id()
        self.sequence = 0
        self.started = False
        self.output: list[dict] = []
        self.message: dict | None = None  # the open message item
        self.calls: dict[int, dict] = {}  # chat tool-call index → its open function_call item
        self.open_calls: list[int] = []
        self.json_call_indexes: set[int] = set()  # chat tool calls that carry text.format's JSON
        self.reasoning: dict | None = None  # the open reasoning item
        self.reasoning_blocks: list[dict] = []  # its signed thinking blocks, for encrypted_content
        self.usage = Usage()
        self.finish_reason: str | None = None

    def _emit(self, payload: dict) -> bytes:
        payload["sequence_number"] = self.sequence
        self.sequence += 1
        return _event(payload)

    def _start(self) -> bytes:
        self.started = True
        response = self.fmt.response_object(response_id=self.response_id, output=[], usage=Usage(),
                                            status="in_progress")
        return (self._emit({"type": "response.created", "response": response})
                + self._emit({"type": "response.in_progress", "response": response}))

    def _close_message(self) -> bytes:
        item = self.message
        if item is None:
            return b""
        self.message = None
        index = self.output.index(item)
        part = item["content"][0]
        item["status"] = "completed"
        return (self._emit({"type": "response.output_text.done", "item_id": item["id"], "output_index": index,
                            "content_index": 0, "text": part["text"], "logprobs": []})
                + self._emit({"type": "response.content_part.done", "item_id": item["id"], "output_index": index,
                              "content_index": 0, "part": part})
                + self._emit({"type": "response.output_item.done", "output_index": index, "item": item}))

    def _reasoning(self, delta: dict) -> bytes:
        out = b""
        item = self.reasoning
        if item is None:
            out += self._close_message() + self._close_calls()
            item = self.reasoning = _reasoning_item("", None, status="in_progress")
            self.reasoning_blocks = []
            self.output.append(item)
            out += self._emit({"type": "response.output_item.added", "output_index": len(self.output) - 1,
                               "item": dict(item)})
        index = self.output.index(item)
        if delta.get("reasoning_content"):
            if not item["summary"]:
                part = {"type": "summary_text", "text": ""}
                item["summary"].append(part)
                out += self._emit({"type": "response.reasoning_summary_part.added", "item_id": item["id"],
                                   "output_index": index, "summary_index": 0, "part": dict(part)})
            item["summary"][0]["text"] += delta["reasoning_content"]
            out += self._emit({"type": "response.reasoning_summary_text.delta", "item_id": item["id"],
                               "output_index": index, "summary_index": 0, "delta": delta["reasoning_content"]})
        self.reasoning_blocks += [b for b in delta.get("thinking_blocks") or [] if isinstance(b, dict)]
        return out

    def _close_reasoning(self) -> bytes:
        item = self.reasoning
        if item is None:
            return b""
        self.reasoning = None
        index = self.output.index(item)
        item["status"] = "completed"
        item["encrypted_content"] = thinking_blocks_encode(self.reasoning_blocks) if self.reasoning_blocks else None
        out = b""
        if item["summary"]:
            part = item["summary"][0]
            out += self._emit({"type": "response.reasoning_summary_text.done", "item_id": item["id"],
                               "output_index": index, "summary_index": 0, "text": part["text"]})
            out += self._emit({"type": "response.reasoning_summary_part.done", "item_id": item["id"],
                               "output_index": index, "summary_index": 0, "part": part})
        return out + self._emit({"type": "response.output_item.done", "output_index": index, "item": item})

    def _close_calls(self) -> bytes:
        out = b""
        for key in self.open_calls:
            item = self.calls[key]
            index = self.output.index(item)
            item["status"] = "completed"
            out += self._emit({"type": "response.function_call_arguments.done", "item_id": item["id"],
                               "output_index": index, "name": item["name"], "arguments": item["arguments"]})
            out += self._emit({"type": "response.output_item.done", "output_index": index, "item": item})
        self.open_calls = []
        return out

    def write(self, chunks: list[dict]) -> bytes:
        out = b"" if self.started else self._start()
        for chunk in chunks:
            if chunk.get("usage"):
                self.usage = _usage_from_chunk(chunk["usage"])
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                if delta.get("reasoning_content") or delta.get("thinking_blocks"):
                    out += self._reasoning(delta)
                text = delta.get("content") or ""
                calls = delta.get("tool_calls") or []
                if self.fmt.json_tool and calls:
                    for call in calls:
                        function = call.get("function") or {}
                        if function.get("name") == self.fmt.json_tool:
                            self.json_call_indexes.add(call.get("index", 0))
                    text += "".join((c.get("function") or {}).get("arguments") or "" for c in calls
                                    if c.get("index", 0) in self.json_call_indexes)
                    calls = [c for c in calls if c.get("index", 0) not in self.json_call_indexes]
                if text:
                    if self.message is None:
                        out += self._close_reasoning() + self._close_calls()
                        item = _message_item("", status="in_progress")
                        item["content"] = []
                        self.output.append(item)
                        self.message = item
                        index = len(self.output) - 1
                        out += self._emit({"type": "response.output_item.added", "output_index": index,
                                           "item": {**item, "content": []}})
                        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                        item["content"].append(part)
                        out += self._emit({"type": "response.content_part.added", "item_id": item["id"],
                                           "output_index": index, "content_index": 0, "part": dict(part)})
                    item = self.message
                    item["content"][0]["text"] += text
                    out += self._emit({"type": "response.output_text.delta", "item_id": item["id"],
                                       "output_index": self.output.index(item), "content_index": 0,
                                       "delta": text, "logprobs": []})
                for call in calls:
                    key = call.get("index", 0)
                    function = call.get("function") or {}
                    item = self.calls.get(key)
                    if item is None:
                        out += self._close_reasoning() + self._close_message()
                        item = _function_call_item({"id": call.get("id"), "function": {
                            "name": function.get("name"), "arguments": ""}}, status="in_progress")
                        self.calls[key] = item
                        self.open_calls.append(key)
                        self.output.append(item)
                        out += self._emit({"type": "response.output_item.added",
                                           "output_index": len(self.output) - 1, "item": dict(item)})
                    if function.get("arguments"):
                        item["arguments"] += function["arguments"]
                        out += self._emit({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                                           "output_index": self.output.index(item),
                                           "delta": function["arguments"]})
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
        return out

    def error(self, error: GatewayError) -> bytes:
        return self._emit({"type": "error", "code": error.code or error.type, "message": error.message,
                           "param": error.param})

    def close(self) -> bytes:
        out = (b"" if self.started else self._start()) + self._close_reasoning() + self._close_message()
        out += self._close_calls()
        status, incomplete = _FINISHED_STATUS.get(self.finish_reason, ("completed", None))
        response = self.fmt.response_object(response_id=self.response_id, output=self.output, usage=self.usage,
                                            status=status, incomplete=incomplete)
        self.fmt.remember(response)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._emit({"type": kind, "response": response})
