"""multipart/form-data request bodies (audio uploads), read without copying their files.

The data plane holds the body once (bounded by GATEWAY_MAX_BODY_BYTES, as every route); a file
part is a memoryview into it, which the upstream request sends as it is. Text fields become
strings, `name[]` fields lists (as OpenAI's SDKs send arrays), and the fields OpenAI types as
numbers or booleans are converted. Anything malformed is a 400, naming the field when there is one.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.core.errors import GatewayError, invalid_request
from apps.providers.adapters.base import UploadedPart

# Form fields OpenAI's schemas type as numbers and booleans (everything else stays a string).
NUMBER_FIELDS = frozenset({"temperature"})
INTEGER_FIELDS = frozenset({"n", "output_compression", "partial_images"})
BOOLEAN_FIELDS = frozenset({"stream"})
_MAX_HEADER_BYTES = 8192


def _malformed(message: str, param: str | None = None) -> GatewayError:
    return invalid_request(f"The multipart body is malformed: {message}", param=param, code="invalid_multipart")


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """`form-data; name="file"; filename="a.mp3"` → ("form-data", {"name": "file", "filename": "a.mp3"})."""
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    while rest:
        rest = rest.lstrip(" \t;")
        key, eq, rest = rest.partition("=")
        if not eq:
            break
        key = key.strip().lower()
        if rest.startswith('"'):
            chars, index = [], 1
            while index < len(rest) and rest[index] != '"':
                if rest[index] == "\\" and index + 1 < len(rest):
                    index += 1
                chars.append(rest[index])
                index += 1
            params[key] = "".join(chars)
            rest = rest[index + 1:]
        else:
            raw, _, rest = rest.partition(";")
            params[key] = raw.strip()
    return kind.strip().lower(), params


def _typed(name: str, text: str) -> Any:
    if name in NUMBER_FIELDS:
        try:
            return float(text)
        except ValueError:
            raise invalid_request(f"Invalid type for '{name}': expected a decimal, but got '{text[:40]}' instead.",
                                  param=name, code="invalid_type") from None
    if name in INTEGER_FIELDS:
        try:
            return int(text)
        except ValueError:
            raise invalid_request(f"Invalid type for '{name}': expected an integer, but got '{text[:40]}' instead.",
                                  param=name, code="invalid_type") from None
    if name in BOOLEAN_FIELDS:
        if text.lower() not in ("true", "false"):
            raise invalid_request(f"Invalid type for '{name}': expected a boolean, but got '{text[:40]}' instead.",
                                  param=name, code="invalid_type")
        return text.lower() == "true"
    return text


def multipart_form(request: HttpRequest) -> dict[str, Any]:
    """The request's multipart form as a dict (files as UploadedPart), or a 400 saying why not."""
    kind, params = _header_params(request.headers.get("Content-Type", ""))
    if kind != "multipart/form-data":
        raise invalid_request(
            f"Unsupported Content-Type '{request.headers.get('Content-Type', '')}': send the body as "
            "multipart/form-data.", code="unsupported_content_type",
        )
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise _malformed("the Content-Type names no boundary.")
    body: bytes = request.body
    view = memoryview(body)
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    position = body.find(delimiter)
    if position < 0:
        raise _malformed("no part starts with the boundary the Content-Type names.")
    form: dict[str, Any] = {}
    while True:
        position += len(delimiter)
        if body[position:position + 2] == b"--":
            return form  # the closing delimiter
        if body[position:position + 2] != b"\r\n":
            raise _malformed("a boundary line is not followed by CRLF.")
        headers_end = body.find(b"\r\n\r\n", position + 2, position + 2 + _MAX_HEADER_BYTES)
        if headers_end < 0:
            raise _malformed("a part's headers do not end (or are too long).")
        headers = {}
        for line in body[position + 2:headers_end].decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon:
                raise _malformed(f"a part's header line has no colon: {line[:60]!r}.")
            headers[name.strip().lower()] = value.strip()
        disposition, disposition_params = _header_params(headers.get("content-disposition", ""))
        name = disposition_params.get("name")
        if disposition != "form-data" or not name:
            raise _malformed("a part has no Content-Disposition: form-data with a name.")
        start = headers_end + 4
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise _malformed(f"the part '{name}' is not closed by the boundary.", param=name)
        if "filename" in disposition_params:
            content_type = headers.get("content-type") or "application/octet-stream"
            value: Any = UploadedPart(filename=disposition_params["filename"], content_type=content_type,
                                      content=view[start:end])
        else:
            try:
                value = _typed(name.removesuffix("[]"), body[start:end].decode("utf-8"))
            except UnicodeDecodeError:
                raise invalid_request(f"Invalid '{name}': the form field is not UTF-8 text.", param=name,
                                      code="invalid_value") from None
        if name.endswith("[]"):
            form.setdefault(name[:-2], [])
            if not isinstance(form[name[:-2]], list):
                raise _malformed(f"the field '{name[:-2]}' is given both as a value and as a list.",
                                 param=name[:-2])
            form[name[:-2]].append(value)
        elif name in form:
            raise invalid_request(f"The form names '{name}' more than once; each field may appear once.",
                                  param=name, code="invalid_multipart")
        else:
            form[name] = value
        position = end + 2
