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
