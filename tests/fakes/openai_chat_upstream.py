"""OpenAI and Azure OpenAI chat, as the conformance table's fakes (see tests/fakes/brain.py).

Azure differs on the wire: the deployment in the path, `api-version` in the query,
the `api-key` header, and a first stream chunk with empty choices and only
prompt_filter_results.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web

from tests.fakes.openai_responses import ResponsesHandler
from tests.fakes.brain import FakeRequest, FakeToolResult, Mode, decide
from tests.fakes.providers import ProviderFake, register
from tests.fakes.server import FakeServer

API_KEY = "sk-fake-openai"


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if part.get("type") == "text")


def parse_openai(body: dict) -> FakeRequest:
    request = FakeRequest(model=body["model"], stream=bool(body.get("stream")))
    names_by_id: dict[str, str] = {}
    for message in body["messages"]:
        role = message["role"]
        if role in ("system", "developer"):
            request.system = _text_of(message["content"])
        elif role in ("user", "assistant"):
            for call in message.get("tool_calls") or []:
                names_by_id[call["id"]] = call["function"]["name"]
            content = message.get("content")
            if isinstance(content, list):
                for part in content:
                    if part.get("type") == "image_url":
                        url = part["image_url"]["url"]
                        request.images.append(url[5:].split(";")[0] if url.startswith("data:") else "url")
            if role == "user" or content:
                request.turns.append((role, _text_of(content)))
        elif role == "tool":
            call_id = message["tool_call_id"]
            request.tool_results.append(FakeToolResult(call_id, names_by_id.get(call_id), _text_of(message["content"])))
    if request.turns and request.turns[-1][0] == "assistant":
        pass
    request.tools = [t["function"]["name"] for t in body.get("tools") or []]
    # Tool results answer the last assistant turn; only those of the final exchange count.
    if body["messages"][-1]["role"] != "tool":
        request.tool_results = []
    return request


def _usage(scenario) -> dict:
    return {
        "prompt_tokens": scenario.prompt_tokens,
        "completion_tokens": scenario.completion_tokens,
        "total_tokens": scenario.prompt_tokens + scenario.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": scenario.cached_tokens},
    }


class OpenAIChatServer(FakeServer):
    def __init__(self, *, azure: bool) -> None:
        super().__init__()
        self.azure = azure
        self.requests: list[dict] = []
        if azure:
            self.app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.chat)
        else:
            self.app.router.add_post("/v1/chat/completions", self.chat)
        self.responses = ResponsesHandler(check_auth=self._responses_auth)
        self.responses.requests = self.requests
        self.app.router.add_post("/openai/responses" if azure else "/v1/responses", self._responses)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self.responses(request)

    def _responses_auth(self, request: web.Request, body: dict) -> web.Response | None:
        if self.azure:
            if request.headers.get("api-key") != API_KEY:
                return self._error(401, "Access denied due to invalid subscription key.")
            if request.query.get("api-version", "") < "2025-03-01-preview":
                return self._error(404, "Resource not found")
        elif request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._error(401, "Incorrect API key provided.")
        return None

    def _error(self, status: int, message: str, retry_after: str | None = None) -> web.Response:
        headers = {"Retry-After": retry_after} if retry_after else {}
        code = {429: "rate_limit_exceeded", 401: "invalid_api_key", 404: "model_not_found"}.get(status)
        body = {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                          "param": None, "code": code}}
        if self.azure and status == 404:
            body = {"error": {"code": "DeploymentNotFound", "message": message}}
        return web.json_response(body, status=status, headers=headers)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers), "body": body})
        if self.azure:
            if request.headers.get("api-key") != API_KEY:
                return self._error(401, "Access denied due to invalid subscription key.")
            if not request.query.get("api-version"):
                return self._error(404, "Resource not found")
            body["model"] = request.match_info["deployment"]
        elif request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._error(401, "Incorrect API key provided.")
        scenario = decide(parse_openai(body))
        if scenario.mode is Mode.ERROR:
            return self._error(scenario.error_status, f"fake error {scenario.error_status}", scenario.retry_after)
        if scenario.mode is Mode.BAD_JSON:
            return web.Response(body=b"<html>502 Bad Gateway</html>", content_type="application/json")
        if scenario.mode is Mode.SLOW:
            await asyncio.sleep(5)
        model = body["model"]
        tool_calls = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()}}
            for c in scenario.tool_calls
        ]
        if not body.get("stream"):
            if scenario.mode is Mode.CUT:
                request.transport.close()
                return web.Response()
            message = {"role": "assistant", "content": scenario.text or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return web.json_response({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": scenario.finish}],
                "usage": _usage(scenario),
            })
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(choices: list, usage=None) -> None:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000,
                     "model": model, "choices": choices}
            if include_usage:
                chunk["usage"] = usage
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

        if self.azure:  # Azure's first chunk: no choices, only the prompt's filter results
            await response.write(b"data: " + orjson.dumps(
                {"id": "", "object": "", "created": 0, "model": "", "choices": [],
                 "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}) + b"\n\n")
        await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for number, piece in enumerate(scenario.text_pieces()):
            await send([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            if scenario.mode is Mode.CUT and number == 0:
                request.transport.close()
                return response
        for index, call in enumerate(tool_calls):
            await send([{"index": 0, "delta": {"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""}}]}, "finish_reason": None}])
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 7):
                await send([{"index": 0, "delta": {"tool_calls": [{"index": index, "function": {
                    "arguments": arguments[start:start + 7]}}]}, "finish_reason": None}])
        await send([{"index": 0, "delta": {}, "finish_reason": scenario.finish}])
        if include_usage:
            await send([], _usage(scenario))
        await response.write(b"data: [DONE]\n\n")
        return response


@register
class OpenAIFake(ProviderFake):
    provider = "openai"
    azure = False

    def new_server(self):
        return OpenAIChatServer(azure=self.azure)

    def deployment_fields(self):
        return {"api_base": self.url if self.azure else self.url + "/v1", "api_key": API_KEY}


@register
class AzureFake(OpenAIFake):
    provider = "azure"
    azure = True

    def deployment_fields(self):
        return {**super().deployment_fields(), "api_version": "2024-10-21"}


@register
class GroqFake(OpenAIFake):
    """One of the OpenAI-compatible presets (groq/...), through its own provider name."""

    provider = "groq"
