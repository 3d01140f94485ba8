"""Vertex AI (`vertex_ai/gemini-...`): Gemini's generateContent body, sent to a Vertex model URL
with Google credentials.

What differs from the Gemini API (apps.providers.adapters.gemini), whose translation it reuses:
- the URL is {api_base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:...,
  the host following the location (aiplatform.googleapis.com for "global");
- auth is `Authorization: Bearer <token>`: from a service account or other google-auth credentials
  (vertex_credentials, or GOOGLE_APPLICATION_CREDENTIALS), refreshed near expiry, or the
  deployment's api_key taken as a ready access token;
- embeddings go through :predict, which reports token counts.
Claude on Vertex (apps.providers.adapters.vertex_anthropic) uses this adapter's auth and URLs.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from typing import Any

import google.auth
import orjson
from google.auth import exceptions
from google.auth.credentials import TokenState
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from apps.core.errors import GatewayError
from apps.providers.adapters.base import Operation, TranslatedResponse, UpstreamRequest, Usage
from apps.providers.adapters.gemini import GeminiAdapter, embedding_inputs, embeddings_response, file_uris_check

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_TOKEN_REQUEST_TIMEOUT_SECONDS = 30


class VertexCredentials:
    """One deployment's Google credentials, loaded once, their token refreshed only near expiry."""

    def __init__(self, source: str) -> None:
        self.source = source  # the service-account JSON, or the path of a file holding it
        self.credentials = None  # google.auth credentials, loaded on first use (in a thread)
        self.project_id: str | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def _fresh(self) -> bool:
        return self.credentials is not None and self.credentials.token_state is TokenState.FRESH

    def _loop_lock(self) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop; the adapter outlives loops in tests.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def token(self) -> str:
        if self._fresh():
            return self.credentials.token
        async with self._loop_lock():  # one refresh at a time; the others wait for its token
            if not self._fresh():
                # google-auth is synchronous network and file I/O: keep it off the event loop.
                if self.credentials is None:
                    self.credentials, self.project_id = await asyncio.to_thread(
                        _load_google_credentials, self.source
                    )
                await asyncio.to_thread(_refresh_google_credentials, self.credentials)
        return self.credentials.token


def _load_google_credentials(source: str):
    """(credentials, project id) from a service-account JSON string or a file path."""
    try:
        if source.lstrip().startswith("{"):
            info = orjson.loads(source)
        else:
            with open(source, "rb") as file:
                info = orjson.loads(file.read())
        if not isinstance(info, dict):
            raise TypeError("the credentials are not a JSON object")
        if info.get("type", "service_account") == "service_account":
            credentials = service_account.Credentials.from_service_account_info(
                info, scopes=[CLOUD_PLATFORM_SCOPE]
            )
        else:  # authorized_user, external_account (workload identity), impersonated_service_account
            credentials, _ = google.auth.load_credentials_from_dict(info, scopes=[CLOUD_PLATFORM_SCOPE])
    except (OSError, ValueError, TypeError, exceptions.GoogleAuthError) as exc:
        # The message never quotes the credentials themselves.
        raise GatewayError(
            f"vertex_ai credentials could not be loaded: {type(exc).__name__}: {_short(exc)}",
            status=500,
            type="server_error",
            code="deployment_misconfigured",
        ) from None
    return credentials, info.get("project_id") or info.get("quota_project_id")


def _refresh_google_credentials(credentials) -> None:
    request = Request()
    try:
        credentials.refresh(functools.partial(request, timeout=_TOKEN_REQUEST_TIMEOUT_SECONDS))
    except exceptions.RefreshError as exc:
        raise GatewayError(
            f"vertex_ai error: Google refused to issue an access token: {_short(exc)}",
            status=401,
            type="authentication_error",
            code="token_refresh_failed",
        ) from None
    except exceptions.TransportError as exc:
        raise GatewayError(
            f"Could not reach Google's token endpoint: {_short(exc)}",
            status=502,
            type="api_connection_error",
            code="upstream_unreachable",
        ) from None
    finally:
        request.session.close()


def _short(exc: Exception) -> str:
    if isinstance(exc, OSError):  # not str(exc): it would quote the "path", maybe a mangled secret
        return exc.strerror or type(exc).__name__
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text[:300]


def vertex_credentials_source(deployment) -> str | None:
    """The service-account JSON (or its path) for a deployment; None means use its api_key as a token.

    Order: the deployment's vertex_credentials, then its api_key (an access token), then
    the file named by GOOGLE_APPLICATION_CREDENTIALS.
    """
    inline = deployment.secret_params.get("vertex_credentials")
    if inline:
        return inline
    if deployment.api_key:
        return None
    return os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or None


# A native Vertex AI call on one publisher model.
VERTEX_NATIVE_PATH = re.compile(
    r"/v1(beta1)?/projects/[^/]+/locations/[^/]+/publishers/(?P<publisher>google|anthropic)"
    r"/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent|countTokens"
    r"|rawPredict|streamRawPredict)"
)
VERTEX_TOKEN_METHODS = ("generateContent", "streamGenerateContent", "rawPredict", "streamRawPredict")


