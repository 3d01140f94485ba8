"""OpenAI's Responses API (POST /v1/responses) for the OpenAI and Azure fakes, answering from
tests/fakes/brain.py like every other fake.

Strict where OpenAI is: unknown parameters, chat-shaped (nested) function tools, unknown
input item types, a previous_response_id it never stored (or stored with store: false) are
400s naming the parameter. Responses it made with store (the default) are kept, so a
continuation by id sees the whole conversation, as at OpenAI. Streams send the semantic
events with `event:` lines and sequence numbers, no [DONE].
"""

from __future__ import annotations

import time
import uuid

import orjson
from aiohttp import web

from tests.fakes.brain import FakeRequest, FakeToolResult, Mode, decide

PARAMS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "temperature", "top_p", "text", "stream", "stream_options", "store", "previous_response_id", "metadata",
    "user", "reasoning", "truncation", "include", "background", "service_tier", "prompt_cache_key",
    "safety_identifier", "top_logprobs", "max_tool_calls", "prompt", "conversation",
})
BUILTIN_TOOLS = frozenset({"web_search", "web_search_preview", "file_search", "code_interpreter",
                           "computer_use_preview", "image_generation", "mcp"})


class Refused(Exception):
    def __init__(self, message: str, param: str | None, code: str | None = "invalid_value", status: int = 400):
        self.message, self.param, self.code, self.status = message, param, code, status


def _error(exc: Refused) -> web.Response:
    return web.json_response({"error": {"message": exc.message, "type": "invalid_request_error",
                                         "param": exc.param, "code": exc.code}}, status=exc.status)


