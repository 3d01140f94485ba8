"""Google Gemini (Generative Language API) and Vertex AI, as the conformance table's fakes.

Both speak the generateContent body (see tests/fakes/brain.py for what they answer) and are
strict like the real APIs: unknown fields, roles other than user/model, a functionResponse
without a name, a tool-result turn not matching the function-call turn, or JSON-schema
keywords Gemini's Schema does not know are refused with Google's 400.

Gemini: /v1beta/models/{model}:generateContent | :streamGenerateContent[?alt=sse] |
        :batchEmbedContents, key in `x-goog-api-key` or `?key=`.
Vertex: /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:...,
        `Authorization: Bearer <token>` with a token from this fake's /token endpoint (a
        google-auth JWT-bearer grant, signature checked) or STATIC_TOKEN; :predict embeds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re

import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.brain import FakeRequest, FakeScenario, FakeToolResult, Mode, decide
from tests.fakes.providers import ProviderFake, register
from tests.fakes.server import FakeServer

API_KEY = "fake-gemini-key"
IMAGEN_PNG = b"\x89PNG\r\n\x1a\nfake-imagen"  # what each Imagen prediction holds
STATIC_TOKEN = "ya29.static-fake-token"  # a ready access token, for vertex deployments given an api_key
PROJECT = "fake-project"
LOCATION = "us-central1"
THOUGHT_TOKENS = 5  # for models named *thinking*: a thought part and thoughtsTokenCount

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    529: "UNAVAILABLE",
}
REQUEST_FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
    "labels",
}
GENERATION_CONFIG_FIELDS = {
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "thinkingConfig",
    "responseLogprobs",
    "logprobs",
    "responseModalities",
    "mediaResolution",
}
PART_DATA_FIELDS = {"text", "inlineData", "fileData", "functionCall", "functionResponse"}
PART_FIELDS = PART_DATA_FIELDS | {"thought", "thoughtSignature"}
SCHEMA_FIELDS = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.\-]{0,63}$")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # a JWT claim, never contacted


class InvalidArgument(Exception):
    """A request the real API refuses with 400 INVALID_ARGUMENT."""


def google_error(status: int, message: str, *, retry_after: str | None = None, details: list | None = None):
    error = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    headers = {"Retry-After": retry_after} if retry_after else {}
    return web.json_response({"error": error}, status=status, headers=headers)


# --- strictness: what the real API refuses ------------------------------------------------------


def _unknown(name: str) -> InvalidArgument:
    return InvalidArgument(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')


def validate_generate_request(body: dict) -> None:
    for key in body:
        if key not in REQUEST_FIELDS:
            raise _unknown(key)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidArgument("* GenerateContentRequest.contents: contents is not specified")
    for number, content in enumerate(contents):
        _validate_content(content, number, previous=contents[number - 1] if number else None)
    system = body.get("systemInstruction")
    if system is not None:
        parts = system.get("parts") if isinstance(system, dict) else None
        if not parts or not all(isinstance(p, dict) and set(p) == {"text"} for p in parts):
            raise InvalidArgument("* GenerateContentRequest.system_instruction: only text parts are allowed")
    for tool in body.get("tools") or []:
        for key in tool:
            if key != "functionDeclarations":
                raise _unknown(f"tools.{key}")
        for declaration in tool.get("functionDeclarations") or []:
            _validate_declaration(declaration)
    _validate_tool_config(body.get("toolConfig"))
    config = body.get("generationConfig") or {}
    for key in config:
        if key not in GENERATION_CONFIG_FIELDS:
            raise _unknown(f"generation_config.{key}")
    if len(config.get("stopSequences") or []) > 5:
        raise InvalidArgument(
            "* GenerateContentRequest.generation_config.stop_sequences: at most 5 are allowed"
        )
    if "responseSchema" in config:
        _validate_schema(config["responseSchema"], "generation_config.response_schema")


def _validate_content(content: dict, number: int, previous: dict | None) -> None:
    where = f"GenerateContentRequest.contents[{number}]"
    role = content.get("role")
    if role not in ("user", "model"):
        raise InvalidArgument(f"* {where}.role: Please use a valid role: user, model.")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise InvalidArgument(f"* {where}.parts: contents.parts must not be empty.")
    for part in parts:
        _validate_part(part, where, role)
    responses = sum(1 for part in parts if "functionResponse" in part)
    if responses:
        calls = sum(1 for part in (previous or {}).get("parts", []) if "functionCall" in part)
        if (previous or {}).get("role") != "model" or calls != responses:
            raise InvalidArgument(
                "Please ensure that the number of function response parts is equal to the number of "
                "function call parts of the function call turn."
            )


def _validate_part(part: dict, where: str, role: str) -> None:
    for key in part:
        if key not in PART_FIELDS:
            raise _unknown(f"contents.parts.{key}")
    data = [key for key in part if key in PART_DATA_FIELDS]
    if len(data) != 1:
        raise InvalidArgument(f"* {where}.parts: a part must hold exactly one kind of data, not {data}")
    if "inlineData" in part:
        inline = part["inlineData"]
        if not inline.get("mimeType") or not inline.get("data"):
            raise InvalidArgument(f"* {where}.parts.inline_data: mime_type and data are required")
        try:
            base64.b64decode(inline["data"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(f"* {where}.parts.inline_data.data: invalid base64") from None
    if "fileData" in part and not (part["fileData"].get("fileUri") and part["fileData"].get("mimeType")):
        raise InvalidArgument(f"* {where}.parts.file_data: file_uri and mime_type are required")
    if "functionCall" in part:
        call = part["functionCall"]
        if role != "model" or not call.get("name") or not isinstance(call.get("args", {}), dict):
            raise InvalidArgument(
                f"* {where}.parts.function_call: a named call with object args, in a model turn"
            )
    if "functionResponse" in part:
        response = part["functionResponse"]
        if not response.get("name"):
            raise InvalidArgument(f"* {where}.parts.function_response.name: Name cannot be empty.")
        if role != "user" or not isinstance(response.get("response"), dict):
            raise InvalidArgument(f"* {where}.parts.function_response: an object response, in a user turn")


def _validate_declaration(declaration: dict) -> None:
    for key in declaration:
        if key not in ("name", "description", "parameters", "parametersJsonSchema", "response"):
            raise _unknown(f"tools.function_declarations.{key}")
    if not FUNCTION_NAME.match(declaration.get("name") or ""):
        raise InvalidArgument(
            "* GenerateContentRequest.tools.function_declarations.name: Invalid function name."
        )
    if "parameters" in declaration:
        _validate_schema(declaration["parameters"], "tools.function_declarations.parameters")


def _validate_schema(schema: dict, where: str) -> None:
    if not isinstance(schema, dict):
        raise InvalidArgument(f"* {where}: a schema must be an object")
    for key in schema:
        if key not in SCHEMA_FIELDS:
            raise _unknown(f"{where}.{key}")
    if str(schema.get("type", "")).upper() == "OBJECT" and not schema.get("properties"):
        raise InvalidArgument(f"* {where}.properties: should be non-empty for OBJECT type")
    for name, sub in (schema.get("properties") or {}).items():
        _validate_schema(sub, f"{where}.properties[{name}]")
    if "items" in schema:
        _validate_schema(schema["items"], f"{where}.items")
    for sub in schema.get("anyOf") or []:
        _validate_schema(sub, f"{where}.any_of")


def _validate_tool_config(tool_config: dict | None) -> None:
    if tool_config is None:
        return
    config = tool_config.get("functionCallingConfig") or {}
    if config.get("mode") not in ("AUTO", "ANY", "NONE", "VALIDATED"):
        raise InvalidArgument(
            "* GenerateContentRequest.tool_config.function_calling_config.mode: invalid mode"
        )
    if config.get("allowedFunctionNames") and config["mode"] != "ANY":
        raise InvalidArgument("allowed_function_names may only be set with mode ANY")


# --- wire → the brain's view → wire ------------------------------------------------------------


ISSUED_THOUGHT_SIGNATURE = "c2lnbmF0dXJl"


def validate_thought_signatures(model: str, body: dict) -> None:
    """Gemini 3's rule: in the history, the first function call of each model turn must carry
    the thought signature it was given, unchanged (else a 400)."""
    if not model.startswith("gemini-3"):
        return
    for number, content in enumerate(body["contents"]):
        calls = [(index, part) for index, part in enumerate(content["parts"]) if "functionCall" in part]
        if content["role"] == "model" and calls:
            index, first = calls[0]
            if first.get("thoughtSignature") != ISSUED_THOUGHT_SIGNATURE:
                raise InvalidArgument(
                    f"Function call is missing a thought_signature in functionCall parts. This is required "
                    f"for tools to work correctly. Additional data, function call `{first['functionCall']['name']}`"
                    f" , position {index + 1}. contents[{number}]"
                )


def parse_gemini(model: str, body: dict, *, stream: bool) -> FakeRequest:
    request = FakeRequest(model=model, stream=stream)
    system = body.get("systemInstruction")
    if system:
        request.system = "".join(part["text"] for part in system["parts"])
    for content in body["contents"]:
        texts = [part["text"] for part in content["parts"] if "text" in part]
        if texts:
            request.turns.append(("user" if content["role"] == "user" else "assistant", "".join(texts)))
        for part in content["parts"]:
            media = part.get("inlineData") or part.get("fileData")
            if media and media["mimeType"].startswith("image/"):
                request.images.append(media["mimeType"])
    last = body["contents"][-1]
    if last["role"] == "user":  # only the results answering the last function-call turn count
        request.tool_results = [
            FakeToolResult(
                None, part["functionResponse"]["name"], _response_text(part["functionResponse"]["response"])
            )
            for part in last["parts"]
            if "functionResponse" in part
        ]
    request.tools = [
        d["name"] for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []
    ]
    request.max_tokens = (body.get("generationConfig") or {}).get("maxOutputTokens")
    return request


def _response_text(response: dict) -> str:
    content = response.get("content")
    return content if isinstance(content, str) else json.dumps(response)


def usage_metadata(scenario: FakeScenario, *, thinking: bool, completion_tokens: int | None = None) -> dict:
    completion = scenario.completion_tokens if completion_tokens is None else completion_tokens
    usage = {
        "promptTokenCount": scenario.prompt_tokens,
        "candidatesTokenCount": completion,
        "cachedContentTokenCount": scenario.cached_tokens,
        "totalTokenCount": scenario.prompt_tokens + completion,
    }
    if thinking:
        usage["thoughtsTokenCount"] = THOUGHT_TOKENS
        usage["totalTokenCount"] += THOUGHT_TOKENS
    return usage


def function_call_parts(scenario: FakeScenario) -> list[dict]:
    parts = [{"functionCall": {"name": call.name, "args": call.arguments}} for call in scenario.tool_calls]
    if parts:  # Gemini 2.5+ signs the first call of a turn; the signature is not for the client
        parts[0]["thoughtSignature"] = ISSUED_THOUGHT_SIGNATURE
    return parts


def response_chunk(model: str, parts: list[dict], usage: dict, finish: bool = False) -> dict:
    candidate: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "fake-response-1",
    }


def stream_chunks(model: str, scenario: FakeScenario, *, thinking: bool) -> list[dict]:
    """The chunks a stream sends: a thought, the text word by word, the calls whole, then the end."""
    chunks = []
    if thinking:
        chunks.append(
            response_chunk(
                model,
                [{"text": "Let me think.", "thought": True}],
                usage_metadata(scenario, thinking=True, completion_tokens=0),
            )
        )
    for number, piece in enumerate(scenario.text_pieces()):
        chunks.append(
            response_chunk(
                model,
                [{"text": piece}],
                usage_metadata(scenario, thinking=thinking, completion_tokens=number + 1),
            )
        )
    if scenario.tool_calls:
        chunks.append(
            response_chunk(
                model,
                function_call_parts(scenario),
                usage_metadata(scenario, thinking=thinking, completion_tokens=0),
            )
        )
    chunks.append(
        response_chunk(model, [{"text": ""}], usage_metadata(scenario, thinking=thinking), finish=True)
    )
    return chunks


# --- the server ---------------------------------------------------------------------------------


class GoogleServer(FakeServer):
    """The Gemini API (vertex=False) or Vertex AI (vertex=True) on a loopback port."""

    def __init__(self, *, vertex: bool) -> None:
        super().__init__()
        self.vertex = vertex
        self.requests: list[dict] = []
        self.edit_masks: list = []  # the masks Imagen edits were sent (PIL images), for the tests
        self.token_requests: list[dict] = []
        self.issued_tokens: set[str] = set()
        if vertex:
            self.app.router.add_post(
                "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}",
                self.model_call,
            )
            self.app.router.add_post("/token", self.token)
        else:
            self.app.router.add_post("/v1beta/models/{target}", self.model_call)
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def service_account_info(self, *, project: str | None = PROJECT) -> dict:
        """A service-account JSON whose token_uri is this fake's /token (a throwaway key)."""
        pem = self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        info = {
            "type": "service_account",
            "private_key_id": "fake-key-1",
            "private_key": pem,
            "client_email": f"gateway@{PROJECT}.iam.gserviceaccount.com",
            "client_id": "100000000000000000001",
            "token_uri": f"{self.url}/token",
        }
        if project:
            info["project_id"] = project
        return info

    async def token(self, request: web.Request) -> web.Response:
        """Google's OAuth token endpoint for the JWT-bearer grant of service accounts."""
        from google.auth import jwt

        form = await request.post()
        self.token_requests.append(dict(form))
        if form.get("grant_type") != JWT_BEARER or not form.get("assertion"):
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        public_pem = self._private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            # google-auth always addresses the assertion to Google's token endpoint, whatever token_uri is.
            claims = jwt.decode(form["assertion"], certs=public_pem, audience=GOOGLE_TOKEN_AUDIENCE)
        except ValueError as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        if "https://www.googleapis.com/auth/cloud-platform" not in claims.get("scope", "").split():
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = f"ya29.fake-{len(self.token_requests)}"
        self.issued_tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if self.vertex:
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if bearer not in self.issued_tokens and bearer != STATIC_TOKEN:
                return google_error(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                    "login cookie or other valid authentication credential.",
                )
            if request.match_info["project"] != PROJECT:
                return google_error(
                    403, f"Permission denied on resource project {request.match_info['project']}."
                )
            if not re.fullmatch(r"[a-z]+-[a-z]+\d+|global", request.match_info["location"]):
                return google_error(400, f"Unsupported location: {request.match_info['location']}")
            return None
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return google_error(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity.",
            )
        if key != API_KEY:
            return google_error(
                400,
                "API key not valid. Please pass a valid API key.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},  # as in the real error body; nothing is sent there
                    }
                ],
            )
        return None

    async def model_call(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].partition(":")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return google_error(400, "Invalid JSON payload received.")
        self.requests.append({"path": request.path_qs, "headers": dict(request.headers), "body": body})
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        if method in ("generateContent", "streamGenerateContent"):
            return await self.generate(request, model, body, stream=method == "streamGenerateContent")
        if method == "batchEmbedContents" and not self.vertex:
            return self.batch_embed(model, body)
        if method == "predict" and model.startswith("imagen") and "capability" in model:
            if not self.vertex:
                return google_error(404, f"models/{model} is not found for API version v1beta.")
            return self.imagen_edit(body)
        if method == "predict" and model.startswith("imagen"):
            return self.imagen_predict(body)
        if method == "predict" and self.vertex:
            return self.predict(body)
        return google_error(404, f"Method {method} is not found for models/{model}.")

    def imagen_edit(self, body: dict) -> web.Response:
        """Imagen 3 capability's :predict, editing (Vertex AI only): one instance with a prompt and
        reference images, a raw one and a mask (black and white, the raw image's size) for the
        inpainting edit modes; sampleCount 1-4. The mask sent is kept for the tests."""
        import io

        from PIL import Image, UnidentifiedImageError

        instances = body.get("instances")
        if set(body) - {"instances", "parameters"} or not (isinstance(instances, list) and len(instances) == 1):
            return google_error(400, "Imagen takes one instance.")
        instance = instances[0]
        if not isinstance(instance, dict) or set(instance) - {"prompt", "referenceImages"}:
            return google_error(400, "Invalid instance.")
        references = instance.get("referenceImages")
        if not isinstance(references, list) or not references:
            return google_error(400, "referenceImages is required for editing.")
        by_type, images = {}, {}
        for reference in references:
            kind = reference.get("referenceType")
            if kind not in ("REFERENCE_TYPE_RAW", "REFERENCE_TYPE_MASK", "REFERENCE_TYPE_CONTROL",
                            "REFERENCE_TYPE_SUBJECT", "REFERENCE_TYPE_STYLE"):
                return google_error(400, f"Invalid referenceType: {kind}")
            if not isinstance(reference.get("referenceId"), int) or kind in by_type:
                return google_error(400, "Each reference image needs its own referenceId; at most one raw image.")
            if kind == "REFERENCE_TYPE_MASK" and (reference.get("maskImageConfig") or {}).get("maskMode") not in (
                    "MASK_MODE_USER_PROVIDED", "MASK_MODE_BACKGROUND", "MASK_MODE_FOREGROUND", "MASK_MODE_SEMANTIC"):
                return google_error(400, "maskImageConfig.maskMode is required for a mask reference.")
            try:
                data = base64.b64decode((reference.get("referenceImage") or {}).get("bytesBase64Encoded", ""),
                                        validate=True)
                images[kind] = Image.open(io.BytesIO(data))
                images[kind].load()
            except (ValueError, UnidentifiedImageError, OSError):
                return google_error(400, "Image editing failed with the following error: the image is not valid.")
            by_type[kind] = reference
        parameters = body.get("parameters") or {}
        if parameters.get("editMode") not in ("EDIT_MODE_INPAINT_INSERTION", "EDIT_MODE_INPAINT_REMOVAL",
                                              "EDIT_MODE_OUTPAINT", "EDIT_MODE_BGSWAP"):
            return google_error(400, f"Unsupported editMode: {parameters.get('editMode')}")
        if set(by_type) != {"REFERENCE_TYPE_RAW", "REFERENCE_TYPE_MASK"}:
            return google_error(400, "Mask editing takes exactly one raw and one mask reference image.")
        raw, mask = images["REFERENCE_TYPE_RAW"], images["REFERENCE_TYPE_MASK"]
        if raw.size != mask.size:
            return google_error(400, "The mask image must have the same size as the raw reference image.")
        if any(mask.convert("L").histogram()[1:255]):  # grey levels between black and white
            return google_error(400, "The mask must be black and white.")
        count = parameters.get("sampleCount", 4)
        if not isinstance(count, int) or not 1 <= count <= 4:
            return google_error(400, "sampleCount must be between 1 and 4.")
        self.edit_masks.append(mask.convert("L"))
        image = base64.b64encode(IMAGEN_PNG).decode()
        return web.json_response({"predictions": [{"bytesBase64Encoded": image, "mimeType": "image/png"}
                                                  for _ in range(count)]})

    def imagen_predict(self, body: dict) -> web.Response:
        """Imagen's :predict, on the Gemini API and Vertex AI alike: one instance with a prompt,
        sampleCount 1-4 and one of five aspect ratios; images come back base64-encoded. A prompt
        the safety filter refuses gets no predictions at all."""
        unknown = set(body) - {"instances", "parameters"}
        if unknown:
            return google_error(400, f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": '
                                     "Cannot find field.")
        instances = body.get("instances")
        if not (isinstance(instances, list) and len(instances) == 1 and isinstance(instances[0], dict)
                and set(instances[0]) <= {"prompt"} and isinstance(instances[0].get("prompt"), str)
                and instances[0]["prompt"].strip()):
            return google_error(400, "Imagen takes one instance with a non-empty prompt.")
        parameters = body.get("parameters") or {}
        allowed = {"sampleCount", "aspectRatio", "personGeneration", "safetySetting", "outputOptions",
                   "sampleImageSize", "addWatermark", "enhancePrompt", "negativePrompt", "seed"}
        if not isinstance(parameters, dict) or set(parameters) - allowed:
            return google_error(400, f"Unknown parameters: {sorted(set(parameters) - allowed)}")
        count = parameters.get("sampleCount", 4)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 4:
            return google_error(400, "sampleCount must be between 1 and 4.")
        if parameters.get("aspectRatio", "1:1") not in ("1:1", "3:4", "4:3", "9:16", "16:9"):
            return google_error(400, f"Unsupported aspect ratio: {parameters['aspectRatio']}")
        if "forbidden" in instances[0]["prompt"]:
            return web.json_response({})
        image = base64.b64encode(IMAGEN_PNG).decode()
        return web.json_response({"predictions": [{"bytesBase64Encoded": image, "mimeType": "image/png"}
                                                  for _ in range(count)]})

    async def generate(
        self, request: web.Request, model: str, body: dict, *, stream: bool
    ) -> web.StreamResponse:
        try:
            validate_generate_request(body)
            validate_thought_signatures(model, body)
        except InvalidArgument as exc:
            return google_error(400, str(exc))
        if model == "blocked-prompt":  # Google's safety filter refused the prompt: no candidates
            blocked = {
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
                "modelVersion": model,
            }
            return await self._send_sse(request, [blocked]) if stream else web.json_response(blocked)
        scenario = decide(parse_gemini(model, body, stream=stream))
        if scenario.mode is Mode.ERROR:
            status = scenario.error_status
            details = (
                [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]
                if status == 429
                else None
            )
            return google_error(
                status, f"fake error {status}", retry_after=scenario.retry_after, details=details
            )
        if scenario.mode is Mode.BAD_JSON:
            return web.Response(body=b"<html>502 Bad Gateway</html>", content_type="application/json")
        if scenario.mode is Mode.SLOW:
            await asyncio.sleep(5)
        thinking = "thinking" in model
        if not stream:
            if scenario.mode is Mode.CUT:
                request.transport.close()
                return web.Response()
            parts = [{"text": "Let me think.", "thought": True}] if thinking else []
            if scenario.text:
                parts.append({"text": scenario.text})
            parts.extend(function_call_parts(scenario))
            return web.json_response(
                response_chunk(model, parts, usage_metadata(scenario, thinking=thinking), True)
            )
        chunks = stream_chunks(model, scenario, thinking=thinking)
        if request.query.get("alt") != "sse":  # without alt=sse: one JSON array of the chunks
            return web.json_response(chunks)
        return await self._send_sse(request, chunks, cut=scenario.mode is Mode.CUT)

    async def _send_sse(
        self, request: web.Request, chunks: list[dict], *, cut: bool = False
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
            if cut:  # the connection drops after the first piece
                request.transport.close()
                return response
        return response

    def batch_embed(self, model: str, body: dict) -> web.Response:
        embeddings = []
        for request in body.get("requests") or []:
            if request.get("model") != f"models/{model}":
                return google_error(
                    400, f"Model {request.get('model')} does not match the path's models/{model}."
                )
            texts = [
                part["text"] for part in (request.get("content") or {}).get("parts") or [] if "text" in part
            ]
            if not texts:
                return google_error(
                    400, "* BatchEmbedContentsRequest.requests.content: contents must not be empty"
                )
            embeddings.append({"values": fake_vector(" ".join(texts), request.get("outputDimensionality"))})
        if not embeddings:
            return google_error(400, "* BatchEmbedContentsRequest.requests: at least one request is required")
        return web.json_response({"embeddings": embeddings})

    def predict(self, body: dict) -> web.Response:
        instances = body.get("instances")
        if not instances or not all(isinstance(i, dict) and i.get("content") for i in instances):
            return google_error(400, "instances must be a non-empty list of {content}")
        dimensions = (body.get("parameters") or {}).get("outputDimensionality")
        return web.json_response(
            {
                "predictions": [
                    {
                        "embeddings": {
                            "values": fake_vector(i["content"], dimensions),
                            "statistics": {"token_count": len(i["content"].split()), "truncated": False},
                        }
                    }
                    for i in instances
                ]
            }
        )


def fake_vector(text: str, dimensions: int | None) -> list[float]:
    """A deterministic vector: its first value is the text's length."""
    values = [float(len(text)), 0.5, -0.25, 1.0]
    return (values * 8)[: dimensions or 4]


# --- the table's fakes --------------------------------------------------------------------------


@register
class GeminiFake(ProviderFake):
    provider = "gemini"
    vertex = False
    server: GoogleServer  # tests read its token requests and service accounts

    def new_server(self):
        return GoogleServer(vertex=self.vertex)

    def deployment_fields(self):
        return {"api_base": self.url, "api_key": API_KEY}


@register
class VertexAIFake(GeminiFake):
    provider = "vertex_ai"
    vertex = True

    def deployment_fields(self):
        fields = {
            "api_base": self.url,
            "extra_params": {"vertex_project": PROJECT, "vertex_location": LOCATION},
        }
        fields["secret_params"] = {"vertex_credentials": json.dumps(self.server.service_account_info())}
        return fields
