"""The OpenAI-compatible /v1 API (each route also without the /v1 prefix).

Async django-ninja views served by the data plane's lean ASGI path
(apps.routing.dataplane): no middleware, no per-request thread, no database query on
a warm cache. Views stay thin; the flow is in apps.routing.proxy.
"""

from __future__ import annotations

import logging

import orjson
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from apps.core.errors import GatewayError, authentication_failed, internal_error, invalid_request, not_found
from apps.keys.auth import authenticate
from apps.providers.adapters.base import Operation
from apps.providers.registry import deployment_registry
from apps.routing import batches_api, responses_api
from apps.routing.anthropic_format import (
    ANTHROPIC_FORMAT,
    anthropic_error_response,
    openai_body_from_anthropic,
)
from apps.routing.media import AUDIO_UPLOAD_FORMAT, IMAGE_FORMAT, IMAGE_UPLOAD_FORMAT, SPEECH_FORMAT
from apps.routing.passthrough import passthrough_request
from apps.routing.proxy import ClientFormat, proxy_request
from apps.routing.router import deployment_group, may_use_group, usable_deployments
from apps.routing.selection import health
from apps.routing.selection.policy import routing_policy_cache
from apps.routing.validation import json_body
from apps.spend.tokens import count_prompt_tokens

logger = logging.getLogger(__name__)


class DataPlaneAPI(NinjaAPI):
    def create_temporal_response(self, request: HttpRequest) -> HttpResponse:
        # Every view here returns its own HttpResponse and none takes ninja's `response`
        # parameter, so the scratch response ninja would build per request is never read.
        return _UNREAD_RESPONSE


_UNREAD_RESPONSE = HttpResponse(b"", content_type="application/json")


# ninja awaits an async auth callable on the event loop (no thread); a plain coroutine
# function, because ninja inspects the callable on every request and that is the cheap case.
api = DataPlaneAPI(
    title="LLM gateway: OpenAI-compatible API",
    version="1",
    urls_namespace="dataplane",
    auth=authenticate,
    docs_url=None,
    openapi_url=None,
)


def _is_anthropic_route(request: HttpRequest) -> bool:
    return "/messages" in request.path


@api.exception_handler(GatewayError)
def _gateway_error(request, exc: GatewayError):
    return anthropic_error_response(exc) if _is_anthropic_route(request) else exc.to_response()


@api.exception_handler(AuthenticationError)
def _auth_error(request, exc):
    return _gateway_error(request, authentication_failed("Invalid API key."))


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    first = exc.errors[0] if exc.errors else {}
    param = ".".join(str(p) for p in first.get("loc", [])[1:]) or None
    return _gateway_error(request, invalid_request(first.get("msg", "Invalid request."), param=param))


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    return _gateway_error(request, GatewayError(str(exc), status=exc.status_code))


@api.exception_handler(Exception)
def _unexpected(request, exc: Exception):
    logger.exception("unexpected error on %s", request.path)
    return _gateway_error(request, internal_error())


