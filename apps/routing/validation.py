"""Checks on request bodies: enough to give a clear 400 naming the field before anything is spent.

Everything else the upstream validates, and its 400 reaches the client as it is.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest

from apps.core.errors import invalid_request
from apps.providers.adapters.base import Operation


def json_body(request: HttpRequest) -> dict[str, Any]:
    raw = request.body
    if not raw:
        raise invalid_request("The request body is empty; a JSON object is required.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_json")
    return body


def _is_token_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool) for t in value)


_MAX_INT = 2**31 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int_check(body: dict[str, Any], name: str, *, param: str | None = None) -> None:
    """A field the gateway itself reads (budget reservations count the output allowance)."""
    value = body.get(name)
    if value is None:
        return
    if not _is_int(value):
        raise invalid_request(f"Invalid type for '{param or name}': expected an integer.", param=param or name,
                              code="invalid_type")
    if not 1 <= value <= _MAX_INT:
        raise invalid_request(f"Invalid value for '{param or name}': expected an integer from 1 to {_MAX_INT}.",
                              param=param or name, code="invalid_value")


def validate_body(operation: Operation, body: dict[str, Any]) -> tuple[str, bool]:
    """Returns (model, stream)."""
    model = body.get("model")
    if model is None:
        raise invalid_request("'model' is required.", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model.strip():
        raise invalid_request("'model' must be a non-empty string.", param="model", code="invalid_type")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid_request("'stream' must be a boolean.", param="stream", code="invalid_type")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise invalid_request("'stream_options' must be an object.", param="stream_options", code="invalid_type")
        if not stream:
            raise invalid_request(
                "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
            )
        include_usage = options.get("include_usage")
        if include_usage is not None and not isinstance(include_usage, bool):
            raise invalid_request(
                "'stream_options.include_usage' must be a boolean.",
                param="stream_options.include_usage",
                code="invalid_type",
            )

    for name in ("max_tokens", "max_completion_tokens", "n"):
        positive_int_check(body, name)
    for name, kind, type_name in (("user", str, "a string"), ("metadata", dict, "an object")):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise invalid_request(f"Invalid type for '{name}': expected {type_name}.", param=name,
                                  code="invalid_type")

    if operation is Operation.CHAT:
        messages = body.get("messages")
        if messages is None:
            raise invalid_request("'messages' is required.", param="messages", code="missing_required_parameter")
        if not isinstance(messages, list) or not messages:
            raise invalid_request("'messages' must be a non-empty array.", param="messages", code="invalid_type")
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise invalid_request(
                    f"'messages[{index}]' must be an object.", param=f"messages[{index}]", code="invalid_type"
                )
            role = message.get("role")
            if not isinstance(role, str) or not role:
                raise invalid_request(
                    f"'messages[{index}].role' is required.",
                    param=f"messages[{index}].role",
                    code="missing_required_parameter",
                )
    elif operation is Operation.COMPLETION:
        prompt = body.get("prompt")
        if prompt is None:
            raise invalid_request("'prompt' is required.", param="prompt", code="missing_required_parameter")
        if not (
            isinstance(prompt, str)
            or _is_token_list(prompt)
            or (isinstance(prompt, list) and all(isinstance(p, str) or _is_token_list(p) for p in prompt))
        ):
            raise invalid_request(
                "'prompt' must be a string, an array of strings or an array of tokens.",
                param="prompt",
                code="invalid_type",
            )
    elif operation is Operation.EMBEDDING:
        value = body.get("input")
        if value is None:
            raise invalid_request("'input' is required.", param="input", code="missing_required_parameter")
        if not (
            (isinstance(value, str) and value)
            or _is_token_list(value)
            or (
                isinstance(value, list)
                and value
                and all((isinstance(v, str) and v) or _is_token_list(v) for v in value)
            )
        ):
            raise invalid_request(
                "'input' must be a non-empty string, an array of strings or an array of tokens.",
                param="input",
                code="invalid_type",
            )
        if stream:
            raise invalid_request("Embeddings cannot be streamed.", param="stream")
    elif operation is Operation.RERANK:
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise invalid_request("'query' is required: a non-empty string.", param="query",
                                  code="missing_required_parameter" if query is None else "invalid_type")
        documents = body.get("documents")
        if not isinstance(documents, list) or not documents or not all(
            isinstance(d, str) or (isinstance(d, dict) and isinstance(d.get("text"), str)) for d in documents
        ):
            raise invalid_request("'documents' is required: a non-empty array of strings or {text} objects.",
                                  param="documents")
        if stream:
            raise invalid_request("Rerank cannot be streamed.", param="stream")
    return model, stream
