"""What a spend log keeps of a request besides its counts: the client's metadata and tags
(always, bounded), and the request and its answer when prompts are stored (opt-in per key or
team, bounded by GATEWAY_STORED_PROMPT_MAX_BYTES)."""

from __future__ import annotations

import orjson
from django.conf import settings


def bounded_json(value):
    """`value`, or a marker with its head when its JSON is larger than the gateway keeps."""
    limit = settings.GATEWAY_STORED_PROMPT_MAX_BYTES
    try:
        encoded = orjson.dumps(value)
    except TypeError:
        return {"unserializable": True}
    if len(encoded) <= limit:
        return value
    return {"truncated": True, "bytes": len(encoded), "head": encoded[:limit].decode("utf-8", "ignore")}


def stored_request(body: dict | None):
    """What the client asked: chat messages, a completion's prompt, embedding input, rerank query."""
    body = body or {}
    for name in ("messages", "prompt", "input"):
        if name in body:
            return bounded_json({name: body[name]})
    if "query" in body:
        return bounded_json({"query": body["query"], "documents": body.get("documents")})
    return None


def spend_metadata(metadata, tags: tuple[str, ...], *, key_tags: tuple[str, ...] = (),
                   key_spend_logs_metadata: dict | None = None) -> dict | None:
    """The client's `metadata` (an object) and tags, kept with the spend log if small enough; the
    key's tags and spend_logs_metadata (LiteLLM's) are added, the request's own values winning."""
    values = dict(metadata) if isinstance(metadata, dict) else {}
    if key_tags:
        tags = tuple(dict.fromkeys((*key_tags, *tags)))
    if tags:
        values["tags"] = list(tags)
    if key_spend_logs_metadata:
        asked = values.get("spend_logs_metadata")
        values["spend_logs_metadata"] = {**key_spend_logs_metadata, **(asked if isinstance(asked, dict) else {})}
    if not values:
        return None
    try:
        size = len(orjson.dumps(values))
    except TypeError:
        return {"tags": list(tags)} if tags else None
    if size > settings.GATEWAY_SPEND_METADATA_MAX_BYTES:
        return {"truncated": True, "bytes": size, **({"tags": list(tags)[:50]} if tags else {})}
    return values


def stored_answer(body: bytes):
    """A non-streamed answer as stored: its JSON, or its text when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"text": body.decode("utf-8", "replace")}


class StreamedAnswer:
    """A streamed answer put back together (content, tool calls, finish reason), to store."""

    __slots__ = ("content", "tool_calls", "finish_reason")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.tool_calls: dict[int, dict] = {}
        self.finish_reason = None

    def add(self, chunks: list[dict]) -> None:
        for chunk in chunks:
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    self.content.append(delta["content"])
                for call in delta.get("tool_calls") or ():
                    entry = self.tool_calls.setdefault(call.get("index", 0), {
                        "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                    if call.get("id"):
                        entry["id"] = call["id"]
                    function = call.get("function") or {}
                    entry["function"]["name"] += function.get("name") or ""
                    entry["function"]["arguments"] += function.get("arguments") or ""
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]

    def as_message(self) -> dict:
        message = {"role": "assistant", "content": "".join(self.content) or None}
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[index] for index in sorted(self.tool_calls)]
        return {"choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}]}
