"""Calls the gateway makes to its own model groups for itself (a moderation guardrail, the semantic
cache's embeddings): the deployments of the group tried in turn, with their credentials, timeouts
and translation. Not requests of a tenant: no key, limits or spend row."""

from __future__ import annotations

import orjson
from django.conf import settings

from apps.core.errors import GatewayError
from apps.providers.adapters.base import Operation, TranslatedResponse
from apps.providers.registry import deployment_registry
from apps.providers.transport import transport


async def deployment_call_once(deployment, operation: Operation, body: dict, *, timeout: float,
                               connect_timeout: float | None = None, over=None) -> TranslatedResponse:
    """One non-streamed call to one deployment through its translator (`over`: a transport of the
    caller's, else the process's): its answer, or the GatewayError its adapter makes of an error status."""
    adapter = deployment.adapter
    payload = adapter.prepare_body(operation, body, drop_params=True)
    request = await adapter.build_request(operation, deployment, payload, stream=False)
    response = await (over or transport).send(request, timeout=timeout, connect_timeout=connect_timeout,
                                    provider=deployment.provider)
    try:
        raw = await response.read()
    finally:
        response.release()
    if response.status >= 400:
        raise adapter.translate_error(response.status, raw, response.headers)
    return adapter.translate_response(operation, deployment, raw)


async def _first_answer(model_group: str, operation: Operation, body: dict) -> dict:
    """The answer (OpenAI's format) of the first deployment of the group that gives one."""
    deployments = (await deployment_registry.groups()).get(model_group) or []
    if not deployments:
        raise GatewayError(f"The model group {model_group!r} has no deployment.", status=503, type="api_error",
                           code="guardrail_error")
    last_error: Exception | None = None
    for deployment in deployments:
        try:
            answer = await deployment_call_once(
                deployment, operation, {**body, "model": deployment.upstream_model},
                timeout=deployment.timeout or settings.GATEWAY_UPSTREAM_TIMEOUT,
                connect_timeout=deployment.connect_timeout)
            return orjson.loads(answer.body)
        except Exception as exc:  # the next deployment of the group
            last_error = exc
    raise last_error or RuntimeError(f"no deployment of {model_group} answered")


async def embedding_vector(model_group: str, text: str) -> list[float]:
    """The embedding of `text` by an embedding model group (the semantic cache's, when not local)."""
    answer = await _first_answer(model_group, Operation.EMBEDDING, {"input": [text], "encoding_format": "float"})
    return answer["data"][0]["embedding"]


async def moderation_categories(model_group: str, texts: list[str]) -> list[str]:
    """The categories a moderation model group flags in `texts` (empty: nothing flagged)."""
    answer = await _first_answer(model_group, Operation.MODERATION, {"input": texts})
    flagged = []
    for result in answer.get("results") or []:
        if result.get("flagged"):
            flagged += [name for name, on in (result.get("categories") or {}).items() if on] or ["flagged"]
    return sorted(set(flagged))
