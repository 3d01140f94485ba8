"""The request path's pipelined Redis connection (apps.core.redis_pipeline): replies reach their
own callers under concurrency and cancellation, and a lost, silent or flushed server is ridden out
or reported as redis-py would."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps.core.redis import register_script
from apps.core.redis_pipeline import pipelined_connection

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")

ECHO = "return {KEYS[1], ARGV[1]}"


@contextlib.asynccontextmanager
async def fake_server(handle):
    """A TCP server on loopback whose connections `handle(reader, writer)` serves."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    finally:
        server.close()


def test_only_one_plain_tcp_server_takes_the_pipelined_lane():
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.sentinel import Sentinel

    assert pipelined_connection(aioredis.Redis.from_url("redis://127.0.0.1:6379/0")) is not None
    assert pipelined_connection(aioredis.Redis.from_url("rediss://127.0.0.1:6379/0")) is None
    assert pipelined_connection(aioredis.Redis.from_url("unix:///tmp/redis.sock")) is None
    assert pipelined_connection(Sentinel([("127.0.0.1", 26379)]).master_for("mymaster")) is None
    assert pipelined_connection(RedisCluster(host="127.0.0.1", port=7000)) is None


@needs_redis
def test_concurrent_scripts_each_get_their_own_reply():
    async def main():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        echo = register_script(client, ECHO)
        replies = await asyncio.gather(*(echo(keys=[f"k{i}"], args=[i]) for i in range(500)))
        assert replies == [[f"k{i}".encode(), str(i).encode()] for i in range(500)]

    asyncio.run(main())


@needs_redis
def test_a_cancelled_caller_does_not_shift_the_replies_of_the_others():
    async def main():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        echo = register_script(client, ECHO)
        await echo(keys=["warm"], args=[0])
        calls = [asyncio.ensure_future(echo(keys=[f"k{i}"], args=[i])) for i in range(5)]
        await asyncio.sleep(0)  # every call is sent
        calls[2].cancel()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(results[2], asyncio.CancelledError)
        assert [r for i, r in enumerate(results) if i != 2] == [[f"k{i}".encode(), str(i).encode()]
                                                                for i in (0, 1, 3, 4)]
        assert await echo(keys=["after"], args=["x"]) == [b"after", b"x"]

    asyncio.run(main())


def test_clients_of_one_loop_and_server_share_one_lane_and_other_loops_or_servers_do_not():
    """The limits' scripts and the spend journal use clients of their own: sharing the lane puts a
    request's settlement and its journal put in one write."""
    url = "redis://127.0.0.1:6379/0"

    async def lanes():
        first = pipelined_connection(aioredis.Redis.from_url(url))
        second = pipelined_connection(aioredis.Redis.from_url(url))
        other_db = pipelined_connection(aioredis.Redis.from_url("redis://127.0.0.1:6379/3"))
        other_user = pipelined_connection(aioredis.Redis.from_url("redis://someone:pw@127.0.0.1:6379/0"))
        return first, second, other_db, other_user

    first, second, other_db, other_user = asyncio.run(lanes())
    assert first is second
    assert len({id(first), id(other_db), id(other_user)}) == 3
    next_loop_first, *_ = asyncio.run(lanes())
    assert next_loop_first is not first  # a lane serves the loop it was made on


@needs_redis
def test_send_now_writes_at_once_when_nothing_is_in_flight_and_calls_wait_for_the_end_of_the_turn():
    async def main():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        pipe = pipelined_connection(client)
        await pipe.call("PING")
        writes = []
        transport = pipe._protocol.transport
        real_write = transport.write
        pipe._protocol.transport = type("Counting", (), {
            "write": lambda self, data: (writes.append(data), real_write(data)),
            "abort": lambda self: transport.abort(),
        })()
        first = pipe.send_now("ECHO", "a")
        assert len(writes) == 1  # at once, before the caller yields: Redis works while it goes on
        calls = [asyncio.ensure_future(pipe.call("HSET", "gw-lane-test", "f", "v")),
                 asyncio.ensure_future(pipe.call("ECHO", "b"))]
        assert await first == b"a"
        assert await asyncio.gather(*calls) == [1, b"b"]
        assert len(writes) == 2 and writes[1].count(b"*") == 2  # the two calls of one turn, together
        await pipe.call("DEL", "gw-lane-test")
        assert len(writes) == 3

    asyncio.run(main())


