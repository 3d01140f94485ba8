"""The exact response cache: a repeated request answered from memory or Redis, without an upstream call.

On when GATEWAY_CACHE (or config.yaml's `litellm_settings.cache: true` with `cache_params.type`)
names a backend: `local` (this process's memory), `redis` (shared by every replica; values
compressed and size-capped) or `redis+local` (the process's memory in front of Redis). A key or
team turns it off or on for itself, and sets its TTL and call types, with `metadata.cache`
({"enabled": false} / {"ttl": 600, "call_types": ["chat_completion"]}); the key's choice first,
then the team's, then the model group's (ModelGroupSettings.cache_enabled / cache_ttl).

A request's entry is found by a hash of what decides its answer: the call type, the model group,
and the body without the fields that do not (`user`, `metadata`, `stream`, `stream_options`,
`cache`, ...). Entries are per team (else per key) unless GATEWAY_CACHE_SHARED is on; a request's
`cache.namespace` picks a namespace inside that. The request's own controls, as LiteLLM spells
them: body `cache: {"no-cache": true, "no-store": true, "ttl": 600, "s-maxage": 60, "namespace": "x"}`
and the `Cache-Control: no-cache / no-store / max-age=N` header.

Entries hold the answer in OpenAI's format with its usage, so a hit is answered in the client's
format (OpenAI or Anthropic) and, for a streaming request, replayed as a stream of chunks.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import orjson
from django.conf import settings

from apps.core.errors import invalid_request
from apps.providers.adapters.base import Operation, Usage

logger = logging.getLogger(__name__)

# Request fields that do not change the answer (or are the cache's own controls).
_NOT_IN_KEY = frozenset({
    "user", "metadata", "stream", "stream_options", "cache", "drop_params", "timeout", "request_timeout",
    "num_retries", "mock_response", "guardrails", "tags", "litellm_metadata", "extra_headers",
})
CACHED_CALL_TYPES = {
    Operation.CHAT: "chat_completion", Operation.COMPLETION: "text_completion",
    Operation.EMBEDDING: "embedding", Operation.RESPONSES: "responses", Operation.RERANK: "rerank",
}
# LiteLLM's names for the call types (cache_params.supported_call_types).
_LITELLM_CALL_TYPES = {"completion": "chat_completion", "acompletion": "chat_completion",
                       "text_completion": "text_completion", "atext_completion": "text_completion",
                       "embedding": "embedding", "aembedding": "embedding", "responses": "responses",
                       "aresponses": "responses", "rerank": "rerank", "arerank": "rerank"}
# Streamed requests a cached answer can be replayed to (and, for chat, whose streams are kept).
STREAM_REPLAYED = frozenset({Operation.CHAT, Operation.COMPLETION})
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "search_units")


@dataclass(slots=True)
class CacheEntry:
    body: bytes  # the answer in OpenAI's format (TranslatedResponse.body)
    usage: dict
    created: float
    deployment_id: int | None = None  # who answered it: its prices give what a hit saves
    content_type: str = "application/json"
    # The body as the client got it, not OpenAI's chat format (a Responses API answer: the same
    # response, with its id, which the team's store holds when it was stored).
    formatted: bool = False

    def usage_object(self) -> Usage:
        return Usage(reported=True, **{name: self.usage.get(name, 0) for name in _USAGE_FIELDS})

    def dumps(self) -> bytes:
        return orjson.dumps({"b": self.body.decode(), "u": self.usage, "c": self.created, "d": self.deployment_id,
                             "t": self.content_type, "f": self.formatted})

    @classmethod
    def loads(cls, data: bytes) -> CacheEntry:
        value = orjson.loads(data)
        return cls(body=value["b"].encode(), usage=value["u"], created=value["c"], deployment_id=value.get("d"),
                   content_type=value["t"], formatted=bool(value.get("f")))


def usage_as_dict(usage: Usage) -> dict:
    return {name: getattr(usage, name) for name in _USAGE_FIELDS if getattr(usage, name)}


class EmbeddingItems:
    """A batched embedding request cached per input item: the items found are answered from the
    cache, only the others go upstream, and the answer is put back together in the input's order."""

    def __init__(self, decisions: list[CacheDecision], found: list[CacheEntry | None], inputs: list) -> None:
        self.decisions = decisions
        self.cached = {index: entry for index, entry in enumerate(found) if entry is not None}
        self.missing = [index for index, entry in enumerate(found) if entry is None]
        self.inputs = inputs

    @property
    def all_found(self) -> bool:
        return not self.missing

    def cached_usage(self) -> Usage:
        return Usage(reported=True, prompt_tokens=sum(e.usage.get("prompt_tokens", 0) for e in self.cached.values()))

    def merged(self, body: bytes | None) -> bytes:
        """The whole answer: the upstream's items (for the missing inputs, in order) and the cached."""
        answer = orjson.loads(body) if body is not None else {"object": "list", "data": [], "model": None,
                                                              "usage": {"prompt_tokens": 0, "total_tokens": 0}}
        sent = sorted(answer.get("data") or [], key=lambda item: item.get("index", 0))
        items = [{**item, "index": self.missing[position]} for position, item in enumerate(sent)]
        for index, entry in self.cached.items():
            cached_answer = orjson.loads(entry.body)
            items.append({**cached_answer["data"][0], "index": index})
            if answer.get("model") is None:
                answer["model"] = cached_answer.get("model")
        answer["data"] = sorted(items, key=lambda item: item["index"])
        if body is None:  # every item from the cache: its usage is theirs, added up
            tokens = self.cached_usage().prompt_tokens
            answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return orjson.dumps(answer)

    def entries(self, body: bytes, usage: Usage, deployment_id) -> list[tuple[CacheDecision, CacheEntry]]:
        """One entry per input sent upstream, each with its share of the batch's tokens."""
        from apps.spend.tokens import estimate_text_tokens

        answer = orjson.loads(body)
        sent = sorted(answer.get("data") or [], key=lambda item: item.get("index", 0))
        if len(sent) != len(self.missing):
            return []
        weights = [len(item) if isinstance(item, list) else max(estimate_text_tokens(str(item)), 1)
                   for item in (self.inputs[index] for index in self.missing)]
        total, now, entries = sum(weights) or 1, time.time(), []
        for position, (index, item) in enumerate(zip(self.missing, sent)):
            tokens = round(usage.prompt_tokens * weights[position] / total)
            one = {"object": "list", "data": [{**item, "index": 0}], "model": answer.get("model"),
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
            entries.append((self.decisions[index], CacheEntry(
                body=orjson.dumps(one), usage={"prompt_tokens": tokens}, created=now, deployment_id=deployment_id)))
        return entries


def replay_chunks(entry: CacheEntry, operation: Operation) -> list[dict]:
    """A cached answer as the chunks its stream would have sent: each choice whole in one chunk, its
    finish reason in the next, the usage last (sent on if the client asked for it)."""
    answer = orjson.loads(entry.body)
    base = {"id": answer.get("id", ""), "created": answer.get("created", int(entry.created)),
            "model": answer.get("model", "")}
    chunks = []
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        if operation is Operation.CHAT:
            message = choice.get("message") or {}
            delta = {"role": "assistant", "content": message.get("content")}
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            if message.get("refusal"):
                delta["refusal"] = message["refusal"]
            chunks.append({**base, "object": "chat.completion.chunk",
                           "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
            chunks.append({**base, "object": "chat.completion.chunk",
                           "choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}]})
        else:
            chunks.append({**base, "object": "text_completion",
                           "choices": [{"index": index, "text": choice.get("text", ""), "logprobs": None,
                                        "finish_reason": choice.get("finish_reason")}]})
    kind = "chat.completion.chunk" if operation is Operation.CHAT else "text_completion"
    chunks.append({**base, "object": kind, "choices": [], "usage": answer.get("usage") or {}})
    return chunks


# --- backends ---------------------------------------------------------------------------------------


class MemoryBackend:
    """An LRU of entries bounded in bytes (GATEWAY_CACHE_MEMORY_BYTES), each with its expiry."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, tuple[float, CacheEntry, int]] = OrderedDict()

    async def get(self, key: str) -> CacheEntry | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires, entry, _ = item
        if expires <= time.time():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        size = len(entry.body) + 200
        if size > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = (time.time() + ttl, entry, size)
        self.size += size
        while self.size > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        item = self._entries.pop(key, None)
        if item is not None:
            self.size -= item[2]

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0


class RedisBackend:
    """Entries in Redis, zlib-compressed; one larger than GATEWAY_CACHE_MAX_ENTRY_BYTES is not kept."""

    def __init__(self, client_factory=None) -> None:
        from apps.core.redis import AsyncRedisPerLoop, redis_key

        self._prefix = redis_key("cache", "response")
        self._clients = AsyncRedisPerLoop(factory=client_factory)

    def _client(self):
        return self._clients.get()

    async def get(self, key: str) -> CacheEntry | None:
        data = await self._client().get(f"{self._prefix}:{key}")
        return CacheEntry.loads(zlib.decompress(data)) if data else None

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        data = zlib.compress(entry.dumps(), 3)
        if len(data) <= settings.GATEWAY_CACHE_MAX_ENTRY_BYTES:
            await self._client().set(f"{self._prefix}:{key}", data, px=max(int(ttl * 1000), 1))


class LayeredBackend:
    """This process's memory in front of Redis: a hit in memory costs no round trip."""

    def __init__(self, memory: MemoryBackend, shared: RedisBackend) -> None:
        self.memory, self.shared = memory, shared

    async def get(self, key: str) -> CacheEntry | None:
        entry = await self.memory.get(key)
        if entry is None:
            entry = await self.shared.get(key)
            if entry is not None:  # kept here no longer than the shared copy lives
                remaining = entry.created + settings.GATEWAY_CACHE_TTL - time.time()
                if remaining > 0:
                    await self.memory.set(key, entry, min(remaining, 60))
        return entry

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        await self.memory.set(key, entry, min(ttl, 60))
        await self.shared.set(key, entry, ttl)


# --- what one request may do ---------------------------------------------------------------------


@dataclass(slots=True)
class CacheDecision:
    key: str
    read: bool  # may be answered from the cache
    write: bool  # its answer may be kept
    ttl: float
    max_age: float | None  # only an entry younger than this answers it (s-maxage / max-age)
    namespace: str = ""
    call_type: str = ""
    model_group: str = ""
    body: dict | None = None  # what the key was made of (the semantic cache compares its prompt)


class ResponseCache:
    def __init__(self) -> None:
        self.backend = None
        self.call_types: frozenset[str] = frozenset(CACHED_CALL_TYPES.values())
        self.ttl = 0.0
        self.default_on = True

    def configure(self, litellm_settings: dict | None = None) -> None:
        """From GATEWAY_CACHE*, else config.yaml's litellm_settings.cache / cache_params."""
        litellm_settings = litellm_settings or {}
        params = litellm_settings.get("cache_params") or {}
        kind = settings.GATEWAY_CACHE
        if not kind and litellm_settings.get("cache") is True:
            kind = {"redis": "redis", "redis-semantic": "redis"}.get(params.get("type") or "local", "local")
        self.ttl = float(params.get("ttl") or settings.GATEWAY_CACHE_TTL) if not settings.GATEWAY_CACHE \
            else float(settings.GATEWAY_CACHE_TTL)
        supported = params.get("supported_call_types")
        if isinstance(supported, list) and supported:
            self.call_types = frozenset(_LITELLM_CALL_TYPES.get(name, name) for name in supported)
        self.default_on = params.get("mode") != "default_off"
        memory = MemoryBackend(settings.GATEWAY_CACHE_MEMORY_BYTES)
        if kind in ("", "off"):
            self.backend = None
        elif kind == "local" or not settings.REDIS_MODE:
            if kind != "local":
                logger.warning("GATEWAY_CACHE=%s needs REDIS_URL: the response cache uses this process's memory", kind)
            self.backend = memory
        elif kind == "redis":
            self.backend = RedisBackend()
        else:
            self.backend = LayeredBackend(memory, RedisBackend())

    def decide(self, *, operation: Operation, model_group: str, body: dict, context, headers,
               stream: bool, group_policy=None) -> CacheDecision | None:
        """What the cache may do for this request; None: nothing (off, or not for this request)."""
        if self.backend is None or stream and operation not in STREAM_REPLAYED:
            return None
        controls = body.get("cache")
        if controls is not None and not isinstance(controls, dict):
            raise invalid_request("'cache' must be an object (no-cache, no-store, ttl, s-maxage, namespace).",
                                  param="cache", code="invalid_type")
        controls = controls or {}
        call_type = CACHED_CALL_TYPES.get(operation)
        own = _own_settings(context)
        call_types = own.get("call_types")
        if call_type is None or call_type not in (frozenset(call_types) if call_types else self.call_types):
            return None
        enabled = own.get("enabled")
        if enabled is None and group_policy is not None:
            enabled = group_policy.cache_enabled
        if enabled is False or (enabled is None and not self.default_on and not controls.get("use-cache")):
            return None
        header = (headers.get("HTTP_CACHE_CONTROL") or "").lower()
        directives = {part.strip().partition("=")[0]: part.strip().partition("=")[2]
                      for part in header.split(",") if part.strip()}
        ttl = (_number(controls.get("ttl")) or _number(own.get("ttl"))
               or _number(getattr(group_policy, "cache_ttl", None)) or self.ttl)
        max_age = _number(controls.get("s-maxage"))
        if max_age is None and "max-age" in directives:
            max_age = _number(directives["max-age"])
        # Never chosen by the caller: a client's namespace is a folder inside its own.
        # A Responses answer carries a response id only its team may read: never shared.
        namespace = ("shared" if settings.GATEWAY_CACHE_SHARED and call_type != "responses" else
                     f"team:{context.team_id}" if context.team_id else f"key:{context.key_id or 'master'}")
        if isinstance(controls.get("namespace"), str) and controls["namespace"]:
            namespace = f"{namespace}/{controls['namespace'][:200]}"
        return CacheDecision(
            key=request_cache_key(call_type, model_group, body, namespace),
            read=not (controls.get("no-cache") is True or "no-cache" in directives),
            write=not (controls.get("no-store") is True or "no-store" in directives),
            ttl=min(max(ttl, 1.0), 30 * 86400),
            max_age=max_age,
            namespace=namespace,
            call_type=call_type,
            model_group=model_group,
            body=body,
        )

    def item_decisions(self, decision: CacheDecision, body: dict) -> list[CacheDecision] | None:
        """A batched embedding request's entries, one per input item (None: not a batch)."""
        items = body.get("input")
        if decision.call_type != "embedding" or not isinstance(items, list) or len(items) < 2 \
                or isinstance(items[0], int):  # one prompt as token ids, not a batch
            return None
        return [CacheDecision(key=request_cache_key("embedding", decision.model_group, {**body, "input": [item]},
                                                    decision.namespace),
                              read=decision.read, write=decision.write, ttl=decision.ttl, max_age=decision.max_age,
                              namespace=decision.namespace, call_type="embedding", model_group=decision.model_group)
                for item in items]

    async def get(self, decision: CacheDecision) -> CacheEntry | None:
        try:
            entry = await self.backend.get(decision.key)
        except Exception:  # Redis down: answered by the upstream, as if it missed
            logger.warning("response cache read failed", exc_info=True)
            return None
        if entry is not None and decision.max_age is not None and time.time() - entry.created > decision.max_age:
            return None
        return entry

    async def put(self, decision: CacheDecision, entry: CacheEntry) -> None:
        try:
            await self.backend.set(decision.key, entry, decision.ttl)
        except Exception:
            logger.warning("response cache write failed", exc_info=True)


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _own_settings(context) -> dict:
    return context.cache_settings or {}


def request_cache_key(call_type: str, model_group: str, body: dict, namespace: str) -> str:
    canonical = {name: value for name, value in body.items() if name not in _NOT_IN_KEY}
    try:
        encoded = orjson.dumps([call_type, model_group, namespace, canonical], option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a key orjson does not sort (cannot come from JSON): not cacheable by content
        encoded = repr((call_type, model_group, namespace, sorted(canonical.items(), key=str))).encode()
    return hashlib.sha256(encoded).hexdigest()


response_cache = ResponseCache()


def response_cache_configure() -> None:
    """At a server process's start: GATEWAY_CACHE*, else GATEWAY_CONFIG's litellm_settings.cache;
    and the guardrails of GATEWAY_CONFIG (apps.routing.guardrails)."""
    from apps.routing.guardrails import guardrails_configure

    litellm_settings: dict = {}
    entries: list = []
    if settings.GATEWAY_CONFIG:
        from apps.providers.config import ConfigError, config_read

        try:
            config = config_read(settings.GATEWAY_CONFIG)
            litellm_settings, entries = config.litellm_settings, config.guardrails
        except (ConfigError, OSError):
            logger.exception("GATEWAY_CONFIG could not be read for its cache and guardrail settings")
    response_cache.configure(litellm_settings)
    from apps.routing.semantic_cache import semantic_cache

    semantic_cache.configure(litellm_settings)
    if semantic_cache.on and response_cache.backend is None:  # its entries' controls and spend are the cache's
        response_cache.configure({**litellm_settings, "cache": True})
    guardrails_configure(entries)
