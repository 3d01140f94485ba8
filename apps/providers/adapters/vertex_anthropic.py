"""Claude on Vertex AI (`vertex_ai/claude-...`): Anthropic's Messages format, sent to a Vertex
model URL with Google credentials.

What differs from Anthropic's own API: the URL is
{api_base}/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:rawPredict
(:streamRawPredict for streams), the body names no model and carries `anthropic_version`
("vertex-2023-10-16") instead of the header, and auth is a Google bearer token (service account
or access token, exactly as for Gemini on Vertex). Answers, streams and Anthropic's own errors
are Anthropic's; Google's platform errors (auth, quota) come in Google's shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from apps.core.errors import GatewayError
from apps.providers.adapters.anthropic import AnthropicAdapter, anthropic_body
from apps.providers.adapters.base import Operation, UpstreamRequest
from apps.providers.adapters.vertex import VERTEX_NATIVE_PATH, VertexAIAdapter, vertex_passthrough_request

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"


class VertexAnthropicAdapter(AnthropicAdapter):
    name = "vertex_ai"
    default_api_base = None
    api_key_env = None  # an api_key is a ready access token; service accounts come from secret_params
    passthrough_paths = VERTEX_NATIVE_PATH

    def __init__(self) -> None:
        self._vertex = VertexAIAdapter()  # credentials (cached tokens) and URLs, shared logic

    async def build_request(self, operation, deployment, body, *, stream):
        payload = anthropic_body(deployment, body, stream=stream)
        del payload["model"]  # the URL names it
        payload["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
        headers = {"content-type": "application/json", **await self._vertex.auth_headers(deployment)}
        beta = deployment.extra_params.get("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        method = "streamRawPredict" if stream else "rawPredict"
        url = await self._vertex.model_url(deployment, method, publisher="anthropic")
        return UpstreamRequest(url=url, headers=headers, body=orjson.dumps(payload))

    def passthrough_model(self, path: str, body: dict | None) -> str | None:
        return self._vertex.passthrough_model(path, body)

    def passthrough_operation(self, path: str) -> Operation | None:
        return self._vertex.passthrough_operation(path)

    async def passthrough_request(self, deployment, *, method, path, query, headers, body, json_body):
        return await vertex_passthrough_request(self._vertex, deployment, path=path, query=query,
                                                headers=headers, body=body, publisher="anthropic")

    def translate_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> GatewayError:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict) and "status" in error:  # Google's {"error": {"code", "message", "status"}}
            return self._vertex.translate_error(status, raw, headers)
        return super().translate_error(status, raw, headers)
