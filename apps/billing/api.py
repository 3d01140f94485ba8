"""The Lago webhook endpoint (control plane): POST /billing/lago/webhook.

Thin: verify the signature (apps.billing.webhooks), then one service call. A bad or missing
signature gets 401 and changes nothing; a webhook already handled (same X-Lago-Unique-Key)
gets 200 and changes nothing more. CSRF does not apply: the signature is the authentication.
"""

from __future__ import annotations

import logging

import orjson
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.billing.services import lago_webhook_handle
from apps.billing.webhooks import SignatureInvalid, signature_verify

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def lago_webhook(request: HttpRequest) -> JsonResponse:
    if not settings.LAGO_API_BASE:
        return JsonResponse({"error": "billing is not configured"}, status=404)
    body = request.body
    try:
        signature_verify(
            algorithm=request.headers.get("X-Lago-Signature-Algorithm"),
            signature=request.headers.get("X-Lago-Signature"),
            body=body,
        )
    except SignatureInvalid as exc:
        logger.warning("Lago webhook refused: %s", exc)
        return JsonResponse({"error": "invalid signature"}, status=401)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return JsonResponse({"error": "the body is not JSON"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "the body is not a JSON object"}, status=400)
    outcome = lago_webhook_handle(unique_key=request.headers.get("X-Lago-Unique-Key"), payload=payload)
    return JsonResponse({"status": outcome})
