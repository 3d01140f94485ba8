"""A streaming load generator: time to first chunk and chunks/s of SSE chat completions.

N keep-alive connections each send one `"stream": true` chat request, read the
whole event stream, and send the next, for D seconds (closed loop, like
bench/load.py; each connection finishes the stream it has in flight at the
deadline, so every stream the server served is counted). wrk cannot do this: it
times whole responses, not their first chunk.

Per stream it keeps the time from sending the request to the first event with
content ("time to first chunk"), and the rate at which content chunks arrived
after that: (chunks - 1) / (last chunk - first chunk). It checks every stream:
status 200, exactly STREAM_CHUNKS content chunks whose text is bench/upstream.py's
STREAM_CONTENT, the usage chunk with STREAM_USAGE (the request asks for it with
stream_options.include_usage), and `data: [DONE]` last. A stream that fails a
check counts as incomplete.

A bare asyncio.Protocol on uvloop that undoes the chunked transfer encoding and
splits the events itself (no HTTP library), and a timestamp per read, not per
chunk, so that it stays cheap next to the servers it shares the cores with.

    python bench/stream_load.py --url http://127.0.0.1:4000/v1/chat/completions \\
        --key sk-... -c 8 -d 5 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import build_request, percentile
from upstream import STREAM_CHUNKS, STREAM_CONTENT, STREAM_USAGE

# The request the streaming runs send, direct and through the gateway alike.
STREAM_REQUEST_BODY = json.dumps(
    {
        "model": "bench-model",
        "messages": [{"role": "user", "content": "Say something long."}],
        "max_tokens": 256,
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    separators=(",", ":"),
)

STREAM_TIMEOUT = 60.0  # seconds for one whole stream before it counts as an error


@dataclass
class StreamResult:
    generator: str
    concurrency: int
    duration_s: float  # wall time from the first request to the end of the last stream
    streams: int  # responses received whole, any status
    complete: int  # 200, STREAM_CHUNKS content chunks with the right text, the usage, [DONE]
    incomplete: int  # 200 but a check failed
    non_2xx: int
    errors: int  # connect/read failures, cut streams, timeouts
    chunks: int  # content chunks received, all streams
    chunks_per_s: float  # chunks / duration_s: the total rate
    stream_chunks_per_s_p50: float  # per stream, (chunks - 1) / (last - first chunk)
    stream_chunks_per_s_min: float
    ttfc_p50_ms: float
    ttfc_p99_ms: float
    stream_ms_p50: float  # request sent to the end of the stream
    first_failure: str = ""


class _Failed(Exception):
    pass


class StreamClient(asyncio.Protocol):
    """One keep-alive connection; request() sends one request and reads its whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.lost = False

    # --- asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc or 'closed by the server'}"))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.waiter is None or self.waiter.done():
            return  # nothing asked for (a server closing after an error)
        self.buf += data
        try:
            finished = self._parse(now)
        except Exception as exc:  # noqa: BLE001 - any parse failure ends this stream as an error
            self.waiter.set_exception(_Failed(f"unparsable answer: {exc!r}"))
            return
        if finished:
            self.waiter.set_result(None)

    # --- one request

    async def request(self, payload: bytes) -> None:
        self.buf = bytearray()
        self.head_done = False
        self.status = 0
        self.chunked = False
        self.length: int | None = None
        self.close = False
        self.sse = bytearray()
        self.body = bytearray()  # a non-chunked body (an error answer)
        self.pieces: list[str] = []
        self.first = self.last = 0.0
        self.usage = None
        self.done = False
        self.after_done = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.sent = time.perf_counter()
        self.transport.write(payload)
        await asyncio.wait_for(self.waiter, STREAM_TIMEOUT)

    def _parse(self, now: float) -> bool:
        """Consume what is in buf; True once the whole answer is in."""
        buf = self.buf
        if not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            lines = bytes(buf[:end]).split(b"\r\n")
            self.status = int(lines[0].split(b" ", 2)[1])
            self.close = lines[0].startswith(b"HTTP/1.0")
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self.length = int(value)
                elif name == b"transfer-encoding":
                    self.chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    self.close = value.strip().lower() == b"close"
            del buf[:end + 4]
            self.head_done = True
        if not self.chunked:
            if self.length is None:
                raise _Failed("neither chunked nor Content-Length")
            if len(buf) < self.length:
                return False
            self.body = buf[:self.length]
            del buf[:self.length]
            return True
        while True:
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return False
            size = int(bytes(buf[:line_end]).split(b";", 1)[0].strip(), 16)
            if size == 0:
                # The last chunk, then trailer lines (if any) up to an empty line.
                end = buf.find(b"\r\n\r\n", line_end)
                if end < 0:
                    return False
                del buf[:end + 4]
                self._events(now, final=True)
                return True
            start = line_end + 2
            if len(buf) < start + size + 2:
                return False
            self.sse += buf[start:start + size]
            del buf[:start + size + 2]
            self._events(now)

    def _events(self, now: float, final: bool = False) -> None:
        sse = self.sse
        while True:
            end = sse.find(b"\n\n")
            if end < 0:
                break
            event = bytes(sse[:end])
            del sse[:end + 2]
            data = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
            if not data:
                continue  # a comment or a named event without data
            payload = b"\n".join(data)
            if self.done:
                self.after_done = True
                continue
            if payload == b"[DONE]":
                self.done = True
                continue
            chunk = orjson.loads(payload)
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    self.pieces.append(content)
                    if not self.first:
                        self.first = now
                    self.last = now
            if chunk.get("usage"):
                self.usage = chunk["usage"]
        if final and sse.strip():
            raise _Failed(f"stream ended inside an event: {bytes(sse[:200])!r}")

    def check(self) -> str:
        """Why this (200) stream is not the expected one; empty when it is."""
        if len(self.pieces) != STREAM_CHUNKS:
            return f"{len(self.pieces)} content chunks, expected {STREAM_CHUNKS}"
        if "".join(self.pieces) != STREAM_CONTENT:
            return "content differs from upstream.STREAM_CONTENT"
        if not self.usage or {k: self.usage.get(k) for k in STREAM_USAGE} != STREAM_USAGE:
            return f"usage {self.usage}, expected {STREAM_USAGE}"
        if not self.done:
            return "no data: [DONE]"
        if self.after_done:
            return "events after [DONE]"
        return ""


