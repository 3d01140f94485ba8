"""A lean HTTP/1.1 client for the request path's common upstream call: a POST of bytes, answered
whole or streamed.

aiohttp stays for the rest (GETs, chunked uploads). For a POST its general machinery (a task per
request to write the body, a StreamReader, timer objects, tracing hooks, cookie and redirect
handling) was a sixth of the process's time under load. This client writes the request in one
`transport.write`, parses the answer with httptools (llhttp, as uvicorn's server side does), and
keeps connections per (scheme, host, port) for reuse.

What it does the same as the aiohttp transport: one connection limit for the process
(GATEWAY_UPSTREAM_POOL_SIZE), the connect and total (or, streamed, between-reads) timeouts, TLS
with the system's trust store, no cookies, no redirects, no proxy from the environment, gzip and
deflate answers decompressed. A connection that was cut or whose answer was not read to the end is
never reused; a streamed answer's reader that falls behind stops the socket being read.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import zlib
from urllib.parse import urlsplit

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

# A pooled connection idle longer than this is closed rather than reused (aiohttp's keepalive_timeout).
IDLE_SECONDS = 60.0
# Header lines of one answer (aiohttp bounds a head too); past it the answer is refused.
MAX_HEADERS = 256
# Bytes of a streamed answer held for a reader that is behind before the socket stops being read.
STREAM_BUFFER_HIGH = 256 * 1024


class UpstreamCut(Exception):
    """The connection failed before the answer's head came: nothing of an answer exists."""


class WholeResponse:
    """An answer read to its end, with the part of aiohttp.ClientResponse's interface the callers
    use. A failure after the head (a cut, a timeout mid-body) is raised by read(), as aiohttp's is."""

    __slots__ = ("_body", "_error", "headers", "status")

    def __init__(self, status: int, headers: CIMultiDictProxy, body: bytes, error: BaseException | None) -> None:
        self.status = status
        self.headers = headers
        self._body = body
        self._error = error

    async def read(self) -> bytes:
        if self._error is not None:
            raise self._error
        return self._body

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class _StreamedBody:
    """`response.content`: the body's pieces as they come, as aiohttp's StreamReader.iter_any()."""

    __slots__ = ("_response",)

    def __init__(self, response: StreamedResponse) -> None:
        self._response = response

    async def iter_any(self):
        response = self._response
        while (chunk := await response._next()) is not None:
            yield chunk


class StreamedResponse:
    """An answer whose head is in and whose body is read as it comes: the part of
    aiohttp.ClientResponse's interface the callers use. release() keeps the connection when the
    body was read to its end; otherwise, and on close(), the connection is dropped, so the upstream
    stops generating."""

    __slots__ = ("_client", "_connection", "_decompress", "_pool_key", "_read_timeout", "content", "headers", "status")

    def __init__(self, client: LeanHttpClient, connection: _Connection, pool_key: tuple, read_timeout: float) -> None:
        self._client, self._connection, self._pool_key = client, connection, pool_key
        self._read_timeout = read_timeout
        self.status, self.headers = connection.head()
        encoding = self.headers.get("Content-Encoding", "").lower()
        self._decompress = (zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip")
                            else zlib.decompressobj() if encoding == "deflate" else None)
        self.content = _StreamedBody(self)

    async def _next(self) -> bytes | None:
        connection = self._connection
        if connection is None:
            return None
        chunk = await connection.next_chunk(self._read_timeout)
        if self._decompress is not None:
            try:
                chunk = self._decompress.flush() if chunk is None else self._decompress.decompress(chunk)
            except zlib.error as exc:
                raise aiohttp.ClientPayloadError(f"The upstream's compressed answer is corrupt: {exc}") from None
            if chunk == b"" and not connection.complete:
                return await self._next()
            if chunk == b"":
                return None
        return chunk

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.content.iter_any()])

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._client._done_with(connection, self._pool_key, keep=connection.complete and connection.keep_alive)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._client._done_with(connection, self._pool_key, keep=False)


class _OutOfStep(Exception):
    pass


