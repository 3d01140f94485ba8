"""A lean ASGI handler for the data plane.

Django's ASGIHandler opens a thread-sensitive context per request and runs sync
signal receivers, sync middleware and `response.close()` through threads; under
load that thread churn, not the view, is the cost (shared/reference/
hot-path-measurements.md). This handler builds the same HttpRequest, resolves the
data plane's own URLconf and awaits the async view directly: no middleware, no
signals, no thread. Client disconnects cancel the view, which closes the upstream
call and still settles the request's spend.
"""

from __future__ import annotations

import asyncio
import io
import logging

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest, get_script_prefix
from django.http import HttpResponseBase
from django.urls import Resolver404, get_resolver

from apps.core.edge import (
    REQUEST_ID_SCOPE_KEY,
    BodyTooLarge,
    ClientGone,
    body_too_large,
    declared_length,
    read_body,
    send_error,
)
from apps.core.errors import GatewayError, internal_error, not_found
from apps.core.redis import redis_enabled
from apps.core.server import HEAD_SEND
from apps.routing.limits import AfterAnswer, settlements_after_answer
from apps.spend.buffer import spend_buffer
from apps.spend.journal import pending_puts, puts_wait

logger = logging.getLogger(__name__)


class DataPlaneRequest(ASGIRequest):
    """Django's ASGIRequest, built in about half its time: a /v1 request from the OpenAI SDK
    carries some seventeen headers, and ASGIRequest decodes, upper-cases and re-spells each name
    for META (and collects them in lists) on every request. Here a header name's META key is
    looked up in a table filled as names are first seen (bounded: made-up names past it are
    spelled out each time), and the content type's parameters are kept per value the same way.
    META, the path attributes, the method and the content type come out as ASGIRequest's do."""

    def __init__(self, scope, body: bytes) -> None:
        self.scope = scope
        self._post_parse_error = False
        self._read_started = False
        self.resolver_match = None
        path = self.path = scope["path"]
        script_name = self.script_name = get_script_prefix(scope)
        path_info = self.path_info = path.removeprefix(script_name) if script_name else path
        method = self.method = scope["method"].upper()
        query_string = scope.get("query_string", "")
        if isinstance(query_string, bytes):
            query_string = query_string.decode()
        meta = self.META = {
            "REQUEST_METHOD": method,
            "QUERY_STRING": query_string,
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path_info,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
        }
        client = scope.get("client")
        if client:
            meta["REMOTE_ADDR"] = meta["REMOTE_HOST"] = client[0]
            meta["REMOTE_PORT"] = client[1]
        server = scope.get("server")
        if server:
            meta["SERVER_NAME"] = server[0]
            meta["SERVER_PORT"] = str(server[1])
        else:
            meta["SERVER_NAME"] = "unknown"
            meta["SERVER_PORT"] = "0"
        names = _META_NAMES
        headers = {}
        for name, value in scope.get("headers", ()):
            key = names.get(name)
            if key is None:
                key = _meta_name(name)
                if key is None:
                    continue  # a name with "_": dropped, as Django drops it
            value = value.decode("latin1")
            earlier = headers.get(key)
            headers[key] = value if earlier is None else f"{earlier},{value}"
        meta.update(headers)
        content_type = meta.get("CONTENT_TYPE", "")
        params = _CONTENT_TYPES.get(content_type)
        if params is None:
            self._set_content_type_params(meta)
            if len(_CONTENT_TYPES) < _TABLE_LIMIT and len(content_type) <= _KEPT_LENGTH:
                _CONTENT_TYPES[content_type] = (self.content_type, dict(self.content_params), self._encoding)
        else:
            self.content_type, content_params, encoding = params
            self.content_params = dict(content_params)  # the request's own, as Django's are
            if encoding is not None:
                self._encoding = encoding  # (nothing decoded yet for the encoding setter to drop)
        self._stream = io.BytesIO(body)
        self._body = body


# Bounds on what a client's made-up names and values can make the tables hold (past them, the
# work is done per request as Django does it).
_TABLE_LIMIT = 512
_KEPT_LENGTH = 128
# A header name (bytes, as the server gives it) -> its META key (names Django drops are not kept).
_META_NAMES: dict[bytes, str] = {}
# A Content-Type value -> (content_type, content_params, encoding or None).
_CONTENT_TYPES: dict[str, tuple] = {}


def _meta_name(name: bytes) -> str | None:
    """`name`'s META key as ASGIRequest spells it, kept in _META_NAMES while it has room; None for
    a name with an underscore (Django drops those: HTTP_X_A could otherwise be x-a or x_a)."""
    text = name.decode("latin1")
    if "_" in text:
        key = None
    elif text == "content-length":
        key = "CONTENT_LENGTH"
    elif text == "content-type":
        key = "CONTENT_TYPE"
    else:
        key = "HTTP_" + text.upper().replace("-", "_")
    if key is not None and len(_META_NAMES) < _TABLE_LIMIT and len(name) <= _KEPT_LENGTH:
        _META_NAMES[name] = key
    return key


def _header_list(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]


def _head(response: HttpResponseBase, request_id: str | None, length_known: bool) -> bytes | None:
    """The answer's headers as the lines of its head, with the request's x-request-id (as
    apps.core.edge.with_request_id adds it) and without a content-length (the server frames the
    answer, by `length_known`). None where a header would frame it otherwise (a stream of a
    declared length, say): sent as a list then."""
    lines = []
    for name, value in response.items():
        name = name.lower()
        if name in _FRAMING_HEADERS:
            if name == "content-length" and length_known:
                continue
            return None
        if name == "x-request-id":
            request_id = None
        lines.append(f"{name}: {value}\r\n")
    if request_id:
        lines.append(f"x-request-id: {request_id}\r\n")
    try:
        head = "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        return None
    # A CR or LF inside a value would start a header of its own (Django refuses them when a header
    # is set; one count of each over the whole head makes sure, not a test per value).
    if head.count(b"\n") != len(lines) or head.count(b"\r") != len(lines):
        return None
    return head


