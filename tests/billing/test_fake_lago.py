"""The fake Lago enforces the real API's rules (wire-formats.md, part A): the other tests rely on it."""

import time

import httpx
import pytest

from apps.billing.lago import LagoClient, LagoError, LagoUnavailable, api_root


def event(tid: str, **fields) -> dict:
    return {
        "transaction_id": tid,
        "external_subscription_id": "sub_1",
        "code": "llm_usage",
        "timestamp": 1730000000.123,
        "properties": {"credits": "1.5"},
        **fields,
    }


@pytest.fixture
def client(fake_lago):
    with LagoClient(base=fake_lago.url, api_key=fake_lago.api_key) as c:
        yield c


def test_api_root_is_appended_to_the_server_root():
    assert api_root("https://api.getlago.com") == "https://api.getlago.com/api/v1/"
    assert api_root("http://lago:3000/") == "http://lago:3000/api/v1/"
    assert api_root("http://lago:3000/api/v1") == "http://lago:3000/api/v1/"


def test_bearer_auth(fake_lago):
    response = httpx.post(
        fake_lago.url + "/api/v1/events/batch",
        json={"events": [event("a")]},
        headers={"Authorization": "Bearer wrong"},
    )
    assert response.status_code == 401 and response.json() == {"status": 401, "error": "Unauthorized"}
    assert httpx.get(fake_lago.url + "/api/v1/wallets?external_customer_id=x").status_code == 401


def test_batch_limits(client):
    with pytest.raises(LagoError) as too_many:
        client.events_batch([event(f"t{i}") for i in range(101)])
    assert too_many.value.status == 422 and too_many.value.body["error_details"] == {
        "events": ["too_many_events"]
    }
    with pytest.raises(LagoError) as empty:
        client.events_batch([])
    assert empty.value.body["error_details"] == {"events": ["no_events"]}
    assert len(client.events_batch([event(f"t{i}") for i in range(100)])["events"]) == 100


def test_batches_are_all_or_nothing_with_index_keyed_errors(client, fake_lago):
    client.events_batch([event("a")])
    with pytest.raises(LagoError) as rejected:
        client.events_batch([event("b"), event("a"), event("c", timestamp="soon"), event("b")])
    assert rejected.value.status == 422
    assert rejected.value.body["error_details"] == {
        "1": {"transaction_id": ["value_already_exist"]},
        "2": {"timestamp": ["invalid_format"]},
        "3": {"transaction_id": ["value_already_exist"]},
    }
    assert fake_lago.stored_ids() == {"a"}  # b was good, but the batch was rolled back


def test_a_transaction_id_is_unique_per_subscription(client, fake_lago):
    client.events_batch([event("a")])
    client.events_batch([event("a", external_subscription_id="sub_2")])
    with pytest.raises(LagoError) as duplicate:
        client.events_batch([event("a")])
    assert duplicate.value.body["error_details"] == {"0": {"transaction_id": ["value_already_exist"]}}
    assert fake_lago.stored["a"] == 2 and fake_lago.duplicates_refused["a"] == 1


def test_rate_limit_answers_carry_the_reset(client, fake_lago):
    fake_lago.rate_limit_next(1, reset=7)
    with pytest.raises(LagoError) as limited:
        client.events_batch([event("a")])
    assert limited.value.status == 429 and limited.value.rate_limit_reset == 7.0
    client.events_batch([event("a")])


def test_hang_after_storing(fake_lago):
    fake_lago.hang_on_post(1)
    with LagoClient(base=fake_lago.url, api_key=fake_lago.api_key, timeout=0.5) as short:
        started = time.monotonic()
        with pytest.raises(LagoUnavailable):  # the timeout
            short.events_batch([event("h")])
        assert time.monotonic() - started < 5
    assert fake_lago.hung.is_set() and fake_lago.stored_ids() == {"h"}
    fake_lago.release()


def test_wallets_and_top_ups(client, fake_lago):
    wallet = fake_lago.wallet_create("cust_1", credits="10")
    assert [w["lago_id"] for w in client.wallets_list("cust_1")] == [wallet["lago_id"]]
    assert client.wallets_list("nobody") == []
    fake_lago.wallet_consume(wallet["lago_id"], 0)
    assert client.wallet_get(wallet["lago_id"])["ongoing_balance_cents"] == 0
    transaction, after = fake_lago.wallet_top_up(wallet["lago_id"], "5")
    assert transaction["lago_wallet_id"] == wallet["lago_id"] and after["ongoing_balance_cents"] == 500


def test_webhooks_are_signed_both_ways(fake_lago):
    import base64

    import jwt
    from cryptography.hazmat.primitives import serialization

    from apps.billing.webhooks import hmac_signature

    body, headers = fake_lago.webhook_request("wallet.updated", "wallet", {"lago_id": "w"}, algorithm="hmac")
    assert headers["X-Lago-Signature"] == hmac_signature(fake_lago.hmac_key, body)
    body, headers = fake_lago.webhook_request("wallet.updated", "wallet", {"lago_id": "w"}, algorithm="jwt")
    with LagoClient(base=fake_lago.url, api_key=fake_lago.api_key) as client:
        pem = base64.b64decode(client.webhook_public_key())
    claims = jwt.decode(
        headers["X-Lago-Signature"], serialization.load_pem_public_key(pem), algorithms=["RS256"]
    )
    assert claims["data"].encode() == body and claims["iss"] == fake_lago.url
