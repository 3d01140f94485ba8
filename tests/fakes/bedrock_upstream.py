"""AWS Bedrock Converse and ConverseStream, as the conformance table's fake (see tests/fakes/brain.py).

Strict like the service:
- auth: SigV4 whose credential scope names this fake's key, region and the service `bedrock`
  (the signature itself is not checked here; tests/providers/test_bedrock.py recomputes it),
  or a Bedrock API key as a bearer token; anything else is a 403 as AWS writes it;
- the body is checked against botocore's own model of the API (unknown keys, missing required
  fields, one member per union, enums, patterns, lengths, base64 blobs), then against the rules
  the model cannot express: turns start with user and alternate, no blank text, every toolUse
  answered by toolResults in the next user turn (and no others), a toolConfig whenever tool
  blocks are present, image bytes of the format they claim;
- errors are a status, `x-amzn-ErrorType` and {"message"}; streams are binary event-stream
  frames with both CRCs, usage in a `metadata` event after `messageStop`, payloads padded
  with an opaque "p" key as the service does.

Scenarios beyond brain.py's, by upstream model name (streamed requests only):
  stream-throttled       200, messageStart, then a throttlingException frame
  stream-throttled-late  200, some text, then a throttlingException frame
  stream-bad-crc         200, messageStart, then a frame whose message CRC is wrong
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import struct
import zlib
from functools import lru_cache
from urllib.parse import unquote

import botocore.session
import orjson
from aiohttp import web
from botocore.validate import ParamValidator

from tests.fakes.brain import FakeRequest, FakeScenario, FakeToolResult, Mode, decide
from tests.fakes.providers import ProviderFake, register
from tests.fakes.server import FakeServer

ACCESS_KEY_ID = "AKIAFAKEBEDROCK00001"
SECRET_ACCESS_KEY = "fake-bedrock-secret-key"
REGION = "eu-west-3"
API_KEY = "ABSKfakebedrockapikey"  # a Bedrock API key, sent as a bearer token
EVENTSTREAM = "application/vnd.amazon.eventstream"
ERROR_TYPES = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
    529: "ServiceUnavailableException",
}
SIGV4_HEADER = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
IMAGE_MAGIC = {
    "png": (b"\x89PNG",), "jpeg": (b"\xff\xd8",), "gif": (b"GIF87a", b"GIF89a"), "webp": (b"RIFF",),
}
THROTTLED = "Too many tokens, please wait before trying again."
STARTS_WITH_USER = ("A conversation must start with a user message. "
                    "Try again with a conversation that starts with a user message.")


class Invalid(Exception):
    """A request the service refuses: (status, AWS error type, message)."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


def aws_error(status: int, error_type: str, message: str, retry_after: str | None = None) -> web.Response:
    headers = {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
               "x-amzn-RequestId": "00000000-fake-0000-0000-000000000000"}
    if retry_after:
        headers["Retry-After"] = retry_after
    return web.json_response({"message": message}, status=status, headers=headers)


# --- the binary event-stream encoding ------------------------------------------------------------