def _json(payload, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")


@api.post("/chat/completions", summary="Chat completion (OpenAI format)")
async def chat_completions(request: HttpRequest):
    return await proxy_request(request, Operation.CHAT)


@api.post("/completions", summary="Text completion (OpenAI format)")
async def completions(request: HttpRequest):
    return await proxy_request(request, Operation.COMPLETION)


@api.post("/embeddings", summary="Embeddings (OpenAI format)")
async def embeddings(request: HttpRequest):
    return await proxy_request(request, Operation.EMBEDDING)


@api.post("/messages", summary="Anthropic Messages format, served by any deployment")
async def messages(request: HttpRequest):
    return await proxy_request(request, Operation.CHAT, client_format=ANTHROPIC_FORMAT)


@api.post("/messages/count_tokens", summary="Anthropic token count (counted with tiktoken)")
async def messages_count_tokens(request: HttpRequest):
    raw = json_body(request)
    # A count needs no max_tokens; the largest one keeps any thinking budget below it.
    body = openai_body_from_anthropic({"max_tokens": 2**31 - 1, **raw})
    await deployment_group(body["model"], request.auth)  # 404 / 403 as for a message
    return _json({"input_tokens": await count_prompt_tokens(body["messages"], body.get("tools"))})


@api.post("/responses", summary="OpenAI Responses API, served by any deployment")
async def responses(request: HttpRequest):
    return await responses_api.responses_create(request)


@api.get("/responses/{response_id}", summary="A stored response (its owner's team only)")
async def responses_retrieve(request: HttpRequest, response_id: str):
    return await responses_api.responses_retrieve(request, response_id)


@api.delete("/responses/{response_id}", summary="Delete a stored response")
async def responses_delete(request: HttpRequest, response_id: str):
    return await responses_api.responses_delete(request, response_id)


@api.post("/responses/{response_id}/cancel", summary="Cancel a background response (none run here)")
async def responses_cancel(request: HttpRequest, response_id: str):
    return await responses_api.responses_cancel(request, response_id)


@api.get("/responses/{response_id}/input_items", summary="The input items of a stored response")
async def responses_input_items(request: HttpRequest, response_id: str):
    return await responses_api.responses_input_items(request, response_id)


@api.post("/rerank", summary="Rerank documents against a query (Cohere format)")
async def rerank(request: HttpRequest):
    return await proxy_request(request, Operation.RERANK)


@api.post("/v2/rerank", summary="Rerank, Cohere v2 path")
async def rerank_v2(request: HttpRequest):
    return await proxy_request(request, Operation.RERANK)


@api.post("/moderations", summary="Moderation (OpenAI format; free, still limited and logged)")
async def moderations(request: HttpRequest):
    return await proxy_request(request, Operation.MODERATION)


@api.post("/images/generations", summary="Image generation (OpenAI format)")
async def images_generations(request: HttpRequest):
    return await proxy_request(request, Operation.IMAGE_GENERATION, client_format=IMAGE_FORMAT)


@api.post("/images/edits", summary="Image edit (OpenAI format, multipart upload)")
async def images_edits(request: HttpRequest):
    return await proxy_request(request, Operation.IMAGE_EDIT, client_format=IMAGE_UPLOAD_FORMAT)


@api.post("/images/variations", summary="Image variation (OpenAI format, multipart upload; dall-e-2)")
async def images_variations(request: HttpRequest):
    return await proxy_request(request, Operation.IMAGE_VARIATION, client_format=IMAGE_UPLOAD_FORMAT)


@api.post("/audio/speech", summary="Text to speech (OpenAI format), the audio streamed as it comes")
async def audio_speech(request: HttpRequest):
    return await proxy_request(request, Operation.AUDIO_SPEECH, client_format=SPEECH_FORMAT)


@api.post("/audio/transcriptions", summary="Speech to text (OpenAI format, multipart upload)")
async def audio_transcriptions(request: HttpRequest):
    return await proxy_request(request, Operation.AUDIO_TRANSCRIPTION, client_format=AUDIO_UPLOAD_FORMAT)


@api.post("/audio/translations", summary="Speech to English text (OpenAI format, multipart upload)")
async def audio_translations(request: HttpRequest):
    return await proxy_request(request, Operation.AUDIO_TRANSLATION, client_format=AUDIO_UPLOAD_FORMAT)


@api.post("/files", summary="Upload a file (multipart); a batch file is checked and stored for its model")
async def files_create(request: HttpRequest):
    return await batches_api.file_create(request)


@api.get("/files", summary="The files of this key's team")
async def files_list(request: HttpRequest):
    return await batches_api.file_list(request)


@api.get("/files/{file_id}", summary="One file (its owner's team only)")
async def files_retrieve(request: HttpRequest, file_id: str):
    return await batches_api.file_retrieve(request, file_id)


@api.get("/files/{file_id}/content", summary="A file's content, as the upstream sends it")
async def files_content(request: HttpRequest, file_id: str):
    return await batches_api.file_content(request, file_id)


@api.delete("/files/{file_id}", summary="Delete a file")
async def files_delete(request: HttpRequest, file_id: str):
    return await batches_api.file_delete(request, file_id)


@api.post("/batches", summary="Create a batch from an uploaded file; its most cost is reserved")
async def batches_create(request: HttpRequest):
    return await batches_api.batch_create(request)


@api.get("/batches", summary="The batches of this key's team")
async def batches_list(request: HttpRequest):
    return await batches_api.batch_list(request)


@api.get("/batches/{batch_id}", summary="One batch, as the upstream has it now")
async def batches_retrieve(request: HttpRequest, batch_id: str):
    return await batches_api.batch_retrieve(request, batch_id)


@api.post("/batches/{batch_id}/cancel", summary="Cancel a batch (what it ran is billed)")
async def batches_cancel(request: HttpRequest, batch_id: str):
    return await batches_api.batch_cancel(request, batch_id)


def _model_entry(name: str, group) -> dict:
    return {
        "id": name,
        "object": "model",
        "created": min(d.created for d in group),
        "owned_by": group[0].provider,
    }


async def _model_groups() -> dict:
    """Every model name clients may ask for: the groups, and the aliases not hidden."""
    groups = await deployment_registry.groups()
    routing_policy = await routing_policy_cache.get()
    named = dict(groups)
    for alias, target in routing_policy.aliases.items():
        if alias not in named and target in groups and alias not in routing_policy.hidden_aliases:
            named[alias] = groups[target]
    return named


class _ModelFromPath(ClientFormat):
    """Azure OpenAI's deployment-scoped paths, which LiteLLM serves for AzureOpenAI clients: the
    model is the path's deployment name, whatever the body says."""

    def __init__(self, model: str) -> None:
        self.model = model

    def request_body(self, body: dict) -> dict:
        return {**body, "model": self.model}


# Before the /openai/* pass-through: these are the gateway's own routes in Azure's spelling.
@api.post("/openai/deployments/{model}/chat/completions", summary="Chat completion, Azure OpenAI's path")
async def azure_style_chat_completions(request: HttpRequest, model: str):
    return await proxy_request(request, Operation.CHAT, client_format=_ModelFromPath(model))


@api.post("/openai/deployments/{model}/completions", summary="Text completion, Azure OpenAI's path")
async def azure_style_completions(request: HttpRequest, model: str):
    return await proxy_request(request, Operation.COMPLETION, client_format=_ModelFromPath(model))


@api.post("/openai/deployments/{model}/embeddings", summary="Embeddings, Azure OpenAI's path")
async def azure_style_embeddings(request: HttpRequest, model: str):
    return await proxy_request(request, Operation.EMBEDDING, client_format=_ModelFromPath(model))


_PASSTHROUGH_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@api.api_operation(_PASSTHROUGH_METHODS, "/openai/{path:path}", summary="OpenAI's own API, forwarded")
async def passthrough_openai(request: HttpRequest, path: str):
    return await passthrough_request(request, "openai", path)


@api.api_operation(_PASSTHROUGH_METHODS, "/azure/{path:path}", summary="Azure OpenAI's own API, forwarded")
async def passthrough_azure(request: HttpRequest, path: str):
    return await passthrough_request(request, "azure", path)


@api.api_operation(_PASSTHROUGH_METHODS, "/anthropic/{path:path}", summary="Anthropic's own API, forwarded")
async def passthrough_anthropic(request: HttpRequest, path: str):
    return await passthrough_request(request, "anthropic", path)


@api.api_operation(_PASSTHROUGH_METHODS, "/gemini/{path:path}", summary="Gemini's own API, forwarded")
async def passthrough_gemini(request: HttpRequest, path: str):
    return await passthrough_request(request, "gemini", path)


@api.api_operation(["POST"], "/vertex_ai/{path:path}", summary="Vertex AI's own API (Gemini, Claude), forwarded")
async def passthrough_vertex_ai(request: HttpRequest, path: str):
    return await passthrough_request(request, "vertex_ai", path)


@api.api_operation(["POST"], "/bedrock/{path:path}", summary="Bedrock's own API (Converse; InvokeModel for Claude), forwarded")
async def passthrough_bedrock(request: HttpRequest, path: str):
    return await passthrough_request(request, "bedrock", path)


@api.get("/models", summary="The models this key may use")
async def models_list(request: HttpRequest):
    context = request.auth
    data = [
        _model_entry(name, usable)
        for name, group in sorted((await _model_groups()).items())
        if (usable := usable_deployments(group, context)) and may_use_group(context, name, usable)
    ]
    return _json({"object": "list", "data": data})


@api.get("/models/{path:model}", summary="One model, if this key may use it")
async def models_retrieve(request: HttpRequest, model: str):
    group = usable_deployments((await _model_groups()).get(model) or [], request.auth)
    if not group or not may_use_group(request.auth, model, group):
        raise not_found(f"The model '{model}' does not exist.", param="model", code="model_not_found")
    return _json(_model_entry(model, group))


@api.get("/health/liveliness", auth=None, summary="The process is up")
async def liveliness(request: HttpRequest):
    return _json("I'm alive!")


@api.get("/health/readiness", auth=None, summary="Database and Redis reachable")
async def readiness(request: HttpRequest):
    report = await health.readiness_report()
    return _json(report, status=200 if report["status"] == "connected" else 503)


@api.get("/health", auth=None, summary="Healthy and unhealthy deployments (master key or admin)")
async def deployments_health(request: HttpRequest):
    await health.health_access_check(request)
    return _json(await health.deployments_health_report())
