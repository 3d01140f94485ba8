"""The interface every provider's translator implements, and the types it speaks in.

A translator builds the upstream request from an OpenAI-format body, turns the
upstream answer (or each stream event) into OpenAI's format, reports usage and maps
upstream errors. Sending bytes and splitting streams into events is shared
(apps.providers.transport, apps.providers.streaming); the translators never do it.
"""

from __future__ import annotations

import enum
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import orjson

from apps.core.errors import GatewayError, invalid_request

if TYPE_CHECKING:
    from apps.providers.registry import Deployment


class Operation(enum.Enum):
    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"
    RERANK = "rerank"
    MODERATION = "moderation"
    IMAGE_GENERATION = "image_generation"
    IMAGE_EDIT = "image_edit"
    IMAGE_VARIATION = "image_variation"
    AUDIO_SPEECH = "audio_speech"
    AUDIO_TRANSCRIPTION = "audio_transcription"
    AUDIO_TRANSLATION = "audio_translation"
    RESPONSES = "responses"  # OpenAI's Responses API, native (OpenAI, Azure); others get it as CHAT


class StreamFormat(enum.Enum):
    SSE = "sse"  # server-sent events, with or without event names
    NDJSON = "ndjson"  # one JSON object per line
    AWS_EVENTSTREAM = "aws-eventstream"  # AWS's binary event-stream frames


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0  # all input tokens, cached ones included
    completion_tokens: int = 0  # all output tokens, reasoning included
    cached_tokens: int = 0  # input tokens read from the provider's cache (a subset of prompt_tokens)
    cache_write_tokens: int = 0  # input tokens written to the cache (a subset of prompt_tokens)
    reasoning_tokens: int = 0  # a subset of completion_tokens
    search_units: float = 0  # what rerank is billed by
    reported: bool = False  # False: the provider sent no usage (an interrupted stream, say)
    # Priced by apps.spend.pricing where the model has a price for them; 0 when not reported.
    cache_write_1h_tokens: int = 0  # cache writes kept one hour (a subset of cache_write_tokens)
    input_images: int = 0
    output_images: int = 0
    input_seconds: float = 0  # audio or video in, for models priced per second
    output_seconds: float = 0
    input_characters: int = 0  # text to speech, priced per character
    # Catalog key prefixes priced before the model's own keys, best first, for prices that depend
    # on the request (an image's "hd/1024-x-1792"), as LiteLLM names them ("hd/1024-x-1792/dall-e-3").
    price_variants: tuple[str, ...] = ()

    def openai(self) -> dict:
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens or self.cache_write_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.cache_write_tokens:
            usage["prompt_tokens_details"]["cache_creation_tokens"] = self.cache_write_tokens
        if self.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return usage


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    # bytes, or a tuple of byte chunks sent one after the other (a multipart upload whose file
    # part is a view into the client's body: the file is never copied).
    body: bytes | tuple
    method: str = "POST"


@dataclass(slots=True)
class TranslatedResponse:
    body: bytes
    usage: Usage
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"  # transcriptions may answer text, SRT or WebVTT


@dataclass(frozen=True, slots=True)
class UploadedPart:
    """A file part of a multipart upload: its content is a view into the client's body."""

    filename: str
    content_type: str
    content: memoryview


def multipart_chunks(fields: Mapping[str, Any]) -> tuple[tuple, str, int]:
    """(body chunks, Content-Type, length) of a multipart/form-data body holding `fields`: text
    fields, lists (sent as `name[]`, as OpenAI's SDKs do) and files, whose content is sent from
    the view it came in (the upload is never copied)."""
    boundary = "gateway-" + uuid.uuid4().hex
    chunks: list = []

    def header(name: str, extra: str = "") -> None:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{quoted}"{extra}\r\n'.encode())

    for name, value in fields.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            part_name = f"{name}[]" if isinstance(value, list) else name
            if isinstance(item, UploadedPart):
                filename = item.filename.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
                header(part_name, f'; filename="{filename}"')
                chunks += [f"Content-Type: {item.content_type}\r\n\r\n".encode(), item.content, b"\r\n"]
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            header(part_name)
            chunks.append(b"\r\n" + text.encode() + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return tuple(chunks), f"multipart/form-data; boundary={boundary}", sum(len(c) for c in chunks)


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def chat_chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: dict | None = None,
    finish_reason: str | None = None,
) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}],
    }


