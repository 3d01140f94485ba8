"""Calls the gateway makes to its own model groups for itself (a moderation guardrail): the
deployments of the group tried in turn, with their credentials, timeouts and translation."""

from __future__ import annotations

import orjson
from django.conf import settings

from apps.core.errors import GatewayError
from apps.providers.adapters.base import Operation
from apps.providers.registry import deployment_registry
from apps.providers.transport import transport


async def moderation_categories(model_group: str, texts: list[str]) -> list[str]:
    """The categories a moderation model group flags in `texts` (empty: nothing flagged)."""
    deployments = (await deployment_registry.groups()).get(model_group) or []
    if not deployments:
        raise GatewayError(f"The moderation guardrail's model group {model_group!r} has no deployment.",
                           status=503, type="api_error", code="guardrail_error")
    last_error: Exception | None = None
    for deployment in deployments:
        adapter = deployment.adapter
        try:
            body = adapter.prepare_body(Operation.MODERATION, {"model": deployment.upstream_model, "input": texts},
                                        drop_params=True)
            request = await adapter.build_request(Operation.MODERATION, deployment, body, stream=False)
            response = await transport.send(request, timeout=deployment.timeout or settings.GATEWAY_UPSTREAM_TIMEOUT,
                                            provider=deployment.provider)
            try:
                raw = await response.read()
            finally:
                response.release()
            if response.status >= 400:
                raise adapter.translate_error(response.status, raw, response.headers)
            answer = orjson.loads(adapter.translate_response(Operation.MODERATION, deployment, raw).body)
        except Exception as exc:  # the next deployment of the group
            last_error = exc
            continue
        flagged = []
        for result in answer.get("results") or []:
            if result.get("flagged"):
                flagged += [name for name, on in (result.get("categories") or {}).items() if on] or ["flagged"]
        return sorted(set(flagged))
    raise last_error or RuntimeError("no moderation deployment answered")
