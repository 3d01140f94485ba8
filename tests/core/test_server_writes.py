"""An answer's head and body leave in one write (apps.core.server): two sends per answer cost a
system call and a wake-up of the client each, on the request path of every whole answer."""

from __future__ import annotations

import asyncio

from uvicorn.config import Config
from uvicorn.server import ServerState

from apps.core.server import HEAD_SEND, GuardedHttpToolsProtocol, uvicorn_options


class RecordingTransport:
    """The few transport calls uvicorn's protocol makes, each write recorded with when it came."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 4000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _connection(app) -> tuple[GuardedHttpToolsProtocol, RecordingTransport]:
    """The server's protocol for `app`, connected to a recording transport (in a running loop)."""
    config = Config(app=app, **uvicorn_options())
    config.load()
    protocol = GuardedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def _serve_once(app, request: bytes, *, turns: int = 20) -> RecordingTransport:
    """Feed one request to the server's protocol and let the loop run; the transport's writes."""
    protocol, transport = _connection(app)
    protocol.data_received(request)
    for _ in range(turns):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport


def test_a_whole_answer_is_one_write():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")]})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    transport = asyncio.run(_serve_once(app, b"POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"))
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b'\r\n\r\n{"ok":true}')


def test_two_answers_on_one_connection_are_one_write_each():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main():
        protocol, transport = _connection(app)
        for _ in range(2):  # kept alive: the second request after the first answer
            protocol.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            for _ in range(10):
                await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport

    transport = asyncio.run(main())
    assert len(transport.writes) == 2
    assert all(write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b"\r\n\r\nok") for write in transport.writes)


def test_a_streams_head_is_not_held_back_for_its_first_event():
    seen_before_first_event = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await asyncio.sleep(0.05)  # the upstream's first event is a while coming
        seen_before_first_event.append(list(transport_ref[0].writes))
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    transport_ref = []

    async def main():
        protocol, transport = _connection(app)
        transport_ref.append(transport)
        protocol.data_received(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.2)
        protocol.connection_lost(None)
        return transport

    transport = asyncio.run(main())
    [before] = seen_before_first_event
    assert len(before) == 1 and before[0].startswith(b"HTTP/1.1 200 OK\r\n") and before[0].endswith(b"\r\n\r\n")
    assert b"".join(transport.writes).endswith(b"data: 1\n\n\r\n0\r\n\r\n")


