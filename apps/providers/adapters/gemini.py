"""Google Gemini (the Generative Language API): {api_base}/v1beta/models/{model}:generateContent,
the key in `x-goog-api-key`.

Vertex AI serves the same generateContent body from other URLs with Google credentials: its
adapter (apps.providers.adapters.vertex) reuses this translation and overrides auth, URLs and
embeddings.

What differs from OpenAI, and how it is bridged:
- roles are `user` and `model`; system prompts go in `systemInstruction`; consecutive
  turns of one role are merged, as Gemini wants them alternating;
- function calls have no ids: we make stable ones ("call_" + short uuid), and a tool
  result goes back under the function's NAME, found from the earlier assistant tool call;
- a prompt blocked by Google's safety filters (promptFeedback.blockReason, no candidates)
  becomes a 400 with code `content_filter`, as Azure OpenAI answers a filtered prompt;
- streams are SSE without event names and without [DONE]; each event is a whole
  response chunk, function calls arrive whole, usage repeats and the last one counts;
- a function call's `thoughtSignature` (Gemini 2.5+; Gemini 3 refuses a history whose calls
  lost theirs) rides with the OpenAI tool call two ways, so any client brings it back: in
  `extra_content.google.thought_signature` (as Google's own OpenAI endpoint gives it) and in
  the call's id after THOUGHT_SIGNATURE_SEPARATOR (clients that keep only ids keep that).
"""

from __future__ import annotations

import base64
import contextvars
import math
import mimetypes
import re
import struct
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from apps.core.errors import GatewayError, invalid_request
from apps.providers.adapters.base import (
    Operation,
    ProviderAdapter,
    StreamTranslator,
    TranslatedResponse,
    UpstreamRequest,
    Usage,
    load_json_response,
    new_completion_id,
    output_token_limit,
    parse_data_url,
    refuse_or_drop,
    stop_sequences,
    tool_arguments_object,
    upstream_error,
)
from apps.providers.adapters.image_edits import edit_mask, edit_upload

# The OpenAI chat parameters Gemini has an equivalent for. `user` is accepted and not
# sent: Gemini has no end-user field, and refusing it would break most SDK clients.
GEMINI_CHAT_PARAMS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "user",
    }
)
EMBEDDING_PARAMS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
# Imagen (`:predict`): OpenAI's image parameters it has a counterpart for.
IMAGE_PARAMS = frozenset({"model", "prompt", "n", "size", "response_format", "output_format", "user", "quality"})
IMAGEN_MAX_IMAGES = 4
# OpenAI's sizes as Imagen's aspect ratios (1536x1024 is 3:2; Imagen's nearest is 4:3).
IMAGEN_ASPECT_RATIOS = {
    "auto": "1:1", "256x256": "1:1", "512x512": "1:1", "1024x1024": "1:1", "1792x1024": "16:9",
    "1024x1792": "9:16", "1536x1024": "4:3", "1024x1536": "3:4",
}
IMAGEN_MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}

# JSON-schema keywords Gemini's Schema object does not know: it answers 400 "Unknown name".
UNSUPPORTED_SCHEMA_KEYS = frozenset(
    {
        "additionalProperties",
        "$schema",
        "$id",
        "$comment",
        "strict",
        "unevaluatedProperties",
        "patternProperties",
        "dependentRequired",
        "dependentSchemas",
        "examples",
    }
)
_SCHEMA_MAPS = ("properties", "$defs", "definitions")  # name → schema
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")  # [schema]

_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# reasoning_effort → thinkingBudget (tokens). "none" turns thinking off where the model allows it.
_THINKING_BUDGETS = {"none": 0, "minimal": 128, "low": 1024, "medium": 2048, "high": 4096}


# --- OpenAI request → Gemini request -----------------------------------------------------------


def gemini_request_body(body: dict[str, Any]) -> dict[str, Any]:
    """The generateContent body for an OpenAI chat body."""
    system_parts, contents = contents_from_messages(body["messages"])
    if not contents:
        raise invalid_request(
            "Gemini needs at least one user or assistant message besides the system prompt.",
            param="messages",
        )
    payload: dict[str, Any] = {"contents": contents}
    if system_parts:
        payload["systemInstruction"] = {"parts": system_parts}
    if body.get("tools"):
        payload["tools"] = [{"functionDeclarations": function_declarations(body["tools"])}]
    if body.get("tool_choice") is not None:
        payload["toolConfig"] = {"functionCallingConfig": function_calling_config(body["tool_choice"])}
    generation_config = generation_config_from(body)
    if generation_config:
        payload["generationConfig"] = generation_config
    return payload


