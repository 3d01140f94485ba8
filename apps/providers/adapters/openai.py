"""OpenAI, and every server that speaks OpenAI's API at some base URL."""

from __future__ import annotations

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
)

_PATHS = {
    Operation.CHAT: "/chat/completions",
    Operation.COMPLETION: "/completions",
    Operation.EMBEDDING: "/embeddings",
}


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


class OpenAIStreamTranslator(StreamTranslator):
    """OpenAI SSE in, OpenAI SSE out: forward events, keep the usage, hide the usage
    chunk from a client that did not ask for it (the gateway always asks, for spend)."""

    def __init__(self, *, client_wants_usage: bool) -> None:
        super().__init__()
        self.client_wants_usage = client_wants_usage

    def feed(self, line: bytes) -> list[bytes]:
        line = line.strip()
        if not line.startswith(b"data:"):
            return []  # blank separators, comments, event names
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return [b"data: [DONE]\n\n"]
        if b'"usage"' in data:
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                return []
            if isinstance(chunk, dict):
                if "error" in chunk and "choices" not in chunk:
                    return [b"data: " + data + b"\n\n"]
                if chunk.get("usage"):
                    self.usage = usage_from_openai(chunk["usage"])
                    if not self.client_wants_usage:
                        if not chunk.get("choices"):
                            return []
                        chunk["usage"] = None
                        data = orjson.dumps(chunk)
        return [b"data: " + data + b"\n\n"]

    def finish(self) -> list[bytes]:
        return [] if self.done else [b"data: [DONE]\n\n"]


class OpenAIAdapter(ProviderAdapter):
    name = "openai"
    default_api_base = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"

    def build_request(self, operation, deployment, body, *, stream):
        payload = dict(body)
        payload["model"] = deployment.upstream_model
        if stream:
            # Always ask for usage, so streamed requests are never priced at zero.
            options = dict(payload.get("stream_options") or {})
            options["include_usage"] = True
            payload["stream_options"] = options
        headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        base = (deployment.api_base or self.default_api_base or "").rstrip("/")
        return UpstreamRequest(url=base + _PATHS[operation], headers=headers, body=orjson.dumps(payload))

    def translate_response(self, operation, deployment, raw):
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise GatewayError(
                f"{self.name} returned a response that is not valid JSON.",
                status=502,
                type="api_error",
                code="bad_upstream_response",
            ) from exc
        if not isinstance(payload, dict):
            raise GatewayError(
                f"{self.name} returned an unexpected response.",
                status=502,
                type="api_error",
                code="bad_upstream_response",
            )
        # The upstream bytes go to the client as they are: no re-encoding on the hot path.
        return TranslatedResponse(body=raw, usage=usage_from_openai(payload.get("usage")))

    def stream_translator(self, operation, deployment, *, client_wants_usage):
        return OpenAIStreamTranslator(client_wants_usage=client_wants_usage)


class OpenAICompatibleAdapter(OpenAIAdapter):
    """A host speaking OpenAI's API, known by its preset base URL and key variable."""

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
