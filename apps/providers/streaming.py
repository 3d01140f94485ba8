"""Splitting upstream streams into events, whatever their framing, and writing OpenAI SSE.

Written once for every provider: a translator only ever sees (event name, payload) pairs.
"""

from __future__ import annotations

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError

from apps.core.errors import GatewayError
from apps.providers.adapters.base import StreamFormat, error_type_for_status


class SSEDecoder:
    """Server-sent events: `event:` names optional, `\\r\\n` or `\\n` line ends, multi-line data."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        self._buffer += chunk
        if b"\n" not in chunk and b"\r" not in chunk:
            return []
        *lines, self._buffer = self._buffer.split(b"\n")
        events = []
        for line in lines:
            self._line(line.rstrip(b"\r"), events)
        return events

    def _line(self, line: bytes, events: list) -> None:
        if not line:
            if self._data:
                events.append((self._event, b"\n".join(self._data)))
            self._event, self._data = None, []
            return
        if line.startswith(b":"):
            return  # a comment (keep-alive)
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")

    def close(self) -> list[tuple[str | None, bytes]]:
        events: list = []
        if self._buffer:
            self._line(self._buffer.rstrip(b"\r"), events)
            self._buffer = b""
        self._line(b"", events)
        return events


class NDJSONDecoder:
    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        self._buffer += chunk
        if b"\n" not in chunk:
            return []
        *lines, self._buffer = self._buffer.split(b"\n")
        return [(None, line) for line in lines if line.strip()]

    def close(self) -> list[tuple[str | None, bytes]]:
        line, self._buffer = self._buffer, b""
        return [(None, line)] if line.strip() else []


class AWSEventStreamDecoder:
    """AWS event-stream frames, both CRCs checked (botocore's parser). Exception and error
    frames become a GatewayError with the matching HTTP status."""

    _EXCEPTION_STATUS = {
        "validationException": 400,
        "accessDeniedException": 403,
        "resourceNotFoundException": 404,
        "throttlingException": 429,
        "modelStreamErrorException": 424,
        "modelTimeoutException": 408,
        "internalServerException": 500,
        "serviceUnavailableException": 503,
    }

    def __init__(self, provider: str = "bedrock") -> None:
        self._buffer = EventStreamBuffer()
        self._provider = provider
        # An error decoded after good events in the same read waits until those are delivered.
        self._pending_error: GatewayError | None = None

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        if self._pending_error is not None:
            raise self._pending_error
        self._buffer.add_data(chunk)
        events: list[tuple[str | None, bytes]] = []
        try:
            for message in self._buffer:
                events.append(self._event(message))
        except ParserError as exc:
            error = GatewayError(
                f"{self._provider} sent a corrupt event-stream frame: {exc}",
                status=502, type="api_error", code="bad_upstream_response",
            )
        except GatewayError as exc:
            error = exc
        else:
            return events
        if events:
            self._pending_error = error
            return events
        raise error

    def _event(self, message) -> tuple[str | None, bytes]:
        headers = message.headers
        kind = headers.get(":message-type")
        if kind == "event":
            return headers.get(":event-type"), message.payload
        if kind == "exception":
            name = headers.get(":exception-type", "exception")
            try:
                text = orjson.loads(message.payload).get("message") or name
            except (orjson.JSONDecodeError, AttributeError):
                text = message.payload[:300].decode("utf-8", "replace")
            status = self._EXCEPTION_STATUS.get(name, 502)
            raise GatewayError(
                f"{self._provider} error: {text}", status=status, type=error_type_for_status(status), code=name
            )
        raise GatewayError(
            f"{self._provider} error: {headers.get(':error-message', 'stream error')}",
            status=502,
            type="api_error",
            code=str(headers.get(":error-code", "stream_error")),
        )

    def close(self) -> list[tuple[str | None, bytes]]:
        if self._pending_error is not None:
            raise self._pending_error
        return []


def decoder_for(stream_format: StreamFormat, provider: str):
    if stream_format is StreamFormat.NDJSON:
        return NDJSONDecoder()
    if stream_format is StreamFormat.AWS_EVENTSTREAM:
        return AWSEventStreamDecoder(provider)
    return SSEDecoder()


class OpenAISSEWriter:
    """OpenAI chunks out as `data: {...}` events, `data: [DONE]` last; the usage chunk only
    for a client that asked for it with stream_options.include_usage."""

    def __init__(self, *, include_usage: bool) -> None:
        self.include_usage = include_usage

    def write(self, chunks: list[dict]) -> bytes:
        parts = []
        for chunk in chunks:
            if not chunk.get("choices") and "usage" in chunk:
                if not self.include_usage:
                    continue
            elif self.include_usage:
                chunk.setdefault("usage", None)
            parts.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
        return b"".join(parts)

    def error(self, error: GatewayError) -> bytes:
        return b"data: " + orjson.dumps(error.body()) + b"\n\n"

    def close(self) -> bytes:
        return b"data: [DONE]\n\n"
