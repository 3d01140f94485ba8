"""A fixed-answer OpenAI-compatible upstream for benchmarking the gateway.

Any POST to /v1/chat/completions (or /chat/completions) gets the same
chat.completion JSON with a "usage" object, so the gateway has tokens to price
and a spend record to write. It is a bare asyncio.Protocol on uvloop with no
framework, so that it costs as little as possible and the benchmark measures the
gateway rather than the upstream.

A request with `"stream": true` gets a fixed streamed answer instead, in OpenAI's
wire format: `text/event-stream` with chunked transfer encoding (one HTTP chunk
per event, as real providers send them), STREAM_CHUNKS `chat.completion.chunk`
events each carrying one piece of STREAM_CONTENT, a chunk with
`finish_reason: "stop"`, a chunk with `usage` (STREAM_USAGE) and no choices when
`stream_options.include_usage` is set (the other chunks then carry
`"usage": null`, as OpenAI's do), and `data: [DONE]`. The first chunk goes out
with the response head at once; the others follow one every
`--stream-interval-ms` (default 1), on a fixed schedule from the first (chunk n
at n intervals, so a late timer does not slow the stream down); 0 sends them as
fast as the event loop turns, one per turn.

HTTP/1.1 only as far as the benchmark needs: keep-alive, pipelined requests,
requests split over several reads, bodies by Content-Length or chunked.

    python bench/upstream.py --port 9000 [--stream-interval-ms 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

FIXED_CONTENT = "This is the fixed benchmark answer."
FIXED_USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
FIXED_COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "bench-model",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": FIXED_CONTENT},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": FIXED_USAGE,
}

# The streamed answer: STREAM_CHUNKS content chunks, one "token" each.
STREAM_CHUNKS = 200
STREAM_PIECES = [f"tok{i} " for i in range(STREAM_CHUNKS)]
STREAM_CONTENT = "".join(STREAM_PIECES)
STREAM_USAGE = {"prompt_tokens": 11, "completion_tokens": STREAM_CHUNKS, "total_tokens": 11 + STREAM_CHUNKS}
_CHUNK_HEAD = {"id": "chatcmpl-bench-stream", "object": "chat.completion.chunk", "created": 1700000000,
               "model": "bench-model", "system_fingerprint": None}

CHAT_PATHS = {b"/v1/chat/completions", b"/chat/completions"}
MAX_HEADER_BYTES = 64 * 1024


def _response(status: bytes, body: bytes, *, close: bool = False) -> bytes:
    head = [
        b"HTTP/1.1 " + status,
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(body)).encode(),
    ]
    if close:
        head.append(b"Connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


# Built once: serving a request is a buffer slice and a write.
CHAT_OK = _response(b"200 OK", json.dumps(FIXED_COMPLETION, separators=(",", ":")).encode())
HEALTH_OK = _response(b"200 OK", b'{"status":"ok"}')
NOT_FOUND = _response(b"404 Not Found", b'{"error":{"message":"not found"}}')
NOT_ALLOWED = _response(b"405 Method Not Allowed", b'{"error":{"message":"method not allowed"}}')
BAD_REQUEST = _response(b"400 Bad Request", b'{"error":{"message":"bad request"}}', close=True)
STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
               b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")


def _http_chunk(event: bytes) -> bytes:
    return b"%x\r\n" % len(event) + event + b"\r\n"


def _sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return _http_chunk(f"data: {data}\n\n".encode())


def _stream_parts(include_usage: bool) -> list[bytes]:
    """The streamed answer as the writes it goes out in: the head with the first chunk, then one
    content chunk each, the last one followed by the finish chunk, the usage chunk, [DONE] and
    the chunked body's end."""
    extra = {"usage": None} if include_usage else {}
    parts = []
    for i, piece in enumerate(STREAM_PIECES):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        parts.append(_sse({**_CHUNK_HEAD, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                       "finish_reason": None}], **extra}))
    tail = [_sse({**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                              "finish_reason": "stop"}], **extra})]
    if include_usage:
        tail.append(_sse({**_CHUNK_HEAD, "choices": [], "usage": STREAM_USAGE}))
    tail += [_sse("[DONE]"), b"0\r\n\r\n"]
    parts[0] = STREAM_HEAD + parts[0]
    parts[-1] += b"".join(tail)
    return parts


# Built once, per include_usage.
STREAM_PARTS = {False: _stream_parts(False), True: _stream_parts(True)}


class _Incomplete(Exception):
    """More bytes are needed before this request can be parsed."""


def _chunked_body_end(buf: bytearray, pos: int) -> int:
    """Where a chunked body starting at pos ends (just past the trailers)."""
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            raise _Incomplete
        size = int(bytes(buf[pos:line_end]).split(b";", 1)[0].strip(), 16)
        pos = line_end + 2
        if size == 0:
            break
        pos += size + 2  # data, then its CRLF
        if pos > len(buf):
            raise _Incomplete
    # Trailer lines, if any, up to an empty line.
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            raise _Incomplete
        if line_end == pos:
            return pos + 2
        pos = line_end + 2


