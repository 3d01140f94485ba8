"""The HTTP server's settings and its guard against slow and idle clients.

uvicorn closes an idle keep-alive connection after a while, but waits forever for a client that
connects and never finishes its headers, or declares a body and never sends it: a few hundred
such connections (a slow-loris) would hold a replica's sockets. `GuardedHttpToolsProtocol` adds:

- a header timeout (GATEWAY_HEADER_TIMEOUT): the request line and headers must all arrive within
  it, counted from the connection (or from the first byte of the next request on a kept-alive
  one); then 408 and the connection is closed;
- a body timeout (GATEWAY_BODY_TIMEOUT): a body must keep coming, no pause between two reads
  longer than this (nginx's client_body_timeout); then 408 and close;
- a cap on connections that are not being served (GATEWAY_MAX_IDLE_CONNECTIONS): connections
  still sending their headers and kept-alive ones waiting for their next request; past it the
  one idle longest is closed. A request being answered (a long stream included) is never cut;
- a lingering close: when the answer ends the connection before the request's body is all in
  (a 413 for a body too large, say), the server stops writing, then reads and drops what the
  client still sends (for at most LINGER_SECONDS, LINGER_IDLE_SECONDS without data) before it
  closes. Closing at once would make the kernel reset the connection, and a client still
  sending would lose the answer it was sent (nginx's lingering_close).

One place for the server's options (apps.routing.management.commands.serve and the tests' servers).
"""

from __future__ import annotations

import re
from collections import OrderedDict

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from apps.core.hot_settings import setting

_TIMED_OUT_BODY = b'{"error":{"message":"The request was not received in time.","type":"invalid_request_error",' \
    b'"param":null,"code":"request_timeout"}}'
LINGER_SECONDS = 30.0
LINGER_IDLE_SECONDS = 5.0
_JOIN_BELOW = 64 * 1024  # body writes up to this size go out with the answer's head in one send


class _LingeringTransport:
    """The connection's transport as uvicorn's request cycles see it: `close()` lingers while
    the request's body is still arriving."""

    def __init__(self, transport, protocol: GuardedHttpToolsProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._head = None  # an answer's status line and headers, held for its first body write
        self._head_cycle = None  # the request cycle whose head was written last

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def write(self, data) -> None:
        # uvicorn writes an answer's head and its body in two writes: two sends, two packets, the
        # client woken twice. The head waits for the body's first write, or the end of this turn
        # of the loop (a stream's first event may be far off), so a whole answer is one send.
        head = self._head
        if head is not None:
            self._head = None
            if len(data) <= _JOIN_BELOW:
                self._transport.write(head + data)
                return
            self._transport.write(head)  # a large body: not worth copying to save a send
        cycle = self._protocol.cycle
        if cycle is not None and cycle is not self._head_cycle and cycle.response_started \
                and not cycle.response_complete:
            self._head_cycle = cycle
            self._head = data
            self._protocol.loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def is_closing(self) -> bool:
        return self._protocol._lingering or self._transport.is_closing()

    def close(self) -> None:
        protocol = self._protocol
        if protocol._lingering or self._transport.is_closing():
            return
        self.flush()
        if protocol._body_pending and self._transport.can_write_eof():
            protocol._linger()
        else:
            self._transport.close()


# The scope extension of a request whose answer may start with a head the app wrote itself:
# `await scope["extensions"][HEAD_SEND](scope, status, head, content_length)`, then body messages
# as usual.
HEAD_SEND = "gateway.head_send"
# Header lines as `head` holds them: a token, ": ", a value without control characters, CRLF; and
# none of them framing the answer (content_length does that). One pass: a separate search for the
# framing names cost ~16 us over a 1 KiB head (it tried at every byte); the lookahead runs a line.
_HEAD_LINES = re.compile(
    rb"(?:(?!(?i:content-length|transfer-encoding|connection):)"
    rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]++: [^\x00-\x08\x0a-\x1f\x7f]*+\r\n)*+"
)