async def vertex_passthrough_request(vertex: "VertexAIAdapter", deployment, *, path: str, query: str,
                                     headers: dict[str, str], body: bytes, publisher: str) -> UpstreamRequest:
    """A native Vertex call sent to this deployment: its project, location and model in the URL,
    its Google token in place of the client's key."""
    method = VERTEX_NATIVE_PATH.fullmatch(path).group("method")
    url = await vertex.model_url(deployment, method, publisher=publisher)
    auth = await vertex.auth_headers(deployment)
    return UpstreamRequest(url=url + (f"?{query}" if query else ""),
                           headers={**headers, "content-type": "application/json", **auth}, body=body)


class VertexAIAdapter(GeminiAdapter):
    name = "vertex_ai"
    default_api_base = None  # https://{location}-aiplatform.googleapis.com
    api_key_env = None  # an api_key is a ready access token; service accounts come from secret_params
    default_location = "us-central1"
    embedding_method = "predict"
    # Imagen 3 capability edits images on Vertex AI only (the Gemini API has no Imagen editing).
    operations = frozenset({Operation.CHAT, Operation.EMBEDDING, Operation.IMAGE_GENERATION, Operation.IMAGE_EDIT})
    # The pass-through: the client's own project, location and model in the path become the
    # deployment's; Gemini calls read like the Gemini API's, Claude's like Anthropic's.
    passthrough_paths = VERTEX_NATIVE_PATH

    def __init__(self) -> None:
        super().__init__()
        self._credentials: dict[int, VertexCredentials] = {}  # by deployment id

    def credentials_for(self, deployment) -> VertexCredentials | None:
        source = vertex_credentials_source(deployment)
        if source is None:
            return None
        cached = self._credentials.get(deployment.id)
        if cached is None or cached.source != source:  # new, or its credentials were changed
            cached = self._credentials[deployment.id] = VertexCredentials(source)
        return cached

    async def auth_headers(self, deployment) -> dict[str, str]:
        credentials = self.credentials_for(deployment)
        if credentials is not None:
            return {"Authorization": f"Bearer {await credentials.token()}"}
        if deployment.api_key:
            return {"Authorization": f"Bearer {deployment.api_key}"}
        raise GatewayError(
            "This vertex_ai deployment has no credentials: set vertex_credentials (a service-account JSON "
            "or its path), an api_key (an access token), or GOOGLE_APPLICATION_CREDENTIALS.",
            status=500,
            type="server_error",
            code="deployment_misconfigured",
        )

    async def model_url(self, deployment, method: str, *, publisher: str = "google") -> str:
        """The model's URL; `publisher` is "anthropic" for Claude (apps.providers.adapters.vertex_anthropic)."""
        location = deployment.extra_params.get("vertex_location") or self.default_location
        project = deployment.extra_params.get("vertex_project") or self._credentials_project(deployment)
        if not project:
            raise GatewayError(
                "This vertex_ai deployment has no vertex_project (and its credentials name none).",
                status=500,
                type="server_error",
                code="deployment_misconfigured",
            )
        base = deployment.api_base or (
            "https://aiplatform.googleapis.com"
            if location == "global"
            else f"https://{location}-aiplatform.googleapis.com"
        )
        model = deployment.upstream_model.removeprefix("models/")
        return (
            f"{base.rstrip('/')}/v1/projects/{project}/locations/{location}"
            f"/publishers/{publisher}/models/{model}:{method}"
        )

    def passthrough_model(self, path: str, body: dict | None) -> str | None:
        match = VERTEX_NATIVE_PATH.fullmatch(path)
        return match.group("model") if match else None

    def passthrough_operation(self, path: str) -> Operation | None:
        match = VERTEX_NATIVE_PATH.fullmatch(path)
        return Operation.CHAT if match and match.group("method") in VERTEX_TOKEN_METHODS else None

    async def passthrough_request(self, deployment, *, method, path, query, headers, body, json_body):
        if json_body:
            file_uris_check(json_body, deployment, param="contents")
        return await vertex_passthrough_request(self, deployment, path=path, query=query,
                                                headers=headers, body=body, publisher="google")

    def _credentials_project(self, deployment) -> str | None:
        # auth_headers runs first, so loaded credentials already told their project.
        cached = self._credentials.get(deployment.id)
        return cached.project_id if cached is not None else None

    def embedding_body(self, deployment, body: dict[str, Any]) -> dict:
        payload: dict[str, Any] = {"instances": [{"content": text} for text in embedding_inputs(body)]}
        if body.get("dimensions"):
            payload["parameters"] = {"outputDimensionality": body["dimensions"]}
        return payload

    def embedding_response(self, deployment, payload: dict) -> TranslatedResponse:
        embeddings = [
            (prediction or {}).get("embeddings") or {} for prediction in payload.get("predictions") or []
        ]
        tokens = sum(int((item.get("statistics") or {}).get("token_count") or 0) for item in embeddings)
        usage = Usage(prompt_tokens=tokens, reported=True)
        vectors = [item.get("values") or [] for item in embeddings]
        return TranslatedResponse(
            body=embeddings_response(deployment.upstream_model, vectors, usage), usage=usage
        )