def chat_completion(
    completion_id: str,
    model: str,
    message: dict,
    finish_reason: str,
    usage: Usage,
    created: int | None = None,
) -> bytes:
    return orjson.dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created or int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": usage.openai(),
        }
    )


class StreamTranslator:
    """Turns upstream stream events into OpenAI chat.completion.chunk dicts, keeping the usage.

    The last chunk it emits for a finished stream is OpenAI's usage chunk (`choices: []`),
    whether or not the client asked for it; the writer hides it from clients that did not.
    """

    def __init__(self) -> None:
        self.usage = Usage()
        self.done = False

    def feed(self, event: str | None, data: bytes) -> list[dict]:
        raise NotImplementedError

    def finish(self) -> list[dict]:
        """The upstream stream ended; chunks still to send."""
        return []


# Every chat parameter of OpenAI's API. An adapter accepts a subset; the rest is
# refused with a 400 naming it, or dropped when drop_params is set.
OPENAI_CHAT_PARAMS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "stop",
        "max_tokens", "max_completion_tokens", "presence_penalty", "frequency_penalty",
        "logit_bias", "logprobs", "top_logprobs", "user", "tools", "tool_choice",
        "parallel_tool_calls", "response_format", "seed", "service_tier", "metadata", "store",
        "reasoning_effort", "modalities", "audio", "prediction", "web_search_options",
        "functions", "function_call", "prompt_cache_key", "safety_identifier", "verbosity",
    }
)
# Parameters of the gateway itself, never sent upstream.
GATEWAY_PARAMS = frozenset({"drop_params", "cache", "guardrails"})  # the gateway's own: never sent upstream
# Values that ask for nothing beyond the default: dropped quietly where unsupported, since
# many clients always send them.
NEUTRAL_VALUES = {"n": 1, "logprobs": False, "presence_penalty": 0, "frequency_penalty": 0,
                  "parallel_tool_calls": True}


def tool_arguments_object(arguments: Any, *, param: str) -> dict:
    """A tool call's arguments as an object: OpenAI sends a JSON string, most providers want
    the object. Empty means no arguments; anything but a JSON object is a 400 naming `param`."""
    if isinstance(arguments, dict):
        return arguments
    if arguments in (None, ""):
        return {}
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise invalid_request(f"'{param}' must be a JSON object.", param=param)
    return parsed


@dataclass(frozen=True, slots=True)
class DataURL:
    media_type: str  # lower-case, without parameters
    data: str  # the base64 payload, as sent


def parse_data_url(url: Any, *, param: str) -> DataURL:
    """A base64 data URL (RFC 2397: data:<type>/<subtype>[;<name>=<value>]*;base64,<data>), or a
    400 naming `param`. Every adapter that takes inline media reads it here."""
    if isinstance(url, str) and url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, *parameters = header.split(";")
        media_type = media_type.strip().lower()
        if comma and data and parameters and parameters[-1].strip().lower() == "base64" and "/" in media_type:
            return DataURL(media_type=media_type, data=data)
    raise invalid_request(f"'{param}' must be a base64 data URL (data:<media type>;base64,<data>).", param=param)


def stop_sequences(body: Mapping[str, Any]) -> list[str] | None:
    """OpenAI's `stop` (a string or a list) as a list."""
    stop = body.get("stop")
    if not stop:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def output_token_limit(body: Mapping[str, Any], *, require_positive_int: bool = False) -> int | None:
    """The client's cap on output tokens: `max_completion_tokens` (OpenAI's current name) over the
    older `max_tokens`; None when neither is set.

    The value is passed on as given: the gateway's request validation has already made both
    positive integers. With require_positive_int anything else is a 400 naming its parameter.
    """
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if require_positive_int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise invalid_request(f"'{name}' must be a positive integer.", param=name)
        return value
    return None