class _Totals:
    def __init__(self) -> None:
        self.ttfc: list[float] = []
        self.rates: list[float] = []
        self.durations: list[float] = []
        self.streams = self.complete = self.incomplete = self.non_2xx = self.errors = self.chunks = 0
        self.first_failure = ""

    def fail(self, why: str) -> None:
        if not self.first_failure:
            self.first_failure = why


async def _connection(host: str, port: int, payload: bytes, deadline: float, totals: _Totals) -> None:
    loop = asyncio.get_running_loop()
    clock = time.perf_counter
    client: StreamClient | None = None
    while clock() < deadline:
        try:
            if client is None or client.lost:
                _, client = await loop.create_connection(StreamClient, host, port)
            await client.request(payload)
        except (TimeoutError, OSError, _Failed) as exc:
            totals.errors += 1
            totals.fail(f"{type(exc).__name__}: {exc}")
            if client is not None and client.transport is not None:
                client.transport.close()
            client = None
            await asyncio.sleep(0.01)  # don't spin on a server that refuses us
            continue
        totals.streams += 1
        totals.chunks += len(client.pieces)
        if client.status != 200:
            totals.non_2xx += 1
            totals.fail(f"status {client.status}: {bytes(client.body[:300])!r}")
        else:
            why = client.check()
            if why:
                totals.incomplete += 1
                totals.fail(why)
            else:
                totals.complete += 1
            if client.first:
                totals.ttfc.append(client.first - client.sent)
                if len(client.pieces) > 1 and client.last > client.first:
                    totals.rates.append((len(client.pieces) - 1) / (client.last - client.first))
            totals.durations.append(clock() - client.sent)
        if client.close:
            client.transport.close()
            client = None
    if client is not None and client.transport is not None:
        client.transport.close()


async def run_streams(url: str, *, concurrency: int, duration: float, key: str | None = None,
                      body: str = STREAM_REQUEST_BODY) -> StreamResult:
    host, port, payload = build_request(url, body, key)
    totals = _Totals()
    started = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, payload, started + duration, totals)
                           for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ttfc, rates, durations = sorted(totals.ttfc), sorted(totals.rates), sorted(totals.durations)
    return StreamResult(
        generator="python",
        concurrency=concurrency,
        duration_s=round(elapsed, 3),
        streams=totals.streams,
        complete=totals.complete,
        incomplete=totals.incomplete,
        non_2xx=totals.non_2xx,
        errors=totals.errors,
        chunks=totals.chunks,
        chunks_per_s=totals.chunks / elapsed if elapsed > 0 else 0.0,
        stream_chunks_per_s_p50=percentile(rates, 50) if rates else float("nan"),
        stream_chunks_per_s_min=rates[0] if rates else float("nan"),
        ttfc_p50_ms=percentile(ttfc, 50) * 1000,
        ttfc_p99_ms=percentile(ttfc, 99) * 1000,
        stream_ms_p50=percentile(durations, 50) * 1000,
        first_failure=totals.first_failure,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", default=None, help="Sent as 'Authorization: Bearer KEY'")
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="Seconds")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object")
    args = parser.parse_args()
    coro = run_streams(args.url, concurrency=args.concurrency, duration=args.duration, key=args.key)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coro)
    else:
        result = uvloop.run(coro)
    if args.json:
        json.dump(asdict(result), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(
            f"{result.streams} streams in {result.duration_s:.2f}s, c={result.concurrency}: "
            f"{result.complete} complete, {result.incomplete} incomplete, non-2xx {result.non_2xx}, "
            f"errors {result.errors}; first chunk p50 {result.ttfc_p50_ms:.3f} ms p99 {result.ttfc_p99_ms:.3f} ms; "
            f"{result.chunks_per_s:.0f} chunks/s in total, {result.stream_chunks_per_s_p50:.0f} per stream (p50)"
        )
        if result.first_failure:
            print(f"first failure: {result.first_failure}")


if __name__ == "__main__":
    main()
