"""OpenAI, Azure OpenAI, and every server that speaks OpenAI's API at some base URL."""

from __future__ import annotations

import re
from typing import Any

import orjson

from apps.core.errors import GatewayError
from apps.providers.adapters.base import (
    Operation,
    ProviderAdapter,
    StreamTranslator,
    TranslatedResponse,
    UpstreamRequest,
    Usage,
    load_json_response,
    multipart_chunks,
    passthrough_body,
    upstream_error,
)

_PATHS = {
    Operation.CHAT: "/chat/completions",
    Operation.COMPLETION: "/completions",
    Operation.EMBEDDING: "/embeddings",
    Operation.MODERATION: "/moderations",
    Operation.IMAGE_GENERATION: "/images/generations",
    Operation.IMAGE_EDIT: "/images/edits",
    Operation.IMAGE_VARIATION: "/images/variations",
    Operation.AUDIO_SPEECH: "/audio/speech",
    Operation.AUDIO_TRANSCRIPTION: "/audio/transcriptions",
    Operation.AUDIO_TRANSLATION: "/audio/translations",
    Operation.RESPONSES: "/responses",
}
# Native calls whose usage the pass-through reads, by the end of their path (longest first).
_PASSTHROUGH_OPERATIONS = (
    ("/chat/completions", Operation.CHAT),
    ("/completions", Operation.COMPLETION),
    ("/embeddings", Operation.EMBEDDING),
    ("/responses", Operation.RESPONSES),
)
# Azure's deployment-scoped paths: the client names the deployment (our model name) in the path.
_AZURE_DEPLOYMENT_PATH = re.compile(r"/openai/deployments/([^/]+)")
_UPLOADS = frozenset({Operation.AUDIO_TRANSCRIPTION, Operation.AUDIO_TRANSLATION, Operation.IMAGE_EDIT,
                      Operation.IMAGE_VARIATION})  # multipart/form-data
# Served by OpenAI and Azure OpenAI only (not by the OpenAI-compatible presets).
MEDIA_OPERATIONS = frozenset({
    Operation.MODERATION, Operation.IMAGE_GENERATION, Operation.AUDIO_SPEECH, Operation.AUDIO_TRANSCRIPTION,
    Operation.AUDIO_TRANSLATION, Operation.IMAGE_EDIT, Operation.IMAGE_VARIATION,
})
# Azure serves the Responses API without a deployment in the path, from this API version on.
_AZURE_RESPONSES_API_VERSION = "2025-04-01-preview"


def usage_from_openai(raw_usage: Any) -> Usage:
    if not isinstance(raw_usage, dict):
        return Usage()
    prompt_details = raw_usage.get("prompt_tokens_details") or {}
    completion_details = raw_usage.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw_usage.get("prompt_tokens") or 0),
        completion_tokens=int(raw_usage.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        reported=True,
    )


def media_response(provider: str, operation: Operation, raw: bytes) -> TranslatedResponse:
    """A moderation, image or transcription answer, passed on as it came, with what it is billed by:
    moderations by nothing (free: priced at the catalog's zero), images per image (dall-e) or per
    token from `usage` (gpt-image), transcriptions per second of audio from `usage` or `duration`."""
    if operation is Operation.MODERATION:
        load_json_response(provider, raw)
        return TranslatedResponse(body=raw, usage=Usage(reported=True))
    if operation in (Operation.IMAGE_GENERATION, Operation.IMAGE_EDIT, Operation.IMAGE_VARIATION):
        payload = load_json_response(provider, raw)
        images = payload.get("data") if isinstance(payload.get("data"), list) else []
        usage = payload.get("usage")
        if isinstance(usage, dict):  # gpt-image models: {"input_tokens", "output_tokens", ...}
            return TranslatedResponse(body=raw, usage=Usage(
                prompt_tokens=int(usage.get("input_tokens") or 0),
                completion_tokens=int(usage.get("output_tokens") or 0),
                output_images=len(images), reported=True,
            ))
        return TranslatedResponse(body=raw, usage=Usage(output_images=len(images), reported=True))
    # Transcriptions and translations: JSON, or text / SRT / WebVTT.
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict):
        return TranslatedResponse(body=raw, usage=transcription_usage(payload))
    return TranslatedResponse(body=raw, usage=subtitle_usage(raw), content_type="text/plain; charset=utf-8")


