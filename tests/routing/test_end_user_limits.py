"""End users (the OpenAI `user` field, LiteLLM's customers) through a real gateway with the openai
SDK: their limits and blocks hold in the same step as the key's, in the namespace of the key's
organization; an end user without limits costs nothing on the request path."""

from decimal import Decimal

import httpx
import openai
import pytest

from conftest import MASTER_KEY, wait_for

MESSAGES = [{"role": "user", "content": "hi"}]
COST = Decimal("0.0000735")  # one request's cost at make_deployment's prices (11 + 7 tokens)


@pytest.fixture
def manage(gateway):
    """Calls the management API of the running gateway (the master key by default)."""

    def call(method: str, path: str, body=None, key: str = MASTER_KEY) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        if method == "GET":
            return httpx.get(gateway.url + path, params=body, headers=headers, timeout=10)
        return httpx.post(gateway.url + path, json=body, headers=headers, timeout=10)

    return call


def chat(client, user: str | None = None, **extra):
    extra.setdefault("max_tokens", 5)  # keeps the reservation (the most a request costs) small
    if user is not None:
        extra["user"] = user
    return client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES, **extra)


def test_an_end_user_rpm_limit_refuses_its_third_request_and_no_one_elses(
    gateway, openai_client, make_deployment, manage
):
    make_deployment("gpt-test")
    created = manage("POST", "/customer/new", {"user_id": "alice", "rpm_limit": 2})
    assert created.status_code == 200, created.text
    assert created.json()["litellm_budget_table"]["rpm_limit"] == 2
    client = openai_client()  # the master key: the proxy admin's namespace, where alice was made

    first, second = chat(client, "alice"), chat(client, "alice")
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client, "alice")
    response = refused.value.response
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert "end user" in response.json()["error"]["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-limit-requests"] == "2"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"

    # Other end users, never seen ones and requests naming none are not affected.
    for user in ("bob", "carol", None, "bob", "bob"):
        assert chat(client, user).http_response.status_code == 200


def test_an_end_user_budget_is_insufficient_quota_once_spent(
    gateway, openai_client, make_deployment, make_key, organization, manage
):
    make_deployment("gpt-test")
    _, raw_key = make_key(organization=organization)
    created = manage("POST", "/customer/new", {
        "user_id": "alice", "max_budget": 0.0001, "organization_id": str(organization.pk)})  # room for one
    assert created.status_code == 200, created.text
    client = openai_client(raw_key)

    assert chat(client, "alice").http_response.status_code == 200
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client, "alice")
    error = refused.value.response.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "end user" in error["message"]
    assert chat(client, "bob").http_response.status_code == 200  # alice's spending is not bob's


def test_a_blocked_end_user_is_403_until_unblocked(gateway, openai_client, make_deployment, manage):
    make_deployment("gpt-test")
    client = openai_client()
    assert chat(client, "mallory").http_response.status_code == 200
    assert manage("POST", "/customer/block", {"user_ids": ["mallory"]}).status_code == 200

    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(client, "mallory")
    error = refused.value.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("permission_error", "user", "end_user_blocked")
    assert chat(client, "mallory-2").http_response.status_code == 200

    assert manage("POST", "/customer/unblock", {"user_ids": ["mallory"]}).status_code == 200
    assert chat(client, "mallory").http_response.status_code == 200


def test_end_users_of_two_organizations_are_apart(gateway, openai_client, make_deployment, make_key, manage):
    from apps.teams.services import organization_create

    make_deployment("gpt-test")
    acme, globex = organization_create(name="Acme"), organization_create(name="Globex")
    _, acme_key = make_key(organization=acme)
    _, globex_key = make_key(organization=globex)
    manage("POST", "/customer/block", {"user_ids": ["alice"], "organization_id": str(acme.pk)})

    with pytest.raises(openai.PermissionDeniedError):
        chat(openai_client(acme_key), "alice")
    assert chat(openai_client(globex_key), "alice").http_response.status_code == 200  # Globex's alice
    assert chat(openai_client(), "alice").http_response.status_code == 200  # the proxy admin's alice


