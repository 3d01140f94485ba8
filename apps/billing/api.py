"""The Lago webhook endpoint (control plane): POST /billing/lago/webhook.

Thin: verify the signature, then one call (apps.billing.webhooks). A bad or missing signature
gets 401 and changes nothing; a webhook already handled (same X-Lago-Unique-Key, or the same
signed content under another) gets 200 and changes nothing more; a malformed one 400; Lago
unreachable for the re-read 503, so Lago delivers it again. CSRF does not apply: the signature
is the authentication. Errors have the gateway's OpenAI shape.
"""

from __future__ import annotations

import logging

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.billing.lago import LagoUnavailable
from apps.billing.webhooks import SignatureInvalid, WebhookMalformed, lago_webhook_handle, signature_verify
from apps.core.errors import GatewayError, authentication_failed, invalid_request, not_found

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def lago_webhook(request: HttpRequest) -> HttpResponse:
    if not settings.LAGO_API_BASE:
        return not_found("Billing is not configured.").to_response()
    body = request.body
    try:
        signature_verify(
            algorithm=request.headers.get("X-Lago-Signature-Algorithm"),
            signature=request.headers.get("X-Lago-Signature"),
            body=body,
        )
    except SignatureInvalid as exc:
        logger.warning("Lago webhook refused: %s", exc)
        return authentication_failed("Invalid webhook signature.", code="invalid_signature").to_response()
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return invalid_request("The body is not JSON.", code="invalid_json").to_response()
    if not isinstance(payload, dict):
        return invalid_request("The body is not a JSON object.", code="invalid_json").to_response()
    try:
        outcome = lago_webhook_handle(unique_key=request.headers.get("X-Lago-Unique-Key"), payload=payload)
    except WebhookMalformed as exc:
        return invalid_request(f"Malformed webhook: {exc}.", code="invalid_webhook").to_response()
    except LagoUnavailable as exc:
        logger.warning("Lago webhook not applied, Lago could not be re-read: %s", exc)
        return GatewayError("Lago could not be re-read; deliver the webhook again.", status=503,
                            type="server_error", code="lago_unavailable",
                            headers={"Retry-After": "5"}).to_response()
    return JsonResponse({"status": outcome})
