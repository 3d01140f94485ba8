"""apps.core.redis.AsyncRedisPerLoop: each event loop gets a client of its own."""

import asyncio

from apps.core import redis as gateway_redis


def test_every_new_event_loop_gets_a_client_of_its_own_even_where_it_reuses_a_dead_loops_id(monkeypatch):
    # A client stands for any object bound to its loop; none of them connects.
    monkeypatch.setattr(gateway_redis, "new_async_redis", object)
    per_loop = gateway_redis.AsyncRedisPerLoop()

    async def twice():
        first = per_loop.get()
        assert per_loop.get() is first  # one client for the loop's lifetime
        return first

    # asyncio.run's loops, freed one after another, share an id now and then (2 of 20 here): the
    # client kept by the loop's id was then handed to a new loop it was not bound to.
    clients = [asyncio.run(twice()) for _ in range(30)]
    assert len(set(map(id, clients))) == 30  # all kept alive here: distinct ids, distinct clients


def test_a_factory_and_a_hook_make_each_loops_client(monkeypatch):
    made = []
    per_loop = gateway_redis.AsyncRedisPerLoop(on_new=lambda client: made.append(client) or "scripts",
                                               factory=dict)

    async def get():
        return per_loop.get()

    client, scripts = asyncio.run(get())
    assert client == {} and scripts == "scripts" and made == [client]
