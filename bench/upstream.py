"""A fixed-answer OpenAI-compatible upstream for benchmarking the gateway.

Any POST to /v1/chat/completions (or /chat/completions) gets the same
chat.completion JSON with a "usage" object, so the gateway has tokens to price
and a spend record to write. It is a bare asyncio.Protocol on uvloop with no
framework, so that it costs as little as possible and the benchmark measures the
gateway rather than the upstream.

HTTP/1.1 only as far as the benchmark needs: keep-alive, pipelined requests,
requests split over several reads, bodies by Content-Length or chunked.

    python bench/upstream.py --port 9000
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


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
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
            out.append(reply)
            if close:
                break
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
            if close:
                self.transport.close()

    def _parse_one(self) -> tuple[int, bytes, bool]:
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
        if path in CHAT_PATHS:
            reply = CHAT_OK if method == b"POST" else NOT_ALLOWED
        elif path in (b"/health", b"/"):
            reply = HEALTH_OK
        else:
            reply = NOT_FOUND
        if not keep_alive:
            reply = reply.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
        return end, reply, not keep_alive


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=1024, reuse_address=True)
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
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # still works, only slower
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