def test_the_spend_of_an_end_user_shows_on_customer_info_and_in_spend_logs(
    gateway, openai_client, make_deployment, manage, spend_logs
):
    make_deployment("gpt-test")
    client = openai_client()
    chat(client, "dave")
    list(client.chat.completions.create(model="gpt-test", messages=MESSAGES, user="dave", stream=True,
                                        stream_options={"include_usage": True}))
    chat(client)  # names no end user

    def dave_spend():
        response = manage("GET", "/customer/info", {"end_user_id": "dave"})
        return response.status_code == 200 and response.json()["spend"] == float(2 * COST) and response.json()

    info = wait_for(dave_spend)
    assert info, manage("GET", "/customer/info", {"end_user_id": "dave"}).text
    assert (info["user_id"], info["blocked"], info["litellm_budget_table"]) == ("dave", False, None)
    # The three rows are flushed in batches of their own: wait for the last one, not only dave's two.
    rows = wait_for(lambda: len(rows := manage("GET", "/spend/logs").json()) == 3 and rows)
    assert rows, manage("GET", "/spend/logs").text
    assert sorted(row["end_user"] for row in rows) == ["", "dave", "dave"]


def test_litellm_end_user_headers_name_the_end_user_before_the_body(
    gateway, openai_client, make_deployment, manage
):
    make_deployment("gpt-test")
    manage("POST", "/customer/block", {"user_ids": ["eve"]})
    for header in ("x-litellm-customer-id", "x-litellm-end-user-id"):
        with pytest.raises(openai.PermissionDeniedError):
            chat(openai_client(default_headers={header: "eve"}), "not-eve")
    assert chat(openai_client(default_headers={"x-litellm-customer-id": "not-eve"}), "eve").http_response.status_code == 200


def test_a_budget_change_reaches_the_request_path_at_once(gateway, openai_client, make_deployment, manage):
    make_deployment("gpt-test")
    assert manage("POST", "/budget/new", {"budget_id": "free", "rpm_limit": 1}).status_code == 200
    for user in ("erin", "frank"):
        assert manage("POST", "/customer/new", {"user_id": user, "budget_id": "free"}).status_code == 200
    client = openai_client()
    assert chat(client, "erin").http_response.status_code == 200
    assert chat(client, "frank").http_response.status_code == 200  # a tier's limits are each end user's own
    with pytest.raises(openai.RateLimitError):
        chat(client, "erin")

    assert manage("POST", "/budget/update", {"budget_id": "free", "rpm_limit": 3}).status_code == 200
    assert chat(client, "erin").http_response.status_code == 200
    assert manage("POST", "/budget/delete", {"id": "free"}).status_code == 200
    assert all(chat(client, "erin").http_response.status_code == 200 for _ in range(3))


@pytest.fixture
def counted(monkeypatch):
    """Counts the data plane's database round trips and limiter steps (Redis round trips with Redis)."""
    from apps.customers import cache as end_user_cache_module
    from apps.keys import cache as key_cache_module
    from apps.keys.limits import limiter
    from apps.providers import registry as registry_module

    counts = {"db": 0, "acquire": 0}
    for module in (key_cache_module, registry_module, end_user_cache_module):
        original = module.db_call

        async def counting_db_call(fn, *args, _original=original, **kwargs):
            counts["db"] += 1
            return await _original(fn, *args, **kwargs)

        monkeypatch.setattr(module, "db_call", counting_db_call)
    process_limiter = limiter()
    original_acquire = process_limiter.acquire

    async def counting_acquire(*args, **kwargs):
        counts["acquire"] += 1
        return await original_acquire(*args, **kwargs)

    monkeypatch.setattr(process_limiter, "acquire", counting_acquire)
    return counts


def test_a_new_end_user_on_every_request_costs_no_query_no_limiter_step_and_no_memory(
    gateway, openai_client, make_deployment, make_key, organization, counted, manage
):
    from apps.customers.cache import end_user_limits_cache

    make_deployment("gpt-test")
    manage("POST", "/customer/new", {"user_id": "limited", "rpm_limit": 100, "organization_id": str(organization.pk)})
    _, raw_key = make_key(organization=organization)
    client = openai_client(raw_key)
    chat(client, "warm-up")  # loads the key, the deployments and the organization's limited end users
    assert counted["db"] == 3
    before = dict(counted)

    for i in range(30):
        assert chat(client, f"random-{i}").http_response.status_code == 200
    assert counted == before
    assert list(end_user_limits_cache.peek(str(organization.pk))) == ["limited"]

    chat(client, "limited")  # the one with limits: one limiter step, still no query
    assert counted == {**before, "acquire": before["acquire"] + 1}
