"""How the moderations, images and audio routes differ from chat in the request flow
(apps.routing.proxy): the price an image's size and quality pick, a multipart upload read
without copying its file, audio relayed to the client as it arrives."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import AsyncIterator

import aiohttp
import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from apps.core.edge import PlainHeadersMixin
from apps.core.errors import GatewayError
from apps.providers.adapters.base import Operation, Usage
from apps.providers.registry import Deployment
from apps.routing.multipart import multipart_form
from apps.routing.proxy import ClientFormat, RequestAccount, upstream_stream_send
from apps.routing.router import Timeouts
from apps.spend.models import SpendLog


def _size_key(size: str) -> str:
    """LiteLLM's spelling of an image size in its price keys: 1024x1792 → 1024-x-1792."""
    return size.replace("x", "-x-")


class NamedEventWriter:
    """OpenAI's media events out as server-sent events named by their type (the openai SDK reads
    `image_generation.*`, `image_edit.*` and `transcript.*` events as they are)."""

    def write(self, events: list[dict]) -> bytes:
        return b"".join(b"event: " + str(event.get("type") or "message").encode() + b"\ndata: "
                        + orjson.dumps(event) + b"\n\n" for event in events)

    def error(self, error: GatewayError) -> bytes:
        payload = {"type": "error", "error": {"message": error.message, "type": error.type, "param": error.param,
                                              "code": error.code}}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"

    def close(self) -> bytes:
        return b""


class MediaStreams(ClientFormat):
    def stream_writer(self, *, include_usage: bool, model: str) -> NamedEventWriter:
        return NamedEventWriter()


class ImageFormat(MediaStreams):
    """Images: dall-e models are priced per image by size and quality ("hd/1024-x-1792/dall-e-3",
    else "1024-x-1024/dall-e-2"); gpt-image models by the tokens their answer reports (streamed:
    each completed image's event reports them)."""

    def usage_priced(self, usage: Usage, body: dict) -> Usage:
        if usage.prompt_tokens or usage.completion_tokens or usage.price_variants:
            return usage  # priced by tokens, or the adapter knows its model's price variants
        size = body.get("size") or "auto"
        size = _size_key("1024x1024" if size == "auto" else size)
        quality = body.get("quality") or "standard"
        return replace(usage, price_variants=(f"{quality}/{size}", size))


IMAGE_FORMAT = ImageFormat()


class ImageUploadFormat(ImageFormat):
    """Image edits and variations: a multipart upload (the image, a mask), priced as images are."""

    def read_body(self, request: HttpRequest) -> dict:
        return multipart_form(request)


IMAGE_UPLOAD_FORMAT = ImageUploadFormat()


# --- speech: the audio relayed as it arrives ------------------------------------------------------