@needs_redis
def test_a_flushed_script_cache_and_a_killed_connection_are_ridden_out():
    async def main():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        echo = register_script(client, ECHO)
        assert await echo(keys=["a"], args=[1]) == [b"a", b"1"]
        pipe = pipelined_connection(client)
        own_id = await pipe.call("CLIENT", "ID")
        admin = redis.Redis.from_url(settings.REDIS_URL)
        admin.script_flush()
        assert await echo(keys=["b"], args=[2]) == [b"b", b"2"]  # EVAL where EVALSHA found nothing
        admin.client_kill_filter(_id=own_id)
        assert await echo(keys=["c"], args=[3]) == [b"c", b"3"]  # a new connection
        assert await pipe.call("CLIENT", "ID") != own_id

    asyncio.run(main())


@needs_redis
def test_a_script_error_is_a_response_error_and_the_connection_stays_usable():
    async def main():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        broken = register_script(client, "return redis.call('INCR', KEYS[1], 'extra')")
        echo = register_script(client, ECHO)
        with pytest.raises(ResponseError):
            await broken(keys=["x"])
        assert await echo(keys=["y"], args=[1]) == [b"y", b"1"]

    asyncio.run(main())


@needs_redis
def test_the_database_of_the_url_is_selected():
    base = settings.REDIS_URL.rsplit("/", 1)[0]
    admin = redis.Redis.from_url(f"{base}/7")
    admin.delete("gw-pipeline-db-test")

    async def main():
        pipe = pipelined_connection(aioredis.Redis.from_url(f"{base}/7"))
        await pipe.call("SET", "gw-pipeline-db-test", "seven")

    asyncio.run(main())
    assert admin.get("gw-pipeline-db-test") == b"seven"
    admin.delete("gw-pipeline-db-test")


@needs_redis
def test_a_refused_password_is_an_error_not_a_retry(settings):
    settings.REDIS_RETRIES = 5
    base = settings.REDIS_URL.split("://", 1)[1].rsplit("/", 1)[0].rpartition("@")[2]

    async def main():
        pipe = pipelined_connection(aioredis.Redis.from_url(f"redis://someone:wrong@{base}/0"))
        async with asyncio.timeout(5):  # five retries with backoff would take longer than this
            with pytest.raises(RedisConnectionError, match="AUTH"):
                await pipe.call("PING")

    asyncio.run(main())


def test_a_server_that_stops_answering_times_out(settings):
    settings.REDIS_SOCKET_TIMEOUT = 0.2
    settings.REDIS_RETRIES = 1
    connections = []

    async def silent(reader, writer):
        connections.append(writer)
        await reader.read(1 << 16)  # takes the command and never answers

    async def main():
        async with fake_server(silent) as url:
            pipe = pipelined_connection(aioredis.Redis.from_url(url))
            async with asyncio.timeout(5):
                with pytest.raises(RedisTimeoutError):
                    await pipe.call("PING")
        assert len(connections) == 2  # tried again once, on a new connection

    asyncio.run(main())


def test_an_unreachable_server_is_a_connection_error_after_the_retries(settings):
    settings.REDIS_RETRIES = 2
    connections = []

    async def hang_up(reader, writer):
        connections.append(writer)
        writer.close()

    async def main():
        async with fake_server(hang_up) as url:
            pipe = pipelined_connection(aioredis.Redis.from_url(url))
            with pytest.raises(RedisConnectionError):
                await pipe.call("PING")
        assert len(connections) == 3

    asyncio.run(main())


def test_replies_split_across_reads_reach_the_right_callers():
    async def dribbling(reader, writer):
        # Answers each PING with its own sequence number, a byte at a time.
        served = 0
        while data := await reader.read(1 << 16):
            for _ in range(data.count(b"PING")):
                served += 1
                for byte in b":%d\r\n" % served:
                    writer.write(bytes([byte]))
                    await writer.drain()

    async def main():
        async with fake_server(dribbling) as url:
            pipe = pipelined_connection(aioredis.Redis.from_url(url))
            assert await asyncio.gather(*(pipe.call("PING") for _ in range(20))) == list(range(1, 21))
            pipe.close()
            await asyncio.sleep(0.05)  # the server sees the end of its connection

    asyncio.run(main())
