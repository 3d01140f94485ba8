"""The interface every provider's translator implements, and the types it speaks in.

A translator is pure: it builds the upstream request from an OpenAI-format body,
turns the upstream answer (or each stream line) into OpenAI's format, reports usage
and maps upstream errors. Sending bytes is the transport's job (apps.providers.transport).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import orjson

from apps.core.errors import GatewayError

if TYPE_CHECKING:
    from apps.providers.registry import Deployment


class Operation(enum.Enum):
    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # a subset of prompt_tokens, as OpenAI reports it
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0  # a subset of completion_tokens
    reported: bool = False  # False: the provider sent no usage (an interrupted stream, say)


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"


@dataclass(slots=True)
class TranslatedResponse:
    body: bytes
    usage: Usage
    headers: dict[str, str] = field(default_factory=dict)


class StreamTranslator:
    """Turns the upstream stream into OpenAI SSE events, line by line, keeping the usage."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.done = False

    def feed(self, line: bytes) -> list[bytes]:
        """One upstream line in; zero or more complete SSE events (bytes) out."""
        raise NotImplementedError

    def finish(self) -> list[bytes]:
        """The upstream stream ended; events still to send (such as the final [DONE])."""
        return []


class ProviderAdapter:
    name: str = ""
    default_api_base: str | None = None
    api_key_env: str | None = None

    def build_request(
        self, operation: Operation, deployment: "Deployment", body: dict[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        raise NotImplementedError

    def translate_response(
        self, operation: Operation, deployment: "Deployment", raw: bytes
    ) -> TranslatedResponse:
        raise NotImplementedError

    def stream_translator(
        self, operation: Operation, deployment: "Deployment", *, client_wants_usage: bool
    ) -> StreamTranslator:
        raise NotImplementedError

    def translate_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> GatewayError:
        return upstream_error(self.name, status, raw, headers)


_DEFAULT_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def upstream_error(provider: str, status: int, raw: bytes, headers: Mapping[str, str]) -> GatewayError:
    """An upstream error with its status kept, its message and codes carried over where readable."""
    message = None
    error_type = None
    code = None
    param = None
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            message = error.get("message") if isinstance(error.get("message"), str) else None
            error_type = error.get("type") if isinstance(error.get("type"), str) else None
            raw_code = error.get("code")
            code = str(raw_code) if raw_code not in (None, "") else None
            param = error.get("param") if isinstance(error.get("param"), str) else None
        elif isinstance(error, str):
            message = error
    if not message:
        text = raw[:500].decode("utf-8", "replace").strip()
        message = text or f"HTTP {status}"
    if status < 400 or status > 599:
        status = 502
    response_headers = {}
    retry_after = headers.get("retry-after") or headers.get("Retry-After")
    if retry_after:
        response_headers["Retry-After"] = retry_after
    return GatewayError(
        f"{provider} error: {message}",
        status=status,
        type=error_type or _DEFAULT_ERROR_TYPES.get(status, "api_error"),
        param=param,
        code=code,
        headers=response_headers,
    )
