"""One pipelined connection per client for the request path's Lua scripts, on a single Redis server.

Every limited request runs two scripts (acquire, then settle). Through redis-py's asyncio client
each call checks a connection out of the pool, packs its arguments through several layers, and on
Python 3.11 wraps its socket write in `asyncio.wait_for` (a task per call) and its release in
`asyncio.shield` (another): under load that was about a sixth of the process's time, more than
Redis spends running the scripts. Here the commands of every concurrent request go down one
connection, written together once per turn of the event loop, and hiredis parses the replies in
order (Redis answers a connection's commands in the order it sent them).

Only for one plain-TCP server (REDIS_MODE "single", no TLS, no Unix socket). A Cluster, a
Sentinel's master and TLS keep redis-py's client, which knows how to follow them.

Failure behaves like the redis-py client configured in apps.core.redis: a command that loses its
connection, or whose reply does not come within REDIS_SOCKET_TIMEOUT, is tried again up to
REDIS_RETRIES times with the same backoff, then raises redis-py's ConnectionError or
TimeoutError, which is what the callers' degradation (README, Redis) handles.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import weakref

import hiredis
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps.core.hot_settings import setting

logger = logging.getLogger(__name__)

_pipes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> its pipe
_pipes_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> {server: pipe}


def pipelined_connection(client) -> PipelinedConnection | None:
    """The pipelined connection to `client`'s server, or None where the client's topology or
    transport has no fast path here. Clients of one event loop that reach the same server and
    database as the same user share one (the limits' and routing's scripts, the spend journal):
    their commands of a turn of the loop go in one write."""
    pipe = _pipes.get(client)
    if pipe is not None:
        return pipe
    import redis.asyncio as aioredis
    from redis.asyncio.connection import Connection

    if type(client) is not aioredis.Redis:
        return None
    pool = getattr(client, "connection_pool", None)
    if type(pool) is not aioredis.ConnectionPool or pool.connection_class is not Connection:
        return None  # Sentinel's pool, TLS or a Unix socket
    options = pool.connection_kwargs
    server = (options.get("host", "127.0.0.1"), int(options.get("port", 6379)), int(options.get("db") or 0),
              options.get("username"), options.get("password"))
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None  # not shared: the loop it will serve is not known yet
    shared = _pipes_by_loop.setdefault(loop, {}) if loop is not None else {}
    pipe = shared.get(server)
    if pipe is None:
        host, port, db, username, password = server
        pipe = shared[server] = PipelinedConnection(host=host, port=port, db=db, username=username,
                                                    password=password)
    _pipes[client] = pipe
    return pipe


def _packed(args: tuple) -> bytes:
    """One command in RESP, its arguments encoded as redis-py encodes them (hiredis's packer, in C:
    a limits script has some forty arguments)."""
    return hiredis.pack_command(args)


def reply_error(reply: hiredis.ReplyError) -> ResponseError:
    """An error reply as redis-py raises it."""
    message = str(reply)
    return NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)


class _Lost(Exception):
    """The connection went away (or was abandoned) with the command's reply outstanding."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedConnection) -> None:
        self.owner = owner
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.ready = False  # connected, and past AUTH / SELECT

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.owner._waiting
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.owner._fail(self, RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply to nothing: the stream is out of step, start over
                self.owner._fail(self, RedisConnectionError("Redis sent a reply to no command"))
                return
            future, _ = waiting.popleft()
            if not future.done():  # its caller may have been cancelled: the reply is dropped
                future.set_result(reply)

    def connection_lost(self, exc) -> None:
        self.owner._fail(self, RedisConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))


