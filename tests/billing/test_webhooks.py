"""POST /billing/lago/webhook: both signature modes, deduplication by X-Lago-Unique-Key, wallet state."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.billing.models import BillingWebhook
from apps.billing.services import wallets_refresh
from apps.billing.wallets import entity_key, wallet_store

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/billing/lago/webhook"


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)  # the webhook is CSRF-exempt: its signature authenticates it


def post(client, fake, webhook_type, object_type, obj, *, algorithm="hmac", unique_key=None, tamper=None):
    body, headers = fake.webhook_request(
        webhook_type, object_type, obj, algorithm=algorithm, unique_key=unique_key
    )
    if tamper:
        body, headers = tamper(body, headers)
    return client.post(
        URL,
        data=body,
        content_type="application/json",
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k != "Content-Type"},
    )


def state_of(org):
    return wallet_store().get(entity_key("organization", org.pk))


@pytest.mark.parametrize("algorithm", ["hmac", "jwt"])
def test_a_depletion_webhook_blocks_the_entity(billing, billed_org, csrf_client, algorithm):
    wallet = billing.wallet_create("cust_acme", credits="10")
    wallets_refresh()
    assert not state_of(billed_org).depleted
    depleted = billing.wallet_consume(wallet["lago_id"], 0)
    response = post(
        csrf_client, billing, "wallet.depleted_ongoing_balance", "wallet", depleted, algorithm=algorithm
    )
    assert response.status_code == 200 and response.json() == {"status": "applied"}
    assert state_of(billed_org).depleted
    assert BillingWebhook.objects.get().webhook_type == "wallet.depleted_ongoing_balance"


@pytest.mark.parametrize("algorithm", ["hmac", "jwt"])
def test_a_bad_signature_gets_401_and_changes_nothing(billing, billed_org, csrf_client, algorithm):
    wallet = billing.wallet_create("cust_acme", credits="10")
    wallets_refresh()
    before = state_of(billed_org)
    depleted = billing.wallet_consume(wallet["lago_id"], 0)

    def tampered_body(body, headers):
        return body.replace(b'"ongoing_balance_cents":0', b'"ongoing_balance_cents":-5'), headers

    def forged_signature(body, headers):
        if algorithm == "hmac":
            from apps.billing.webhooks import hmac_signature

            return body, {**headers, "X-Lago-Signature": hmac_signature("not-the-key", body)}
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return body, {
            **headers,
            "X-Lago-Signature": jwt.encode({"data": body.decode()}, other, algorithm="RS256"),
        }

    def no_signature(body, headers):
        return body, {k: v for k, v in headers.items() if k != "X-Lago-Signature"}

    for tamper in (tampered_body, forged_signature, no_signature):
        response = post(
            csrf_client,
            billing,
            "wallet.depleted_ongoing_balance",
            "wallet",
            depleted,
            algorithm=algorithm,
            tamper=tamper,
        )
        assert response.status_code == 401, tamper.__name__
    assert state_of(billed_org) == before and not state_of(billed_org).depleted
    assert not BillingWebhook.objects.exists()


def test_a_jwt_signed_with_another_claim_than_the_body_is_refused(billing, billed_org, csrf_client):
    import jwt

    body, _ = billing.webhook_request("wallet.updated", "wallet", {"lago_id": "w"}, algorithm="jwt")
    other_token = jwt.encode(
        {"data": '{"webhook_type":"something.else"}'}, billing.private_key, algorithm="RS256"
    )
    response = csrf_client.post(
        URL,
        data=body,
        content_type="application/json",
        HTTP_X_LAGO_SIGNATURE=other_token,
        HTTP_X_LAGO_SIGNATURE_ALGORITHM="jwt",
        HTTP_X_LAGO_UNIQUE_KEY="k1",
    )
    assert response.status_code == 401


def test_hmac_mode_without_a_secret_refuses(billing, billed_org, csrf_client, settings):
    settings.LAGO_WEBHOOK_SECRET = ""
    response = post(csrf_client, billing, "wallet.updated", "wallet", {"lago_id": "w"})
    assert response.status_code == 401


def test_a_redelivered_webhook_is_applied_once(billing, billed_org, csrf_client):
    wallet = billing.wallet_create("cust_acme", credits="10")
    wallets_refresh()
    depleted = billing.wallet_consume(wallet["lago_id"], 0)
    first = post(
        csrf_client, billing, "wallet.depleted_ongoing_balance", "wallet", depleted, unique_key="uk-1"
    )
    assert first.json() == {"status": "applied"}
    # Topped up since; the old depletion webhook is delivered again (Lago retries): it changes nothing.
    _, topped = billing.wallet_top_up(wallet["lago_id"], "5")
    post(csrf_client, billing, "wallet.updated", "wallet", topped, unique_key="uk-2")
    assert not state_of(billed_org).depleted
    again = post(
        csrf_client, billing, "wallet.depleted_ongoing_balance", "wallet", depleted, unique_key="uk-1"
    )
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert not state_of(billed_org).depleted
    assert BillingWebhook.objects.count() == 2


def test_a_top_up_transaction_refreshes_the_wallet_from_lago(billing, billed_org, csrf_client):
    wallet = billing.wallet_create("cust_acme", credits="10", ongoing_balance_cents=0)
    wallets_refresh()
    assert state_of(billed_org).depleted
    transaction, _ = billing.wallet_top_up(wallet["lago_id"], "20")
    response = post(csrf_client, billing, "wallet_transaction.created", "wallet_transaction", transaction)
    assert response.json() == {"status": "applied"}
    state = state_of(billed_org)
    assert not state.depleted and state.balance_cents == 2000


def test_other_webhooks_are_recorded_and_ignored(billing, billed_org, csrf_client):
    response = post(csrf_client, billing, "invoice.created", "invoice", {"lago_id": "i"})
    assert response.status_code == 200 and response.json() == {"status": "ignored"}
    assert BillingWebhook.objects.get().webhook_type == "invoice.created"


def test_with_billing_off_there_is_no_webhook(billing, csrf_client, settings):
    settings.LAGO_API_BASE = None
    assert post(csrf_client, billing, "wallet.updated", "wallet", {}).status_code == 404


def test_only_post(billing, csrf_client):
    assert csrf_client.get(URL).status_code == 405


# --- a webhook is a notification: replays, order, Lago as the source of truth --------------------


def wallet_reads(fake) -> int:
    return sum(1 for _, path, _ in fake.requests if path.startswith("/api/v1/wallets"))


def test_a_replayed_old_top_up_does_not_unblock_a_depleted_organization(billing, billed_org, csrf_client):
    """The review's attack: an old, correctly signed wallet.updated (balance positive) sent again
    under a new unique key, or none, after the wallet ran dry."""
    wallet = billing.wallet_create("cust_acme", credits="10")
    old_body, old_headers = billing.webhook_request("wallet.updated", "wallet", wallet, unique_key="uk-old")
    assert csrf_client.post(URL, data=old_body, content_type="application/json",
                            **_meta(old_headers)).json() == {"status": "applied"}
    depleted = billing.wallet_consume(wallet["lago_id"], 0)
    post(csrf_client, billing, "wallet.depleted_ongoing_balance", "wallet", depleted)
    assert state_of(billed_org).depleted
    for unique_key in ("uk-new", None):
        headers = {k: v for k, v in old_headers.items() if k != "X-Lago-Unique-Key"}
        if unique_key:
            headers["X-Lago-Unique-Key"] = unique_key
        response = csrf_client.post(URL, data=old_body, content_type="application/json", **_meta(headers))
        assert response.status_code == 200 and response.json() == {"status": "duplicate"}
        assert state_of(billed_org).depleted


def test_the_same_jwt_signed_content_in_other_whitespace_is_a_duplicate(billing, billed_org, csrf_client):
    wallet = billing.wallet_create("cust_acme", credits="10")
    body, headers = billing.webhook_request("wallet.updated", "wallet", wallet, algorithm="jwt", unique_key="a")
    assert csrf_client.post(URL, data=body, content_type="application/json", **_meta(headers)).status_code == 200
    import orjson

    reformatted = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)  # the JWT still matches it
    response = csrf_client.post(URL, data=reformatted, content_type="application/json",
                                **_meta({**headers, "X-Lago-Unique-Key": "b"}))
    assert response.json() == {"status": "duplicate"}


def test_a_body_never_seen_still_changes_only_what_lago_says(billing, billed_org, csrf_client):
    """A signed webhook whose body claims money Lago no longer has (sent before the wallet ran dry,
    delivered late): the balance comes from Lago, so the organization stays blocked."""
    wallet = billing.wallet_create("cust_acme", credits="10")
    late = dict(wallet)
    billing.wallet_consume(wallet["lago_id"], 0)
    wallets_refresh()
    assert state_of(billed_org).depleted
    response = post(csrf_client, billing, "wallet.updated", "wallet", late)
    assert response.json() == {"status": "applied"}
    assert state_of(billed_org).depleted


def test_an_event_older_than_one_applied_is_ignored_without_asking_lago(billing, billed_org, csrf_client):
    import time

    wallet = billing.wallet_create("cust_acme", credits="10")
    older = dict(wallet)
    time.sleep(0.01)
    newer = billing.wallet_consume(wallet["lago_id"], 500)  # Lago's balance sync moves its time on
    assert post(csrf_client, billing, "wallet.updated", "wallet", newer).json() == {"status": "applied"}
    reads = wallet_reads(billing)
    assert post(csrf_client, billing, "wallet.updated", "wallet", older).json() == {"status": "stale"}
    assert wallet_reads(billing) == reads
    assert state_of(billed_org).balance_cents == 500


def test_the_body_balance_is_never_read_so_garbage_in_it_is_harmless(billing, billed_org, csrf_client):
    wallet = billing.wallet_create("cust_acme", credits="10")
    response = post(csrf_client, billing, "wallet.updated", "wallet", {**wallet, "ongoing_balance_cents": "abc"})
    assert response.status_code == 200 and response.json() == {"status": "applied"}
    assert state_of(billed_org).balance_cents == 1000


@pytest.mark.parametrize("payload", [
    {"object_type": "wallet", "wallet": {}},  # no webhook_type
    {"webhook_type": 7},
    {"webhook_type": "wallet.updated", "wallet": "x"},
    {"webhook_type": "wallet.updated", "wallet": {"external_customer_id": ["x"]}},
    {"webhook_type": "wallet_transaction.created", "wallet_transaction": {"lago_wallet_id": None}},
])
def test_a_signed_but_malformed_webhook_is_a_400_in_the_gateways_error_shape(billing, csrf_client, payload):
    import orjson

    from apps.billing.webhooks import hmac_signature

    body = orjson.dumps(payload)
    response = csrf_client.post(URL, data=body, content_type="application/json",
                                HTTP_X_LAGO_SIGNATURE=hmac_signature(billing.hmac_key, body),
                                HTTP_X_LAGO_SIGNATURE_ALGORITHM="hmac")
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert not BillingWebhook.objects.exists()


def test_lago_down_during_the_re_read_is_a_503_and_lagos_retry_applies_it(billing, billed_org, csrf_client):
    wallet = billing.wallet_create("cust_acme", credits="10")
    wallets_refresh()
    depleted = billing.wallet_consume(wallet["lago_id"], 0)
    billing.fail_wallet_reads(1)
    first = post(csrf_client, billing, "wallet.depleted_ongoing_balance", "wallet", depleted, unique_key="uk")
    assert first.status_code == 503 and first.json()["error"]["code"] == "lago_unavailable"
    assert not BillingWebhook.objects.exists() and not state_of(billed_org).depleted
    again = post(csrf_client, billing, "wallet.depleted_ongoing_balance", "wallet", depleted, unique_key="uk")
    assert again.json() == {"status": "applied"} and state_of(billed_org).depleted


def test_re_reads_are_rate_limited_per_customer_with_one_read_after(
    billing, billed_org, csrf_client, settings, monkeypatch
):
    """With a broker: one read at once, one more scheduled for the end of the interval, never
    one per webhook; the scheduled read sees the last change."""
    from django.core.cache import cache

    from apps.billing import tasks
    from apps.billing.webhooks import wallets_reread_now

    settings.BILLING_WEBHOOK_REFRESH_INTERVAL = 30
    settings.CELERY_TASK_ALWAYS_EAGER = False
    scheduled = []
    monkeypatch.setattr(tasks.wallets_reread_task, "apply_async",
                        lambda args, countdown: scheduled.append((args, countdown)))
    keys = ["billing:reread:customer:cust_acme", "billing:reread:customer:cust_acme:trailing"]
    cache.delete_many(keys)
    try:
        wallet = billing.wallet_create("cust_acme", credits="10")
        reads = wallet_reads(billing)
        for cents in (900, 800, 700, 600, 500):
            assert post(csrf_client, billing, "wallet.updated", "wallet",
                        billing.wallet_consume(wallet["lago_id"], cents)).status_code == 200
        assert wallet_reads(billing) - reads == 1 and state_of(billed_org).balance_cents == 900
        assert scheduled == [(("customer:cust_acme",), 30)]
        wallets_reread_now(*scheduled[0][0])  # what the worker runs 30 s later
        assert state_of(billed_org).balance_cents == 500
    finally:
        cache.delete_many(keys)


def _meta(headers: dict) -> dict:
    return {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k != "Content-Type"}
