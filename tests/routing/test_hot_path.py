"""The request path's rules: no database query and no thread hop per request once caches are warm;
changes made on the control plane reach the caches at once."""

import asyncio

import pytest
from asgiref import sync as asgiref_sync

from conftest import wait_for

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def counted(monkeypatch):
    """Counts database round trips of the data plane and every sync_to_async call in the process."""
    from apps.keys import cache as key_cache_module
    from apps.providers import registry as registry_module

    counts = {"db": 0, "sync_to_async": 0}
    for module in (key_cache_module, registry_module):
        original = module.db_call

        async def counting_db_call(fn, *args, _original=original, **kwargs):
            counts["db"] += 1
            return await _original(fn, *args, **kwargs)

        monkeypatch.setattr(module, "db_call", counting_db_call)
    original_call = asgiref_sync.SyncToAsync.__call__

    async def counting_call(self, *args, **kwargs):
        counts["sync_to_async"] += 1
        return await original_call(self, *args, **kwargs)

    monkeypatch.setattr(asgiref_sync.SyncToAsync, "__call__", counting_call)
    return counts


def test_warm_requests_touch_neither_database_nor_threads(
    gateway, openai_client, make_deployment, make_key, counted, settings
):
    make_deployment("gpt-test")
    _, raw_key = make_key()
    client = openai_client(raw_key)
    client.chat.completions.create(model="gpt-test", messages=MESSAGES)  # fills the caches
    list(client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True))
    assert counted["db"] == 2  # one key lookup, one registry load

    # Let the spend flusher (one batch per interval, not per request) go quiet first.
    from apps.spend.buffer import spend_buffer

    wait_for(lambda: len(spend_buffer) == 0)
    settings.GATEWAY_SPEND_FLUSH_INTERVAL = 3600
    before = dict(counted)
    for _ in range(20):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        list(client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True))
        client.models.list()
    assert counted["db"] == before["db"]
    # The flusher may run one batch on its existing schedule; requests add nothing.
    assert counted["sync_to_async"] - before["sync_to_async"] <= 1


def test_a_key_change_reaches_the_cache_at_once(gateway, openai_client, make_deployment, make_key):
    import openai

    make_deployment("gpt-a")
    make_deployment("gpt-b")
    key, raw_key = make_key(models=["gpt-a"])
    client = openai_client(raw_key)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-b", messages=MESSAGES)
    key.models = ["gpt-a", "gpt-b"]
    key.save()
    assert client.chat.completions.create(model="gpt-b", messages=MESSAGES).choices
    key.delete()
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-b", messages=MESSAGES)


def test_a_new_deployment_is_routable_at_once(gateway, openai_client, make_deployment):
    import openai

    client = openai_client()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="late", messages=MESSAGES)
    deployment = make_deployment("late")
    assert client.chat.completions.create(model="late", messages=MESSAGES).choices
    deployment.is_active = False
    deployment.save()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="late", messages=MESSAGES)


def test_key_cache_loads_a_key_once_for_concurrent_misses(transactional_db, make_key, monkeypatch):
    from apps.keys import cache as key_cache_module

    key, _ = make_key()
    cache = key_cache_module.KeyCache()
    calls = []
    original = key_cache_module.db_call

    async def slow_db_call(fn, *args, **kwargs):
        calls.append(args)
        await asyncio.sleep(0.05)
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(key_cache_module, "db_call", slow_db_call)

    async def scenario():
        return await asyncio.gather(*(cache.get(key.token_hash) for _ in range(10)))

    contexts = asyncio.run(scenario())
    assert len(calls) == 1
    assert all(c is not None and c.key_id == key.pk for c in contexts)


def test_requests_in_flight_set_off_no_garbage_collection(gateway, openai_client, make_deployment, make_key):
    """At Python's default threshold (700 container objects made and not yet freed) the objects of
    the requests in flight set off young-generation collections again and again under load, each
    finding next to nothing to free: 3-4% of a busy process's CPU (perf, bench/)."""
    import gc
    from concurrent.futures import ThreadPoolExecutor

    make_deployment("gpt-test")
    _, raw_key = make_key()
    clients = [openai_client(raw_key) for _ in range(8)]
    clients[0].chat.completions.create(model="gpt-test", messages=MESSAGES)  # fills the caches
    collections = []

    def count(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    def requests(client):
        answered = 0
        for _ in range(6):
            answered += bool(client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices)
            answered += bool(list(client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)))
        return answered

    gc.collect()  # from no count of young objects: what earlier tests left could reach the threshold
    gc.callbacks.append(count)
    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            answered = sum(pool.map(requests, clients))  # a request's error is raised here
    finally:
        gc.callbacks.remove(count)
    assert answered == 8 * 12
    assert collections == []  # at 700: 0, 0, 0, 0, 1, 2, ...


def test_answers_start_with_a_head_written_in_one_piece(gateway, make_deployment, make_key, monkeypatch):
    """uvicorn's start message checks and lowercases each of an answer's twenty headers in Python;
    the data plane writes them in one piece (apps.core.server.HEAD_SEND), framed as uvicorn would."""
    import httpx
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    starts = []
    original_send = RequestResponseCycle.send

    async def recording_send(self, message):
        if message["type"] == "http.response.start":
            starts.append(self.scope["path"])
        return await original_send(self, message)

    monkeypatch.setattr(RequestResponseCycle, "send", recording_send)
    make_deployment("gpt-test")
    _, raw_key = make_key(rpm_limit=100)
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {raw_key}"}) as client:
        for stream in (False, True, False):
            answer = client.post("/v1/chat/completions", json={"model": "gpt-test", "messages": MESSAGES,
                                                              "stream": stream})
            assert answer.status_code == 200
            assert len(answer.headers.get_list("x-request-id")) == 1
            assert answer.headers["x-litellm-call-id"] == answer.headers["x-request-id"]
            assert answer.headers["x-ratelimit-limit-requests"] == "100"
            assert answer.headers["content-type"].startswith("text/event-stream" if stream else "application/json")
            if stream:
                assert answer.headers["transfer-encoding"] == "chunked" and "data: [DONE]" in answer.text
            else:
                assert int(answer.headers["content-length"]) == len(answer.content) and answer.json()["choices"]
        assert client.get("/v1/models").status_code == 200  # an answer of the data plane's views too
    assert starts == []


def test_a_served_request_leaves_no_reference_cycles(gateway, make_deployment, make_key):
    """A server process collects its young objects rarely (GATEWAY_GC_GEN0_THRESHOLD): what a
    request leaves in a reference cycle would pile up between collections, and each collection
    would then have it to find. Requests on one kept-alive connection, the collector off."""
    import gc
    import http.client
    import json
    import time
    from urllib.parse import urlparse

    make_deployment("gpt-test")
    _, raw_key = make_key(rpm_limit=1000)
    url = urlparse(gateway.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    body = json.dumps({"model": "gpt-test", "messages": MESSAGES})
    headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}

    def request() -> None:
        connection.request("POST", "/v1/chat/completions", body=body, headers=headers)
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200

    for _ in range(20):
        request()  # the caches warm, the connections to the upstream and Redis open
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            request()
        time.sleep(0.5)  # the settlements and spend writes of the last ones end
    finally:
        unreachable = gc.collect()
        gc.enable()
        connection.close()
    assert unreachable < 100  # less than one object a request (a cycle per request left 1,495)