def _dechunk(body: bytes) -> bytes:
    """The data of a complete chunked body (trailers dropped)."""
    out, pos = [], 0
    while True:
        line_end = body.index(b"\r\n", pos)
        size = int(body[pos:line_end].split(b";", 1)[0].strip(), 16)
        if size == 0:
            return b"".join(out)
        out.append(body[line_end + 2:line_end + 2 + size])
        pos = line_end + 2 + size + 2


def _stream_request(body: bytes) -> bool | None:
    """None for an ordinary request; for `"stream": true`, whether include_usage is set."""
    if b'"stream"' not in body:  # the plain hot path stays a byte search
        return None
    payload = json.loads(body)
    if not isinstance(payload, dict) or payload.get("stream") is not True:
        return None
    return bool((payload.get("stream_options") or {}).get("include_usage"))


class _Stream:
    """A streamed answer in progress: the reply is STREAM_PARTS[include_usage], sent part by part."""

    def __init__(self, parts: list[bytes], close: bool) -> None:
        self.parts = parts
        self.next = 0
        self.close = close
        self.timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self.started = asyncio.get_running_loop().time()


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, stream_interval: float = 0.001) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.stream_interval = stream_interval
        self.stream: _Stream | None = None  # while set, later (pipelined) requests wait in buf

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.stream is not None and self.stream.timer is not None:
            self.stream.timer.cancel()
        self.stream = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.stream is None:
            self._answer()

    def _answer(self) -> None:
        out = []
        close = False
        # Answer every complete request in the buffer (pipelining), keep the rest.
        while self.buf:
            try:
                consumed, reply, close = self._parse_one()
            except _Incomplete:
                break
            except (ValueError, IndexError):
                out.append(BAD_REQUEST)
                close = True
                break
            del self.buf[:consumed]
            if isinstance(reply, _Stream):
                # Whatever was answered before it, then the stream's head and first chunk; the
                # requests after it wait until it ends.
                self.stream = reply
                out.append(self._next_part())
                close = False
                break
            out.append(reply)
            if close:
                break
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
            if close:
                self.transport.close()
        if self.stream is not None:
            self._schedule()

    def _next_part(self) -> bytes:
        stream = self.stream
        part = stream.parts[stream.next]
        stream.next += 1
        return part

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        if self.stream_interval > 0:
            # On a fixed schedule from the first chunk (part n at n intervals), so that a late
            # timer does not slow the whole stream down: its rate is 1/interval.
            when = self.stream.started + self.stream.next * self.stream_interval
            self.stream.timer = loop.call_at(when, self._stream_step)
        else:
            self.stream.timer = loop.call_soon(self._stream_step)

    def _stream_step(self) -> None:
        stream = self.stream
        if stream is None or self.transport is None:
            return
        self.transport.write(self._next_part())
        if stream.next < len(stream.parts):
            self._schedule()
            return
        self.stream = None
        if stream.close:
            self.transport.close()
        elif self.buf:
            self._answer()  # requests pipelined behind the stream

    def _parse_one(self) -> tuple[int, bytes | _Stream, bool]:
        buf = self.buf
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise ValueError("header too large")
            raise _Incomplete
        lines = bytes(buf[:head_end]).split(b"\r\n")
        method, target, version = lines[0].split(b" ", 2)
        content_length = 0
        chunked = False
        keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                content_length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                token = value.strip().lower()
                if token == b"close":
                    keep_alive = False
                elif token == b"keep-alive":
                    keep_alive = True

        body_start = head_end + 4
        if chunked:
            end = _chunked_body_end(buf, body_start)
        else:
            end = body_start + content_length
            if end > len(buf):
                raise _Incomplete

        path = target.split(b"?", 1)[0]
        if path in CHAT_PATHS and method == b"POST":
            body = bytes(buf[body_start:end])
            include_usage = _stream_request(_dechunk(body) if chunked else body)
            if include_usage is not None:
                return end, _Stream(STREAM_PARTS[include_usage], close=not keep_alive), not keep_alive
            reply = CHAT_OK
        elif path in CHAT_PATHS:
            reply = NOT_ALLOWED
        elif path in (b"/health", b"/"):
            reply = HEALTH_OK
        else:
            reply = NOT_FOUND
        if not keep_alive:
            reply = reply.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
        return end, reply, not keep_alive


async def serve(host: str, port: int, stream_interval: float = 0.001) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(stream_interval), host, port, backlog=1024,
                                      reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"upstream listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--stream-interval-ms", type=float, default=1.0,
                        help="Time between two chunks of a streamed answer (default 1; 0: one per loop turn)")
    args = parser.parse_args()
    coro = serve(args.host, args.port, args.stream_interval_ms / 1000)
    try:
        import uvloop
    except ImportError:  # still works, only slower
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