def contents_from_messages(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """(systemInstruction parts, contents) for OpenAI messages."""
    system_parts: list[dict] = []
    contents: list[dict] = []
    function_names: dict[str, str] = {}  # tool_call_id → function name, from assistant turns

    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        if role in ("system", "developer"):
            system_parts.extend({"text": text} for text in _texts_of(message.get("content"), where) if text)
            continue
        if role == "user":
            turn_role, parts = "user", user_parts(message.get("content"), where)
        elif role == "assistant":
            turn_role, parts = "model", assistant_parts(message, where, function_names)
        elif role in ("tool", "function"):
            turn_role, parts = "user", [function_response_part(message, where, function_names)]
        else:
            raise invalid_request(f"Unknown role '{role}' in {where}.", param=f"{where}.role")
        if not parts:
            continue  # e.g. an assistant turn with neither text nor tool calls
        if contents and contents[-1]["role"] == turn_role:
            contents[-1]["parts"].extend(parts)  # Gemini wants the roles to alternate
        else:
            contents.append({"role": turn_role, "parts": parts})
    return system_parts, contents


def _texts_of(content: Any, where: str) -> list[str]:
    """The texts of a message that may only hold text (system, assistant, tool)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise invalid_request(f"'{where}.content' must be a string or an array.", param=f"{where}.content")
    texts = []
    for number, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            raise invalid_request(
                f"'{where}.content[{number}]' must be a text part here.", param=f"{where}.content[{number}]"
            )
        texts.append(part.get("text") or part.get("refusal") or "")
    return texts


def user_parts(content: Any, where: str) -> list[dict]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise invalid_request(
            f"'{where}.content' must be a string or an array of content parts.", param=f"{where}.content"
        )
    return [_user_part(part, f"{where}.content[{number}]") for number, part in enumerate(content)]


def _user_part(part: Any, where: str) -> dict:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise invalid_request(f"'{where}.text' must be a string.", param=f"{where}.text")
        return {"text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        return media_part(url, f"{where}.image_url.url")
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        if not audio.get("data") or not audio.get("format"):
            raise invalid_request(
                f"'{where}.input_audio' needs 'data' and 'format'.", param=f"{where}.input_audio"
            )
        return {"inlineData": {"mimeType": f"audio/{audio['format']}", "data": audio["data"]}}
    if kind == "file":
        file = part.get("file") or {}
        reference = file.get("file_data") or file.get("file_id")
        return media_part(reference, f"{where}.file")
    raise invalid_request(f"Gemini does not support content parts of type '{kind}'.", param=f"{where}.type")


def media_part(url: Any, where: str) -> dict:
    """An image or file: a data URL goes inline, a Cloud Storage URI by reference."""
    if not isinstance(url, str) or not url:
        raise invalid_request(f"'{where}' must be a data URL or a gs:// URI.", param=where)
    if url.startswith("data:"):
        parsed = parse_data_url(url, param=where)
        return {"inlineData": {"mimeType": parsed.media_type, "data": parsed.data}}
    if url.startswith("gs://"):
        mime_type, _ = mimetypes.guess_type(url)
        if mime_type is None:
            raise invalid_request(
                f"Cannot tell the media type of '{url}' from its extension; Gemini needs it.", param=where
            )
        return {"fileData": {"fileUri": url, "mimeType": mime_type}}
    raise invalid_request(
        "Gemini cannot fetch media from a URL: send the image as a base64 data URL, "
        "or as a gs:// Cloud Storage URI.",
        param=where,
        code="unsupported_media_url",
    )


def file_uris_check(payload: dict, deployment, *, param: str = "messages") -> None:
    """A fileData part names an object the deployment's own credentials read (a gs:// object, a
    Files API file): every tenant of the deployment could name the operator's, or another
    tenant's. Only URIs under the deployment's `allowed_file_uri_prefixes` (its extra params, e.g.
    ["gs://acme-shared-media/"]) are sent; any other is a 403 before any call."""
    allowed = deployment.extra_params.get("allowed_file_uri_prefixes") or ()
    allowed = tuple(p for p in ([allowed] if isinstance(allowed, str) else allowed) if isinstance(p, str) and p)
    for content in payload.get("contents") or ():
        for part in (content.get("parts") or ()) if isinstance(content, dict) else ():
            file_data = part.get("fileData") if isinstance(part, dict) else None
            uri = file_data.get("fileUri") if isinstance(file_data, dict) else None
            if isinstance(uri, str) and not uri.startswith(allowed):
                raise GatewayError(
                    f"This deployment reads no file URI outside its allowed prefixes: {uri[:200]!r} (its "
                    "credentials would read it for whoever asks; the operator lists what tenants may "
                    "name in the deployment's allowed_file_uri_prefixes).",
                    status=403, type="permission_error", param=param, code="file_uri_not_allowed",
                )


def assistant_parts(message: dict, where: str, function_names: dict[str, str]) -> list[dict]:
    parts: list[dict] = [{"text": text} for text in _texts_of(message.get("content"), where) if text]
    for number, call in enumerate(message.get("tool_calls") or []):
        call_where = f"{where}.tool_calls[{number}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise invalid_request(
                f"'{call_where}.function.name' is required.", param=f"{call_where}.function"
            )
        if call.get("id"):
            function_names[call["id"]] = function["name"]
        arguments = tool_arguments_object(function.get("arguments"), param=f"{call_where}.function.arguments")
        part: dict[str, Any] = {"functionCall": {"name": function["name"], "args": arguments}}
        signature = thought_signature_of(call)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def function_response_part(message: dict, where: str, function_names: dict[str, str]) -> dict:
    name = function_names.get(message.get("tool_call_id") or "") or message.get("name")
    if not name:
        raise invalid_request(
            f"'{where}.tool_call_id' matches no earlier assistant tool call; "
            "Gemini needs the function's name.",
            param=f"{where}.tool_call_id",
        )
    text = "".join(_texts_of(message.get("content"), where))
    return {"functionResponse": {"name": name, "response": {"content": text}}}


def function_declarations(tools: Any) -> list[dict]:
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be an array.", param="tools")
    declarations = []
    for number, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise invalid_request("Gemini only takes tools of type 'function'.", param=f"tools[{number}]")
        if not function.get("name"):
            raise invalid_request(
                f"'tools[{number}].function.name' is required.", param=f"tools[{number}].function"
            )
        declaration = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = clean_schema(function.get("parameters"))
        # Gemini refuses an OBJECT schema without properties: a function without parameters.
        if isinstance(parameters, dict) and (
            parameters.get("properties") or parameters.get("type") != "object"
        ):
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return declarations


def clean_schema(schema: Any) -> Any:
    """The JSON schema without the keywords Gemini rejects, at any depth (property names kept)."""
    if isinstance(schema, list):
        return [clean_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned = {}
    for key, value in schema.items():
        if key in UNSUPPORTED_SCHEMA_KEYS:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            cleaned[key] = {name: clean_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS or key in ("items", "not"):
            cleaned[key] = clean_schema(value)
        else:
            cleaned[key] = value
    return cleaned


def function_calling_config(tool_choice: Any) -> dict:
    if isinstance(tool_choice, str) and tool_choice in _TOOL_CHOICE_MODES:
        return {"mode": _TOOL_CHOICE_MODES[tool_choice]}
    function = tool_choice.get("function") if isinstance(tool_choice, dict) else None
    if isinstance(function, dict) and function.get("name"):
        return {"mode": "ANY", "allowedFunctionNames": [function["name"]]}
    raise invalid_request(
        "'tool_choice' must be 'auto', 'none', 'required' or "
        '{"type": "function", "function": {"name": ...}}.',
        param="tool_choice",
    )


def generation_config_from(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for openai_name, gemini_name in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(openai_name) is not None:
            config[gemini_name] = body[openai_name]
    max_tokens = output_token_limit(body)
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = stop_sequences(body)
    config.update(_response_format_config(body.get("response_format")))
    if body.get("reasoning_effort") is not None:
        config["thinkingConfig"] = _thinking_config(body["reasoning_effort"])
    return config


def _response_format_config(response_format: Any) -> dict:
    if response_format is None:
        return {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        config = {"responseMimeType": "application/json"}
        if schema:
            config["responseSchema"] = clean_schema(schema)
        return config
    raise invalid_request(
        "'response_format.type' must be 'text', 'json_object' or 'json_schema'.", param="response_format"
    )


def _thinking_config(effort: Any) -> dict:
    if effort not in _THINKING_BUDGETS:
        raise invalid_request(
            f"'reasoning_effort' must be one of {', '.join(_THINKING_BUDGETS)}.", param="reasoning_effort"
        )
    return {"thinkingBudget": _THINKING_BUDGETS[effort]}


# --- Gemini response → OpenAI response ---------------------------------------------------------


def usage_from_gemini(metadata: Any) -> Usage:
    """Gemini counts thinking apart from the answer; OpenAI's completion tokens include it."""
    if not isinstance(metadata, dict):
        return Usage()
    thoughts = int(metadata.get("thoughtsTokenCount") or 0)
    return Usage(
        # Tokens of built-in tools' results (search, code execution) are input too.
        prompt_tokens=int(metadata.get("promptTokenCount") or 0)
        + int(metadata.get("toolUsePromptTokenCount") or 0),
        completion_tokens=int(metadata.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(metadata.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
        reported=True,
    )


THOUGHT_SIGNATURE_SEPARATOR = "__thought__"


def new_tool_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def tool_call_from(function_call: dict, thought_signature: str | None = None) -> dict:
    """An OpenAI tool call for a functionCall part (Gemini 3 may give an id: kept), carrying
    the part's thought signature if it has one."""
    call_id = function_call.get("id") or new_tool_call_id()
    call: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {
            "name": function_call.get("name") or "",
            "arguments": orjson.dumps(function_call.get("args") or {}).decode(),
        },
    }
    if thought_signature:
        call["id"] = f"{call_id}{THOUGHT_SIGNATURE_SEPARATOR}{thought_signature}"
        call["extra_content"] = {"google": {"thought_signature": thought_signature}}
    return call


def thought_signature_of(call: dict) -> str | None:
    """The signature a client brought back with a tool call (either way it was given)."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    if isinstance(google, dict) and isinstance(google.get("thought_signature"), str):
        return google["thought_signature"]
    call_id = call.get("id")
    if isinstance(call_id, str) and THOUGHT_SIGNATURE_SEPARATOR in call_id:
        return call_id.split(THOUGHT_SIGNATURE_SEPARATOR, 1)[1] or None
    return None


def answer_parts(candidate: dict) -> list[dict]:
    """The candidate's parts a client sees: thoughts (and their signatures) stay out."""
    parts = (candidate.get("content") or {}).get("parts") or []
    return [part for part in parts if isinstance(part, dict) and not part.get("thought")]


def finish_reason_for(gemini_reason: str | None, *, has_tool_calls: bool) -> str:
    reason = _FINISH_REASONS.get(gemini_reason or "STOP", "stop")
    return "tool_calls" if reason == "stop" and has_tool_calls else reason


def prompt_blocked_error(provider: str, payload: dict) -> GatewayError | None:
    """A 400 for a prompt Google's filters refused (no candidates, a blockReason)."""
    if payload.get("candidates"):
        return None
    feedback = payload.get("promptFeedback") or {}
    reason = feedback.get("blockReason")
    if not reason:
        return None
    message = feedback.get("blockReasonMessage") or f"The prompt was blocked ({reason})."
    return GatewayError(f"{provider} error: {message}", status=400, code="content_filter")


def choice_from_candidate(candidate: dict, index: int) -> dict:
    texts, tool_calls = [], []
    for part in answer_parts(candidate):
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            tool_calls.append(tool_call_from(part["functionCall"], part.get("thoughtSignature")))
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "index": candidate.get("index", index),
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason_for(candidate.get("finishReason"), has_tool_calls=bool(tool_calls)),
    }


