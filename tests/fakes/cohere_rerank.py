"""A fake Cohere rerank v2 upstream (`POST /v2/rerank`).

Not a conformance-table fake (rerank is not chat), so no `_upstream` suffix. Strict like
the real API: a Bearer key is required (401 {"message": "invalid api token"}), model,
query and documents are required, documents are strings, and fields v2 does not know
(return_documents, rank_fields, max_chunks_per_doc) are refused with a 400.

Scores are deterministic: the share of the query's words found in the document.
Behaviour by model name, as in tests/fakes/brain.py: `error-<status>` (429 with
Retry-After: 7), `bad-json`, `slow` (answers after 5 s); anything else answers.
"""

from __future__ import annotations

import asyncio
import math
import re

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer

API_KEY = "co-fake-key"
V2_FIELDS = frozenset({"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority"})
DOCUMENTS_PER_SEARCH_UNIT = 100


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def relevance(query: str, document: str) -> float:
    query_words = _words(query)
    return round(len(query_words & _words(document)) / len(query_words), 4) if query_words else 0.0


class CohereRerankServer(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict] = []
        self.app.router.add_post("/v2/rerank", self.rerank)

    @staticmethod
    def _error(status: int, message: str, retry_after: str | None = None) -> web.Response:
        headers = {"Retry-After": retry_after} if retry_after else {}
        return web.json_response({"id": "err-fake", "message": message}, status=status, headers=headers)

    @staticmethod
    def _invalid(body: dict) -> str | None:
        unknown = sorted(set(body) - V2_FIELDS)
        if unknown:
            return f"invalid request: unknown field '{unknown[0]}'"
        for field in ("model", "query"):
            if not isinstance(body.get(field), str) or not body[field]:
                return f"invalid request: {field} must be a non-empty string"
        documents = body.get("documents")
        if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
            return "invalid request: documents must be a non-empty list of strings"
        top_n = body.get("top_n")
        if top_n is not None and (not isinstance(top_n, int) or top_n < 1):
            return "invalid request: top_n must be a positive integer"
        return None

    async def rerank(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._error(401, "invalid api token")
        if not isinstance(body, dict):
            return self._error(400, "invalid request: body must be a JSON object")
        problem = self._invalid(body)
        if problem:
            return self._error(400, problem)
        model = body["model"]
        if model.startswith("error-"):
            status = int(model.split("-", 1)[1])
            return self._error(status, f"fake error {status}", "7" if status == 429 else None)
        if model == "bad-json":
            return web.Response(body=b"<html>502 Bad Gateway</html>", content_type="application/json")
        if model == "slow":
            await asyncio.sleep(5)
        return web.json_response(self._answer(body))

    @staticmethod
    def _answer(body: dict) -> dict:
        documents = body["documents"]
        ranked = sorted(
            ({"index": i, "relevance_score": relevance(body["query"], d)} for i, d in enumerate(documents)),
            key=lambda result: (-result["relevance_score"], result["index"]),
        )
        return {
            "id": "rerank-fake",
            "results": ranked[: body.get("top_n") or len(ranked)],
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"search_units": math.ceil(len(documents) / DOCUMENTS_PER_SEARCH_UNIT)},
            },
        }
