"""One request through the data plane: authorize, route, call upstream, settle spend.

Settling (usage → cost → a record on the spend buffer) happens in a `finally`, so
errors, client disconnects and cut streams are recorded too.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from datetime import datetime, timezone
from typing import AsyncIterator

import aiohttp
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from apps.core.errors import GatewayError, permission_denied
from apps.keys.context import KeyContext
from apps.providers.adapters.base import Operation, StreamTranslator, TranslatedResponse, Usage
from apps.providers.streaming import OpenAISSEWriter, decoder_for
from apps.providers.registry import Deployment
from apps.providers.transport import transport, upstream_timeout
from apps.routing.router import deployment_group, deployment_pick
from apps.routing.validation import json_body, validate_body
from apps.spend.buffer import spend_buffer
from apps.spend.models import SpendLog
from apps.spend.pricing import cost_for_usage
from apps.spend.records import SpendRecord
from apps.core.background import spawn
from apps.routing.limits import limits_acquire, limits_settle
from apps.spend.tokens import CHARS_PER_TOKEN, estimate_prompt_tokens

_CALL_TYPES = {
    Operation.CHAT: "chat_completion",
    Operation.COMPLETION: "text_completion",
    Operation.EMBEDDING: "embedding",
    Operation.RERANK: "rerank",
}


class SSEResponse(StreamingHttpResponse):
    """A server-sent-event stream; the data plane's ASGI handler drives `events` directly
    so it can close the generator, and with it the upstream stream, on a disconnect."""

    def __init__(self, events: AsyncIterator[bytes], *, headers: dict[str, str]) -> None:
        super().__init__(events, content_type="text/event-stream", headers=headers)
        self.events = events
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"


class RequestAccount:
    """What is known about one request as it goes; turned into a spend record at the end."""

    __slots__ = ("request_id", "context", "operation", "model", "deployment", "stream", "started",
                 "started_wall", "settled", "body", "limits_acquired", "limit_headers", "scopes")

    def __init__(self, context: KeyContext, operation: Operation) -> None:
        self.request_id = uuid.uuid4().hex
        self.context = context
        self.operation = operation
        self.model = ""
        self.deployment: Deployment | None = None
        self.stream = False
        self.started = time.perf_counter()
        self.started_wall = time.time()
        self.settled = False
        self.body: dict | None = None  # the OpenAI-format request, for estimates when usage is missing
        self.limits_acquired = False  # counted against the key's limits: settle must release them
        self.scopes: tuple = ()
        self.limit_headers: dict[str, str] = {}

    def settle(self, *, status: str, usage: Usage | None = None, http_status: int | None = None,
               error_type: str = "") -> None:
        if self.settled:
            return
        self.settled = True
        usage = usage or Usage()
        deployment = self.deployment
        context = self.context
        ended = time.time()
        cost = cost_for_usage(deployment, usage) if deployment else None
        if self.limits_acquired:
            spawn(
                limits_settle(self.scopes, self.request_id, usage.prompt_tokens + usage.completion_tokens, cost),
                name="limits-settle",
            )
        spend_buffer.add(
            SpendRecord(
                request_id=self.request_id,
                key_id=context.key_id,
                key_hash=context.token_hash,
                team_id=context.team_id,
                organization_id=context.organization_id,
                user_id=context.user_id,
                call_type=_CALL_TYPES[self.operation],
                model=self.model,
                deployment_id=deployment.id if deployment else None,
                provider=deployment.provider if deployment else "",
                upstream_model=deployment.upstream_model if deployment else "",
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                usage_reported=usage.reported,
                cost=cost,
                status=status,
                http_status=http_status,
                error_type=error_type,
                is_stream=self.stream,
                latency_ms=int((time.perf_counter() - self.started) * 1000),
                start_time=datetime.fromtimestamp(self.started_wall, timezone.utc),
                end_time=datetime.fromtimestamp(ended, timezone.utc),
            )
        )

    def settle_error(self, error: GatewayError) -> None:
        self.settle(status=SpendLog.Status.ERROR, http_status=error.status, error_type=error.code or error.type)

    def response_headers(self) -> dict[str, str]:
        headers = {"x-request-id": self.request_id, **self.limit_headers}
        if self.deployment is not None:
            headers["x-gateway-model-id"] = str(self.deployment.id)
        return headers


class ClientFormat:
    """How the client speaks: OpenAI's format here; apps.routing.anthropic_format for /v1/messages."""

    def stream_writer(self, *, include_usage: bool, model: str):
        return OpenAISSEWriter(include_usage=include_usage)

    def response_body(self, translated: TranslatedResponse, model: str) -> bytes:
        return translated.body


OPENAI_FORMAT = ClientFormat()