class PipelinedConnection:
    def __init__(self, *, host: str, port: int, db: int = 0, username: str | None = None,
                 password: str | None = None) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future | None = None
        self._waiting: collections.deque = collections.deque()  # (future, deadline), in sent order
        self._outgoing: list[bytes] = []
        self._flush_due = False
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def call(self, *args):
        """Run one command; its reply, parsed (errors raised as redis-py's exceptions)."""
        command = _packed(args)
        failures = 0
        backoff = None
        while True:
            try:
                reply = await self._send(command)
            except _Lost as lost:
                failures += 1
                if failures > settings.REDIS_RETRIES:
                    raise lost.error from None
                if backoff is None:
                    from apps.core.redis import _backoff

                    backoff = _backoff()
                await asyncio.sleep(backoff.compute(failures))
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise reply_error(reply)
            return reply

    def send_now(self, *args) -> asyncio.Future | None:
        """Queue one command without a task or a retry: the future of its reply as parsed
        (hiredis.ReplyError for an error reply), failing with _Lost if the connection goes; None
        when the connection is not up (then use call()). For a caller with its own fallback."""
        protocol = self._protocol
        if protocol is None or not protocol.ready:
            return None
        future = self._loop.create_future()
        self._queue(_packed(args), future, at_once=True)
        return future

    async def _send(self, command: bytes):
        if self._protocol is None or not self._protocol.ready:
            await self._connected()
        future = self._loop.create_future()
        self._queue(command, future)
        return await future

    def _queue(self, command: bytes, future: asyncio.Future, at_once: bool = False) -> None:
        deadline = self._loop.time() + setting("REDIS_SOCKET_TIMEOUT")
        if self._deadline_timer is None:
            self._arm(deadline)
        idle = not self._waiting
        self._waiting.append((future, deadline))
        protocol = self._protocol
        if at_once and idle and protocol is not None and protocol.ready:
            # Nothing in flight: written at once, so Redis works while the caller goes on (a
            # request builds its answer while its journal put travels). Commands that come while
            # replies are due wait for the end of the turn and go together.
            protocol.transport.write(command)
            return
        self._outgoing.append(command)
        if not self._flush_due:
            # The commands of every request served in this turn of the loop go in one write.
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        outgoing, self._outgoing = self._outgoing, []
        protocol = self._protocol
        if outgoing and protocol is not None:
            protocol.transport.write(b"".join(outgoing))

    async def _connected(self) -> _Protocol:
        if self._connecting is None:
            self._loop = asyncio.get_running_loop()
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self) -> _Protocol:
        loop = self._loop
        try:
            async with asyncio.timeout(settings.REDIS_SOCKET_TIMEOUT):
                transport, protocol = await loop.create_connection(lambda: _Protocol(self), self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise _Lost(RedisConnectionError(f"Could not connect to Redis at {self.host}:{self.port}: {exc}")) from None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._protocol = protocol
        handshake = []
        if self.password:
            handshake.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            handshake.append(("SELECT", self.db))
        for command in handshake:
            future = loop.create_future()
            self._queue(_packed(command), future)
            reply = await future
            if isinstance(reply, hiredis.ReplyError):
                transport.close()
                raise RedisConnectionError(f"Redis refused {command[0]}: {reply}")
        protocol.ready = True
        return protocol

    def close(self) -> None:
        """Close the connection; commands still waiting fail, a later call opens a new one."""
        if self._protocol is not None:
            self._fail(self._protocol, RedisConnectionError("Redis connection closed"))

    def _arm(self, when: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_timer = self._loop.call_at(when, self._deadline_check)

    def _deadline_check(self) -> None:
        """Replies come in order, so the oldest outstanding command tells whether the connection is
        still answering; one timer for all of them, left running while commands come and go (set
        again from the oldest one's deadline when it fires), not made and cancelled per command."""
        self._deadline_timer = None
        if not self._waiting:
            return
        _, deadline = self._waiting[0]
        if deadline <= self._loop.time():
            protocol = self._protocol
            if protocol is not None:
                self._fail(protocol, RedisTimeoutError(
                    f"Redis at {self.host}:{self.port} did not answer within {settings.REDIS_SOCKET_TIMEOUT} s"))
            return
        self._arm(deadline)

    def _fail(self, protocol: _Protocol, error: Exception) -> None:
        """Abandon `protocol`'s connection: every command still waiting on it fails (and is retried)."""
        if protocol is not self._protocol:
            return
        self._protocol = None
        protocol.ready = False
        if protocol.transport is not None:
            protocol.transport.abort()
        waiting, self._waiting = self._waiting, collections.deque()
        self._outgoing = []
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        lost = _Lost(error)
        for future, _ in waiting:
            if not future.done():
                future.set_exception(lost)