def chat_completion_from(provider: str, deployment, payload: dict) -> TranslatedResponse:
    blocked = prompt_blocked_error(provider, payload)
    if blocked is not None:
        raise blocked
    usage = usage_from_gemini(payload.get("usageMetadata"))
    candidates = payload.get("candidates") or [{}]
    body = {
        "id": _completion_id(payload),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": payload.get("modelVersion") or deployment.upstream_model,
        "choices": [choice_from_candidate(candidate, index) for index, candidate in enumerate(candidates)],
        "usage": usage.openai(),
    }
    return TranslatedResponse(body=orjson.dumps(body), usage=usage)


def _completion_id(payload: dict) -> str:
    return f"chatcmpl-{payload['responseId']}" if payload.get("responseId") else new_completion_id()


@dataclass
class _CandidateStream:
    """What a stream has sent so far for one candidate (one OpenAI choice)."""

    started: bool = False
    tool_calls: int = 0
    finished: bool = False


class GeminiStreamTranslator(StreamTranslator):
    def __init__(self, provider: str, model: str) -> None:
        super().__init__()
        self.provider = provider
        self.model = model
        self.completion_id: str | None = None
        self.created = int(time.time())
        self.candidates: dict[int, _CandidateStream] = {}

    def feed(self, event: str | None, data: bytes) -> list[dict]:
        payload = self._parse(data)
        if self.completion_id is None:
            self.completion_id = _completion_id(payload)
            self.model = payload.get("modelVersion") or self.model
        if payload.get("usageMetadata"):
            self.usage = usage_from_gemini(payload["usageMetadata"])  # repeated; the last one counts
        blocked = prompt_blocked_error(self.provider, payload)
        if blocked is not None:
            raise blocked
        chunks: list[dict] = []
        for position, candidate in enumerate(payload.get("candidates") or []):
            chunks.extend(self._candidate_chunks(candidate.get("index", position), candidate))
        return chunks

    def finish(self) -> list[dict]:
        chunks = [
            self._chunk(index, {}, "tool_calls" if state.tool_calls else "stop")
            for index, state in self.candidates.items()
            if not state.finished
        ]
        self.done = True
        chunks.append(
            {
                "id": self.completion_id or new_completion_id(),
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage.openai(),
            }
        )
        return chunks

    def _parse(self, data: bytes) -> dict:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise GatewayError(
                f"{self.provider} sent a stream event that is not JSON.",
                status=502,
                type="api_error",
                code="bad_upstream_response",
            ) from None
        if not isinstance(payload, dict):
            raise GatewayError(
                f"{self.provider} sent a stream event that is not a JSON object.",
                status=502,
                type="api_error",
                code="bad_upstream_response",
            )
        if isinstance(payload.get("error"), dict):  # an error in the middle of the stream
            code = payload["error"].get("code")
            raise upstream_error(self.provider, code if isinstance(code, int) else 502, data, {})
        return payload

    def _candidate_chunks(self, index: int, candidate: dict) -> list[dict]:
        state = self.candidates.setdefault(index, _CandidateStream())
        if state.finished:
            return []
        chunks = []
        if not state.started:
            state.started = True
            chunks.append(self._chunk(index, {"role": "assistant", "content": ""}))
        for part in answer_parts(candidate):
            if isinstance(part.get("text"), str) and part["text"]:
                chunks.append(self._chunk(index, {"content": part["text"]}))
            elif isinstance(part.get("functionCall"), dict):
                call = {"index": state.tool_calls,
                        **tool_call_from(part["functionCall"], part.get("thoughtSignature"))}
                state.tool_calls += 1
                chunks.append(self._chunk(index, {"tool_calls": [call]}))
        if candidate.get("finishReason"):
            state.finished = True
            reason = finish_reason_for(candidate["finishReason"], has_tool_calls=state.tool_calls > 0)
            chunks.append(self._chunk(index, {}, reason))
            self.done = all(s.finished for s in self.candidates.values())
        return chunks

    def _chunk(self, index: int, delta: dict, finish_reason: str | None = None) -> dict:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }


