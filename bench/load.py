"""A small HTTP/1.1 load generator, the fallback when wrk is not installed.

N keep-alive connections each send one POST, wait for the whole answer, and send
the next, for D seconds (closed loop, like wrk). Every request's latency is kept
to compute exact percentiles. Raw asyncio streams on uvloop, no HTTP library, so
that the generator stays cheap next to the server it measures; it still costs
far more CPU per request than wrk, so against a very fast target it is the
generator, not the target, that sets the rate.

    python bench/load.py --url http://127.0.0.1:4000/v1/chat/completions \
        --key sk-... -c 32 -d 10 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

# The one request body the benchmark sends; post.lua gets it from run.py too.
REQUEST_BODY = json.dumps(
    {
        "model": "bench-model",
        "messages": [{"role": "user", "content": "Say something short."}],
        "max_tokens": 16,
    },
    separators=(",", ":"),
)


@dataclass
class LoadResult:
    generator: str
    concurrency: int
    duration_s: float  # wall time from the first request to the last answer
    requests: int  # answers received, any status
    non_2xx: int
    errors: int  # connect/read/write failures
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(pct / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def build_request(url: str, body: str, key: str | None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError("only http:// URLs are supported")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    payload = body.encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one whole response; return its status and whether the server closes."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    chunked = False
    close = lines[0].startswith(b"HTTP/1.0")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                break
            await reader.readexactly(size + 2)
    elif length is not None:
        await reader.readexactly(length)
    else:  # no length: the body runs to the end of the connection
        await reader.read()
        close = True
    return status, close


async def _connection(
    host: str, port: int, request: bytes, deadline: float,
    latencies: list[float], statuses: dict[int, int], errors: list[int],
) -> None:
    reader = writer = None
    clock = time.perf_counter
    while clock() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = clock()
            writer.write(request)
            status, close = await _read_response(reader)
            latencies.append(clock() - started)
            statuses[status] = statuses.get(status, 0) + 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            errors[0] += 1
            close = True
            await asyncio.sleep(0.01)  # don't spin on a server that refuses us
        if close and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def run_load(
    url: str, *, concurrency: int, duration: float, key: str | None = None, body: str = REQUEST_BODY
) -> LoadResult:
    host, port, request = build_request(url, body, key)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = [0]
    started = time.perf_counter()
    deadline = started + duration
    # Each connection finishes the request it has in flight at the deadline, so
    # every request the server handled is counted (the spend-log check relies on it).
    await asyncio.gather(
        *(
            _connection(host, port, request, deadline, latencies, statuses, errors)
            for _ in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    requests = len(latencies)
    return LoadResult(
        generator="python",
        concurrency=concurrency,
        duration_s=round(elapsed, 3),
        requests=requests,
        non_2xx=sum(n for s, n in statuses.items() if not 200 <= s < 300),
        errors=errors[0],
        rps=requests / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        statuses={str(s): n for s, n in sorted(statuses.items())},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", default=None, help="Sent as 'Authorization: Bearer KEY'")
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="Seconds")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object")
    args = parser.parse_args()
    coro = run_load(args.url, concurrency=args.concurrency, duration=args.duration, key=args.key)
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
            f"{result.requests} requests in {result.duration_s:.2f}s, c={result.concurrency}: "
            f"{result.rps:.0f} req/s, p50 {result.p50_ms:.3f} ms, p99 {result.p99_ms:.3f} ms, "
            f"non-2xx {result.non_2xx}, errors {result.errors}"
        )


if __name__ == "__main__":
    main()
