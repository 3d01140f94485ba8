"""Cohere's rerank API (v2), behind the gateway's /v1/rerank and /v2/rerank.

Clients speak the request shape LiteLLM and Cohere share ({model, query, documents,
top_n, return_documents, max_tokens_per_doc}) and get Cohere's v2 answer back. Two
things differ upstream: v2 dropped `return_documents` (the gateway adds the documents'
text to the results itself), and v2 takes documents as strings only.

Rerank is billed per search unit, not per token: the usage carries the search units
(priced by apps.spend.pricing at the deployment's input_cost_per_query), and the client
sees them in the response header `x-gateway-search-units`.
"""

from __future__ import annotations

import contextvars
import os
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from apps.core.errors import GatewayError, invalid_request
from apps.providers.adapters.base import (
    Operation,
    ProviderAdapter,
    TranslatedResponse,
    UpstreamRequest,
    Usage,
    load_json_response,
    upstream_error,
)

PROVIDER = "cohere"
SEARCH_UNITS_HEADER = "x-gateway-search-units"
# Cohere's SDK reads CO_API_KEY; the registry reads COHERE_API_KEY (api_key_env).
_FALLBACK_API_KEY_ENV = "CO_API_KEY"


@dataclass(frozen=True, slots=True)
class RerankRequest:
    documents: list[str]
    return_documents: bool


# What translate_response needs from the request (it is not given the body); set by
# build_request, which runs in the same task.
_current_request: contextvars.ContextVar[RerankRequest | None] = contextvars.ContextVar(
    "cohere_rerank_request", default=None
)


def billed_search_units(translated: TranslatedResponse) -> float | None:
    """The search units Cohere billed for a rerank answer, or None when it did not say."""
    value = translated.headers.get(SEARCH_UNITS_HEADER)
    return float(value) if value is not None else None


# --- requests ---------------------------------------------------------------------------------


def _query(body: dict) -> str:
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise invalid_request("'query' must be a non-empty string.", param="query", code="invalid_type")
    return query


def _document_texts(body: dict) -> list[str]:
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise invalid_request(
            "'documents' must be a non-empty array.", param="documents", code="invalid_type"
        )
    texts = []
    for index, document in enumerate(documents):
        if isinstance(document, dict) and isinstance(document.get("text"), str):
            document = document["text"]
        if not isinstance(document, str):
            raise invalid_request(
                "Each document must be a string or an object with a 'text' string.",
                param=f"documents[{index}]",
                code="invalid_type",
            )
        texts.append(document)
    return texts


def _positive_int(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid_request(f"'{name}' must be a positive integer.", param=name, code="invalid_type")
    return value


def _return_documents(body: dict) -> bool:
    value = body.get("return_documents")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_request(
            "'return_documents' must be a boolean.", param="return_documents", code="invalid_type"
        )
    return value


def rerank_body(body: dict, deployment) -> tuple[dict, RerankRequest]:
    """The v2 request, and what the answer needs from it. Only v2's fields are sent: v1's
    max_chunks_per_doc has no meaning left (v2 truncates at max_tokens_per_doc instead)."""
    if body.get("rank_fields"):
        raise invalid_request(
            "Cohere's v2 rerank ranks document text only; send each document as a string "
            "(or {\"text\": ...}) instead of using rank_fields.",
            param="rank_fields",
            code="unsupported_parameter",
        )
    documents = _document_texts(body)
    payload: dict[str, Any] = {
        "model": deployment.upstream_model,
        "query": _query(body),
        "documents": documents,
    }
    for name in ("top_n", "max_tokens_per_doc"):
        value = _positive_int(body, name)
        if value is not None:
            payload[name] = value
    return payload, RerankRequest(documents=documents, return_documents=_return_documents(body))


# --- responses --------------------------------------------------------------------------------


def _bad_response(detail: str) -> GatewayError:
    return GatewayError(
        f"cohere returned a rerank response {detail}.",
        status=502,
        type="api_error",
        code="bad_upstream_response",
    )


def _result(raw_result: Any, request: RerankRequest | None) -> dict:
    if not isinstance(raw_result, dict):
        raise _bad_response("with a result that is not an object")
    index, score = raw_result.get("index"), raw_result.get("relevance_score")
    if isinstance(index, bool) or not isinstance(index, int) or not isinstance(score, (int, float)):
        raise _bad_response("with a result lacking index or relevance_score")
    result: dict[str, Any] = {"index": index, "relevance_score": score}
    if request is not None and request.return_documents and 0 <= index < len(request.documents):
        result["document"] = {"text": request.documents[index]}
    return result


def _search_units(meta: Any) -> float | int | None:
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    units = billed.get("search_units") if isinstance(billed, dict) else None
    return units if isinstance(units, (int, float)) and not isinstance(units, bool) else None


def rerank_response(payload: dict, request: RerankRequest | None) -> TranslatedResponse:
    raw_results = payload.get("results")
    if not isinstance(raw_results, list):
        raise _bad_response("without results")
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    body = {
        "id": payload.get("id") or str(uuid.uuid4()),
        "results": [_result(raw_result, request) for raw_result in raw_results],
        "meta": meta,
    }
    units = _search_units(meta)
    headers = {SEARCH_UNITS_HEADER: str(units)} if units is not None else {}
    # No tokens to price, but the provider did answer: the search units are the usage.
    return TranslatedResponse(
        body=orjson.dumps(body), usage=Usage(search_units=units or 0, reported=True), headers=headers
    )


class CohereAdapter(ProviderAdapter):
    name = PROVIDER
    default_api_base = "https://api.cohere.com"
    api_key_env = "COHERE_API_KEY"
    operations = frozenset({Operation.RERANK})

    def url(self, deployment) -> str:
        base = (deployment.api_base or self.default_api_base).rstrip("/")
        if base.endswith("/rerank"):
            return base
        for version in ("/v1", "/v2"):  # a base given with its version still means the host
            if base.endswith(version):
                base = base[: -len(version)]
        return base + "/v2/rerank"

    def api_key(self, deployment) -> str:
        key = deployment.api_key or os.environ.get(_FALLBACK_API_KEY_ENV)
        if not key:
            raise GatewayError(
                "This cohere deployment has no API key (set api_key, COHERE_API_KEY or CO_API_KEY).",
                status=500, type="server_error", code="deployment_misconfigured",
            )
        return key

    async def build_request(self, operation, deployment, body, *, stream):
        if stream:
            raise invalid_request("Rerank requests cannot be streamed.", param="stream")
        payload, request = rerank_body(body, deployment)
        _current_request.set(request)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {self.api_key(deployment)}",
        }
        return UpstreamRequest(url=self.url(deployment), headers=headers, body=orjson.dumps(payload))

    def translate_response(self, operation, deployment, raw):
        return rerank_response(load_json_response(self.name, raw), _current_request.get())

    def translate_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> GatewayError:
        # Cohere answers a bad key with 498 ("invalid token"), a status no client knows.
        return upstream_error(self.name, 401 if status == 498 else status, raw, headers)