def _text(content, where: str, allowed: tuple[str, ...]) -> tuple[str, list[str]]:
    """(text, image media types) of a message's content."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise Refused(f"Invalid type for '{where}'.", where, "invalid_type")
    texts, images = [], []
    for index, part in enumerate(content):
        kind = part.get("type")
        if kind not in allowed:
            raise Refused(f"Invalid value: '{kind}'. Supported values are: {', '.join(allowed)}.",
                          f"{where}[{index}].type")
        if kind == "input_image":
            url = part.get("image_url") or ""
            images.append(url[5:].split(";")[0] if url.startswith("data:") else "url")
        else:
            texts.append(part["text"])
    return "".join(texts), images


class ResponsesHandler:
    """The /responses route of one fake server (its store of responses is its own)."""

    def __init__(self, *, check_auth) -> None:
        self.check_auth = check_auth  # request → web.Response (a refusal) or None
        self.stored: dict[str, list[dict]] = {}  # response id → the whole conversation's items
        self.requests: list[dict] | None = None

    def _items(self, body: dict) -> list[dict]:
        items: list[dict] = []
        previous = body.get("previous_response_id")
        if previous is not None:
            if previous not in self.stored:
                raise Refused(f"Previous response with id '{previous}' not found.", "previous_response_id",
                              "previous_response_not_found")
            items += self.stored[previous]
        value = body.get("input")
        if isinstance(value, str):
            items.append({"type": "message", "role": "user", "content": value})
        elif isinstance(value, list):
            for index, item in enumerate(value):
                kind = item.get("type", "message")
                if kind not in ("message", "function_call", "function_call_output", "reasoning"):
                    raise Refused(f"Invalid value: '{kind}'.", f"input[{index}].type")
                if item.get("id") and kind == "message" and item.get("role") == "assistant" \
                        and not item["id"].startswith("msg_"):
                    raise Refused(f"Invalid 'input[{index}].id'.", f"input[{index}].id")
                items.append(item)
        elif value is not None:
            raise Refused("Invalid type for 'input'.", "input", "invalid_type")
        return items

    def _fake_request(self, body: dict, items: list[dict]) -> FakeRequest:
        request = FakeRequest(model=body["model"], stream=bool(body.get("stream")), system=body.get("instructions"))
        names: dict[str, str] = {}
        for index, item in enumerate(items):
            kind = item.get("type", "message")
            if kind == "message":
                role = item.get("role")
                if role in ("system", "developer"):
                    request.system, _ = _text(item["content"], f"input[{index}].content", ("input_text",))
                    continue
                allowed = ("output_text", "refusal") if role == "assistant" else ("input_text", "input_image")
                text, images = _text(item["content"], f"input[{index}].content", allowed)
                request.images += images
                request.turns.append((role, text))
            elif kind == "function_call":
                names[item["call_id"]] = item["name"]
            elif kind == "function_call_output":
                request.tool_results.append(FakeToolResult(item["call_id"], names.get(item["call_id"]),
                                                           item["output"]))
        if items and items[-1].get("type") != "function_call_output":
            request.tool_results = []
        for index, tool in enumerate(body.get("tools") or []):
            if tool.get("type") == "function":
                if "function" in tool or not tool.get("name"):
                    raise Refused(f"Missing required parameter: 'tools[{index}].name'.", f"tools[{index}].name",
                                  "missing_required_parameter")
                request.tools.append(tool["name"])
            elif tool.get("type") not in BUILTIN_TOOLS:
                raise Refused(f"Invalid value: '{tool.get('type')}'.", f"tools[{index}].type")
        return request

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if self.requests is not None:
            self.requests.append({"path": request.path_qs, "headers": dict(request.headers), "body": body})
        refusal = self.check_auth(request, body)
        if refusal is not None:
            return refusal
        try:
            for name in body:
                if name not in PARAMS:
                    raise Refused(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
            if not isinstance(body.get("model"), str):
                raise Refused("Missing required parameter: 'model'.", "model", "missing_required_parameter")
            fmt = ((body.get("text") or {}).get("format") or {})
            if fmt.get("type") == "json_schema" and not (fmt.get("name") and isinstance(fmt.get("schema"), dict)):
                raise Refused("Missing required parameter: 'text.format.name'.", "text.format.name",
                              "missing_required_parameter")
            items = self._items(body)
            fake = self._fake_request(body, items)
        except Refused as exc:
            return _error(exc)
        scenario = decide(fake)
        if scenario.mode is Mode.ERROR:
            status = scenario.error_status
            headers = {"Retry-After": scenario.retry_after} if scenario.retry_after else {}
            return web.json_response({"error": {"message": f"fake error {status}", "type": "invalid_request_error"
                                                if status < 500 else "server_error", "param": None,
                                                "code": {429: "rate_limit_exceeded"}.get(status)}},
                                     status=status, headers=headers)
        response_id = "resp_" + uuid.uuid4().hex
        output: list[dict] = []
        if scenario.text:
            text = scenario.text
            output.append({"id": "msg_" + uuid.uuid4().hex, "type": "message", "status": "completed",
                           "role": "assistant",
                           "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
        for call in scenario.tool_calls:
            output.append({"id": "fc_" + uuid.uuid4().hex, "type": "function_call", "status": "completed",
                           "call_id": call.id, "name": call.name, "arguments": orjson.dumps(call.arguments).decode()})
        usage = {"input_tokens": scenario.prompt_tokens, "input_tokens_details": {"cached_tokens": scenario.cached_tokens},
                 "output_tokens": scenario.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": scenario.prompt_tokens + scenario.completion_tokens}
        response = {
            "id": response_id, "object": "response", "created_at": int(time.time()), "status": "completed",
            "background": False, "completed_at": int(time.time()), "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": body["model"], "output": output, "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"), "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True), "temperature": 1.0, "text": {"format": fmt or {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [], "top_p": 1.0,
            "truncation": "disabled", "usage": usage, "user": None, "metadata": body.get("metadata") or {},
        }
        if body.get("store", True):
            self.stored[response_id] = items + output
        if not body.get("stream"):
            return web.json_response(response)
        return await self._stream(request, response)

    async def _stream(self, request: web.Request, response: dict) -> web.StreamResponse:
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        sequence = 0

        async def send(payload: dict) -> None:
            nonlocal sequence
            payload["sequence_number"] = sequence
            sequence += 1
            await stream.write(b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n")

        started = {**response, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
        await send({"type": "response.created", "response": started})
        await send({"type": "response.in_progress", "response": started})
        for index, item in enumerate(response["output"]):
            if item["type"] == "message":
                await send({"type": "response.output_item.added", "output_index": index,
                            "item": {**item, "status": "in_progress", "content": []}})
                part = item["content"][0]
                await send({"type": "response.content_part.added", "item_id": item["id"], "output_index": index,
                            "content_index": 0, "part": {**part, "text": ""}})
                words = part["text"].split(" ")
                for number, word in enumerate(words):
                    await send({"type": "response.output_text.delta", "item_id": item["id"], "output_index": index,
                                "content_index": 0, "delta": word if number == 0 else " " + word, "logprobs": []})
                await send({"type": "response.output_text.done", "item_id": item["id"], "output_index": index,
                            "content_index": 0, "text": part["text"], "logprobs": []})
                await send({"type": "response.content_part.done", "item_id": item["id"], "output_index": index,
                            "content_index": 0, "part": part})
            else:
                await send({"type": "response.output_item.added", "output_index": index,
                            "item": {**item, "status": "in_progress", "arguments": ""}})
                arguments = item["arguments"]
                for start in range(0, len(arguments), 7):
                    await send({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                                "output_index": index, "delta": arguments[start:start + 7]})
                await send({"type": "response.function_call_arguments.done", "item_id": item["id"],
                            "output_index": index, "name": item["name"], "arguments": arguments})
            await send({"type": "response.output_item.done", "output_index": index, "item": item})
        await send({"type": "response.completed", "response": response})
        return stream
