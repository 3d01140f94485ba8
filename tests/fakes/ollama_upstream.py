"""Ollama's native API (/api/chat, /api/embed) as the conformance table's fake (see tests/fakes/brain.py).

Strict where the real server is: `model` and `messages` required, known roles only,
`stream` a boolean, tool-call arguments objects, images raw base64 (no data: prefix),
`options` an object. Like the real server it streams unless `"stream": false`, as
NDJSON with usage (prompt_eval_count, eval_count) and durations (ns) on the last line.
Tool calls carry no ids and a tool result names its tool in `tool_name`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime, timezone

import orjson
from aiohttp import web

from tests.fakes.brain import FakeRequest, FakeScenario, FakeToolResult, Mode, decide
from tests.fakes.providers import ProviderFake, register
from tests.fakes.server import FakeServer

ROLES = ("system", "user", "assistant", "tool")
# A model name beyond the shared script's: a stream that fails after its first line, as
# Ollama reports an error met mid-generation (e.g. the runner crashed).
MID_STREAM_ERROR_MODEL = "mid-stream-error"
MID_STREAM_ERROR = "an error was encountered while running the model: unexpected EOF"
# What a thinking model thinks when the request says `"think": true`.
THINKING = "The user wants an answer."
EMBEDDING = [0.5, -0.25, 0.125]
EMBED_TOKENS_PER_INPUT = 4


class OllamaRequestError(Exception):
    """A request the real server refuses with a 400."""


def _media_type(data: str) -> str:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise OllamaRequestError("illegal base64 data in images") from None
    if raw.startswith(b"\x89PNG"):
        return "image/png"
    if raw.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/octet-stream"


def _check_message(message) -> None:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        role = message.get("role") if isinstance(message, dict) else message
        raise OllamaRequestError(f"invalid role: {role}")
    if not isinstance(message.get("content", ""), str):
        raise OllamaRequestError(
            "json: cannot unmarshal array into Go struct field Message.messages.content of type string"
        )
    if message["role"] == "tool" and "content" not in message:
        raise OllamaRequestError("tool messages must have content")
    for call in message.get("tool_calls") or []:
        if not isinstance(call.get("function", {}).get("arguments"), dict):
            raise OllamaRequestError(
                "json: cannot unmarshal string into Go struct field ToolCallFunction.arguments"
            )


def parse_ollama(body: dict) -> FakeRequest:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise OllamaRequestError("model is required")
    if not isinstance(body.get("messages"), list):
        raise OllamaRequestError("messages is required")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise OllamaRequestError(
            "json: cannot unmarshal into Go struct field ChatRequest.stream of type bool"
        )
    if not isinstance(body.get("options", {}), dict):
        raise OllamaRequestError("json: cannot unmarshal into Go struct field ChatRequest.options")
    if "format" in body and not (body["format"] == "json" or isinstance(body["format"], dict)):
        raise OllamaRequestError(f"invalid format: {body['format']!r}")
    think = body.get("think", False)
    if not (isinstance(think, bool) or think in ("low", "medium", "high")):
        raise OllamaRequestError(f"invalid think value: {think!r}")
    request = FakeRequest(model=body["model"], stream=body.get("stream", True))
    for message in body["messages"]:
        _check_message(message)
        role, content = message["role"], message.get("content", "")
        if role == "system":
            request.system = content
        elif role == "tool":
            request.tool_results.append(FakeToolResult(None, message.get("tool_name"), content))
        else:
            request.images.extend(_media_type(image) for image in message.get("images") or [])
            if role == "user" or content:
                request.turns.append((role, content))
    # Tool results answer the last assistant turn; only those of the final exchange count.
    if not body["messages"] or body["messages"][-1]["role"] != "tool":
        request.tool_results = []
    request.tools = [tool["function"]["name"] for tool in body.get("tools") or []]
    request.max_tokens = (body.get("options") or {}).get("num_predict")
    return request


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _line(payload: dict) -> bytes:
    return orjson.dumps(payload) + b"\n"


class OllamaServer(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict] = []
        self.app.router.add_post("/api/chat", self.chat)
        self.app.router.add_post("/api/embed", self.embed)

    @staticmethod
    def _error(status: int, message: str, retry_after: str | None = None) -> web.Response:
        headers = {"Retry-After": retry_after} if retry_after else {}
        return web.json_response({"error": message}, status=status, headers=headers)

    def _scenario_error(self, scenario: FakeScenario, model: str) -> web.Response:
        status = scenario.error_status
        message = f"fake error {status}"
        if status == 404:
            message = f'model "{model}" not found, try pulling it first'
        return self._error(status, message, scenario.retry_after)

    async def _record(self, request: web.Request) -> dict | None:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        return body if isinstance(body, dict) else None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if body is None:
            return self._error(400, "invalid JSON body")
        try:
            fake_request = parse_ollama(body)
        except OllamaRequestError as exc:
            return self._error(400, str(exc))
        scenario = decide(fake_request)
        if scenario.mode is Mode.ERROR:
            return self._scenario_error(scenario, body["model"])
        if scenario.mode is Mode.BAD_JSON:
            return web.Response(body=b"<html>502 Bad Gateway</html>", content_type="application/json")
        if scenario.mode is Mode.SLOW:
            await asyncio.sleep(5)
        done_reason = "stop"
        if fake_request.max_tokens is not None and fake_request.max_tokens < scenario.completion_tokens:
            # The real server stops at num_predict and says so.
            scenario.completion_tokens, done_reason = fake_request.max_tokens, "length"
        thinking = THINKING if body.get("think") is True else ""
        if fake_request.stream:
            return await self._stream(request, body["model"], scenario, done_reason, thinking)
        if scenario.mode is Mode.CUT:
            request.transport.close()
            return web.Response()
        message = {"role": "assistant", "content": scenario.text}
        if thinking:
            message["thinking"] = thinking
        if scenario.tool_calls:
            message["tool_calls"] = self._tool_calls(scenario)
        return web.json_response(self._final(body["model"], scenario, message, done_reason))

    @staticmethod
    def _tool_calls(scenario: FakeScenario) -> list[dict]:
        return [{"function": {"name": c.name, "arguments": c.arguments}} for c in scenario.tool_calls]

    @staticmethod
    def _final(model: str, scenario: FakeScenario, message: dict, done_reason: str) -> dict:
        return {
            "model": model,
            "created_at": _now(),
            "message": message,
            "done": True,
            "done_reason": done_reason,
            "total_duration": 4883583458,
            "load_duration": 1334875,
            "prompt_eval_count": scenario.prompt_tokens,
            "prompt_eval_duration": 342546000,
            "eval_count": scenario.completion_tokens,
            "eval_duration": 4535599000,
        }

    async def _stream(
        self, request: web.Request, model: str, scenario: FakeScenario, done_reason: str, thinking: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)

        def line(message: dict) -> bytes:
            return _line({"model": model, "created_at": _now(), "message": message, "done": False})

        if thinking:
            await response.write(line({"role": "assistant", "content": "", "thinking": thinking}))
        for number, piece in enumerate(scenario.text_pieces()):
            await response.write(line({"role": "assistant", "content": piece}))
            if model == MID_STREAM_ERROR_MODEL:
                await response.write(_line({"error": MID_STREAM_ERROR}))
                return response
            if scenario.mode is Mode.CUT and number == 0:
                request.transport.close()
                return response
        if scenario.tool_calls:
            # Ollama sends a tool call whole, once its model has finished writing it.
            calls = self._tool_calls(scenario)
            await response.write(line({"role": "assistant", "content": "", "tool_calls": calls}))
        final = self._final(model, scenario, {"role": "assistant", "content": ""}, done_reason)
        await response.write(_line(final))
        return response

    async def embed(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        if body is None:
            return self._error(400, "invalid JSON body")
        model, texts = body.get("model"), body.get("input")
        if not isinstance(model, str) or not model:
            return self._error(400, "model is required")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return self._error(400, "invalid input type")
        scenario = decide(FakeRequest(model=model))
        if scenario.mode is Mode.ERROR:
            return self._scenario_error(scenario, model)
        if scenario.mode is Mode.BAD_JSON:
            return web.Response(body=b"<html>oops", content_type="application/json")
        return web.json_response(
            {
                "model": model,
                "embeddings": [EMBEDDING for _ in texts],
                "total_duration": 14143917,
                "load_duration": 1019500,
                "prompt_eval_count": EMBED_TOKENS_PER_INPUT * len(texts),
            }
        )


@register
class OllamaFake(ProviderFake):
    provider = "ollama"
    # Ollama reports no cache reads.
    features = frozenset({"tools", "parallel_tools", "images", "stream"})

    def new_server(self):
        return OllamaServer()

    def deployment_fields(self):
        # A local Ollama takes no key.
        return {"api_base": self.url}