# --- embeddings ---------------------------------------------------------------------------------


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    value = body["input"]
    inputs = [value] if isinstance(value, str) else value
    if not all(isinstance(item, str) for item in inputs):
        raise invalid_request("Gemini embeds text only: 'input' cannot hold token arrays.", param="input")
    return inputs


# The encoding the client asked for, from build_request to translate_response of one request
# (they run in the same task; translate_response is not given the request body).
_embedding_encoding: contextvars.ContextVar[str] = contextvars.ContextVar(
    "embedding_encoding", default="float"
)


def embeddings_response(model: str, vectors: list[list[float]], usage: Usage) -> bytes:
    as_base64 = _embedding_encoding.get() == "base64"
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _base64_floats(vector) if as_base64 else vector,
        }
        for index, vector in enumerate(vectors)
    ]
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        }
    )


def _base64_floats(vector: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32s (what the openai SDK asks for by default)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


# --- the adapters -------------------------------------------------------------------------------



# --- images: OpenAI's /v1/images/generations as Imagen's :predict ---------------------------------


def imagen_body_check(provider: str, body: dict, *, drop_params: bool) -> dict:
    """Refuse (or drop) what Imagen cannot do, naming the parameter, before any call."""
    refuse_or_drop(provider, body, IMAGE_PARAMS, drop_params=drop_params)
    n = body.get("n") or 1
    if n > IMAGEN_MAX_IMAGES:
        raise invalid_request(f"{provider} (Imagen) makes at most {IMAGEN_MAX_IMAGES} images per request.",
                              param="n", code="invalid_value")
    if body.get("response_format") == "url":
        raise invalid_request(
            f"{provider} (Imagen) returns images as base64 only: ask for response_format 'b64_json'.",
            param="response_format", code="unsupported_value",
        )
    if body.get("output_format") not in (None, *IMAGEN_MIME_TYPES):
        raise invalid_request(f"{provider} (Imagen) writes png or jpeg images.", param="output_format",
                              code="unsupported_value")
    return body


def imagen_request_body(body: dict) -> dict:
    parameters: dict[str, Any] = {
        "sampleCount": body.get("n") or 1,
        "aspectRatio": IMAGEN_ASPECT_RATIOS.get(body.get("size") or "auto", "1:1"),
    }
    if body.get("output_format"):
        parameters["outputOptions"] = {"mimeType": IMAGEN_MIME_TYPES[body["output_format"]]}
    return {"instances": [{"prompt": body["prompt"]}], "parameters": parameters}


def imagen_response(provider: str, payload: dict) -> TranslatedResponse:
    """Imagen's predictions as OpenAI's images answer (b64_json), priced per image. An answer
    with no image is Imagen's safety filter refusing the prompt: a 400, as OpenAI's refusal."""
    predictions = [p for p in payload.get("predictions") or []
                   if isinstance(p, dict) and isinstance(p.get("bytesBase64Encoded"), str)]
    if not predictions:
        raise GatewayError(
            f"{provider} (Imagen) made no image: its safety filter refused the prompt.",
            status=400, type="invalid_request_error", param="prompt", code="content_policy_violation",
        )
    mime = predictions[0].get("mimeType") or "image/png"
    body = {
        "created": int(time.time()),
        "data": [{"b64_json": p["bytesBase64Encoded"]} for p in predictions],
        "output_format": "jpeg" if mime == "image/jpeg" else "png",
    }
    return TranslatedResponse(body=orjson.dumps(body), usage=Usage(output_images=len(predictions), reported=True))

# --- image edits: OpenAI's /v1/images/edits as Imagen 3 capability's :predict (Vertex AI) -------

IMAGEN_EDIT_MAX_PIXELS = 4096 * 2048  # bounds the mask's redrawing (on the event loop: a few ms a megapixel)
IMAGE_EDIT_PARAMS = frozenset({"model", "image", "mask", "prompt", "n", "size", "response_format", "output_format",
                               "user"})


def imagen_edit_body_check(provider: str, body: dict, *, drop_params: bool) -> dict:
    refuse_or_drop(provider, body, IMAGE_EDIT_PARAMS, drop_params=drop_params)
    n = body.get("n") or 1
    if n > IMAGEN_MAX_IMAGES:
        raise invalid_request(f"{provider} (Imagen) makes at most {IMAGEN_MAX_IMAGES} images per request.",
                              param="n", code="invalid_value")
    if body.get("response_format") == "url":
        raise invalid_request(
            f"{provider} (Imagen) returns images as base64 only: ask for response_format 'b64_json'.",
            param="response_format", code="unsupported_value",
        )
    if body.get("size") not in (None, "auto"):
        raise invalid_request(f"{provider} (Imagen) edits keep the image's own size: leave 'size' out.",
                              param="size", code="unsupported_value")
    if body.get("output_format") not in (None, *IMAGEN_MIME_TYPES):
        raise invalid_request(f"{provider} (Imagen) writes png or jpeg images.", param="output_format",
                              code="unsupported_value")
    return body


def imagen_edit_request_body(body: dict) -> dict:
    """An inpainting request: the image as the raw reference, the area to edit as the mask."""
    image, mask = edit_upload(body, "Imagen")
    parameters: dict[str, Any] = {"editMode": "EDIT_MODE_INPAINT_INSERTION", "sampleCount": body.get("n") or 1}
    if body.get("output_format"):
        parameters["outputOptions"] = {"mimeType": IMAGEN_MIME_TYPES[body["output_format"]]}
    return {
        "instances": [{
            "prompt": body["prompt"],
            "referenceImages": [
                {"referenceType": "REFERENCE_TYPE_RAW", "referenceId": 1,
                 "referenceImage": {"bytesBase64Encoded": base64.b64encode(image).decode()}},
                {"referenceType": "REFERENCE_TYPE_MASK", "referenceId": 2,
                 "referenceImage": {"bytesBase64Encoded": base64.b64encode(
                     edit_mask(image, mask, edit_is_white=True, max_pixels=IMAGEN_EDIT_MAX_PIXELS)).decode()},
                 "maskImageConfig": {"maskMode": "MASK_MODE_USER_PROVIDED"}},
            ],
        }],
        "parameters": parameters,
    }


# A native call on one model: /v1beta/models/{model}:{method}.
_NATIVE_MODEL_PATH = re.compile(r"/models/([^/:]+):(\w+)$")


class GeminiAdapter(ProviderAdapter):
    name = "gemini"
    default_api_base = "https://generativelanguage.googleapis.com"
    api_key_env = "GEMINI_API_KEY"
    chat_params = GEMINI_CHAT_PARAMS
    operations = frozenset({Operation.CHAT, Operation.EMBEDDING, Operation.IMAGE_GENERATION})
    embedding_method = "batchEmbedContents"

    def prepare_body(self, operation, body, *, drop_params):
        body = super().prepare_body(operation, body, drop_params=drop_params)
        if operation is Operation.EMBEDDING:
            refuse_or_drop(self.name, body, EMBEDDING_PARAMS, drop_params=drop_params)
        if operation is Operation.IMAGE_GENERATION:
            return imagen_body_check(self.name, body, drop_params=drop_params)
        if operation is Operation.IMAGE_EDIT:
            return imagen_edit_body_check(self.name, body, drop_params=drop_params)
        # Gemini may always call several functions at once: it cannot promise one call only.
        if body.get("parallel_tool_calls") is False and not drop_params:
            raise invalid_request(
                f"{self.name} cannot turn off parallel tool calls ('parallel_tool_calls': false). "
                "Remove it, or set drop_params to drop unsupported parameters.",
                param="parallel_tool_calls",
                code="unsupported_parameter",
            )
        body.pop("parallel_tool_calls", None)
        return body

    async def build_request(self, operation, deployment, body, *, stream):
        headers = {"Content-Type": "application/json", **await self.auth_headers(deployment)}
        if operation is Operation.EMBEDDING:
            _embedding_encoding.set(body.get("encoding_format") or "float")
            url = await self.model_url(deployment, self.embedding_method)
            payload = self.embedding_body(deployment, body)
        elif operation is Operation.IMAGE_GENERATION:
            url = await self.model_url(deployment, "predict")
            payload = imagen_request_body(body)
        elif operation is Operation.IMAGE_EDIT:
            url = await self.model_url(deployment, "predict")
            payload = imagen_edit_request_body(body)
        else:
            method = "streamGenerateContent?alt=sse" if stream else "generateContent"
            url = await self.model_url(deployment, method)
            payload = gemini_request_body(body)
            file_uris_check(payload, deployment)
        return UpstreamRequest(url=url, headers=headers, body=orjson.dumps(payload))

    def translate_response(self, operation, deployment, raw):
        payload = load_json_response(self.name, raw)
        if operation is Operation.EMBEDDING:
            return self.embedding_response(deployment, payload)
        if operation in (Operation.IMAGE_GENERATION, Operation.IMAGE_EDIT):
            return imagen_response(self.name, payload)
        return chat_completion_from(self.name, deployment, payload)

    def stream_translator(self, operation, deployment):
        return GeminiStreamTranslator(self.name, deployment.upstream_model)

    def translate_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> GatewayError:
        error = upstream_error(self.name, status, raw, headers)
        details = _error_details(raw)
        if any(detail.get("reason") == "API_KEY_INVALID" for detail in details):
            # Google answers a wrong key with 400 INVALID_ARGUMENT; to a client it is an auth failure.
            error.status, error.type, error.code = 401, "authentication_error", "API_KEY_INVALID"
        if status == 429 and "Retry-After" not in error.headers:
            delay = _retry_delay_seconds(details)
            if delay is not None:
                error.headers["Retry-After"] = str(delay)
        return error

    passthrough = True
    passthrough_paths = re.compile(
        # Not batchEmbedContents: each of its requests names a model the path does not.
        r"/v1(beta)?/models(/[^/:]+(:(generateContent|streamGenerateContent|countTokens|embedContent))?)?/?"
    )

    def passthrough_model(self, path: str, body: dict | None) -> str | None:
        match = _NATIVE_MODEL_PATH.search(path)
        return match.group(1) if match else None

    def passthrough_operation(self, path: str) -> Operation | None:
        match = _NATIVE_MODEL_PATH.search(path)
        return Operation.CHAT if match and match.group(2) in ("generateContent", "streamGenerateContent") else None

    def passthrough_stream_error(self, message: str) -> bytes:
        return b"data: " + orjson.dumps({"error": {"code": 502, "message": message, "status": "UNAVAILABLE"}}) + b"\n\n"

    def passthrough_usage(self, path, deployment, raw):
        if raw.lstrip()[:1] == b"[":
            # streamGenerateContent without alt=sse: one JSON array of the chunks; the last
            # one carrying usageMetadata holds the whole call's usage.
            chunks = [c for c in orjson.loads(raw) if isinstance(c, dict) and c.get("usageMetadata")]
            raw = orjson.dumps(chunks[-1]) if chunks else b"{}"
        return super().passthrough_usage(path, deployment, raw)

    async def passthrough_request(self, deployment, *, method, path, query, headers, body, json_body):
        if json_body:
            file_uris_check(json_body, deployment, param="contents")
        match = _NATIVE_MODEL_PATH.search(path)
        if match:  # the model the client named becomes this deployment's
            model = deployment.upstream_model.removeprefix("models/")
            path = path[:match.start(1)] + model + path[match.end(1):]
        base = (deployment.api_base or self.default_api_base).rstrip("/")
        root = base.removesuffix("/v1beta").removesuffix("/v1")
        return UpstreamRequest(
            url=root + path + (f"?{query}" if query else ""),
            headers={**headers, **await self.auth_headers(deployment)}, body=body, method=method,
        )

    # What Vertex AI (apps.providers.adapters.vertex) does differently: auth, URLs, the embeddings call.

    async def auth_headers(self, deployment) -> dict[str, str]:
        return {"x-goog-api-key": deployment.api_key} if deployment.api_key else {}

    async def model_url(self, deployment, method: str) -> str:
        base = (deployment.api_base or self.default_api_base).rstrip("/")
        model = deployment.upstream_model
        if not model.startswith(("models/", "tunedModels/")):
            model = f"models/{model}"
        return f"{base}/v1beta/{model}:{method}"

    def embedding_body(self, deployment, body: dict[str, Any]) -> dict:
        model = deployment.upstream_model.removeprefix("models/")
        requests = []
        for text in embedding_inputs(body):
            request: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
            if body.get("dimensions"):
                request["outputDimensionality"] = body["dimensions"]
            requests.append(request)
        return {"requests": requests}

    def embedding_response(self, deployment, payload: dict) -> TranslatedResponse:
        # batchEmbedContents reports no token counts: the usage stays unreported (no cost).
        vectors = [item.get("values") or [] for item in payload.get("embeddings") or []]
        usage = usage_from_gemini(payload["usageMetadata"]) if payload.get("usageMetadata") else Usage()
        return TranslatedResponse(
            body=embeddings_response(deployment.upstream_model, vectors, usage),
            usage=usage,
        )


def _error_details(raw: bytes) -> list[dict]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [detail for detail in details or [] if isinstance(detail, dict)]


def _retry_delay_seconds(details: list[dict]) -> int | None:
    """google.rpc.RetryInfo's retryDelay ("7s", "0.5s") as whole seconds."""
    for detail in details:
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(1, math.ceil(float(delay[:-1])))
            except ValueError:
                return None
    return None