class _Connection(asyncio.Protocol):
    __slots__ = ("_body", "_buffered", "_done", "_error", "_headers", "_parser", "_paused", "_read_deadline",
                 "_read_timer", "_waiter", "bytes_received", "closed", "complete", "head_done", "idle_since",
                 "keep_alive", "streamed", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = None
        self._done: asyncio.Future | None = None
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self.head_done = False
        self.keep_alive = False
        self.bytes_received = False
        # A streamed answer: `_done` resolves with the head; the body's chunks queue in `_body`
        # for next_chunk(), which `_waiter` wakes.
        self.streamed = False
        self.complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        # The between-reads timeout: one timer left running across a stream's reads (set again
        # from the current wait's deadline when it fires), not a timeout made and cancelled per
        # piece, which cost more than relaying the piece.
        self._read_deadline: float | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._buffered = 0
        self._paused = False

    # --- asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # bytes while idle: the connection is out of step
            self.abort()
            return
        self.bytes_received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError:  # (_OutOfStep) an answer already whole stands
            self.keep_alive = False
            self._finish(aiohttp.ClientPayloadError("The upstream's answer is out of step with the request "
                                                    "or its head is endless."))
        except httptools.HttpParserUpgrade:
            self._finish(aiohttp.ClientPayloadError("The upstream switched protocols."))
        except httptools.HttpParserError as exc:
            self._finish(aiohttp.ClientPayloadError(f"The upstream's answer is not valid HTTP: {exc}"))

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._timer_stop()
        if self.streamed and self.head_done:
            if not self.complete and self._error is None:
                if self._read_until_close():
                    self.complete = True
                else:
                    self._error = aiohttp.ClientPayloadError("The upstream closed the connection mid-answer.")
            self._wake()
            return
        if self._done is not None and not self._done.done():
            if self.head_done and self._read_until_close():
                self._done.set_result(None)  # an answer with no length ends when the connection does
            elif self.head_done:
                self._done.set_exception(aiohttp.ClientPayloadError("The upstream closed the connection mid-answer."))
            else:
                self._done.set_exception(UpstreamCut(exc or "closed by the upstream"))

    # --- httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete if self.streamed else (self._done is not None and self._done.done()):
            # A second answer to one request: the connection is out of step. The first answer
            # stands; the rest is not read and the connection is dropped.
            raise _OutOfStep

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))
        if len(self._headers) > MAX_HEADERS:
            raise _OutOfStep  # an endless head is not an answer

    def on_headers_complete(self) -> None:
        if self._parser.get_status_code() < 200:  # an interim answer (100 Continue): the real one follows
            self._headers = []
            return
        self.head_done = True
        if self.streamed and not self._done.done():
            self._done.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        if self.streamed:
            self._buffered += len(body)
            if self._buffered > STREAM_BUFFER_HIGH and not self._paused:
                self._paused = True  # the reader is behind: let TCP hold the rest
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self.head_done:
            self.keep_alive = self._parser.should_keep_alive()  # llhttp forgets it once the message ends
            if self.streamed:
                self.complete = True
                self._wake()
            else:
                self._finish(None)

    # --- the client's side

    def _read_until_close(self) -> bool:
        names = {name.lower() for name, _ in self._headers}
        return "content-length" not in names and "transfer-encoding" not in names

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self, error: BaseException | None) -> None:
        if self.streamed and self.head_done:
            if error is not None:
                if not self.complete and self._error is None:
                    self._error = error
                self._wake()
                self.abort()
            return
        if self._done is not None and not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)
        if error is not None:
            self.abort()

    def start(self, loop: asyncio.AbstractEventLoop, request: bytes, *, streamed: bool = False) -> asyncio.Future:
        """Send `request`; the future resolves when the whole answer is in (or, `streamed`, its head)."""
        self._parser = httptools.HttpResponseParser(self)
        self._headers, self._body, self.head_done, self.keep_alive = [], [], False, False
        self.streamed, self.complete, self._error, self._buffered, self.bytes_received = streamed, False, None, 0, False
        if streamed:
            self._body = collections.deque()
        self._done = loop.create_future()
        if self.closed or self.transport.is_closing():
            self._done.set_exception(UpstreamCut("the connection was closed"))
        else:
            self.transport.write(request)
        return self._done

    def answer(self) -> tuple[int, CIMultiDictProxy, bytes, bool]:
        parser = self._parser
        headers = CIMultiDictProxy(CIMultiDict(self._headers))
        reusable = self.keep_alive and not self.closed
        body = b"".join(self._body)
        self._parser, self._done, self._body = None, None, []
        return parser.get_status_code(), headers, body, reusable

    async def next_chunk(self, timeout: float | None) -> bytes | None:
        """The next piece of a streamed body as it came (None at its end), waiting at most
        `timeout` seconds for one."""
        while True:
            if self._body:
                chunk = self._body.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < STREAM_BUFFER_HIGH // 4:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self.complete:
                return None
            if self._error is not None:
                raise self._error
            if self.closed:
                raise aiohttp.ClientPayloadError("The upstream closed the connection mid-answer.")
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            await self.wait(waiter, loop, None if timeout is None else loop.time() + timeout)

    async def wait(self, waiter: asyncio.Future, loop: asyncio.AbstractEventLoop, deadline: float | None) -> None:
        """Await `waiter` (the answer, its head or a stream's next piece); TimeoutError past
        `deadline` (loop time; None: no limit). The connection's one timer serves every wait, set
        again when it fires before the current deadline: a kept connection's next request waits
        with no timer made or cancelled, where asyncio.timeout made and cancelled one each time."""
        self._waiter = waiter
        if deadline is None:
            self._read_deadline = None  # a timer left by an earlier wait finds nothing to end
        else:
            self._read_deadline = deadline
            timer = self._read_timer
            if timer is not None and timer.when() > deadline:  # an earlier wait's longer limit
                timer.cancel()
                timer = None
            if timer is None:
                self._read_timer = loop.call_at(deadline, self._read_timed_out, loop)
        try:
            await waiter
        finally:
            self._waiter = None

    def _read_timed_out(self, loop: asyncio.AbstractEventLoop) -> None:
        self._read_timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self._read_deadline is None:
            return  # not waiting now (or without a limit): the next wait sets it again
        if loop.time() >= self._read_deadline:
            waiter.set_exception(TimeoutError())
        else:
            self._read_timer = loop.call_at(self._read_deadline, self._read_timed_out, loop)

    def head(self) -> tuple[int, CIMultiDictProxy]:
        return self._parser.get_status_code(), CIMultiDictProxy(CIMultiDict(self._headers))

    def abort(self) -> None:
        self.closed = True
        self._timer_stop()
        if self.transport is not None:
            self.transport.abort()

    def _timer_stop(self) -> None:
        # A closed connection's timer would keep it referenced until the timer's deadline.
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None


