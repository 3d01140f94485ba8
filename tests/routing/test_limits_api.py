"""Limits as a client sees them through the gateway: 429s, Retry-After and the x-ratelimit-* headers."""

import time
from decimal import Decimal

import httpx
import openai
import pytest
from django.conf import settings

from conftest import wait_for

MESSAGES = [{"role": "user", "content": "hi"}]


def chat(gateway, key, model="gpt-test", **extra) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "messages": MESSAGES, **extra}, timeout=10)


def test_rpm_limit_gives_429_with_retry_after_and_headers(gateway, make_deployment, make_key):
    make_deployment("gpt-test")
    _, raw_key = make_key(rpm_limit=2)
    first, second, third = (chat(gateway, raw_key) for _ in range(3))
    assert first.status_code == second.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert third.headers["x-ratelimit-remaining-requests"] == "0"


def test_tpm_headers_count_tokens(gateway, make_deployment, make_key):
    make_deployment("gpt-test")
    _, raw_key = make_key(tpm_limit=1000)
    assert chat(gateway, raw_key).headers["x-ratelimit-remaining-tokens"] == "1000"
    # 11 prompt + 7 completion tokens are counted once the first request settles.
    assert wait_for(lambda: chat(gateway, raw_key).headers["x-ratelimit-remaining-tokens"] == "982")


def test_each_answer_is_settled_before_the_clients_next_request(gateway, make_deployment, make_key):
    """The settlement waits for the spend journal's put (apps.routing.limits.limits_settle_soon), off
    the answer's round trip, yet the next request of the same client finds it counted: no wait."""
    make_deployment("gpt-test")
    _, raw_key = make_key(tpm_limit=1000)
    remaining = [int(chat(gateway, raw_key).headers["x-ratelimit-remaining-tokens"]) for _ in range(6)]
    assert remaining == [1000, 982, 964, 946, 928, 910]  # 11 prompt + 7 completion tokens each


class _SettleRecorder:
    """A limiter whose settle_soon answers as told: a Settlement, an error, or False (not sent)."""

    def __init__(self, soon_result="settled"):
        self.soon_result = soon_result
        self.soon, self.by_coroutine = [], []

    def settle_soon(self, scopes, request_id, tokens, cost_nanos, done):
        from apps.keys.limits import Settlement

        if self.soon_result is False:
            return False
        self.soon.append(request_id)
        done(Settlement(tokens, cost_nanos, []) if self.soon_result == "settled" else self.soon_result)
        return True

    async def settle(self, scopes, request_id, tokens, cost_nanos):
        from apps.keys.limits import Settlement

        self.by_coroutine.append(request_id)
        return Settlement(tokens, cost_nanos, [])


def _settle_soon_run(monkeypatch, recorder, *, put_later: bool):
    """limits_settle_soon for one request; what ran, and the tasks it started meanwhile."""
    import asyncio

    from apps.core import background
    from apps.routing import limits

    monkeypatch.setattr(limits, "limiter", lambda: recorder)

    async def main():
        loop = asyncio.get_running_loop()
        put = loop.create_future()
        if not put_later:
            put.set_result(None)
        before = asyncio.all_tasks()
        limits.limits_settle_soon((), "r1", 18, Decimal("0.001"), after=(put,))
        started = asyncio.all_tasks() - before
        if put_later:
            for _ in range(5):
                await asyncio.sleep(0)
            assert recorder.soon == [] and recorder.by_coroutine == []  # the journal's reply has not come
            put.set_result(None)
            await asyncio.sleep(0)
            started |= asyncio.all_tasks() - before
        await background.drain(timeout=5)  # what is held for the shutdown ends too
        assert not any(not f.done() for f in background._tasks)
        return started

    return asyncio.run(main())


def test_a_settlement_waits_for_the_requests_journal_put_and_starts_no_task(monkeypatch):
    recorder = _SettleRecorder()
    started = _settle_soon_run(monkeypatch, recorder, put_later=True)
    assert recorder.soon == ["r1"] and recorder.by_coroutine == []
    assert started == set()


@pytest.mark.parametrize("failure", ["not sent", "no script", "connection lost"])
def test_a_settlement_that_cannot_go_or_is_lost_is_settled_by_a_task(monkeypatch, failure):
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError

    result = {"not sent": False, "no script": NoScriptError("NOSCRIPT No matching script."),
              "connection lost": RedisConnectionError("Redis connection lost")}[failure]
    recorder = _SettleRecorder(result)
    _settle_soon_run(monkeypatch, recorder, put_later=False)
    assert recorder.by_coroutine == ["r1"]  # settled once, by limits_settle (which recovers from both)