def test_a_head_only_answer_still_goes_out():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = asyncio.run(_serve_once(app, b"DELETE /a HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"".join(transport.writes).endswith(b"\r\n\r\n")


def test_a_large_body_is_not_copied_onto_its_head():
    body = b"x" * (1 << 20)

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    transport = asyncio.run(_serve_once(app, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert len(transport.writes) == 2 and transport.writes[1] == body


# --- a head the app wrote itself (apps.core.server.HEAD_SEND) ---

HEADERS = [(b"content-type", b"application/json"), (b"x-ratelimit-remaining-requests", b"9"),
           (b"x-litellm-model-group", b"gpt-test")]
HEAD = b"".join(name + b": " + value + b"\r\n" for name, value in HEADERS)


def _answering(body_parts: list[bytes], *, length: int | None, written_head: bool, status: int = 200, sent=None):
    """An app answering with `body_parts`: its head written by the app where `written_head`, else as
    uvicorn's start message; `sent` records what HEAD_SEND returned."""

    async def app(scope, receive, send):
        await receive()
        head_send = scope["extensions"].get(HEAD_SEND)
        started = written_head and await head_send(scope, status, HEAD, length)
        if sent is not None:
            sent.append(started)
        if not started:  # as the data plane does
            headers = [*HEADERS, *([(b"content-length", str(length).encode())] if length is not None else [])]
            await send({"type": "http.response.start", "status": status, "headers": headers})
        for index, part in enumerate(body_parts):
            await send({"type": "http.response.body", "body": part, "more_body": index < len(body_parts) - 1})

    return app


def _wire(app, request: bytes) -> bytes:
    return b"".join(asyncio.run(_serve_once(app, request)).writes)


REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


def test_a_written_head_goes_out_as_uvicorns_own_would():
    for parts, length in (([b'{"ok":true}'], 11), ([b"data: 1\n\n", b"data: 2\n\n", b""], None)):
        written = _wire(_answering(parts, length=length, written_head=True), REQUEST)
        assert written == _wire(_answering(parts, length=length, written_head=False), REQUEST)
        assert (b"content-length: 11\r\n" in written) == (length is not None)
        assert (b"transfer-encoding: chunked\r\n" in written) == (length is None)


def test_a_written_head_closes_a_connection_that_is_not_kept_alive():
    request = REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0")
    written = _wire(_answering([b'{"ok":true}'], length=11, written_head=True), request)
    assert written == _wire(_answering([b'{"ok":true}'], length=11, written_head=False), request)
    assert b"connection: close\r\n" in written


def test_answers_with_written_heads_one_after_the_other_and_pipelined():
    async def serve(app, requests):
        protocol, transport = _connection(app)
        for request in requests:
            protocol.data_received(request)
            for _ in range(20):
                await asyncio.sleep(0)
        protocol.connection_lost(None)
        return b"".join(transport.writes)

    for requests, heads_written in (([REQUEST, REQUEST], [True, True]), ([REQUEST + REQUEST], [False, True])):
        sent = []
        written = asyncio.run(serve(_answering([b'{"ok":true}'], length=11, written_head=True, sent=sent), requests))
        assert written.count(b"HTTP/1.1 200 OK\r\n") == 2
        assert written.count(HEAD) == 2 and written.count(b'content-length: 11\r\n\r\n{"ok":true}') == 2
        # Pipelined: the second request has the connection's cycle while the first is answered, so
        # the first one's head goes as a start message (the request the cycle is for is checked).
        assert sent == heads_written


def test_a_head_that_is_not_plain_header_lines_is_refused_and_nothing_is_sent():
    for head in (b"x-a: 1\r\nx-b: 2", b"x-a: 1\r\nbad name: 2\r\n", b"x-a: \x00\r\n", b"x-a: 1\nx-b: 2\r\n",
                 b"content-length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"x-a: 1\r\nconnection: close\r\n",
                 b"x-a: 1\r\nCONNECTION: keep-alive\r\nx-b: 2\r\n", b"x-a: 1\r\nContent-Length: 9\r\n"):
        results = []

        async def app(scope, receive, send, head=head, results=results):
            await receive()
            results.append(await scope["extensions"][HEAD_SEND](scope, 200, head, 2))
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"{}"})

        written = _wire(app, REQUEST)
        assert results == [False], head
        assert written.startswith(b"HTTP/1.1 200 OK\r\n") and written.count(b"HTTP/1.1") == 1, head
        assert b"x-a" not in written, head


def test_a_header_whose_name_only_begins_like_a_framing_one_is_written():
    head = b"content-length-estimate: 12\r\nconnectionless: yes\r\nx-a: 1\r\n"
    results = []

    async def app(scope, receive, send):
        await receive()
        results.append(await scope["extensions"][HEAD_SEND](scope, 200, head, 2))
        await send({"type": "http.response.body", "body": b"{}"})

    written = _wire(app, REQUEST)
    assert results == [True]
    assert head in written and written.endswith(b"content-length: 2\r\n\r\n{}")


def test_a_written_head_logs_the_access_line_uvicorn_would():
    import logging

    class Recording(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    recording = Recording()
    access = logging.getLogger("tests.access")
    access.addHandler(recording)
    access.setLevel(logging.INFO)

    async def serve(app):
        protocol, _ = _connection(app)
        protocol.access_log, protocol.access_logger = True, access  # as with uvicorn's access log on
        protocol.data_received(REQUEST)
        for _ in range(20):
            await asyncio.sleep(0)
        protocol.connection_lost(None)

    try:
        for written_head in (True, False):
            asyncio.run(serve(_answering([b'{"ok":true}'], length=11, written_head=written_head)))
    finally:
        access.removeHandler(recording)
    assert len(recording.lines) == 2 and recording.lines[0] == recording.lines[1]
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in recording.lines[0]