def transcription_usage(payload: dict) -> Usage:
    """`usage` {"type": "duration", "seconds"} (whisper), {"type": "tokens", ...} (gpt-4o-transcribe),
    else verbose_json's `duration`; nothing reported otherwise."""
    usage = payload.get("usage")
    if isinstance(usage, dict) and usage.get("type") == "tokens":
        return Usage(prompt_tokens=int(usage.get("input_tokens") or 0),
                     completion_tokens=int(usage.get("output_tokens") or 0), reported=True)
    seconds = usage.get("seconds") if isinstance(usage, dict) else None
    if seconds is None:
        seconds = payload.get("duration")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return Usage(input_seconds=float(seconds), reported=True)
    return Usage()


_CUE_END = re.compile(rb"--> *(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})")


def subtitle_usage(raw: bytes) -> Usage:
    """SRT and WebVTT carry no duration: the last cue's end is a lower bound of it (estimated)."""
    ends = _CUE_END.findall(raw)
    if not ends:
        return Usage()
    hours, minutes, seconds, millis = ends[-1]
    total = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000
    return Usage(input_seconds=total, reported=False)


def usage_from_responses(raw_usage: Any) -> Usage:
    """The Responses API's usage (input_tokens, output_tokens and their details)."""
    if not isinstance(raw_usage, dict):
        return Usage()
    input_details = raw_usage.get("input_tokens_details") or {}
    output_details = raw_usage.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw_usage.get("input_tokens") or 0),
        completion_tokens=int(raw_usage.get("output_tokens") or 0),
        cached_tokens=int(input_details.get("cached_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
        reported=True,
    )


class NativeEventTranslator(StreamTranslator):
    """Events of OpenAI's own event streams (Responses, images, transcripts) passed on as they
    are (dicts, which the client format's writer frames); subclasses read the usage from them."""

    def __init__(self, provider: str) -> None:
        super().__init__()
        self.provider = provider

    def feed(self, event: str | None, data: bytes) -> list[dict]:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise GatewayError(
                f"{self.provider} sent a stream event that is not JSON.",
                status=502, type="api_error", code="bad_upstream_response",
            ) from None
        if not isinstance(payload, dict):
            return []
        self.read(payload)
        return [payload]

    def read(self, payload: dict) -> None:
        raise NotImplementedError


class ResponsesStreamTranslator(NativeEventTranslator):
    """The Responses API's events; the usage is on the terminal event."""

    def read(self, payload: dict) -> None:
        kind = payload.get("type")
        if kind == "error" and not self.done:
            raise upstream_error(self.provider, 502, orjson.dumps({"error": payload}), {})
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            self.done = True
            usage = (payload.get("response") or {}).get("usage")
            if usage:
                self.usage = usage_from_responses(usage)


class MediaStreamTranslator(NativeEventTranslator):
    """Streamed images (`image_generation.*`, `image_edit.*`) and transcripts (`transcript.text.*`):
    each completed image counts, with its tokens; the transcript's `done` event carries the call's."""

    def read(self, payload: dict) -> None:
        kind = payload.get("type") or ""
        if kind == "error" or ("error" in payload and not kind):
            raise upstream_error(self.provider, 502, orjson.dumps({"error": payload.get("error") or payload}), {})
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        if kind.endswith(".completed") and kind.startswith(("image_generation.", "image_edit.")):
            self.usage = Usage(
                prompt_tokens=self.usage.prompt_tokens + int(usage.get("input_tokens") or 0),
                completion_tokens=self.usage.completion_tokens + int(usage.get("output_tokens") or 0),
                output_images=self.usage.output_images + 1, reported=True,
            )
        elif kind == "transcript.text.done":
            self.done = True
            self.usage = transcription_usage(payload) if usage else Usage(reported=True)


class OpenAIStreamTranslator(StreamTranslator):
    """OpenAI chunks in, OpenAI chunks out; keeps the usage, drops chunks with nothing in them
    (Azure's first chunk has empty choices and only content-filter results)."""

    def __init__(self, provider: str) -> None:
        super().__init__()
        self.provider = provider

    def feed(self, event: str | None, data: bytes) -> list[dict]:
        if data == b"[DONE]":
            self.done = True
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise GatewayError(
                f"{self.provider} sent a stream event that is not JSON.",
                status=502, type="api_error", code="bad_upstream_response",
            ) from None
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk and "choices" not in chunk:
            raise upstream_error(self.provider, 502, data, {})
        usage = chunk.get("usage")
        if usage:
            self.usage = usage_from_openai(usage)
        if not chunk.get("choices") and not usage:
            return []
        return [chunk]


class OpenAIAdapter(ProviderAdapter):
    name = "openai"
    default_api_base = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"
    operations = frozenset({Operation.CHAT, Operation.COMPLETION, Operation.EMBEDDING, Operation.RESPONSES}) | MEDIA_OPERATIONS

    def url(self, operation: Operation, deployment) -> str:
        return (deployment.api_base or self.default_api_base or "").rstrip("/") + _PATHS[operation]

    def auth_headers(self, deployment) -> dict[str, str]:
        return {"Authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}

    def upstream_body(self, operation: Operation, deployment, body: dict[str, Any], stream: bool) -> dict:
        payload = dict(body)
        payload["model"] = deployment.upstream_model
        if operation is Operation.RESPONSES or operation in MEDIA_OPERATIONS:
            return payload  # their streams report usage on their completing events by themselves
        if stream:
            # Always ask for usage, so streamed requests are never priced at zero.
            options = dict(payload.get("stream_options") or {})
            options["include_usage"] = True
            payload["stream_options"] = options
        return payload

    async def build_request(self, operation, deployment, body, *, stream):
        if operation in _UPLOADS:
            chunks, content_type, length = multipart_chunks({**body, "model": deployment.upstream_model})
            headers = {"Content-Type": content_type, "Content-Length": str(length), **self.auth_headers(deployment)}
            return UpstreamRequest(url=self.url(operation, deployment), headers=headers, body=chunks)
        headers = {"Content-Type": "application/json", **self.auth_headers(deployment)}
        payload = self.upstream_body(operation, deployment, body, stream)
        return UpstreamRequest(url=self.url(operation, deployment), headers=headers, body=orjson.dumps(payload))

    def translate_response(self, operation, deployment, raw):
        if operation in MEDIA_OPERATIONS:
            return media_response(self.name, operation, raw)
        payload = load_json_response(self.name, raw)
        if operation is Operation.RESPONSES:
            return TranslatedResponse(body=raw, usage=usage_from_responses(payload.get("usage")))
        # The upstream bytes go to the client as they are: no re-encoding on the hot path.
        return TranslatedResponse(body=raw, usage=usage_from_openai(payload.get("usage")))

    def stream_translator(self, operation, deployment):
        if operation is Operation.RESPONSES:
            return ResponsesStreamTranslator(self.name)
        if operation in MEDIA_OPERATIONS:
            return MediaStreamTranslator(self.name)
        return OpenAIStreamTranslator(self.name)

    passthrough = True
    # Not /responses: a previous_response_id is an account-wide reference, so a tenant could
    # continue another's conversation; /v1/responses keeps stored responses per team.
    passthrough_paths = re.compile(
        r"/v1/(chat/completions|completions|embeddings|moderations|models(/[^/]+)?)/?"
    )

    def passthrough_operation(self, path: str) -> Operation | None:
        path = path.rstrip("/")
        for suffix, operation in _PASSTHROUGH_OPERATIONS:
            if path.endswith(suffix):
                return operation
        return None

    def passthrough_root(self, deployment) -> str:
        """The URL the client's path follows: the API base without its /v1."""
        return (deployment.api_base or self.default_api_base or "").rstrip("/").removesuffix("/v1")

    async def passthrough_request(self, deployment, *, method, path, query, headers, body, json_body):
        operation = self.passthrough_operation(path)
        body = passthrough_body(body, json_body, deployment,
                                usage_in_stream=operation in (Operation.CHAT, Operation.COMPLETION))
        url = self.passthrough_root(deployment) + path + (f"?{query}" if query else "")
        return UpstreamRequest(url=url, headers={**headers, **self.auth_headers(deployment)}, body=body,
                               method=method)


    batches = True
    batch_endpoints = {
        "/v1/chat/completions": Operation.CHAT,
        "/v1/completions": Operation.COMPLETION,
        "/v1/embeddings": Operation.EMBEDDING,
        "/v1/responses": Operation.RESPONSES,
    }

    def files_request(self, deployment, *, method, path, query="", headers=None, body=b""):
        url = (deployment.api_base or self.default_api_base or "").rstrip("/") + path + (f"?{query}" if query else "")
        return UpstreamRequest(url=url, headers={**(headers or {}), **self.auth_headers(deployment)}, body=body,
                               method=method)


class AzureOpenAIAdapter(OpenAIAdapter):
    """Azure OpenAI: `{api_base}/openai/deployments/{deployment}/...?api-version=`, or the
    v1 API when api_base ends in /openai/v1; the key goes in the `api-key` header."""

    name = "azure"
    default_api_base = None
    api_key_env = "AZURE_API_KEY"
    default_api_version = "2024-10-21"

    def url(self, operation, deployment) -> str:
        base = (deployment.api_base or "").rstrip("/")
        if not base:
            raise GatewayError(
                "This azure deployment has no api_base (https://<resource>.openai.azure.com).",
                status=500, type="server_error", code="deployment_misconfigured",
            )
        if base.endswith("/openai/v1"):
            return base + _PATHS[operation]
        if operation is Operation.RESPONSES:
            version = max(deployment.api_version or "", _AZURE_RESPONSES_API_VERSION)
            return f"{base}/openai/responses?api-version={version}"
        version = deployment.api_version or self.default_api_version
        return f"{base}/openai/deployments/{deployment.upstream_model}{_PATHS[operation]}?api-version={version}"

    def auth_headers(self, deployment) -> dict[str, str]:
        return {"api-key": deployment.api_key} if deployment.api_key else {}

    def batch_endpoint(self, endpoint: str) -> str:
        # Azure's Batch API names its endpoints without /v1 (its input lines' `url` too).
        return endpoint.removeprefix("/v1")

    def files_request(self, deployment, *, method, path, query="", headers=None, body=b""):
        base = (deployment.api_base or "").rstrip("/")
        if not base:
            self.url(Operation.CHAT, deployment)  # raises: no api_base
        if base.endswith("/openai/v1"):
            url = base + path + (f"?{query}" if query else "")
        else:
            # The Batch API is GA from 2024-10-21; an older version set for chat would refuse it.
            version = max(deployment.api_version or "", self.default_api_version)
            url = f"{base}/openai{path}?api-version={version}" + (f"&{query}" if query else "")
        return UpstreamRequest(url=url, headers={**(headers or {}), **self.auth_headers(deployment)}, body=body,
                               method=method)

    passthrough_paths = re.compile(
        r"/openai/(deployments/[^/]+/(chat/completions|completions|embeddings)"
        r"|(v1/)?(chat/completions|embeddings)|(v1/)?models(/[^/]+)?)/?"
    )

    def passthrough_model(self, path: str, body: dict | None) -> str | None:
        match = _AZURE_DEPLOYMENT_PATH.match(path)
        return match.group(1) if match else super().passthrough_model(path, body)

    def passthrough_root(self, deployment) -> str:
        base = (deployment.api_base or "").rstrip("/")
        if not base:
            self.url(Operation.CHAT, deployment)  # raises: no api_base
        return base.removesuffix("/openai/v1")

    async def passthrough_request(self, deployment, *, method, path, query, headers, body, json_body):
        match = _AZURE_DEPLOYMENT_PATH.match(path)
        if match:  # the deployment the client named becomes this deployment's
            path = f"/openai/deployments/{deployment.upstream_model}{path[match.end(1):]}"
        return await super().passthrough_request(deployment, method=method, path=path, query=query,
                                                 headers=headers, body=body, json_body=json_body)


class OpenAICompatibleAdapter(OpenAIAdapter):
    """A host speaking OpenAI's API, known by its preset base URL and key variable."""

    # Their Responses APIs, where they have one, differ: /v1/responses is translated to chat for them.
    operations = frozenset({Operation.CHAT, Operation.COMPLETION, Operation.EMBEDDING})
    batches = False  # a few have a Batch API of their own; none is wired here

    def __init__(self, name: str, default_api_base: str | None, api_key_env: str | None) -> None:
        self.name = name
        self.default_api_base = default_api_base
        self.api_key_env = api_key_env


# name: (default base URL, environment variable holding the key)
OPENAI_COMPATIBLE_PRESETS: dict[str, tuple[str | None, str | None]] = {
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "together_ai": ("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "fireworks_ai": ("https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY"),
    "perplexity": ("https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    "cerebras": ("https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    "hosted_vllm": (None, "HOSTED_VLLM_API_KEY"),
    "lm_studio": ("http://localhost:1234/v1", "LM_STUDIO_API_KEY"),
    "openai_compatible": (None, None),
}