async def proxy_request(
    request: HttpRequest,
    operation: Operation,
    *,
    body: dict | None = None,
    client_format: ClientFormat = OPENAI_FORMAT,
) -> HttpResponse:
    """Serve one request. `body` is the OpenAI-format body when the caller already translated it."""
    context: KeyContext = request.auth
    if body is None:
        body = json_body(request)
    model, stream = validate_body(operation, body)
    deployment = deployment_pick(await deployment_group(model, context))

    account = RequestAccount(context, operation)
    account.model = model
    account.deployment = deployment
    account.stream = stream
    account.body = body
    adapter = deployment.adapter
    scopes = context.scopes
    if model in context.model_scopes:
        scopes = (*scopes, context.model_scopes[model])
    if scopes:
        account.limit_headers = await limits_acquire(scopes, account.request_id, deployment, body)
        account.limits_acquired = True
        account.scopes = scopes
    try:
        drop_params = body.get("drop_params") is True or bool(deployment.extra_params.get("drop_params"))
        payload = adapter.prepare_body(operation, body, drop_params=drop_params)
        upstream_request = await adapter.build_request(operation, deployment, payload, stream=stream)
        response = await transport.send(
            upstream_request, timeout=deployment.timeout, provider=deployment.provider, stream=stream
        )
        if response.status >= 400:
            try:
                raw = await response.read()
            finally:
                response.release()
            raise adapter.translate_error(response.status, raw, response.headers)
        if stream:
            options = body.get("stream_options") or {}
            writer = client_format.stream_writer(include_usage=bool(options.get("include_usage")), model=model)
            events = _relay_stream(response, adapter.stream_translator(operation, deployment), writer, account)
            # Wait for the first event: an error before it is still an ordinary error response.
            first = await events.__anext__()
            return SSEResponse(_prepend(first, events), headers=account.response_headers())
        try:
            raw = await response.read()
        except asyncio.TimeoutError:
            raise upstream_timeout(deployment.provider) from None
        except aiohttp.ClientError:
            raise GatewayError(
                f"The {deployment.provider} upstream closed the connection mid-response.",
                status=502, type="api_error", code="upstream_disconnected",
            ) from None
        finally:
            response.release()
        translated = adapter.translate_response(operation, deployment, raw)
        account.settle(status=SpendLog.Status.SUCCESS, usage=translated.usage, http_status=200)
        return HttpResponse(
            client_format.response_body(translated, model),
            content_type="application/json",
            headers={**account.response_headers(), **translated.headers},
        )
    except GatewayError as error:
        account.settle_error(error)
        raise
    except StopAsyncIteration:
        error = GatewayError(
            f"The {deployment.provider} stream ended before any event.",
            status=502, type="api_error", code="empty_upstream_stream",
        )
        account.settle_error(error)
        raise error from None
    except asyncio.CancelledError:
        account.settle(status=SpendLog.Status.CANCELLED, error_type="client_disconnected")
        raise


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()


async def _relay_stream(
    response: aiohttp.ClientResponse, translator: StreamTranslator, writer, account: RequestAccount
) -> AsyncIterator[bytes]:
    """Upstream bytes → events (framing) → OpenAI chunks (translator) → client bytes (writer).

    Before the first yield an upstream error propagates (the caller answers it with its
    status); after it, the error goes into the stream in the client's format.
    """
    decoder = decoder_for(account.deployment.adapter.stream_format, account.deployment.provider)
    status, error_type, http_status = SpendLog.Status.SUCCESS, "", 200
    read_to_end = False
    sent_any = False
    generated = [0]  # characters of content and tool arguments sent, for an estimate if usage never comes
    try:
        async for data in response.content.iter_any():
            for event, payload in decoder.feed(data):
                chunks = translator.feed(event, payload)
                _count_generated(chunks, generated)
                out = writer.write(chunks)
                if out:
                    sent_any = True
                    yield out
        for event, payload in decoder.close():
            chunks = translator.feed(event, payload)
            _count_generated(chunks, generated)
            out = writer.write(chunks)
            if out:
                sent_any = True
                yield out
        read_to_end = True
        out = writer.write(translator.finish()) + writer.close()
        sent_any = True
        yield out
    except (asyncio.CancelledError, GeneratorExit):
        status, error_type, http_status = SpendLog.Status.CANCELLED, "client_disconnected", 200
        raise
    except (aiohttp.ClientError, asyncio.TimeoutError, GatewayError) as exc:
        if isinstance(exc, GatewayError):
            error = exc
        else:
            code = "upstream_timeout" if isinstance(exc, asyncio.TimeoutError) else "upstream_disconnected"
            error = GatewayError(
                f"The {account.deployment.provider} stream was cut off: {type(exc).__name__}.",
                status=502 if code == "upstream_disconnected" else 504, type="api_error", code=code,
            )
        status, error_type, http_status = SpendLog.Status.ERROR, error.code or error.type, error.status
        if not sent_any:
            raise error from None
        # The 200 and earlier events are already sent: report the failure in the stream.
        yield writer.error(error)
    finally:
        if read_to_end:
            response.release()  # the connection goes back to the pool
        else:
            # Closing drops the connection, so the upstream stops generating at once.
            response.close()
        usage = translator.usage if translator.usage.reported else _estimated_usage(account, generated[0])
        account.settle(status=status, usage=usage, http_status=http_status, error_type=error_type)


def _count_generated(chunks: list[dict], total: list[int]) -> None:
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            total[0] += len(delta.get("content") or "")
            for call in delta.get("tool_calls") or ():
                total[0] += len((call.get("function") or {}).get("arguments") or "")


def _estimated_usage(account: RequestAccount, generated_chars: int) -> Usage:
    """The provider sent no usage (a cut or abandoned stream): estimate what was used so far."""
    body = account.body or {}
    return Usage(
        prompt_tokens=estimate_prompt_tokens(body.get("messages") or [], body.get("tools")),
        completion_tokens=math.ceil(generated_chars / CHARS_PER_TOKEN),
        reported=False,
    )