class AudioStreamResponse(PlainHeadersMixin, StreamingHttpResponse):
    """Audio bytes relayed from the upstream; like SSEResponse, the data plane drives `events`
    itself so a disconnect closes the generator, and with it the upstream response."""

    def __init__(self, events: AsyncIterator[bytes], *, content_type: str, headers: dict[str, str]) -> None:
        super().__init__(
            events, content_type=content_type,
            plain_headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.events = events


class SpeechFormat(ClientFormat):
    """Text to speech: priced per input character (what OpenAI bills tts-1 by), answered with the
    audio as the upstream sends it, never buffered whole."""

    async def deployment_call(self, deployment: Deployment, timeouts: Timeouts, operation: Operation,
                              body: dict, account: RequestAccount) -> HttpResponse:
        account.deployment = deployment
        adapter = deployment.adapter
        drop_params = body.get("drop_params") is True or bool(deployment.extra_params.get("drop_params"))
        payload = adapter.prepare_body(operation, body, drop_params=drop_params)
        upstream_request = await adapter.build_request(operation, deployment, payload, stream=False)
        waiting_since = time.perf_counter()
        try:
            response = await upstream_stream_send(deployment, timeouts, upstream_request)
            chunks = response.content.iter_any()
            try:
                # Until the first audio arrives a failure may still be retried elsewhere.
                first = await chunks.__anext__()
            except StopAsyncIteration:
                response.release()
                raise GatewayError(f"The {deployment.provider} upstream sent no audio.", status=502,
                                   type="api_error", code="empty_upstream_stream") from None
            except (aiohttp.ClientError, asyncio.TimeoutError):
                response.close()
                raise GatewayError(f"The {deployment.provider} upstream closed the connection before any audio.",
                                   status=502, type="api_error", code="upstream_disconnected") from None
        finally:
            account.upstream_seconds += time.perf_counter() - waiting_since
        account.route.first_token()
        usage = Usage(input_characters=len(body.get("input") or ""), reported=True)
        return AudioStreamResponse(
            _audio_relay(first, chunks, response, account, usage),
            content_type=response.headers.get("Content-Type", "application/octet-stream"),
            headers=account.response_headers(),
        )


async def _audio_relay(first: bytes, chunks: AsyncIterator[bytes], response: aiohttp.ClientResponse,
                       account: RequestAccount, usage: Usage) -> AsyncIterator[bytes]:
    """The audio to the client chunk by chunk; settles once, however it ends. The characters are
    billed by the provider once it started speaking, so a cut or abandoned stream costs them too."""
    status, error_type, http_status = SpendLog.Status.SUCCESS, "", 200
    read_to_end = False
    try:
        yield first
        async for chunk in chunks:
            yield chunk
        read_to_end = True
    except (asyncio.CancelledError, GeneratorExit):
        status, error_type = SpendLog.Status.CANCELLED, "client_disconnected"
        raise
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        # The 200 and some audio are out: the client sees a short body; the log says why.
        status, http_status = SpendLog.Status.ERROR, 502
        error_type = "upstream_timeout" if isinstance(exc, asyncio.TimeoutError) else "upstream_disconnected"
    finally:
        if read_to_end:
            response.release()
        else:
            response.close()
        account.settle(status=status, usage=usage, http_status=http_status, error_type=error_type)


SPEECH_FORMAT = SpeechFormat()


# --- transcriptions and translations: multipart in ------------------------------------------------


class AudioUploadFormat(MediaStreams):
    """Transcriptions and translations: a multipart upload in, priced per second of audio as the
    answer reports it. Formats whose answer carries no duration are asked for one that does and
    answered in the format asked: a transcription's `text` (upstream `json`, with `usage`), a
    translation's `json` and `text` (upstream `verbose_json`, with `duration`). SRT and WebVTT are
    passed through, priced (estimated) to their last cue's end."""

    def read_body(self, request: HttpRequest) -> dict:
        return multipart_form(request)

    async def deployment_call(self, deployment: Deployment, timeouts: Timeouts, operation: Operation,
                              body: dict, account: RequestAccount) -> HttpResponse:
        asked = body.get("response_format") or "json"
        if account.stream:  # transcript events, as they come
            return await super().deployment_call(deployment, timeouts, operation, body, account)
        if operation is Operation.AUDIO_TRANSLATION and asked in ("json", "text"):
            upstream_format = "verbose_json"
        elif operation is Operation.AUDIO_TRANSCRIPTION and asked == "text":
            upstream_format = "json"
        else:
            return await super().deployment_call(deployment, timeouts, operation, body, account)
        response = await super().deployment_call(deployment, timeouts, operation,
                                                 {**body, "response_format": upstream_format}, account)
        try:
            text = orjson.loads(response.content).get("text") or ""
        except (orjson.JSONDecodeError, AttributeError):
            return response  # not the JSON asked for: passed on as it came
        if asked == "text":
            response.content = (text + "\n").encode()
            response["Content-Type"] = "text/plain; charset=utf-8"
        else:
            response.content = orjson.dumps({"text": text})
        return response


AUDIO_UPLOAD_FORMAT = AudioUploadFormat()