def test_a_settle_script_error_is_logged_not_repeated(monkeypatch, caplog):
    from redis.exceptions import ResponseError

    recorder = _SettleRecorder(ResponseError("ERR user_script:1: something broke"))
    _settle_soon_run(monkeypatch, recorder, put_later=False)
    assert recorder.soon == ["r1"] and recorder.by_coroutine == []  # a script that failed may have counted
    assert "settle script failed" in caplog.text


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
def test_answers_are_settled_after_the_servers_scripts_are_flushed(gateway, make_deployment, make_key):
    """The settlement's fast lane (EVALSHA, no retry) meets a server that lost its scripts: the
    request is settled all the same, once."""
    import redis as sync_redis_module

    from apps.keys.limits import window_usage

    make_deployment("gpt-test")
    key, raw_key = make_key(rpm_limit=100, tpm_limit=1000)
    admin = sync_redis_module.Redis.from_url(settings.REDIS_URL)
    for _ in range(4):
        admin.script_flush()
        assert chat(gateway, raw_key).status_code == 200
    # 4 requests of 11 prompt + 7 completion tokens, each counted once.
    assert wait_for(lambda: window_usage("key", [key.pk])[str(key.pk)] == (4, 72))
    time.sleep(0.3)
    assert window_usage("key", [key.pk])[str(key.pk)] == (4, 72)


def test_team_limit_applies_to_every_key_of_the_team(gateway, make_deployment, make_key, team):
    make_deployment("gpt-test")
    team.rpm_limit = 1
    team.save()
    _, first_key = make_key(team=team)
    _, second_key = make_key(team=team)
    assert chat(gateway, first_key).status_code == 200
    response = chat(gateway, second_key)
    assert response.status_code == 429
    assert "team" in response.json()["error"]["message"]


def test_exhausted_budget_is_insufficient_quota_and_not_retried(gateway, make_deployment, make_key, openai_client):
    make_deployment("gpt-test")
    # One request costs 0.0000735 USD with these prices and reserves at most ~0.0000735 + 50 × 8e-6.
    _, raw_key = make_key(max_budget=Decimal("0.0005"))
    responses = [chat(gateway, raw_key, max_tokens=50) for _ in range(12)]
    statuses = [r.status_code for r in responses]
    assert 200 in statuses and statuses[-1] == 429
    refused = responses[-1]
    assert refused.json()["error"]["type"] == "insufficient_quota"
    assert refused.json()["error"]["code"] == "insufficient_quota"
    assert refused.headers["x-should-retry"] == "false"
    with pytest.raises(openai.RateLimitError) as info:
        openai_client(raw_key, max_retries=2).chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert info.value.body["code"] == "insufficient_quota"


def test_parallel_limit(gateway, make_deployment, make_key):
    import concurrent.futures

    make_deployment("sluggish", upstream_model="slow", timeout=10)
    make_deployment("gpt-test")
    _, raw_key = make_key(max_parallel_requests=1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(chat, gateway, raw_key, "sluggish")
        wait_for(lambda: False, timeout=0.5)
        blocked = chat(gateway, raw_key)
        assert blocked.status_code == 429 and "parallel" in blocked.json()["error"]["message"]
        assert slow.result().status_code == 200
    assert wait_for(lambda: chat(gateway, raw_key).status_code == 200)


def test_soft_budget_alert_fires_once(gateway, make_deployment, make_key):
    from apps.spend import alerts

    make_deployment("gpt-test")
    crossings = []
    alerts.listeners.append(crossings.append)
    try:
        key, raw_key = make_key(alias="soft")
        key.soft_budget = Decimal("0.0001")  # crossed by the second request (0.0000735 each)
        key.save()
        for _ in range(4):
            assert chat(gateway, raw_key).status_code == 200
        wait_for(lambda: crossings, timeout=2)
        wait_for(lambda: False, timeout=0.3)
    finally:
        alerts.listeners.remove(crossings.append)
    assert [(s.kind, s.id) for s in crossings] == [("key", str(key.pk))]


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
def test_a_settlements_redis_write_comes_after_its_answers_write(gateway, make_deployment, make_key, monkeypatch):
    """The settlement begins once the answer is written (apps.routing.limits.AfterAnswer): its
    script's write to Redis is not on the answer's path. Writes of the server's process, in order."""
    import hashlib

    from apps.core import redis_pipeline, server
    from apps.keys.limits import _SETTLE

    settle_sha = hashlib.sha1(_SETTLE.encode()).hexdigest().encode()
    writes: list[str] = []

    class Recording:
        def __init__(self, transport):
            self._transport = transport

        def __getattr__(self, name):
            return getattr(self._transport, name)

        def write(self, data):
            data = bytes(data)
            writes.extend(["settle"] * data.count(settle_sha) + ["journal"] * data.count(b"HSET"))
            self._transport.write(data)

    real_made = redis_pipeline._Protocol.connection_made
    monkeypatch.setattr(redis_pipeline._Protocol, "connection_made",
                        lambda self, transport: real_made(self, Recording(transport)))
    real_write = server._LingeringTransport.write

    def answer_write(self, data):
        if b"chat.completion" in bytes(data):
            writes.append("answer")
        return real_write(self, data)

    monkeypatch.setattr(server._LingeringTransport, "write", answer_write)
    # (The server's pipelined connection is made at its first command: after this, recorded.)
    make_deployment("gpt-test")
    _, raw_key = make_key(tpm_limit=100_000, rpm_limit=1000)
    for _ in range(4):
        assert chat(gateway, raw_key).status_code == 200
    wait_for(lambda: writes.count("settle") >= 4)
    assert writes.count("answer") == 4 and "journal" in writes
    # Every answer's journal put, then the answer, then its settlement: never a settlement
    # between a put and its answer.
    ordered = [w for w in writes if w in ("answer", "settle")]
    assert ordered == ["answer", "settle"] * 4, writes
