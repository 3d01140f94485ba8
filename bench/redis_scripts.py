"""Redis time a limited request costs: the limits' acquire and settlement scripts, timed by Redis.

One Redis serves every replica's limits, so the time its scripts take per request is what
caps a deployment (the gateway processes scale out; that Redis does not, for one team). This
runs a checkout's own limiter (apps.keys.limits.RedisLimiter) against a Redis, for a key with
rpm, tpm and a budget whose windows are full (a request every second of the last minute), at
0, 32 and 1,000 requests in flight (each holds a budget reservation until it is settled), and
reports the Redis time of acquire plus settlement per request, from Redis's own counters
(INFO commandstats: the scripts' time inside Redis, not the round trip).

    .venv/bin/python bench/redis_scripts.py [--repo PATH] [--requests 1500] [--rounds 3]

--repo measures another checkout (a git worktree of an older commit, say) in the same way.
Needs REDIS_URL (default redis://127.0.0.1:6379/0); its keys are its own and removed after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

IN_FLIGHT = (0, 32, 1000)


def setup_django(repo: Path) -> None:
    sys.path.insert(0, str(repo))
    os.chdir(repo)  # Celery's Django fixup puts the working directory first on sys.path
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    import django

    django.setup()


def scripts_time(client) -> tuple[int, int]:
    stats = client.info("commandstats")
    calls = usec = 0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        calls += stats.get(name, {}).get("calls", 0)
        usec += stats.get(name, {}).get("usec", 0)
    return calls, usec


def measure(in_flight: int, requests: int) -> tuple[float, float]:
    """(Redis µs of script time per request, scripts per request) at `in_flight` held."""
    from apps.core.redis import sync_redis
    from apps.keys.limits import LimitScope, RedisLimiter

    limiter = RedisLimiter()
    scope = LimitScope(kind="key", id=f"bench-{uuid.uuid4().hex}", rpm=10**9, tpm=10**9,
                       budget_nanos=10**18, budget_anchor=time.time())
    real_time = time.time
    start = real_time()

    async def run() -> tuple[int, int]:
        # The last minute's traffic, a request a second, so that both windows are full.
        for second in range(-59, 0):
            time.time = lambda: start + second  # noqa: B023 (read at once)
            await limiter.acquire([scope], uuid.uuid4().hex, 0)
        time.time = real_time
        held = []
        for _ in range(in_flight):
            request_id = uuid.uuid4().hex
            await limiter.acquire([scope], request_id, 1_000)
            held.append(request_id)
        client = sync_redis()
        before = scripts_time(client)
        for _ in range(requests):
            request_id = uuid.uuid4().hex
            await limiter.acquire([scope], request_id, 1_000)
            held.append(request_id)
            await limiter.settle([scope], held.pop(0), 18, 400)
        after = scripts_time(client)
        for request_id in held:
            await limiter.settle([scope], request_id, 0, 0)
        return after[0] - before[0], after[1] - before[1]

    try:
        calls, usec = asyncio.run(run())
    finally:
        time.time = real_time
        client = sync_redis()
        keys = list(client.scan_iter(match=f"*{{key:{scope.id}}}*", count=1000))
        if keys:
            client.delete(*keys)
    return usec / requests, calls / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="The checkout whose limiter is measured (default: this one)")
    parser.add_argument("--requests", type=int, default=1500, help="Requests per measurement (default 1500)")
    parser.add_argument("--rounds", type=int, default=3, help="Measurements per row; the median is shown")
    args = parser.parse_args()
    setup_django(args.repo.resolve())
    import apps.keys.limits

    print(f"limiter of {Path(apps.keys.limits.__file__).parent.parent.parent}; a key with rpm, tpm and a budget, "
          "its windows full")
    print(f"{'in flight':>10} {'Redis us/request':>17} {'scripts/request':>16}")
    for in_flight in IN_FLIGHT:
        rows = [measure(in_flight, args.requests) for _ in range(args.rounds)]
        print(f"{in_flight:>10} {statistics.median(r[0] for r in rows):>17.1f} "
              f"{statistics.median(r[1] for r in rows):>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
