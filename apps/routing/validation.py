"""Request bodies checked against the public OpenAI (and Cohere rerank) request schemas, before
anything is routed or spent: what OpenAI refuses with a 400, the gateway refuses with a 400
naming the `param`, in OpenAI's words ("Invalid value for 'temperature': ...").

Only the fields the schemas define are checked; any other top-level field passes through to
the providers that take it (provider-specific parameters, `extra_body`). `null` is accepted
for every optional field, as OpenAI accepts it. The checks are a table of small closures
built once, so a valid body costs one dict lookup per field it carries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson
from django.http import HttpRequest

from apps.core.errors import GatewayError, invalid_request
from apps.providers.adapters.base import Operation

Check = Callable[[Any, str], None]  # (value, param) → None, or raises the 400

_MAX_INT = 2**31 - 1
# The name a tool, a JSON schema or a function may have (OpenAI's pattern and length).
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


# --- the body ----------------------------------------------------------------------------------


def _json_content_type(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    # curl -d sends form-urlencoded unless told otherwise; what it sends is still the JSON.
    return media in ("", "application/json", "application/x-www-form-urlencoded") or media.endswith("+json")


def _exact_duplicates(raw: bytes) -> bool:
    """Whether some object in `raw` (valid JSON) names a key twice. orjson keeps the last one
    silently, so a body could say two things and the provider would hear one of them."""
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict:
        nonlocal found
        result = dict(items)
        if len(result) != len(items):
            found = True
        return result

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except RecursionError:
        return False  # deeper than the standard parser goes; orjson read it, so it stands
    return found


def _maybe_repeats_a_key(raw: bytes, body: dict[str, Any]) -> bool:
    """False only when no object in `raw` names a key twice. Written out again, the parsed body
    keeps every colon of `raw` (each key's, and those inside strings) except a repeated key's, and
    gains one for each escaped colon (\\u003a) of `raw`. Counting every \\u003a spelled in `raw`,
    even one that is not an escape, can only make the counts differ: then the exact check decides.
    About five times cheaper than walking the body, which matters on long conversations."""
    try:
        written = orjson.dumps(body)
    except orjson.JSONEncodeError:  # deeper or larger numbers than orjson writes: let the exact check say
        return True
    escaped = raw.count(b"\\u003a") + raw.count(b"\\u003A")
    return written.count(b":") != raw.count(b":") + escaped


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, or a 400 saying why there is none."""
    # META, not request.headers: building the HttpHeaders mapping costs more than the check.
    content_type = request.META.get("CONTENT_TYPE", "")
    if not _json_content_type(content_type):
        raise invalid_request(
            f"Unsupported Content-Type '{content_type}': send the body as application/json.",
            code="unsupported_content_type",
        )
    raw = request.body
    if not raw:
        raise invalid_request("The request body is empty; a JSON object is required.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(
            f"We could not parse the JSON body of your request: {exc}.", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_json")
    # The slower parser that sees every pair is needed only for bodies the quick count cannot clear.
    if _maybe_repeats_a_key(raw, body) and _exact_duplicates(raw):
        raise invalid_request(
            "The JSON body of your request names a key more than once; each key may appear once per object.",
            code="invalid_json",
        )
    return body


# --- OpenAI's messages -------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _invalid_type(param: str, expected: str, value: Any) -> GatewayError:
    return invalid_request(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param=param, code="invalid_type",
    )


def missing(param: str) -> GatewayError:
    return invalid_request(f"Missing required parameter: '{param}'.", param=param,
                           code="missing_required_parameter")


def enforced_params_check(body: dict[str, Any], enforced: tuple[str, ...]) -> None:
    """The key's enforced_params (LiteLLM's): each must be in the request ("metadata.x": nested)."""
    for param in enforced:
        value: Any = body
        for part in param.split("."):
            if not isinstance(value, dict) or part not in value:
                raise invalid_request(
                    f"This key requires '{param}' in every request (its enforced_params).",
                    param=param, code="missing_enforced_param",
                )
            value = value[part]


def _supported(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _invalid_value(param: str, value: Any, values: tuple[str, ...]) -> GatewayError:
    shown = value if isinstance(value, str) and len(value) <= 64 else _kind(value)
    return invalid_request(
        f"Invalid value for '{param}': '{shown}'. Supported values are: {_supported(values)}.",
        param=param, code="invalid_value",
    )


def _out_of_range(param: str, what: str, bound: str, limit: Any, value: Any) -> GatewayError:
    above = bound == "<="
    return invalid_request(
        f"Invalid value for '{param}': {what} {'above maximum' if above else 'below minimum'} value. "
        f"Expected a value {bound} {limit}, but got {value} instead.",
        param=param, code=f"{what}_{'above_max' if above else 'below_min'}_value",
    )


# --- checks ------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def number(low: float, high: float) -> Check:
    def check(value: Any, param: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid_type(param, "a decimal", value)
        if value < low:
            raise _out_of_range(param, "decimal", ">=", low, value)
        if value > high:
            raise _out_of_range(param, "decimal", "<=", high, value)
    return check


def integer(low: int, high: int = _MAX_INT) -> Check:
    def check(value: Any, param: str) -> None:
        if isinstance(value, float) and value.is_integer() and abs(value) >= 2**63:
            value = int(value)  # an integer too large for orjson, which reads it as a float
        if not _is_int(value):
            raise _invalid_type(param, "an integer", value)
        if value < low:
            raise _out_of_range(param, "integer", ">=", low, value)
        if value > high:
            raise _out_of_range(param, "integer", "<=", high, value)
    return check


def boolean(value: Any, param: str) -> None:
    if not isinstance(value, bool):
        raise _invalid_type(param, "a boolean", value)


def string(value: Any, param: str) -> None:
    if not isinstance(value, str):
        raise _invalid_type(param, "a string", value)


def obj(value: Any, param: str) -> None:
    if not isinstance(value, dict):
        raise _invalid_type(param, "an object", value)


def one_of(*values: str) -> Check:
    def check(value: Any, param: str) -> None:
        if value not in values or not isinstance(value, str):
            raise _invalid_value(param, value, values)
    return check


def array_of(item: Check, *, min_items: int = 0, max_items: int | None = None) -> Check:
    def check(value: Any, param: str) -> None:
        if not isinstance(value, list):
            raise _invalid_type(param, "an array", value)
        if len(value) < min_items:
            raise invalid_request(
                f"Invalid '{param}': empty array. Expected an array with minimum length {min_items}, "
                "but got an empty array instead.", param=param, code="empty_array",
            )
        if max_items is not None and len(value) > max_items:
            raise invalid_request(
                f"Invalid '{param}': array too long. Expected an array with maximum length {max_items}, "
                f"but got an array with length {len(value)} instead.", param=param, code="array_above_max_length",
            )
        for index, element in enumerate(value):
            item(element, f"{param}[{index}]")
    return check


def _name(value: Any, param: str) -> None:
    string(value, param)
    if not _NAME.fullmatch(value):
        raise invalid_request(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches the "
            "pattern '^[a-zA-Z0-9_-]{1,64}$'.", param=param, code="invalid_value",
        )


def _fields(value: Any, param: str, required: dict[str, Check], optional: dict[str, Check]) -> None:
    obj(value, param)
    for name, check in required.items():
        item = value.get(name)
        if item is None:
            raise missing(f"{param}.{name}")
        check(item, f"{param}.{name}")
    for name, check in optional.items():
        item = value.get(name)
        if item is not None:
            check(item, f"{param}.{name}")


def shaped(required: dict[str, Check] | None = None, **optional: Check) -> Check:
    """An object with these fields (other fields are left alone)."""
    required = required or {}

    def check(value: Any, param: str) -> None:
        _fields(value, param, required, optional)
    return check


def tagged(**shapes: Check) -> Check:
    """An object whose `type` says which shape it has."""
    kinds = tuple(shapes)

    def check(value: Any, param: str) -> None:
        obj(value, param)
        kind = value.get("type")
        if kind is None:
            raise missing(f"{param}.type")
        shape = shapes.get(kind) if isinstance(kind, str) else None
        if shape is None:
            raise _invalid_value(f"{param}.type", kind, kinds)
        shape(value, param)
    return check


def either(*checks: Check, expected: str) -> Check:
    """The first check whose JSON type matches decides (a string, or an array of parts)."""
    by_type = {kind: check for kind, check in checks}

    def check(value: Any, param: str) -> None:
        for kind, inner in by_type.items():
            if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
                inner(value, param)
                return
        raise _invalid_type(param, expected, value)
    return check


# --- the chat schema ---------------------------------------------------------------------------

_text_part = shaped({"text": string})
_image_url = either((str, string), (dict, shaped({"url": string}, detail=one_of("auto", "low", "high"))),
                    expected="an object")
_USER_PARTS = tagged(
    text=_text_part,
    image_url=shaped({"image_url": _image_url}),
    input_audio=shaped({"input_audio": shaped({"data": string}, format=one_of("wav", "mp3"))}),
    file=shaped({"file": shaped(file_data=string, file_id=string, filename=string)}),
)
_TEXT_PARTS = tagged(text=_text_part)
_ASSISTANT_PARTS = tagged(text=_text_part, refusal=shaped({"refusal": string}))

_user_content = either((str, string), (list, array_of(_USER_PARTS, min_items=1)),
                       expected="a string or an array of content parts")
_text_content = either((str, string), (list, array_of(_TEXT_PARTS, min_items=1)),
                       expected="a string or an array of text parts")
_assistant_content = either((str, string), (list, array_of(_ASSISTANT_PARTS)),
                            expected="a string or an array of text parts")
_tool_call = tagged(function=shaped({"id": string, "function": shaped({"name": string, "arguments": string})}),
                    custom=shaped({"id": string, "custom": shaped({"name": string, "input": string})}))

_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_MESSAGE_SHAPES: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "system": ({"content": _text_content}, {"name": string}),
    "developer": ({"content": _text_content}, {"name": string}),
    "user": ({"content": _user_content}, {"name": string}),
    "assistant": ({}, {"content": _assistant_content, "name": string, "refusal": string,
                       "tool_calls": array_of(_tool_call), "function_call": shaped({"name": string})}),
    "tool": ({"content": _text_content, "tool_call_id": string}, {}),
    "function": ({"name": string}, {"content": string}),
}


def _message(value: Any, param: str) -> None:
    obj(value, param)
    role = value.get("role")
    if role is None:
        raise missing(f"{param}.role")
    shape = _MESSAGE_SHAPES.get(role) if isinstance(role, str) else None
    if shape is None:
        raise _invalid_value(f"{param}.role", role, _ROLES)
    required, optional = shape
    if role == "assistant" and value.get("content") is None and not value.get("tool_calls") \
            and not value.get("function_call"):
        raise missing(f"{param}.content")  # OpenAI: required unless tool_calls or function_call
    _fields(value, param, required, optional)


_messages = array_of(_message, min_items=1)

_function = shaped({"name": _name}, description=string, parameters=obj, strict=boolean)
_tool = tagged(function=shaped({"function": _function}),
               custom=shaped({"custom": shaped({"name": _name}, description=string, format=obj)}))
_tool_choice = either(
    (str, one_of("none", "auto", "required")),
    (dict, tagged(function=shaped({"function": shaped({"name": string})}),
                  custom=shaped({"custom": shaped({"name": string})}),
                  allowed_tools=shaped({"allowed_tools": shaped({"mode": one_of("auto", "required"),
                                                                  "tools": array_of(obj)})}))),
    expected="a string or an object",
)
_response_format = tagged(
    text=shaped(),
    json_object=shaped(),
    json_schema=shaped({"json_schema": shaped({"name": _name}, description=string, schema=obj, strict=boolean)}),
)
_stop = either((str, string), (list, array_of(string, max_items=4)), expected="a string or an array of strings")


def _logit_bias(value: Any, param: str) -> None:
    obj(value, param)
    for token, bias in value.items():
        where = f"{param}.{token}"
        if not (token.isascii() and token.isdigit()):
            raise invalid_request(f"Invalid key in '{param}': '{token}' is not a token id.", param=where,
                                  code="invalid_value")
        number(-100, 100)(bias, where)


def _stream_options(value: Any, param: str) -> None:
    _fields(value, param, {}, {"include_usage": boolean, "include_obfuscation": boolean})


_penalty = number(-2, 2)
_COMMON: dict[str, Check] = {
    "model": string,
    "stream": boolean,
    "stream_options": _stream_options,
    "user": string,
    "metadata": obj,  # LiteLLM's clients put tags and other non-strings there: only its type is checked
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "n": integer(1, 128),
    "stop": _stop,
    "seed": integer(-(2**63), 2**63 - 1),
    "presence_penalty": _penalty,
    "frequency_penalty": _penalty,
    "logit_bias": _logit_bias,
}
CHAT_FIELDS: dict[str, Check] = {
    **_COMMON,
    "messages": _messages,
    "max_tokens": integer(1),
    "max_completion_tokens": integer(1),
    "logprobs": boolean,
    "top_logprobs": integer(0, 20),
    "tools": array_of(_tool, max_items=128),
    "tool_choice": _tool_choice,
    "parallel_tool_calls": boolean,
    "functions": array_of(_function, min_items=1, max_items=128),
    "function_call": either((str, one_of("none", "auto")), (dict, shaped({"name": string})),
                            expected="a string or an object"),
    "response_format": _response_format,
    "reasoning_effort": string,
    "store": boolean,
    "modalities": array_of(one_of("text", "audio")),
    "audio": obj,
    "prediction": obj,
    "service_tier": string,
    "web_search_options": obj,
}


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(t) for t in value)


def _prompt(value: Any, param: str) -> None:
    if isinstance(value, str) or _is_tokens(value):
        return
    if isinstance(value, list) and value and all(isinstance(p, str) or _is_tokens(p) for p in value):
        return
    raise _invalid_type(param, "a string, an array of strings or an array of tokens", value)


COMPLETION_FIELDS: dict[str, Check] = {
    **_COMMON,
    "prompt": _prompt,
    "max_tokens": integer(0),
    "best_of": integer(0, 20),
    "echo": boolean,
    "logprobs": integer(0, 5),
    "suffix": string,
}


def _embedding_input(value: Any, param: str) -> None:
    if isinstance(value, str):
        if not value:
            raise invalid_request(f"Invalid '{param}': empty string. Expected a non-empty string.",
                                  param=param, code="empty_string")
        return
    if _is_tokens(value):
        return
    if isinstance(value, list) and value and all((isinstance(v, str) and v) or _is_tokens(v) for v in value):
        if len(value) > 2048:
            raise invalid_request(
                f"Invalid '{param}': array too long. Expected an array with maximum length 2048, "
                f"but got an array with length {len(value)} instead.", param=param, code="array_above_max_length",
            )
        return
    raise _invalid_type(param, "a non-empty string, an array of strings or an array of tokens", value)


EMBEDDING_FIELDS: dict[str, Check] = {
    "model": string,
    "input": _embedding_input,
    "encoding_format": one_of("float", "base64"),
    "dimensions": integer(1),
    "user": string,
    "stream": boolean,
}


def _query(value: Any, param: str) -> None:
    string(value, param)
    if not value.strip():
        raise invalid_request(f"Invalid '{param}': empty string. Expected a non-empty string.",
                              param=param, code="empty_string")


RERANK_FIELDS: dict[str, Check] = {
    "model": string,
    "query": _query,
    "documents": array_of(either((str, string), (dict, shaped({"text": string})),
                                 expected="a string or an object with 'text'"), min_items=1),
    "top_n": integer(1),
    "return_documents": boolean,
    "max_chunks_per_doc": integer(1),
    "max_tokens_per_doc": integer(1),
    "rank_fields": array_of(string),
    "stream": boolean,
}

def _non_empty_string(value: Any, param: str) -> None:
    string(value, param)
    if not value:
        raise invalid_request(f"Invalid '{param}': empty string. Expected a non-empty string.",
                              param=param, code="empty_string")


def _max_length(limit: int) -> Check:
    def check(value: Any, param: str) -> None:
        _non_empty_string(value, param)
        if len(value) > limit:
            raise invalid_request(
                f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, "
                f"but got a string with length {len(value)} instead.", param=param, code="string_above_max_length",
            )
    return check


# OpenAI's CreateModerationRequest: text, an array of texts, or an array of text and image parts.
_MODERATION_PARTS = tagged(text=_text_part, image_url=shaped({"image_url": shaped({"url": string})}))


def _moderation_input(value: Any, param: str) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        array_of(_MODERATION_PARTS)(value, param)
        return
    raise _invalid_type(param, "a string, an array of strings or an array of content parts", value)


MODERATION_FIELDS: dict[str, Check] = {"model": string, "input": _moderation_input}

# OpenAI's CreateImageRequest (dall-e-2, dall-e-3 and the gpt-image models' fields).
IMAGE_FIELDS: dict[str, Check] = {
    "model": string,
    "prompt": _max_length(32000),
    "n": integer(1, 10),
    "quality": one_of("standard", "hd", "low", "medium", "high", "auto"),
    "response_format": one_of("url", "b64_json"),
    "output_format": one_of("png", "jpeg", "webp"),
    "output_compression": integer(0, 100),
    "size": one_of("auto", "1024x1024", "1536x1024", "1024x1536", "256x256", "512x512", "1792x1024", "1024x1792"),
    "moderation": one_of("low", "auto"),
    "background": one_of("transparent", "opaque", "auto"),
    "style": one_of("vivid", "natural"),
    "user": string,
    "stream": boolean,
    "partial_images": integer(0, 3),
}

# OpenAI's CreateSpeechRequest.
SPEECH_FIELDS: dict[str, Check] = {
    "model": string,
    "input": _max_length(4096),
    "voice": _non_empty_string,
    "instructions": _max_length(4096),
    "response_format": one_of("mp3", "opus", "aac", "flac", "wav", "pcm"),
    "speed": number(0.25, 4.0),
    "stream_format": one_of("sse", "audio"),
}


def _file(value: Any, param: str) -> None:
    # A multipart file part (apps.routing.multipart.UploadedPart); a text field is not a file.
    if not hasattr(value, "content"):
        raise invalid_request(f"Invalid '{param}': expected a file upload (a multipart part with a filename).",
                              param=param, code="invalid_type")


# OpenAI's CreateTranscriptionRequest and CreateTranslationRequest (multipart/form-data).
TRANSCRIPTION_FIELDS: dict[str, Check] = {
    "file": _file,
    "model": string,
    "language": string,
    "prompt": string,
    "response_format": one_of("json", "text", "srt", "verbose_json", "vtt"),
    "temperature": number(0, 1),
    "timestamp_granularities": array_of(one_of("word", "segment")),
    "include": array_of(one_of("logprobs")),
    "stream": boolean,
    "chunking_strategy": string,
}
TRANSLATION_FIELDS: dict[str, Check] = {
    "file": _file,
    "model": string,
    "prompt": string,
    "response_format": one_of("json", "text", "srt", "verbose_json", "vtt"),
    "temperature": number(0, 1),
}

def _files(value: Any, param: str) -> None:
    """One file, or several (gpt-image edits take up to 16, sent as `image[]`)."""
    if isinstance(value, list):
        array_of(_file, min_items=1, max_items=16)(value, param)
    else:
        _file(value, param)


# OpenAI's CreateImageEditRequest and CreateImageVariationRequest (multipart/form-data).
IMAGE_EDIT_FIELDS: dict[str, Check] = {
    "image": _files,
    "mask": _file,
    "model": string,
    "prompt": _max_length(32000),
    "n": integer(1, 10),
    "size": one_of("256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "auto"),
    "quality": one_of("standard", "low", "medium", "high", "auto"),
    "response_format": one_of("url", "b64_json"),
    "output_format": one_of("png", "jpeg", "webp"),
    "output_compression": integer(0, 100),
    "background": one_of("transparent", "opaque", "auto"),
    "input_fidelity": one_of("high", "low"),
    "user": string,
    "stream": boolean,
    "partial_images": integer(0, 3),
}
IMAGE_VARIATION_FIELDS: dict[str, Check] = {
    "image": _file,
    "model": string,
    "n": integer(1, 10),
    "size": one_of("256x256", "512x512", "1024x1024"),
    "response_format": one_of("url", "b64_json"),
    "user": string,
}

# OpenAI's defaults for a model the request may leave out.
DEFAULT_MODELS = {Operation.MODERATION: "omni-moderation-latest", Operation.IMAGE_GENERATION: "dall-e-2",
                  Operation.IMAGE_EDIT: "dall-e-2", Operation.IMAGE_VARIATION: "dall-e-2"}
# Served whole, never as an event stream. (Image generation and edits stream gpt-image's partial
# images, transcriptions gpt-4o-transcribe's text: OpenAI refuses a stream from other models.)
_UNSTREAMED = frozenset({Operation.EMBEDDING, Operation.RERANK, Operation.MODERATION, Operation.AUDIO_SPEECH,
                         Operation.AUDIO_TRANSLATION, Operation.IMAGE_VARIATION})

_SCHEMAS: dict[Operation, tuple[dict[str, Check], tuple[str, ...]]] = {
    Operation.CHAT: (CHAT_FIELDS, ("model", "messages")),
    # /v1/responses is validated as its chat translation (apps.routing.responses_format)
    Operation.RESPONSES: (CHAT_FIELDS, ("model", "messages")),
    Operation.COMPLETION: (COMPLETION_FIELDS, ("model", "prompt")),
    Operation.EMBEDDING: (EMBEDDING_FIELDS, ("model", "input")),
    Operation.RERANK: (RERANK_FIELDS, ("model", "query", "documents")),
    Operation.MODERATION: (MODERATION_FIELDS, ("model", "input")),
    Operation.IMAGE_GENERATION: (IMAGE_FIELDS, ("model", "prompt")),
    Operation.AUDIO_SPEECH: (SPEECH_FIELDS, ("model", "input", "voice")),
    Operation.AUDIO_TRANSCRIPTION: (TRANSCRIPTION_FIELDS, ("file", "model")),
    Operation.AUDIO_TRANSLATION: (TRANSLATION_FIELDS, ("file", "model")),
    Operation.IMAGE_EDIT: (IMAGE_EDIT_FIELDS, ("image", "prompt", "model")),
    Operation.IMAGE_VARIATION: (IMAGE_VARIATION_FIELDS, ("image", "model")),
}


def positive_int_check(body: dict[str, Any], name: str, *, param: str | None = None) -> None:
    """A field the gateway itself reads (budget reservations count the output allowance)."""
    value = body.get(name)
    if value is not None:
        integer(1)(value, param or name)


def validate_body(operation: Operation, body: dict[str, Any]) -> tuple[str, bool]:
    """The body checked against its route's schema; returns (model, stream)."""
    fields, required = _SCHEMAS[operation]
    if body.get("model") is None and operation in DEFAULT_MODELS:
        body["model"] = DEFAULT_MODELS[operation]
    for name in required:
        if body.get(name) is None:
            raise missing(name)
    for name, value in body.items():
        check = fields.get(name)
        if check is not None and value is not None:
            check(value, name)
    model = body["model"]
    if not model.strip():
        raise invalid_request("Invalid 'model': empty string. Expected a non-empty string.", param="model",
                              code="empty_string")
    stream = body.get("stream") or False
    if body.get("stream_options") is not None and not stream:
        raise invalid_request(
            "Invalid value for 'stream_options': only allowed when 'stream' is true.", param="stream_options",
            code="invalid_value",
        )
    if stream and operation in _UNSTREAMED:
        raise invalid_request(f"Invalid value for 'stream': {operation.value} requests cannot be streamed.",
                              param="stream", code="invalid_value")
    if operation is Operation.CHAT and body.get("top_logprobs") is not None and not body.get("logprobs"):
        raise invalid_request("Invalid value for 'top_logprobs': 'logprobs' must be true when it is set.",
                              param="top_logprobs", code="invalid_value")
    return model, stream
