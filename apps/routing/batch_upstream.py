"""Calls to a deployment's Files and Batch APIs (the adapter builds them: apps.providers.adapters),
for the /v1/files and /v1/batches views and for the batch poller."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiohttp
import orjson

from apps.core.errors import GatewayError
from apps.providers.registry import Deployment
from apps.providers.transport import UpstreamTransport, transport, upstream_timeout


async def upstream_send(deployment: Deployment, *, method: str, path: str, query: str = "",
                        headers: dict | None = None, body: bytes | tuple = b"", stream: bool = False,
                        via: UpstreamTransport = transport):
    """The upstream's response: unread when streamed and not an error, else its body (an error
    status raised as the adapter translates it)."""
    adapter = deployment.adapter
    upstream_request = adapter.files_request(deployment, method=method, path=path, query=query, headers=headers,
                                             body=body)
    response = await via.send(upstream_request, timeout=deployment.timeout, provider=deployment.provider,
                              stream=stream, connect_timeout=deployment.connect_timeout)
    if response.status < 400 and stream:
        return response
    try:
        raw = await response.read()
    except asyncio.TimeoutError:
        raise upstream_timeout(deployment.provider) from None
    except aiohttp.ClientError:
        raise GatewayError(f"The {deployment.provider} upstream closed the connection mid-response.",
                           status=502, type="api_error", code="upstream_disconnected") from None
    finally:
        response.release()
    if response.status >= 400:
        raise adapter.translate_error(response.status, raw, response.headers)
    return raw


async def upstream_json(deployment: Deployment, *, method: str, path: str, query: str = "",
                        body: bytes | tuple = b"", headers: dict | None = None,
                        via: UpstreamTransport = transport) -> dict:
    """A files or batches call answered with a JSON object (a 502 when it is not one)."""
    raw = await upstream_send(deployment, method=method, path=path, query=query, headers=headers, body=body,
                               via=via)
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise GatewayError(f"The {deployment.provider} upstream answered with something other than JSON.",
                           status=502, type="api_error", code="bad_upstream_response")
    return payload


async def upstream_lines(deployment: Deployment, file_id: str, via: UpstreamTransport) -> AsyncIterator[bytes]:
    """A file's content line by line, as it arrives (a batch's output can be large)."""
    response = await upstream_send(deployment, method="GET", path=f"/files/{file_id}/content", stream=True, via=via)
    try:
        pending = b""
        async for chunk in response.content.iter_any():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line
        if pending:
            yield pending
    finally:
        response.close()
