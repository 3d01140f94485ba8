"""A fake OpenAI-compatible upstream speaking the real wire format (JSON, SSE with usage, errors).

Behaviour is chosen by the upstream model name a request carries:
  any name                    a normal answer (chat, completion, embeddings; streaming too)
  error-<status>              an OpenAI-shaped error with that status (429 with Retry-After: 7)
  bad-json                    a 200 whose body is not JSON
  slow                        answers after 5 s (for disconnect tests)
  stream-forever              a stream that never ends (for disconnect tests)
  no-usage                    a stream that never sends the usage chunk
Scripted failures, for the router's tests (an optional -<suffix> keeps names unique):
  rate-limited-<s>            429 with Retry-After: <s>
  context-<n>                 400 context_length_exceeded when the messages hold more than n characters
  content-policy              400 content_policy_violation
  hang                        never answers
  latency-<ms>                answers (or starts a stream) after <ms> milliseconds
  slow-first-token-<ms>       streams: headers at once, the first chunk after <ms>; plain: answers after <ms>
  drip-<ms>                   streams: each word <ms> after the one before (text seen arriving); plain: normal
  cut-before-first-byte       streams: a 200, then the connection drops before any byte; plain: drops
  fail-first-<n>              the first n requests for this exact name get a 500, then answers
Every request is recorded (path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import asyncio
import base64
import re
import struct
import time
import uuid

import orjson
from aiohttp import web

from tests.fakes.openai_responses import ResponsesHandler
from tests.fakes.server import FakeServer

PROMPT_TOKENS = 11
COMPLETION_TOKENS = 7
CACHED_TOKENS = 3
REPLY_WORDS = ["Hello", " from", " the", " fake", " upstream", "."]

_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_value"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("tokens", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_SCRIPT = re.compile(
    r"^(?P<kind>rate-limited|context|latency|slow-first-token|fail-first|drip)-(?P<number>\d+)(?:-.*)?$"
    r"|^(?P<plain>content-policy|hang|cut-before-first-byte)(?:-.*)?$"
)


def _script(model: str) -> tuple[str, int]:
    """(behaviour, its number) a model name scripts, or ("", 0)."""
    match = _SCRIPT.match(model)
    if match is None:
        return "", 0
    if match["plain"]:
        return match["plain"], 0
    return match["kind"], int(match["number"])


def _error_response(status: int, message: str, error_type: str, code: str | None, headers=None) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers or {})


def _usage() -> dict:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


class FakeOpenAIUpstream(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict] = []
        self.closed_streams = 0  # streams whose client went away before the end
        self.served: dict[str, int] = {}  # requests seen per model name (fail-first-<n>)
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/completions", self.completions)
        self.app.router.add_post("/v1/embeddings", self.embeddings)
        self.responses = ResponsesHandler(check_auth=lambda request, body: None)
        self.responses.requests = self.requests
        self.app.router.add_post("/v1/responses", self._responses)
        self.base_url = self.url + "/v1"

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self.responses(request)

    async def _record(self, request: web.Request) -> dict:
        body = orjson.loads(await request.read())
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        return body

    @staticmethod
    def _error(model: str) -> web.Response | None:
        if model == "bad-json":
            return web.Response(body=b"<html>oops", content_type="application/json")
        if not model.startswith("error-"):
            return None
        status = int(model.split("-", 1)[1])
        error_type, code = _ERROR_TYPES.get(status, ("api_error", None))
        headers = {"Retry-After": "7"} if status == 429 else {}
        body = {"error": {"message": f"fake upstream error {status}", "type": error_type, "param": None, "code": code}}
        return web.json_response(body, status=status, headers=headers)

    def count_for(self, model: str) -> int:
        """How many recorded requests named this upstream model."""
        return sum(1 for r in self.requests if r["body"].get("model") == model)

    async def _scripted(self, request: web.Request, body: dict) -> web.StreamResponse | None:
        """The scripted failure or delay a model name asks for; None to answer normally."""
        model = body["model"]
        kind, number = _script(model)
        self.served[model] = self.served.get(model, 0) + 1
        if kind == "rate-limited":
            return _error_response(429, "fake upstream rate limit", "requests", "rate_limit_exceeded",
                                   {"Retry-After": str(number)})
        if kind == "context":
            size = sum(len(m.get("content") or "") for m in body.get("messages") or [] if isinstance(m.get("content"), str))
            if size > number:
                return _error_response(
                    400, f"This model's maximum context length is {number} tokens. However, your messages "
                    f"resulted in {size} tokens. Please reduce the length of the messages.",
                    "invalid_request_error", "context_length_exceeded",
                )
        if kind == "content-policy":
            return _error_response(400, "Your request was rejected as a result of our safety system.",
                                   "invalid_request_error", "content_policy_violation")
        if kind == "hang":
            await asyncio.sleep(3600)
        if kind == "latency" or (kind == "slow-first-token" and not body.get("stream")):
            await asyncio.sleep(number / 1000)
        if kind == "fail-first" and self.served[model] <= number:
            return _error_response(500, "fake upstream error 500", "server_error", None)
        if kind == "cut-before-first-byte":
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            if body.get("stream"):
                await response.prepare(request)  # the 200 and its headers go out, then nothing
            request.transport.close()
            return response
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model = body["model"]
        error = self._error(model)
        if error is not None:
            return error
        scripted = await self._scripted(request, body)
        if scripted is not None:
            return scripted
        if model == "slow":
            await asyncio.sleep(5)
        if body.get("stream"):
            return await self._stream_chat(request, body)
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(REPLY_WORDS), "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(),
                "system_fingerprint": "fp_fake",
            },
            # As OpenAI's CDN does: a bot-management cookie on each answer.
            headers={"Set-Cookie": f"__cf_bm={uuid.uuid4().hex}; path=/; HttpOnly; SameSite=None"},
        )

    async def _stream_chat(self, request: web.Request, body: dict) -> web.StreamResponse:
        model = body["model"]
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                payload["usage"] = None
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        try:
            kind, number = _script(model)
            if kind == "slow-first-token":
                await asyncio.sleep(number / 1000)
            await response.write(chunk({"role": "assistant", "content": ""}))
            if model == "stream-forever":
                while True:
                    await response.write(chunk({"content": " more"}))
                    await asyncio.sleep(0.02)
            for word in REPLY_WORDS:
                if kind == "drip":
                    await asyncio.sleep(number / 1000)
                await response.write(chunk({"content": word}))
            await response.write(chunk({}, "stop"))
            if include_usage and model != "no-usage":
                usage_chunk = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": model,
                    "choices": [],
                    "usage": _usage(),
                }
                await response.write(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.closed_streams += 1
            raise
        return response

    async def completions(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        error = self._error(body["model"])
        if error is not None:
            return error
        return web.json_response(
            {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "text": " world", "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            }
        )

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        error = self._error(body["model"])
        if error is not None:
            return error
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for index, item in enumerate(inputs):
            # Each input its own vector (0.125 to 0.875 in its last place), so answers can't be mixed up.
            vector = [0.5, -0.25, 0.125 * (1 + sum(map(ord, str(item))) % 7)]
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack("<3f", *vector)).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 4 * len(inputs), "total_tokens": 4 * len(inputs)},
            }
        )
