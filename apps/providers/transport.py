"""The one HTTP transport to upstream providers: for the common call (a POST of bytes, answered
whole or streamed) the lean apps.providers.http1 client; for the rest (GETs, chunked uploads) a
pooled aiohttp session per process.

aiohttp, not httpx, on the hot path: through the same view it gave 5-7x the
throughput of httpx.AsyncClient (shared/reference/hot-path-measurements.md).
"""

from __future__ import annotations

import asyncio

import aiohttp
from django.conf import settings

from apps.core.errors import GatewayError
from apps.core.hot_settings import setting
from apps.core.trace_context import upstream_traceparent
from apps.providers.adapters.base import UpstreamRequest
from apps.providers.http1 import LeanHttpClient, UpstreamCut


class UpstreamTransport:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lean: LeanHttpClient | None = None
        self._lean_loop: asyncio.AbstractEventLoop | None = None

    def _get_lean(self) -> LeanHttpClient:
        loop = asyncio.get_running_loop()
        if self._lean is None or self._lean_loop is not loop:
            self._lean = LeanHttpClient(limit=settings.GATEWAY_UPSTREAM_POOL_SIZE)
            self._lean_loop = loop
        return self._lean

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(
                limit=settings.GATEWAY_UPSTREAM_POOL_SIZE,
                ttl_dns_cache=300,
                keepalive_timeout=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # No cookies: one tenant's upstream cookies (a CDN's, say) are not another's to send,
                # and the jar's filtering of every request's URL is work the hot path need not do.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                read_bufsize=2**16,
            )
            self._loop = loop
        return self._session

    async def send(
        self,
        request: UpstreamRequest,
        *,
        timeout: float | None,
        provider: str,
        stream: bool = False,
        connect_timeout: float | None = None,
    ) -> aiohttp.ClientResponse:
        """Send and return the response with its body unread (the caller reads or streams it).

        `timeout` bounds a whole answer; a stream is bounded by the time between reads
        instead, so a long answer that keeps coming is not cut off (its time to the first
        token is the router's to bound). `connect_timeout` bounds opening the connection.
        """
        limit = timeout or setting("GATEWAY_UPSTREAM_TIMEOUT")
        client_timeout = aiohttp.ClientTimeout(
            total=None if stream else limit,
            sock_read=limit if stream else None,
            connect=connect_timeout or setting("GATEWAY_UPSTREAM_CONNECT_TIMEOUT"),
        )
        headers = request.headers
        traceparent = upstream_traceparent.get()
        if traceparent is not None:  # the attempt's span, continued by the upstream (tracing on)
            headers = {**headers, "traceparent": traceparent}
        if request.method == "POST" and isinstance(request.body, bytes) \
                and setting("GATEWAY_UPSTREAM_LEAN_CLIENT") and request.url.startswith(("http://", "https://")):
            connect = connect_timeout or setting("GATEWAY_UPSTREAM_CONNECT_TIMEOUT")
            try:
                if stream:
                    return await self._get_lean().post_streamed(
                        request.url, headers, request.body, read_timeout=limit, connect=connect)
                return await self._get_lean().post(request.url, headers, request.body, total=limit, connect=connect)
            except TimeoutError as exc:
                raise upstream_timeout(provider) from exc
            except (OSError, UpstreamCut) as exc:
                raise GatewayError(
                    f"Could not reach the {provider} upstream: {type(exc).__name__}.",
                    status=502,
                    type="api_connection_error",
                    code="upstream_unreachable",
                ) from exc
        try:
            return await self._get_session().request(
                request.method,
                request.url,
                data=request.body if isinstance(request.body, bytes) else _chunks_sent(request.body),
                headers=headers,
                timeout=client_timeout,
            )
        except TimeoutError as exc:
            raise upstream_timeout(provider) from exc
        except aiohttp.ClientError as exc:
            raise GatewayError(
                f"Could not reach the {provider} upstream: {type(exc).__name__}.",
                status=502,
                type="api_connection_error",
                code="upstream_unreachable",
            ) from exc

    async def close(self) -> None:
        if self._lean is not None:
            self._lean.close()
            self._lean = None
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


async def _chunks_sent(chunks: tuple):
    """A body given in chunks (a multipart upload around the client's file), sent as they are; a
    new generator per attempt, so a retry sends it again."""
    for chunk in chunks:
        yield chunk


def upstream_timeout(provider: str) -> GatewayError:
    return GatewayError(
        f"The {provider} upstream did not answer in time.",
        status=504,
        type="timeout",
        code="upstream_timeout",
    )


transport = UpstreamTransport()