def frame(headers: list[tuple[str, str]], payload: bytes, *, corrupt: bool = False) -> bytes:
    """One event-stream message: prelude (lengths + CRC), string headers, payload, message CRC."""
    encoded = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode())) + value.encode()
        for name, value in headers
    )
    prelude = struct.pack(">II", 16 + len(encoded) + len(payload), len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    crc = zlib.crc32(message) ^ (0xFFFFFFFF if corrupt else 0)
    return message + struct.pack(">I", crc)


def event_frame(event: str, payload: dict, *, corrupt: bool = False) -> bytes:
    payload = {**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"[: 8 + len(event)]}  # opaque padding
    headers = [(":event-type", event), (":content-type", "application/json"), (":message-type", "event")]
    return frame(headers, orjson.dumps(payload), corrupt=corrupt)


def exception_frame(exception: str, message: str) -> bytes:
    headers = [(":exception-type", exception), (":content-type", "application/json"),
               (":message-type", "exception")]
    return frame(headers, orjson.dumps({"message": message}))


# --- request checks ------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def operation_model(name: str):
    return botocore.session.get_session().get_service_model("bedrock-runtime").operation_model(name)


def _from_wire(shape, value, path: str):
    """JSON as sent → the parameters botocore validates: blobs arrive base64-encoded."""
    if shape.type_name == "structure" and isinstance(value, dict) and not shape.is_document_type:
        return {k: _from_wire(shape.members[k], v, f"{path}.{k}") if k in shape.members else v
                for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_from_wire(shape.member, v, f"{path}.{i}") for i, v in enumerate(value)]
    if shape.type_name == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(400, "ValidationException", f"Invalid base64 at '{path}'.") from None
    return value


def _constraint_errors(shape, value, path: str) -> list[str]:
    """What botocore's validator leaves out: enums, patterns, string lengths, number maxima."""
    meta = shape.metadata
    if shape.type_name == "structure":
        if shape.is_document_type or not isinstance(value, dict):
            return []
        return [e for k, v in value.items() if k in shape.members
                for e in _constraint_errors(shape.members[k], v, f"{path}.{k}")]
    if shape.type_name == "list" and isinstance(value, list):
        return [e for i, v in enumerate(value)
                for e in _constraint_errors(shape.member, v, f"{path}.{i}.member")]
    if shape.type_name == "map" and isinstance(value, dict):
        return [e for k, v in value.items() for e in
                [*_constraint_errors(shape.key, k, f"{path}.key"), *_constraint_errors(shape.value, v, path)]]
    failed = f"Value at '{path}' failed to satisfy constraint: Member must"
    errors = []
    if shape.type_name == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            errors.append(f"{failed} satisfy enum value set: {shape.enum}")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            errors.append(f"{failed} satisfy regular expression pattern: {meta['pattern']}")
        if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
            errors.append(f"{failed} have length between {meta.get('min', 0)} and {meta.get('max')}")
    if shape.type_name in ("float", "double", "integer", "long") and isinstance(value, (int, float)):
        if "max" in meta and value > meta["max"]:
            errors.append(f"{failed} have value less than or equal to {meta['max']}")
    return errors


def validate_shape(operation: str, model_id: str, body: dict) -> None:
    shape = operation_model(operation).input_shape
    params = {k: _from_wire(shape.members[k], v, k) if k in shape.members else v for k, v in body.items()}
    report = ParamValidator().validate({**params, "modelId": model_id}, shape)
    if report.has_errors():
        raise Invalid(400, "ValidationException", report.generate_report())
    errors = _constraint_errors(shape, body, "")
    if errors:
        count = f"{len(errors)} validation error{'s' * (len(errors) > 1)}"
        raise Invalid(400, "ValidationException", f"{count} detected: " + "; ".join(errors))


def _validation(message: str) -> Invalid:
    return Invalid(400, "ValidationException", message)


def _check_blocks(blocks: list[dict], where: str) -> None:
    for index, block in enumerate(blocks):
        if "text" in block and not block["text"].strip():
            raise _validation(f"The text field in the ContentBlock object at {where}.content.{index} is "
                              "blank. Add text to the text field, and try again.")
        image = block.get("image")
        if image and "bytes" in image["source"]:
            data = base64.b64decode(image["source"]["bytes"])
            if not data.startswith(IMAGE_MAGIC[image["format"]]):
                raise _validation(f"{where}.content.{index}.image: not a {image['format']} image.")
        tool_use = block.get("toolUse")
        if tool_use is not None and not isinstance(tool_use["input"], dict):
            raise _validation(f"{where}.content.{index}.toolUse.input must be a JSON object.")


def validate_conversation(body: dict) -> None:
    messages = body["messages"]
    if not messages:
        raise _validation(STARTS_WITH_USER)
    for index, block in enumerate(body.get("system") or []):
        if "text" in block and not block["text"].strip():
            raise _validation(f"The text field in the SystemContentBlock object at system.{index} is blank.")
    expected_role = "user"
    pending_tool_uses: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if message["role"] != expected_role:
            if index == 0:
                raise _validation(STARTS_WITH_USER)
            raise _validation("A conversation must alternate between user and assistant roles. Make sure the "
                              "conversation alternates between user and assistant roles and try again.")
        if not message["content"]:
            raise _validation(f"The content field in the Message object at {where} is empty. "
                              "Add a ContentBlock object to the content field and try again.")
        _check_blocks(message["content"], where)
        results = {b["toolResult"]["toolUseId"] for b in message["content"] if "toolResult" in b}
        if results - pending_tool_uses:
            raise _validation(f"{where}: toolResult ids {sorted(results - pending_tool_uses)} match no "
                              "toolUse block of the previous assistant turn.")
        if pending_tool_uses - results:
            raise _validation(f"Expected toolResult blocks at {where}.content for the following Ids: "
                              f"{', '.join(sorted(pending_tool_uses - results))}")
        pending_tool_uses = {b["toolUse"]["toolUseId"] for b in message["content"] if "toolUse" in b}
        expected_role = "assistant" if expected_role == "user" else "user"
    has_tool_blocks = any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])
    tool_config = body.get("toolConfig") or {}
    if has_tool_blocks and not tool_config.get("tools"):
        raise _validation(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    choice = tool_config.get("toolChoice") or {}
    names = tool_names(body)
    if "tool" in choice and choice["tool"]["name"] not in names:
        raise _validation(f"The tool {choice['tool']['name']} in toolChoice is not in toolConfig.tools.")


# --- the request as brain.py sees it -----------------------------------------------------------


def parse_converse(model: str, body: dict, *, stream: bool) -> FakeRequest:
    request = FakeRequest(model=model, stream=stream)
    system = [block["text"] for block in body.get("system") or [] if "text" in block]
    request.system = "\n".join(system) if system else None
    names_by_id: dict[str, str] = {}
    for message in body["messages"]:
        blocks = message["content"]
        texts = "".join(block["text"] for block in blocks if "text" in block)
        for block in blocks:
            if "toolUse" in block:
                names_by_id[block["toolUse"]["toolUseId"]] = block["toolUse"]["name"]
            if "image" in block:
                request.images.append("image/" + block["image"]["format"])
        only_tool_blocks = all("toolUse" in b or "toolResult" in b or "cachePoint" in b for b in blocks)
        if message["role"] == "user" and not only_tool_blocks or message["role"] == "assistant" and texts:
            request.turns.append((message["role"], texts))
    last = body["messages"][-1]
    if last["role"] == "user":
        for block in last["content"]:
            if "toolResult" in block:
                result = block["toolResult"]
                content = "".join(c.get("text") or orjson.dumps(c.get("json")).decode()
                                  for c in result["content"])
                call_id = result["toolUseId"]
                request.tool_results.append(FakeToolResult(call_id, names_by_id.get(call_id), content))
    request.tools = tool_names(body)
    request.max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
    return request


def tool_names(body: dict) -> list[str]:
    return [t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools", []) if "toolSpec" in t]


def usage_of(scenario: FakeScenario) -> dict:
    # Bedrock's inputTokens leaves out the tokens read from (or written to) the cache.
    return {
        "inputTokens": scenario.prompt_tokens - scenario.cached_tokens,
        "outputTokens": scenario.completion_tokens,
        "totalTokens": scenario.prompt_tokens + scenario.completion_tokens,
        "cacheReadInputTokens": scenario.cached_tokens,
        "cacheWriteInputTokens": 0,
    }


def tool_use_id(call_id: str) -> str:
    return "tooluse_" + call_id


def stop_reason(scenario: FakeScenario) -> str:
    return "tool_use" if scenario.tool_calls else "end_turn"


# --- the server ------------------------------------------------------------------------------------


IMAGE_MODEL_PREFIXES = ("stability.", "amazon.nova-canvas")
PNG_BASE64 = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()
JPEG_BASE64 = base64.b64encode(b"\xff\xd8\xff\xe0 fake image").decode()
_STABILITY_KEYS = {"prompt", "negative_prompt", "mode", "aspect_ratio", "seed", "output_format", "image", "strength"}
_STABILITY_RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")


def _malformed(message: str) -> Invalid:
    return Invalid(400, "ValidationException", f"Malformed input request: {message}, please reformat your input "
                   "and try again.")


def _stability_image(body: dict) -> dict:
    extra = sorted(set(body) - _STABILITY_KEYS)
    if extra:
        raise _malformed(f"#: extraneous key [{extra[0]}] is not permitted")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > 10_000:
        raise _malformed("#/prompt: expected a string of 1 to 10000 characters")
    if body.get("mode", "text-to-image") != "text-to-image":
        raise _malformed("#/mode: image-to-image needs an image")
    if body.get("aspect_ratio", "1:1") not in _STABILITY_RATIOS:
        raise _malformed(f"#/aspect_ratio: {body.get('aspect_ratio')} is not a valid enum value")
    output_format = body.get("output_format", "png")
    if output_format not in ("png", "jpeg"):
        raise _malformed(f"#/output_format: {output_format} is not a valid enum value")
    if "forbidden" in prompt:
        return {"seeds": [42], "finish_reasons": ["Filter reason: prompt"], "images": [None]}
    return {"seeds": [42], "finish_reasons": [None], "images": [JPEG_BASE64 if output_format == "jpeg" else PNG_BASE64]}


def _decoded_image(value, where: str):
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        picture = Image.open(io.BytesIO(base64.b64decode(value, validate=True)))
        picture.load()
    except (TypeError, ValueError, UnidentifiedImageError, OSError):
        raise _malformed(f"#/{where}: expected a base64 PNG or JPEG image") from None
    return picture


def _nova_inpainting(body: dict, masks: list) -> dict:
    extra = sorted(set(body) - {"taskType", "inPaintingParams", "imageGenerationConfig"})
    if extra:
        raise _malformed(f"#: extraneous key [{extra[0]}] is not permitted")
    params = body.get("inPaintingParams")
    if not isinstance(params, dict) or set(params) - {"image", "maskImage", "maskPrompt", "text", "negativeText"}:
        raise _malformed("#/inPaintingParams: unexpected keys")
    if ("maskImage" in params) == ("maskPrompt" in params):
        raise _malformed("#/inPaintingParams: exactly one of maskImage and maskPrompt is required")
    image = _decoded_image(params.get("image"), "inPaintingParams/image")
    if image.mode in ("RGBA", "LA", "PA") and image.getchannel("A").getextrema()[0] < 255:
        raise Invalid(400, "ValidationException", "The input image contains transparent or translucent pixels.")
    if "maskImage" in params:
        mask = _decoded_image(params["maskImage"], "inPaintingParams/maskImage")
        if mask.size != image.size:
            raise Invalid(400, "ValidationException", "The mask image must have the same size as the input image.")
        if any(mask.convert("L").histogram()[1:255]):
            raise Invalid(400, "ValidationException", "The mask image must be pure black and white.")
        masks.append(mask.convert("L"))
    config = body.get("imageGenerationConfig") or {}
    if set(config) - {"numberOfImages", "quality", "cfgScale", "seed"}:  # the output follows the input's size
        raise _malformed("#/imageGenerationConfig: width and height are not permitted for INPAINTING")
    n = config.get("numberOfImages", 1)
    if not isinstance(n, int) or not 1 <= n <= 5:
        raise _malformed("#/imageGenerationConfig/numberOfImages: expected 1 to 5")
    if "forbidden" in str(params.get("text", "")):
        raise Invalid(400, "ValidationException", "This request has been blocked by our content filters.")
    return {"images": [PNG_BASE64] * n}


def _nova_image(body: dict, masks: list) -> dict:
    if body.get("taskType") == "INPAINTING":
        return _nova_inpainting(body, masks)
    extra = sorted(set(body) - {"taskType", "textToImageParams", "imageGenerationConfig"})
    if extra:
        raise _malformed(f"#: extraneous key [{extra[0]}] is not permitted")
    if body.get("taskType") != "TEXT_IMAGE":
        raise _malformed("#/taskType: expected TEXT_IMAGE or INPAINTING here")
    params = body.get("textToImageParams")
    text = params.get("text") if isinstance(params, dict) else None
    if not isinstance(text, str) or not 1 <= len(text) <= 1024:
        raise _malformed("#/textToImageParams/text: expected a string of 1 to 1024 characters")
    config = body.get("imageGenerationConfig") or {}
    extra = sorted(set(config) - {"numberOfImages", "width", "height", "quality", "cfgScale", "seed"})
    if extra:
        raise _malformed(f"#/imageGenerationConfig: extraneous key [{extra[0]}] is not permitted")
    n = config.get("numberOfImages", 1)
    if not isinstance(n, int) or not 1 <= n <= 5:
        raise _malformed("#/imageGenerationConfig/numberOfImages: expected 1 to 5")
    if config.get("quality", "standard") not in ("standard", "premium"):
        raise _malformed("#/imageGenerationConfig/quality: expected standard or premium")
    width, height = config.get("width", 1024), config.get("height", 1024)
    if not (isinstance(width, int) and isinstance(height, int) and 320 <= width <= 4096 and 320 <= height <= 4096
            and width % 16 == 0 and height % 16 == 0 and max(width, height) <= 4 * min(width, height)
            and width * height <= 4_194_304):
        raise Invalid(400, "ValidationException", "The image dimensions are invalid.")
    if "forbidden" in text:
        raise Invalid(400, "ValidationException", "This request has been blocked by our content filters.")
    return {"images": [PNG_BASE64] * n}


class BedrockServer(FakeServer):
    def __init__(self, *, region: str = REGION) -> None:
        super().__init__()
        self.region = region
        self.requests: list[dict] = []
        self.edit_masks: list = []  # the masks Nova Canvas inpainting was sent (PIL images), for the tests
        self.app.router.add_post("/model/{tail:.+}", self.handle)

    def check_auth(self, request: web.Request) -> None:
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            if authorization[len("Bearer "):] != API_KEY:
                raise Invalid(403, "AccessDeniedException", "Invalid API Key format.")
            return
        if not authorization:
            raise Invalid(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        match = SIGV4_HEADER.fullmatch(authorization)
        if match is None:
            raise Invalid(403, "IncompleteSignatureException", "The Authorization header is malformed.")
        amz_date = request.headers.get("X-Amz-Date", "")
        if not amz_date:
            raise Invalid(403, "IncompleteSignatureException",
                          "Authorization header requires existence of either a 'X-Amz-Date' or a "
                          "'Date' header.")
        if match["key"] != ACCESS_KEY_ID:
            raise Invalid(403, "UnrecognizedClientException",
                          "The security token included in the request is invalid.")
        if match["date"] != amz_date[:8]:
            raise Invalid(403, "InvalidSignatureException",
                          "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                          "from HTTP.")
        if match["region"] != self.region:
            raise Invalid(403, "InvalidSignatureException", "Credential should be scoped to a valid region. ")
        if match["service"] != "bedrock":
            raise Invalid(403, "InvalidSignatureException",
                          "Credential should be scoped to correct service: 'bedrock'. ")
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            raise Invalid(403, "InvalidSignatureException", "'Host' and 'X-Amz-Date' must be signed headers.")
        if "X-Amz-Security-Token" in request.headers and "x-amz-security-token" not in signed:
            raise Invalid(403, "InvalidSignatureException", "'X-Amz-Security-Token' must be a signed header.")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        # The model id is one path segment, percent-encoded or not (":" may come either way).
        _, _, rest = request.raw_path.partition("/model/")
        segment, _, action = rest.rpartition("/")
        record = {"path": request.raw_path, "headers": dict(request.headers), "raw": raw, "body": None}
        self.requests.append(record)
        if action == "invoke" and unquote(segment).startswith(IMAGE_MODEL_PREFIXES):
            return await self.invoke_image(request, unquote(segment), raw, record)
        if action in ("invoke", "invoke-with-response-stream") and segment and "/" not in segment:
            return await self.invoke(request, unquote(segment), raw, record,
                                     stream=action == "invoke-with-response-stream")
        if action not in ("converse", "converse-stream") or not segment or "/" in segment:
            return aws_error(404, "UnknownOperationException", "Unknown operation")
        model_id, stream = unquote(segment), action == "converse-stream"
        try:
            self.check_auth(request)
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise Invalid(400, "SerializationException", "The request body is not JSON.") from None
            if not isinstance(body, dict):
                raise Invalid(400, "SerializationException", "The request body must be a JSON object.")
            record["body"] = body
            validate_shape("ConverseStream" if stream else "Converse", model_id, body)
            validate_conversation(body)
        except Invalid as invalid:
            return aws_error(invalid.status, invalid.error_type, invalid.message)
        scenario = decide(parse_converse(model_id, body, stream=stream))
        if scenario.mode is Mode.ERROR:
            status = scenario.error_status
            return aws_error(status, ERROR_TYPES.get(status, "InternalServerException"),
                             f"fake error {status}", scenario.retry_after)
        if scenario.mode is Mode.SLOW:
            await asyncio.sleep(5)
        if stream:
            return await self.converse_stream(request, model_id, scenario)
        if scenario.mode is Mode.BAD_JSON:
            return web.Response(body=b"<html>502 Bad Gateway</html>", content_type="application/json")
        if scenario.mode is Mode.CUT:
            request.transport.close()
            return web.Response()
        return web.json_response(self.converse_output(scenario))

    async def invoke_image(self, request: web.Request, model_id: str, raw: bytes, record: dict) -> web.Response:
        """InvokeModel on an image model, with its family's body as AWS documents it: Stability's
        {prompt, aspect_ratio, output_format, ...} (one image), Nova Canvas's TEXT_IMAGE task. A
        prompt containing "forbidden" is filtered (Stability: a finish reason; Nova: a 400)."""
        try:
            self.check_auth(request)
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise Invalid(400, "ValidationException", "Malformed input request, please reformat your input "
                              "and try again.") from None
            record["body"] = body
            if not isinstance(body, dict):
                raise Invalid(400, "ValidationException", "Malformed input request: expected an object.")
            if model_id.startswith("stability."):
                return web.json_response(_stability_image(body))
            return web.json_response(_nova_image(body, self.edit_masks))
        except Invalid as invalid:
            return aws_error(invalid.status, invalid.error_type, invalid.message)

    async def invoke(self, request: web.Request, model_id: str, raw: bytes, record: dict, *,
                     stream: bool) -> web.StreamResponse:
        """InvokeModel / InvokeModelWithResponseStream with a Claude body (Anthropic's Messages
        API as Bedrock takes it: `anthropic_version` "bedrock-2023-05-31", the model in the path
        and not in the body); streamed, each Anthropic event is one `chunk` frame whose payload
        holds the event's JSON base64-encoded, the last one with Bedrock's invocation metrics."""
        from tests.fakes import anthropic_upstream as claude

        try:
            self.check_auth(request)
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise Invalid(400, "ValidationException", "Malformed input request, please reformat your input "
                              "and try again.") from None
            record["body"] = body
            if not isinstance(body, dict):
                raise Invalid(400, "ValidationException", "Malformed input request: expected an object.")
            if "model" in body:
                raise Invalid(400, "ValidationException", "Malformed input request: #: extraneous key [model] "
                              "is not permitted, please reformat your input and try again.")
            if body.get("anthropic_version") != "bedrock-2023-05-31":
                raise Invalid(400, "ValidationException", "Malformed input request: #: required key "
                              "[anthropic_version] not found, please reformat your input and try again.")
            messages_body = {k: v for k, v in body.items() if k not in ("anthropic_version", "anthropic_beta")}
            messages_body["model"] = model_id
            try:
                thinking = claude.validate(messages_body)
                fake_request = claude.parse_anthropic(messages_body)
            except claude.InvalidRequest as exc:
                raise Invalid(400, "ValidationException", str(exc)) from None
        except Invalid as invalid:
            return aws_error(invalid.status, invalid.error_type, invalid.message)
        fake_request.stream = stream
        scenario = decide(fake_request)
        if scenario.mode is Mode.ERROR:
            status = scenario.error_status
            return aws_error(status, ERROR_TYPES.get(status, "InternalServerException"),
                             f"fake error {status}", scenario.retry_after)
        answer = claude.Answer(scenario, messages_body, thinking=thinking)
        if not stream:
            return web.json_response(answer.message())
        response = web.StreamResponse(headers={"Content-Type": EVENTSTREAM, "x-amzn-RequestId": "fake"})
        await response.prepare(request)

        async def send(event: dict) -> None:
            data = base64.b64encode(orjson.dumps(event)).decode()
            headers = [(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")]
            await response.write(frame(headers, orjson.dumps({"bytes": data})))

        message = {**answer.message(), "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": answer.usage(output_tokens=1)}
        await send({"type": "message_start", "message": message})
        await send({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        for number, piece in enumerate(scenario.text_pieces()):
            await send({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
            if number == 0 and scenario.mode is Mode.CUT:
                request.transport.close()
                return response
        await send({"type": "content_block_stop", "index": 0})
        await send({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": answer.output_tokens}})
        usage = answer.usage()
        await send({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": usage["input_tokens"], "outputTokenCount": usage["output_tokens"],
            "invocationLatency": 42, "firstByteLatency": 7}})
        return response

    @staticmethod
    def converse_output(scenario: FakeScenario) -> dict:
        content = [{"text": scenario.text}] if scenario.text else []
        content += [{"toolUse": {"toolUseId": tool_use_id(c.id), "name": c.name, "input": c.arguments}}
                    for c in scenario.tool_calls]
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop_reason(scenario),
            "usage": usage_of(scenario),
            "metrics": {"latencyMs": 42},
        }

    async def converse_stream(
        self, request: web.Request, model_id: str, scenario: FakeScenario
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": EVENTSTREAM, "x-amzn-RequestId": "fake"})
        await response.prepare(request)

        async def send(data: bytes) -> None:
            # Split each frame across two writes, as TCP may: the client must buffer partial frames.
            await response.write(data[:7])
            await response.write(data[7:])

        if scenario.mode is Mode.BAD_JSON:
            await response.write(b"<html>502 Bad Gateway</html>")
            return response
        await send(event_frame("messageStart", {"role": "assistant"}))
        if model_id == "stream-throttled":
            await send(exception_frame("throttlingException", THROTTLED))
            return response
        if model_id == "stream-bad-crc":
            await send(event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}},
                                   corrupt=True))
            return response
        block = 0
        for number, piece in enumerate(scenario.text_pieces()):
            await send(event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
            if scenario.mode is Mode.CUT and number == 0:
                request.transport.close()
                return response
            if model_id == "stream-throttled-late" and number == 1:
                await asyncio.sleep(0.05)  # the content reaches the gateway first, as it would in life
                await send(exception_frame("throttlingException", THROTTLED))
                return response
        if scenario.text:
            await send(event_frame("contentBlockStop", {"contentBlockIndex": block}))
            block += 1
        for call in scenario.tool_calls:
            start = {"toolUse": {"toolUseId": tool_use_id(call.id), "name": call.name}}
            await send(event_frame("contentBlockStart", {"contentBlockIndex": block, "start": start}))
            arguments = orjson.dumps(call.arguments).decode()
            for offset in range(0, len(arguments), 7):  # the input arrives as string fragments
                delta = {"toolUse": {"input": arguments[offset:offset + 7]}}
                await send(event_frame("contentBlockDelta", {"contentBlockIndex": block, "delta": delta}))
            await send(event_frame("contentBlockStop", {"contentBlockIndex": block}))
            block += 1
        await send(event_frame("messageStop", {"stopReason": stop_reason(scenario)}))
        await send(event_frame("metadata", {"usage": usage_of(scenario), "metrics": {"latencyMs": 42}}))
        return response


@register
class BedrockFake(ProviderFake):
    provider = "bedrock"

    def new_server(self):
        return BedrockServer()

    def deployment_fields(self):
        """SigV4 with this fake's keys, the secret in secret_params."""
        return {
            "api_base": self.url,
            "extra_params": {"aws_region_name": REGION, "aws_access_key_id": ACCESS_KEY_ID},
            "secret_params": {"aws_secret_access_key": SECRET_ACCESS_KEY},
        }
