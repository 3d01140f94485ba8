"""Anthropic's Messages API as the conformance table's fake (see tests/fakes/brain.py).

Strict like the real API, so a translation bug fails a test: the key and version headers,
`model`/`max_tokens`/`messages` required, no unknown top-level fields, no `system` role in
messages, alternating roles, non-empty text blocks, tool results that answer exactly the
tool uses of the assistant turn before them (and open their user turn), thinking blocks
kept on a tool-using turn when thinking is on. Usage in Anthropic's semantics:
`input_tokens` excludes the cache reads reported in `cache_read_input_tokens`.

Beyond the shared script, the upstream model name can ask for:
  ...chatty...          a sentence of text before the tool calls
  overloaded-midstream  (stream) an `error` event after the first piece of text
  overloaded-at-start   (stream) an `error` event as the first event of a 200 stream
"""

from __future__ import annotations

import asyncio
import itertools

import orjson
from aiohttp import web

from tests.fakes.brain import FakeRequest, FakeScenario, FakeToolResult, Mode, decide
from tests.fakes.providers import ProviderFake, register
from tests.fakes.server import FakeServer

API_KEY = "sk-ant-fake"
CHATTY_PREFACE = "Let me check."
THINKING_TEXT = "The user wants an answer."
THINKING_SIGNATURE = "sig-fake-1"
THINKING_TOKENS = 3
IMAGE_MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
TOP_LEVEL_FIELDS = {
    "model", "max_tokens", "messages", "system", "stream", "tools", "tool_choice", "temperature", "top_p",
    "top_k", "stop_sequences", "metadata", "thinking", "service_tier", "output_config", "container",
    "mcp_servers", "inference_geo",
}
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
    529: "overloaded_error",
}
_ids = itertools.count(1)