async def _head_send(cycle, status: int, head: bytes, content_length: int | None) -> bool:
    """Start the answer of `cycle` with `head`, header lines the app serialized in one piece:
    uvicorn's `http.response.start` checks and lowercases each header in Python, a few tenths of
    a microsecond each, and a /v1 answer carries twenty. Framed as uvicorn frames it (its own
    date and server headers, content-length or chunked, connection: close when not kept alive),
    so the body messages that follow go through its `send` unchanged. False, with nothing sent,
    for a head that is not plain header lines (or names a framing header): send it as usual."""
    if cycle.response_started or _HEAD_LINES.fullmatch(head) is None:
        return False
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected:
        return True
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    if cycle.access_log:  # the line uvicorn's start message logs
        scope = cycle.scope
        cycle.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(scope), scope["method"],
                                 get_path_with_query_string(scope), scope["http_version"], status)
    parts = [STATUS_LINE[status]]
    for name, value in cycle.default_headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(head)
    if content_length is not None:
        cycle.expected_content_length = content_length
        cycle.chunked_encoding = False
        parts.append(b"content-length: %d\r\n" % content_length)
    elif cycle.scope["method"] != "HEAD" and status not in (204, 304):
        cycle.chunked_encoding = True
        parts.append(b"transfer-encoding: chunked\r\n")
    if not cycle.keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    cycle.transport.write(b"".join(parts))
    return True


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    # Connections of this process not being served, the longest idle first.
    _idle: OrderedDict[GuardedHttpToolsProtocol, None] = OrderedDict()

    def connection_made(self, transport) -> None:
        self._lingering = False
        self._body_pending = False
        self._on_disconnect = None
        super().connection_made(_LingeringTransport(transport, self))
        self._guard_timer = None
        self._guard_deadline = 0.0
        self._guard_callback = None
        self._idle_now()
        self._arm(setting("GATEWAY_HEADER_TIMEOUT"), self._headers_too_slow)

    def connection_lost(self, exc) -> None:
        self._guard_stop()
        self._idle.pop(self, None)
        super().connection_lost(exc)
        on_disconnect, self._on_disconnect = self._on_disconnect, None
        if on_disconnect is not None and self.cycle is not None and not self.cycle.response_complete:
            on_disconnect()

    async def _head_send_for_scope(self, scope, status: int, head: bytes, content_length: int | None) -> bool:
        """HEAD_SEND for the request of `scope`: False, nothing sent, unless it is the request
        being answered (a pipelined one behind it may already have the connection's cycle)."""
        cycle = self.cycle
        if cycle is None or cycle.scope is not scope:
            return False
        return await _head_send(cycle, status, head, content_length)

    def _disconnect_watch(self, callback) -> None:
        """The app's own call when this connection is lost before its answer is complete (None:
        no more). Saves the data plane a task per request that waits for `http.disconnect`."""
        self._on_disconnect = callback

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._guard_callback is None:  # the next request on a kept-alive connection
            self._arm(setting("GATEWAY_HEADER_TIMEOUT"), self._headers_too_slow)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._arm(LINGER_IDLE_SECONDS, self._close_now)  # dropped: the answer is already sent
            return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._body_pending = True
        self._idle.pop(self, None)
        extensions = self.scope["extensions"] = {"gateway.disconnect_watch": self._disconnect_watch}
        # A bound method, as above: no reference cycle per request.
        extensions[HEAD_SEND] = self._head_send_for_scope
        super().on_headers_complete()
        # Until on_message_complete (at once for a request without a body), the body must flow.
        self._arm(setting("GATEWAY_BODY_TIMEOUT"), self._body_too_slow)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(setting("GATEWAY_BODY_TIMEOUT"), self._body_too_slow)

    def on_message_complete(self) -> None:
        self._body_pending = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._on_disconnect = None
        super().on_response_complete()
        if not self.transport.is_closing():
            self._idle_now()  # kept alive, waiting for the next request (uvicorn's keep-alive timeout runs)

    # --- the guards ---

    def _linger(self) -> None:
        self._lingering = True
        self._idle_now()  # a lingering connection counts against the idle cap
        self.transport.write_eof()  # the answer is flushed first, then FIN
        self.flow.resume_reading()
        self._arm(LINGER_IDLE_SECONDS, self._close_now)
        self.loop.call_later(LINGER_SECONDS, self._close_now)

    def _close_now(self) -> None:
        self._guard_stop()
        self._idle.pop(self, None)
        self.transport.flush()
        self.transport._transport.close()

    # One timer per connection, re-armed lazily: a request moves the deadline three or four times
    # (its headers, its body, done), and a timer made and cancelled each time costs more than the
    # rest of the guard. A timer that fires before the current deadline sets itself again.

    def _arm(self, seconds: float, callback) -> None:
        deadline = self.loop.time() + seconds
        self._guard_deadline = deadline
        self._guard_callback = callback
        timer = self._guard_timer
        if timer is not None and timer.when() > deadline:
            timer.cancel()
            timer = None
        if timer is None:
            self._guard_timer = self.loop.call_at(deadline, self._guard_fire)

    def _disarm(self) -> None:
        self._guard_callback = None  # the timer, if any, fires for nothing (or is armed again first)

    def _guard_stop(self) -> None:
        self._guard_callback = None
        if self._guard_timer is not None:
            self._guard_timer.cancel()
            self._guard_timer = None

    def _guard_fire(self) -> None:
        self._guard_timer = None
        callback = self._guard_callback
        if callback is None:
            return
        if self.loop.time() < self._guard_deadline:
            self._guard_timer = self.loop.call_at(self._guard_deadline, self._guard_fire)
            return
        self._guard_callback = None
        callback()

    def _idle_now(self) -> None:
        idle = self._idle
        idle.pop(self, None)
        idle[self] = None
        while len(idle) > setting("GATEWAY_MAX_IDLE_CONNECTIONS"):
            oldest, _ = idle.popitem(last=False)
            oldest._close_now()

    def _time_out(self) -> None:
        self._idle.pop(self, None)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                self._close_now()
                return
            cycle.disconnected = True  # the app waiting for the body sees the client gone
            cycle.message_event.set()
        self.transport.write(
            STATUS_LINE[408]
            + b"content-type: application/json\r\nconnection: close\r\ncontent-length: "
            + str(len(_TIMED_OUT_BODY)).encode()
            + b"\r\n\r\n"
            + _TIMED_OUT_BODY
        )
        self._close_now()  # a stalled client: nothing to linger for

    _headers_too_slow = _time_out
    _body_too_slow = _time_out


def uvicorn_options() -> dict:
    """The server options both `manage.py serve` and the tests' servers run with."""
    return {
        "http": GuardedHttpToolsProtocol,
        "lifespan": "on",
        "access_log": False,
        "timeout_keep_alive": int(settings.GATEWAY_KEEPALIVE_TIMEOUT),
    }