_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


async def _start(response: HttpResponseBase, scope, send, content_length: int | None) -> None:
    """The answer's status and headers: in one piece where the server takes a written head
    (apps.core.server.HEAD_SEND), else as the ASGI message."""
    head_send = scope.get("extensions", {}).get(HEAD_SEND)
    if head_send is not None:
        head = _head(response, scope.get(REQUEST_ID_SCOPE_KEY), content_length is not None)
        if head is not None and await head_send(scope, response.status_code, head, content_length):
            return
    headers = _header_list(response)
    if content_length is not None and "Content-Length" not in response:
        headers.append((b"content-length", str(content_length).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})


async def _send_response(response: HttpResponseBase, scope, send, puts: list | None = None) -> None:
    if not response.streaming:
        # Not released while a crash could still lose the request's spend record (apps.spend.journal).
        await puts_wait(puts)
        content = response.content
        # A length, as OpenAI's answers have, not chunks.
        await _start(response, scope, send, len(content))
        await send({"type": "http.response.body", "body": content})
        return
    await _start(response, scope, send, None)
    events = getattr(response, "events", None)
    try:
        source = events if events is not None else response.streaming_content
        async for chunk in source:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await puts_wait(puts)  # the stream settled as it ended: its record, before the last byte
        await send({"type": "http.response.body", "body": b""})
    finally:
        if events is not None:
            # On a disconnect the generator may sit at a yield: close it now, which
            # closes the upstream stream and settles the spend.
            await events.aclose()


class DataPlaneHandler:
    def __init__(self, urlconf: str, *, max_body_bytes: int, strip_prefix: str = "/v1") -> None:
        self.resolver = get_resolver(urlconf)
        # Matches of paths without variables, reused: walking the patterns costs more than
        # the rest of routing. Only resolved paths enter, so the set is as small as the routes.
        self._static_matches: dict[str, object] = {}
        self.max_body_bytes = max_body_bytes
        self.strip_prefix = strip_prefix
        self.journal = redis_enabled() and settings.GATEWAY_SPEND_JOURNAL

    async def __call__(self, scope, receive, send) -> None:
        length = declared_length(scope)
        try:
            if length is not None and length > self.max_body_bytes:
                raise BodyTooLarge  # refused before a byte of it is read
            body = await read_body(receive, self.max_body_bytes)
        except ClientGone:
            return
        except BodyTooLarge:
            await send_error(send, body_too_large(self.max_body_bytes), close=True)
            return

        request = DataPlaneRequest(scope, body)
        watch = scope.get("extensions", {}).get("gateway.disconnect_watch")
        if watch is not None:
            await self._respond_until_gone(request, send, watch)
            return
        # Any other server: a task waits for `http.disconnect` beside the one answering.
        responder = asyncio.ensure_future(self._respond(request, send))
        disconnect = asyncio.ensure_future(receive())
        try:
            await asyncio.wait((responder, disconnect), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            responder.cancel()
            disconnect.cancel()
            raise
        if not responder.done():
            # The client went away first: cancel the work (and with it the upstream call).
            responder.cancel()
        else:
            disconnect.cancel()
        try:
            await responder
        except asyncio.CancelledError:
            pass

    async def _respond_until_gone(self, request: ASGIRequest, send, watch) -> None:
        """Answer in this task; the server (apps.core.server) cancels it if the client goes away
        first, which cancels the upstream call too."""
        task = asyncio.current_task()
        gone = False

        def client_gone() -> None:
            nonlocal gone
            gone = True
            task.cancel()

        watch(client_gone)
        try:
            await self._respond(request, send)
        except asyncio.CancelledError:
            if not gone:
                raise  # the server is stopping
            task.uncancel()
        finally:
            watch(None)

    async def _respond(self, request: ASGIRequest, send) -> None:
        puts = [] if self.journal else None
        token = pending_puts.set(puts) if self.journal else None
        settlements = AfterAnswer()
        settlements_token = settlements_after_answer.set(settlements)
        try:
            try:
                response = await self._get_response(request)
            except GatewayError as error:
                response = error.to_response()
            except Exception:
                logger.exception("unhandled error on %s", request.path)
                response = internal_error().to_response()
            if spend_buffer.full():  # the spend writer is behind: pace the answers to it
                await spend_buffer.room_wait(settings.GATEWAY_SPEND_BACKPRESSURE_WAIT)
            try:
                await _send_response(response, request.scope, send, puts)
            except OSError:
                pass  # the client is gone
        finally:
            settlements.run()  # after the answer's last write (or the client's going, or an error)
            settlements_after_answer.reset(settlements_token)
            if token is not None:
                pending_puts.reset(token)

    async def _get_response(self, request: ASGIRequest) -> HttpResponseBase:
        path = request.path_info
        if path.startswith(self.strip_prefix + "/"):
            path = path[len(self.strip_prefix) :]
        match = self._static_matches.get(path)
        if match is None:
            try:
                match = self.resolver.resolve(path)
            except Resolver404:
                raise not_found(f"Unknown route: {request.method} {request.path}", code="unknown_route") from None
            if not match.args and not match.kwargs and len(self._static_matches) < 256:
                self._static_matches[path] = match
        request.resolver_match = match
        response = await match.func(request, *match.args, **match.kwargs)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith("application/json"):
            raise GatewayError(
                f"Method {request.method} is not allowed on {request.path}.",
                status=405,
                code="method_not_allowed",
            )
        return response