class _Target:
    __slots__ = ("host", "host_header", "path", "pool_key", "port", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        default_port = (443 if self.tls else 80) == self.port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default_port else f"{host}:{self.port}"
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.pool_key = (self.tls, self.host, self.port)


class LeanHttpClient:
    def __init__(self, *, limit: int) -> None:
        self._idle: dict[tuple, collections.deque] = {}
        self._slots = asyncio.Semaphore(limit)
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = _Target(url)
            if len(self._targets) < 4096:  # deployments' URLs: a handful, each reused
                self._targets[url] = target
        return target

    async def post(self, url: str, headers: dict[str, str], body: bytes, *, total: float,
                   connect: float) -> WholeResponse:
        """POST `body` and read the whole answer. Raises asyncio.TimeoutError past `total` seconds
        before the head, or UpstreamCut/OSError when no answer came; a failure after the head is
        the response's read() error."""
        target = self._target(url)
        request = _post_bytes(target, headers, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + total
        async with self._slots:
            attempt = 0
            while True:
                attempt += 1
                # A kept connection needs no wait, so no timeout (one made and cancelled per request).
                connection = self._kept_connection(target, loop) if attempt == 1 else None
                reused = connection is not None
                if connection is None:
                    try:
                        async with asyncio.timeout_at(deadline):
                            connection = await self._new_connection(target, loop, connect)
                    except TimeoutError:
                        raise TimeoutError from None
                done = connection.start(loop, request)
                finished = reusable = False
                try:
                    try:
                        await connection.wait(done, loop, deadline)
                    except UpstreamCut:
                        # A kept connection the upstream closed as it went idle (its FIN not seen
                        # here yet): no byte of an answer came, so the request goes again, once,
                        # on a new connection. A new connection's cut is the caller's error.
                        if reused and attempt == 1 and not connection.bytes_received:
                            continue
                        raise
                    except TimeoutError as exc:
                        if not connection.head_done:
                            raise TimeoutError from None
                        # The head came, the rest did not in time: read() raises it, as aiohttp's does.
                        status, answer_headers, _, _ = connection.answer()
                        return WholeResponse(status, answer_headers, b"", TimeoutError(str(exc)))
                    except aiohttp.ClientPayloadError as exc:
                        if not connection.head_done:  # no answer's head: nothing of an answer exists
                            raise UpstreamCut(str(exc)) from None
                        status, answer_headers, _, _ = connection.answer()
                        return WholeResponse(status, answer_headers, b"", exc)
                    status, answer_headers, raw, reusable = connection.answer()
                    finished = True
                finally:
                    if finished and reusable:
                        connection.idle_since = loop.time()
                        self._idle.setdefault(target.pool_key, collections.deque()).append(connection)
                    else:
                        connection.abort()  # cut, cancelled or not to be kept: never reused
                break
        encoding = answer_headers.get("Content-Encoding", "").lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            try:
                raw = _decompressed(raw, encoding)
            except zlib.error as exc:
                return WholeResponse(status, answer_headers, b"",
                                     aiohttp.ClientPayloadError(f"The upstream's {encoding} answer is corrupt: {exc}"))
        return WholeResponse(status, answer_headers, raw, None)

    async def post_streamed(self, url: str, headers: dict[str, str], body: bytes, *, read_timeout: float,
                            connect: float) -> StreamedResponse:
        """POST `body` and return once the answer's head is in; its body is read as it comes, with at
        most `read_timeout` seconds between two pieces (and before the head). The caller must
        release() or close() it: it holds a connection of the limit until then."""
        target = self._target(url)
        request = _post_bytes(target, headers, body)
        loop = asyncio.get_running_loop()
        await self._slots.acquire()
        handed_over = False
        try:
            attempt = 0
            while True:
                attempt += 1
                connection, reused = await self._connection(target, loop, connect, fresh=attempt > 1)
                head = connection.start(loop, request, streamed=True)
                try:
                    await connection.wait(head, loop, loop.time() + read_timeout)
                except UpstreamCut:
                    connection.abort()
                    if reused and attempt == 1 and not connection.bytes_received:
                        continue  # a kept connection the upstream had closed: as in post()
                    raise
                except BaseException:
                    connection.abort()
                    raise
                handed_over = True
                return StreamedResponse(self, connection, target.pool_key, read_timeout)
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamCut(str(exc)) from None  # no answer's head: nothing of an answer exists
        finally:
            if not handed_over:
                self._slots.release()

    def _done_with(self, connection: _Connection, pool_key: tuple, *, keep: bool) -> None:
        """A streamed answer's connection, back in the pool (`keep`) or dropped; its slot freed."""
        if keep and not connection.closed:
            connection.streamed = False
            connection._parser = None
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(pool_key, collections.deque()).append(connection)
        else:
            connection.abort()
        self._slots.release()

    async def _connection(self, target: _Target, loop, connect: float, *, fresh: bool) -> tuple[_Connection, bool]:
        """A kept connection to `target` (True) or a new one (False)."""
        connection = None if fresh else self._kept_connection(target, loop)
        if connection is not None:
            return connection, True
        return await self._new_connection(target, loop, connect), False

    def _kept_connection(self, target: _Target, loop) -> _Connection | None:
        """The most recently used idle connection to `target` that is still alive, or None."""
        idle = self._idle.get(target.pool_key)
        now = loop.time()
        while idle:
            connection = idle.pop()  # the most recently used: the likeliest to be alive
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.abort()
        return None

    async def _new_connection(self, target: _Target, loop, connect: float) -> _Connection:
        ssl_context = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            ssl_context = self._tls
        try:
            async with asyncio.timeout(connect):
                _, connection = await loop.create_connection(
                    _Connection, target.host, target.port, ssl=ssl_context,
                    server_hostname=target.host if ssl_context else None)
        except TimeoutError:
            raise aiohttp.ConnectionTimeoutError(f"Connecting to {target.host}:{target.port} timed out") from None
        sock = connection.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.abort()
        self._idle.clear()


def _post_bytes(target: _Target, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"]
    for name, value in headers.items():
        lower = name.lower()
        if lower in ("host", "content-length", "transfer-encoding", "connection"):
            continue
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            # A header that would end the head early (a value from a client or a config).
            raise ValueError(f"The header {name!r} holds a line break or its name a colon.")
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "".join(lines).encode() + body


def _decompressed(raw: bytes, encoding: str) -> bytes:
    if encoding == "deflate":
        try:
            return zlib.decompress(raw)
        except zlib.error:
            return zlib.decompress(raw, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    return zlib.decompress(raw, 16 + zlib.MAX_WBITS)

