"""Fixtures for usage billing: a fake Lago, billing switched on against it, a billed organization.

The tests are written against the billing hooks as they are wired in the request path and the
spend flusher:
  - apps/spend/services.py spend_logs_write_batch calls billing_events_add(records=new) in its
    transaction;
  - apps/routing/proxy.py proxy_request awaits entitlement_check(context) before the upstream call.
Until those two lines are in, `billing_wiring` puts equivalent hooks in place for the tests that
go through them (and does nothing once the real lines are there).
"""

from __future__ import annotations

import inspect

import pytest

from tests.fakes.lago import FakeLago


@pytest.fixture
def fake_lago():
    fake = FakeLago().start()
    yield fake
    fake.stop()


def _clear_billing_state() -> None:
    from apps.billing.entitlement import entitlement_cache_clear
    from apps.billing.wallets import wallet_store
    from apps.billing.webhooks import public_key

    wallet_store().clear()
    entitlement_cache_clear()
    public_key.clear()


@pytest.fixture
def billing(settings, fake_lago, transactional_db):
    """Billing on, against the fake Lago: organizations are billed, 1 USD = 1,000 credits."""
    settings.LAGO_API_BASE = fake_lago.url
    settings.LAGO_API_KEY = fake_lago.api_key
    settings.LAGO_API_EVENT_CODE = "llm_usage"
    settings.LAGO_WEBHOOK_SECRET = fake_lago.hmac_key
    settings.LAGO_TIMEOUT = 10.0
    settings.BILLING_ENTITY = "organization"
    settings.BILLING_FAIL_OPEN = True
    settings.BILLING_RETRY_BASE_DELAY = 2.0
    settings.BILLING_CLAIM_LEASE = 120.0
    settings.BILLING_WEBHOOK_REFRESH_INTERVAL = 0  # every webhook re-reads Lago (its own test limits it)
    _clear_billing_state()
    yield fake_lago
    _clear_billing_state()


@pytest.fixture
def billed_org(organization):
    organization.lago_external_customer_id = "cust_acme"
    organization.lago_external_subscription_id = "sub_acme"
    organization.save()
    return organization


def spend_wired() -> bool:
    from apps.spend import services

    return "billing_events_add(records=new)" in inspect.getsource(services)


def proxy_wired() -> bool:
    from apps.routing import proxy

    return "entitlement_check" in inspect.getsource(proxy)


@pytest.fixture
def billing_wiring():
    """The two integration points these tests rely on: outbox rows in the spend-log transaction,
    and the entitlement check before the upstream call."""
    assert spend_wired() and proxy_wired()