class InvalidRequest(Exception):
    """A request the real API would answer with 400 invalid_request_error."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidRequest(message)


# --- validation and parsing --------------------------------------------------------------------


def _blocks(content, where: str) -> list[dict]:
    if isinstance(content, str):
        _require(bool(content), f"{where}: text content blocks must be non-empty")
        return [{"type": "text", "text": content}]
    _require(isinstance(content, list) and bool(content), f"{where}: must be a non-empty string or list")
    for index, block in enumerate(content):
        _require(isinstance(block, dict) and "type" in block, f"{where}.{index}.type: Field required")
    return content


def _check_block(block: dict, role: str, where: str) -> None:
    kind = block["type"]
    allowed = {"user": {"text", "image", "document", "tool_result"},
               "assistant": {"text", "tool_use", "thinking", "redacted_thinking"}}[role]
    _require(kind in allowed, f"{where}: blocks of type '{kind}' are not allowed in a {role} message")
    if kind == "text":
        _require(isinstance(block.get("text"), str) and bool(block["text"]),
                 f"{where}: text content blocks must be non-empty")
    elif kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            _require(source.get("media_type") in IMAGE_MEDIA_TYPES,
                     f"{where}.source.media_type: unsupported image type")
            _require(bool(source.get("data")), f"{where}.source.data: Field required")
        else:
            _require(source.get("type") == "url" and bool(source.get("url")),
                     f"{where}.source: invalid image source")
    elif kind == "document":
        source = block.get("source") or {}
        _require(source.get("type") == "base64" and source.get("media_type") == "application/pdf",
                 f"{where}.source: invalid document source")
    elif kind == "tool_use":
        _require(bool(block.get("id")) and bool(block.get("name")), f"{where}: tool_use needs id and name")
        _require(isinstance(block.get("input"), dict), f"{where}.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        _require(bool(block.get("tool_use_id")), f"{where}.tool_use_id: Field required")
    elif kind == "thinking":
        _require(bool(block.get("signature")), f"{where}.signature: Field required")


def _check_tool_exchange(messages: list[dict], thinking: bool) -> None:
    """Tool results answer exactly the tool uses of the assistant turn just before, and come first."""
    for index, message in enumerate(messages):
        blocks = message["content"] if isinstance(message["content"], list) else []
        results = [b for b in blocks if b["type"] == "tool_result"]
        if message["role"] == "user" and results:
            previous = messages[index - 1]["content"] if index else []
            uses = {b["id"] for b in previous if isinstance(previous, list) and b["type"] == "tool_use"}
            for result in results:
                _require(result["tool_use_id"] in uses,
                         f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                         f"{result['tool_use_id']}. Each `tool_result` block must have a corresponding "
                         "`tool_use` block in the previous message.")
            kinds = [b["type"] for b in blocks]
            _require(kinds[: len(results)] == ["tool_result"] * len(results),
                     f"messages.{index}.content: `tool_result` blocks must come first in the user message")
        if message["role"] == "assistant":
            uses = [b["id"] for b in blocks if b["type"] == "tool_use"]
            if not uses or index + 1 >= len(messages):
                continue
            following = messages[index + 1]["content"]
            answered = {b.get("tool_use_id") for b in following if isinstance(following, list)}
            missing = [u for u in uses if u not in answered]
            _require(not missing, f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                                  f"immediately after: {', '.join(missing)}")
            if thinking and index == len(messages) - 2:
                _require(blocks[0]["type"] in ("thinking", "redacted_thinking"),
                         f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                         f"but found `{blocks[0]['type']}`. When `thinking` is enabled, a final `assistant` "
                         "message must start with a thinking block.")


def _check_tools(body: dict) -> None:
    tools = body.get("tools") or []
    _require(isinstance(tools, list), "tools: Input should be a valid list")
    names = set()
    for index, tool in enumerate(tools):
        _require(isinstance(tool, dict) and bool(tool.get("name")), f"tools.{index}.name: Field required")
        extra = set(tool) - {"name", "description", "input_schema", "cache_control", "type"}
        _require(not extra, f"tools.{index}.{next(iter(extra), '')}: Extra inputs are not permitted")
        schema = tool.get("input_schema")
        _require(isinstance(schema, dict) and schema.get("type") == "object",
                 f"tools.{index}.input_schema: Input should be an object schema")
        names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        _require(isinstance(choice, dict) and choice.get("type") in ("auto", "any", "tool", "none"),
                 "tool_choice: Input tag does not match any of the expected tags")
        allowed = {"type", "name"} if choice["type"] == "tool" else {"type"}
        if choice["type"] != "none":
            allowed.add("disable_parallel_tool_use")
        _require(set(choice) <= allowed, "tool_choice: Extra inputs are not permitted")
        if choice["type"] == "tool":
            _require(choice.get("name") in names, f"tool_choice.name: no tool named '{choice.get('name')}'")


def _check_sampling(body: dict) -> bool:
    """Checks the sampling fields; whether extended thinking is on."""
    for key in ("temperature", "top_p"):
        if key in body:
            _require(isinstance(body[key], (int, float)) and 0 <= body[key] <= 1,
                     f"{key}: Input should be less than or equal to 1")
    stops = body.get("stop_sequences")
    if stops is not None:
        _require(isinstance(stops, list) and all(isinstance(s, str) for s in stops),
                 "stop_sequences: Input should be a valid list of strings")
    metadata = body.get("metadata")
    if metadata is not None:
        _require(isinstance(metadata, dict) and set(metadata) <= {"user_id"},
                 "metadata: Extra inputs are not permitted")
    thinking = body.get("thinking")
    if thinking is None or thinking.get("type") == "disabled":
        return False
    _require(thinking.get("type") == "enabled", "thinking.type: Input tag does not match")
    budget = thinking.get("budget_tokens")
    _require(isinstance(budget, int) and budget >= 1024, "thinking.budget_tokens: Input should be >= 1024")
    _require(budget < body["max_tokens"], "`max_tokens` must be greater than `thinking.budget_tokens`")
    _require(body.get("temperature", 1) == 1, "`temperature` may only be set to 1 when thinking is enabled")
    _require("top_k" not in body, "`top_k` may not be set when thinking is enabled")
    return True


def validate(body: dict) -> bool:
    """Raises InvalidRequest as the real API would; returns whether thinking is on."""
    extra = sorted(set(body) - TOP_LEVEL_FIELDS)
    _require(not extra, f"{extra[0] if extra else ''}: Extra inputs are not permitted")
    _require(isinstance(body.get("model"), str) and bool(body["model"]), "model: Field required")
    max_tokens = body.get("max_tokens")
    _require(isinstance(max_tokens, int) and max_tokens >= 1, "max_tokens: Field required")
    messages = body.get("messages")
    _require(isinstance(messages, list) and bool(messages), "messages: Field required")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _require(isinstance(system, list) and all(b.get("type") == "text" and b.get("text") for b in system),
                 "system: Input should be a valid string or a list of text blocks")
    previous_role = None
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "system":
            raise InvalidRequest(
                'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                'parameter, not "system" as an input message role.'
            )
        _require(role in ("user", "assistant"),
                 f"messages.{index}.role: Input should be 'user' or 'assistant'")
        _require(role != previous_role, "messages: roles must alternate between \"user\" and \"assistant\"")
        previous_role = role
        for number, block in enumerate(_blocks(message.get("content"), f"messages.{index}.content")):
            _check_block(block, role, f"messages.{index}.content.{number}")
    _check_tools(body)
    thinking = _check_sampling(body)
    _check_tool_exchange(messages, thinking)
    return thinking


def _text(blocks) -> str:
    if isinstance(blocks, str):
        return blocks
    return "".join(b.get("text", "") for b in blocks if b.get("type") == "text")


def parse_anthropic(body: dict) -> FakeRequest:
    request = FakeRequest(model=body["model"], stream=bool(body.get("stream")), max_tokens=body["max_tokens"])
    if body.get("system") is not None:
        request.system = _text(body["system"])
    names_by_id: dict[str, str] = {}
    messages = body["messages"]
    for message in messages:
        blocks = _blocks(message["content"], "")
        if message["role"] == "assistant":
            names_by_id.update({b["id"]: b["name"] for b in blocks if b["type"] == "tool_use"})
            if _text(blocks):
                request.turns.append(("assistant", _text(blocks)))
            continue
        if any(b["type"] != "tool_result" for b in blocks):
            request.turns.append(("user", _text(blocks)))
        for block in blocks:
            if block["type"] == "image":
                source = block["source"]
                request.images.append(source["media_type"] if source["type"] == "base64" else "url")
    # Tool results answer the last assistant turn; only those of the final user turn count.
    last = _blocks(messages[-1]["content"], "")
    if messages[-1]["role"] == "user":
        request.tool_results = [
            FakeToolResult(b["tool_use_id"], names_by_id.get(b["tool_use_id"]), _text(b.get("content") or ""))
            for b in last
            if b["type"] == "tool_result"
        ]
    request.tools = [t["name"] for t in body.get("tools") or []]
    return request


# --- answering ---------------------------------------------------------------------------------


class Answer:
    """A scenario as an Anthropic message: content blocks, stop reason and usage."""

    def __init__(self, scenario: FakeScenario, body: dict, *, thinking: bool) -> None:
        self.scenario = scenario
        self.model = body["model"]
        self.id = f"msg_fake{next(_ids):04d}"
        self.thinking = thinking
        text, self.stop_sequence = scenario.text, None
        self.stop_reason = "tool_use" if scenario.tool_calls else "end_turn"
        self.output_tokens = scenario.completion_tokens
        for stop in body.get("stop_sequences") or []:
            if stop in text:
                text, self.stop_reason, self.stop_sequence = text[: text.index(stop)], "stop_sequence", stop
        if body["max_tokens"] < self.output_tokens:
            text = scenario.text_pieces()[0] if text else text
            self.stop_reason, self.output_tokens = "max_tokens", body["max_tokens"]
        if scenario.tool_calls and "chatty" in self.model:
            text = CHATTY_PREFACE
        self.text = text

    def blocks(self) -> list[dict]:
        blocks = []
        if self.thinking:
            blocks.append({"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE})
        if self.text:
            blocks.append({"type": "text", "text": self.text})
        blocks += [{"type": "tool_use", "id": "toolu_" + call.id, "name": call.name, "input": call.arguments}
                   for call in self.scenario.tool_calls]
        return blocks

    def usage(self, output_tokens: int | None = None) -> dict:
        scenario = self.scenario
        usage = {
            "input_tokens": scenario.prompt_tokens - scenario.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": scenario.cached_tokens,
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
        }
        if self.thinking:
            usage["output_tokens_details"] = {"thinking_tokens": THINKING_TOKENS}
        return usage

    def message(self) -> dict:
        return {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": self.blocks(), "stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence,
            "usage": self.usage(),
        }


def error_body(status: int, message: str) -> dict:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": "req_fake0001"}


class AnthropicServer(FakeServer):
    def __init__(self) -> None:
        super().__init__(client_max_size=32 * 1024**2)
        self.requests: list[dict] = []
        self.app.router.add_post("/v1/messages", self.messages)
        self.app.router.add_get("/v1/models", self.models)

    def _error(self, status: int, message: str, retry_after: str | None = None) -> web.Response:
        headers = {"request-id": "req_fake0001"}
        if retry_after:
            headers["retry-after"] = retry_after
        return web.json_response(error_body(status, message), status=status, headers=headers)

    async def models(self, request: web.Request) -> web.Response:
        """GET /v1/models: the key and version headers, as for messages."""
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers), "body": None})
        if request.headers.get("x-api-key") != API_KEY:
            return self._error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "anthropic-version: header is required")
        model = {"type": "model", "id": "claude-fake-1", "display_name": "Claude Fake",
                 "created_at": "2026-01-01T00:00:00Z"}
        return web.json_response({"data": [model], "has_more": False, "first_id": model["id"],
                                  "last_id": model["id"]})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._error(400, "There was an issue with your request body: not valid JSON")
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers), "body": body})
        if request.headers.get("x-api-key") != API_KEY:
            return self._error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "anthropic-version: header is required")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self._error(400, "content-type must be application/json")
        return await self.respond(request, body)

    async def respond(self, request: web.Request, body: dict) -> web.StreamResponse:
        """Answer a Messages body (checked for the transport by the caller)."""
        try:
            thinking = validate(body)
            fake_request = parse_anthropic(body)
        except InvalidRequest as exc:
            return self._error(400, str(exc))
        scenario = decide(fake_request)
        if scenario.mode is Mode.ERROR:
            status = scenario.error_status
            message = f"model: {body['model']}" if status == 404 else f"fake error {status}"
            return self._error(status, message, scenario.retry_after)
        if scenario.mode is Mode.BAD_JSON:
            return web.Response(body=b"<html>502 Bad Gateway</html>", content_type="application/json")
        if scenario.mode is Mode.SLOW:
            await asyncio.sleep(5)
        answer = Answer(scenario, body, thinking=thinking)
        if not body.get("stream"):
            if scenario.mode is Mode.CUT:
                request.transport.close()
                return web.Response()
            return web.json_response(answer.message(), headers={"request-id": "req_fake0001"})
        return await self.stream(request, answer)

    async def stream(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "request-id": "req_fake0001"}
        )
        await response.prepare(request)

        async def send(event: str, data: dict) -> None:
            payload = orjson.dumps({"type": event, **data})
            await response.write(f"event: {event}\n".encode() + b"data: " + payload + b"\n\n")

        async def send_error(kind: str, message: str) -> web.StreamResponse:
            await send("error", {"error": {"type": kind, "message": message}})
            return response

        if answer.model == "overloaded-at-start":
            return await send_error("overloaded_error", "Overloaded")
        message = {**answer.message(), "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": answer.usage(output_tokens=1)}
        await send("message_start", {"message": message})
        for index, block in enumerate(answer.blocks()):
            if block["type"] == "text":
                text_start = {"type": "text", "text": ""}
                await send("content_block_start", {"index": index, "content_block": text_start})
                if index == 0:
                    await send("ping", {})
                whole = block["text"] == answer.scenario.text
                pieces = answer.scenario.text_pieces() if whole else [block["text"]]
                for number, piece in enumerate(pieces):
                    delta = {"type": "text_delta", "text": piece}
                    await send("content_block_delta", {"index": index, "delta": delta})
                    if number == 0 and answer.scenario.mode is Mode.CUT:
                        request.transport.close()
                        return response
                    if number == 0 and answer.model == "overloaded-midstream":
                        return await send_error("overloaded_error", "Overloaded")
            elif block["type"] == "thinking":
                await send("content_block_start", {"index": index, "content_block":
                           {"type": "thinking", "thinking": "", "signature": ""}})
                await send("content_block_delta", {"index": index, "delta":
                           {"type": "thinking_delta", "thinking": block["thinking"]}})
                await send("content_block_delta", {"index": index, "delta":
                           {"type": "signature_delta", "signature": block["signature"]}})
            else:
                await send("content_block_start", {"index": index, "content_block":
                           {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                arguments = orjson.dumps(block["input"]).decode()
                for start in range(0, len(arguments), 7):
                    await send("content_block_delta", {"index": index, "delta":
                               {"type": "input_json_delta", "partial_json": arguments[start:start + 7]}})
            await send("content_block_stop", {"index": index})
        await send("message_delta", {"delta": {"stop_reason": answer.stop_reason,
                                               "stop_sequence": answer.stop_sequence},
                                     "usage": answer.usage()})
        await send("message_stop", {})
        return response


@register
class AnthropicFake(ProviderFake):
    provider = "anthropic"

    def new_server(self):
        return AnthropicServer()

    def deployment_fields(self):
        return {"api_base": self.url, "api_key": API_KEY}


# --- Claude on Vertex AI ------------------------------------------------------------------------

VERTEX_TOKEN = "ya29.fake-vertex-claude"
VERTEX_PROJECT, VERTEX_LOCATION = "fake-project", "us-east5"
# The script's model names are not Claude's: the fake's upstream models are "claude-" + them.
CLAUDE_PREFIX = "claude-"


def google_error(status: int, message: str, google_status: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message, "status": google_status}},
                             status=status)


class VertexClaudeServer(AnthropicServer):
    """Vertex AI's Anthropic publisher: rawPredict / streamRawPredict with a Google bearer token,
    the model in the URL and anthropic_version in the body."""

    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post(
            "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{target}", self.raw_predict
        )

    async def raw_predict(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].partition(":")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return google_error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers), "body": dict(body)})
        if request.headers.get("Authorization") != f"Bearer {VERTEX_TOKEN}":
            return google_error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
        if (request.match_info["project"], request.match_info["location"]) != (VERTEX_PROJECT, VERTEX_LOCATION):
            return google_error(404, "Publisher model not found in this project and location.", "NOT_FOUND")
        if method not in ("rawPredict", "streamRawPredict") or (method == "streamRawPredict") != bool(body.get("stream")):
            return google_error(400, f"{method}: not the method for this body's stream setting", "INVALID_ARGUMENT")
        if body.pop("anthropic_version", None) != "vertex-2023-10-16":
            return self._error(400, "anthropic_version: Field required (vertex-2023-10-16)")
        if "model" in body:
            return self._error(400, "model: Extra inputs are not permitted")
        if not model.startswith(CLAUDE_PREFIX):
            return google_error(404, f"Publisher Model {model} was not found.", "NOT_FOUND")
        return await self.respond(request, {**body, "model": model.removeprefix(CLAUDE_PREFIX)})


@register
class VertexClaudeFake(AnthropicFake):
    provider = "vertex_ai"
    table_name = "vertex_ai/claude"

    def new_server(self):
        return VertexClaudeServer()

    def deployment_fields(self):
        return {"api_base": self.url, "api_key": VERTEX_TOKEN,
                "extra_params": {"vertex_project": VERTEX_PROJECT, "vertex_location": VERTEX_LOCATION}}

    def upstream_model(self, scripted: str) -> str:
        return CLAUDE_PREFIX + scripted