def refuse_or_drop(provider: str, body: dict, allowed: frozenset[str], *, drop_params: bool) -> None:
    """Parameters outside `allowed`: a 400 naming the first, or dropped with drop_params.
    Those sent at their neutral value (n=1, ...) are dropped quietly either way."""
    for key in [k for k in body if k not in allowed and k in NEUTRAL_VALUES]:
        if body[key] == NEUTRAL_VALUES[key]:
            del body[key]
    unsupported = [k for k in body if k not in allowed and k not in GATEWAY_PARAMS and body[k] is not None]
    if unsupported and not drop_params:
        raise invalid_request(
            f"{provider} does not support the parameter '{unsupported[0]}'. "
            "Remove it, or set drop_params to drop unsupported parameters.",
            param=unsupported[0],
            code="unsupported_parameter",
        )
    for key in unsupported:
        del body[key]


class ProviderAdapter:
    name: str = ""
    default_api_base: str | None = None
    api_key_env: str | None = None
    stream_format: StreamFormat = StreamFormat.SSE
    # Chat parameters the provider understands; None means every parameter goes through.
    chat_params: frozenset[str] | None = None
    operations: frozenset[Operation] = frozenset({Operation.CHAT})

    def prepare_body(self, operation: Operation, body: dict[str, Any], *, drop_params: bool) -> dict[str, Any]:
        """The body without gateway parameters, and without (or refusing) what the provider can't take."""
        if operation not in self.operations:
            raise invalid_request(
                f"The {self.name} provider does not support {operation.value} requests.",
                code="unsupported_operation",
            )
        body = {k: v for k, v in body.items() if k not in GATEWAY_PARAMS}
        if operation is not Operation.CHAT or self.chat_params is None:
            return body
        refuse_or_drop(self.name, body, self.chat_params, drop_params=drop_params)
        return body

    async def build_request(
        self, operation: Operation, deployment: "Deployment", body: dict[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        raise NotImplementedError

    def translate_response(
        self, operation: Operation, deployment: "Deployment", raw: bytes
    ) -> TranslatedResponse:
        raise NotImplementedError

    def stream_translator(self, operation: Operation, deployment: "Deployment") -> StreamTranslator:
        raise NotImplementedError

    def translate_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> GatewayError:
        return upstream_error(self.name, status, raw, headers)

    # --- the provider's own API, forwarded as it is (apps.routing.passthrough) ---

    passthrough = False  # whether /<provider>/* serves this provider's native API
    # The native calls served: inference on a model, and reading the model list. Not the
    # account's files, batches, fine-tunes or stores: one provider account serves every
    # tenant of the deployment, so those would be shared between tenants.
    passthrough_paths: re.Pattern | None = None

    def passthrough_model(self, path: str, body: dict | None) -> str | None:
        """The model a native call names (in its JSON body here); None: it names none."""
        model = body.get("model") if body else None
        return model if isinstance(model, str) and model else None

    def passthrough_operation(self, path: str) -> Operation | None:
        """Which of this adapter's translations reads the usage of a native call to `path`;
        None for calls that use no tokens (a model list, a token count)."""
        return None

    def passthrough_stream_error(self, message: str) -> bytes:
        """The event that ends a native stream the upstream cut off, so the client's SDK raises
        instead of taking a truncated answer for a whole one (OpenAI's form here)."""
        error = {"message": message, "type": "server_error", "param": None, "code": "upstream_disconnected"}
        return b"data: " + orjson.dumps({"error": error}) + b"\n\n"

    def passthrough_usage(self, path: str, deployment: "Deployment", raw: bytes) -> Usage:
        """The usage in a native answer that is not streamed, read by the adapter's translation."""
        operation = self.passthrough_operation(path)
        return Usage() if operation is None else self.translate_response(operation, deployment, raw).usage

    def passthrough_stream_translator(self, path: str, deployment: "Deployment") -> StreamTranslator | None:
        """What reads a native stream's usage as its events pass (None: the call uses no tokens)."""
        operation = self.passthrough_operation(path)
        return None if operation is None else self.stream_translator(operation, deployment)

    async def passthrough_request(
        self, deployment: "Deployment", *, method: str, path: str, query: str, headers: dict[str, str],
        body: bytes, json_body: dict | None,
    ) -> UpstreamRequest:
        """The native call sent on to this deployment: its URL, its model, its credentials.
        `headers` are the client's, already cut down to what carries no credential."""
        raise NotImplementedError


    # --- files and batches (apps.routing.batches_api), where the provider has OpenAI's Batch API ---

    batches = False
    # What a batch input line's `url` (and the batch's `endpoint`) may be, in OpenAI's spelling,
    # and the operation whose translation reads each output line's usage.
    batch_endpoints: dict[str, Operation] = {}

    def batch_endpoint(self, endpoint: str) -> str:
        """A batch endpoint in this provider's spelling (OpenAI's: /v1/chat/completions)."""
        return endpoint

    def batch_line_model(self, deployment: "Deployment") -> str:
        """What a batch input line's body.model becomes on this deployment."""
        return deployment.upstream_model

    def files_request(self, deployment: "Deployment", *, method: str, path: str, query: str = "",
                      headers: dict[str, str] | None = None, body: bytes | tuple = b"") -> UpstreamRequest:
        """A call to the provider's files or batches API: `path` is "/files", "/batches/{id}"..."""
        raise NotImplementedError


def passthrough_body(body: bytes, json_body: dict | None, deployment: "Deployment", *,
                     usage_in_stream: bool = False) -> bytes:
    """A native JSON body with the deployment's model in `model` (and, for an OpenAI-format
    stream, usage asked for, so a streamed call is never priced at zero); else as sent."""
    if json_body is None or "model" not in json_body:
        return body
    payload = {**json_body, "model": deployment.upstream_model}
    if usage_in_stream and payload.get("stream") is True:
        options = payload.get("stream_options") if isinstance(payload.get("stream_options"), dict) else {}
        payload["stream_options"] = {**options, "include_usage": True}
    return orjson.dumps(payload)


def load_json_response(provider: str, raw: bytes) -> dict:
    """The upstream's JSON object, or a 502 saying it sent something else."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise GatewayError(
            f"{provider} returned a response that is not a JSON object.",
            status=502,
            type="api_error",
            code="bad_upstream_response",
        )
    return payload


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
    529: "overloaded_error",
}


def error_type_for_status(status: int) -> str:
    return _DEFAULT_ERROR_TYPES.get(status, "api_error")


def upstream_error(provider: str, status: int, raw: bytes, headers: Mapping[str, str]) -> GatewayError:
    """An upstream error with its status kept, its message and codes carried over where readable.

    Understands OpenAI's {"error": {...}}, Anthropic's {"type": "error", "error": {...}},
    Google's {"error": {"code", "message", "status"}}, AWS's {"message"} and Ollama's
    {"error": "..."}; anything else becomes its first 500 characters.
    """
    message = None
    error_type = None
    code = None
    param = None
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]  # Google sometimes wraps the error in a list
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            message = error.get("message") if isinstance(error.get("message"), str) else None
            if isinstance(error.get("type"), str):
                error_type = error["type"]
            raw_code = error.get("code")
            if isinstance(error.get("status"), str):  # Google: code is the HTTP status
                raw_code = error["status"]
            code = str(raw_code) if raw_code not in (None, "") else None
            param = error.get("param") if isinstance(error.get("param"), str) else None
            if message is None and isinstance(payload.get("message"), str):
                message = payload["message"]
        elif isinstance(error, str):
            message = error
    aws_type = headers.get("x-amzn-ErrorType") or headers.get("x-amzn-errortype")
    if aws_type and code is None:
        code = aws_type.split(":")[0]
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
        type=error_type or error_type_for_status(status),
        param=param,
        code=code,
        headers=response_headers,
    )
