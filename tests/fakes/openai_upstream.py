"""A fake OpenAI-compatible upstream speaking the real wire format (JSON, SSE with usage, errors).

Behaviour is chosen by the upstream model name a request carries:
  any name                    a normal answer (chat, completion, embeddings; streaming too)
  error-<status>              an OpenAI-shaped error with that status (429 with Retry-After: 7)
  bad-json                    a 200 whose body is not JSON
  slow                        answers after 5 s (for disconnect tests)
  stream-forever              a stream that never ends (for disconnect tests)
  no-usage                    a stream that never sends the usage chunk
Every request is recorded (path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time

import orjson
from aiohttp import web

from tests.fakes.server import AiohttpThread

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


def _usage() -> dict:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


class FakeOpenAIUpstream:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.closed_streams = 0  # streams whose client went away before the end
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/completions", self.completions)
        self.app.router.add_post("/v1/embeddings", self.embeddings)
        self._server = AiohttpThread(self.app)
        self.url = self._server.url
        self.base_url = self.url + "/v1"

    def start(self) -> "FakeOpenAIUpstream":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

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

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model = body["model"]
        error = self._error(model)
        if error is not None:
            return error
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
            }
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
            await response.write(chunk({"role": "assistant", "content": ""}))
            if model == "stream-forever":
                while True:
                    await response.write(chunk({"content": " more"}))
                    await asyncio.sleep(0.02)
            for word in REPLY_WORDS:
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
        vector = [0.5, -0.25, 0.125]
        data = []
        for index, _ in enumerate(inputs):
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
