"""Entitlement before the upstream call: an in-process/Redis cache of wallet state, refreshed in the
background, flipped at once by webhooks; 429 insufficient_quota when the wallet is empty; fail-open or
fail-closed when Lago cannot be reached."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import openai
import pytest
from django.conf import settings as django_settings

from apps.billing import entitlement
from apps.billing.entitlement import entitlement_check
from apps.billing.services import wallets_refresh
from apps.billing.tasks import wallets_refresh_task
from apps.billing.wallets import WalletState, entity_key, wallet_store
from apps.core.errors import GatewayError
from apps.keys.context import KeyContext
from conftest import wait_for
from tests.fakes.server import free_socket

pytestmark = pytest.mark.django_db(transaction=True)
MESSAGES = [{"role": "user", "content": "hi"}]


def context_of(organization=None, team=None) -> KeyContext:
    return KeyContext(
        key_id=1,
        token_hash="h",
        alias="k",
        user_id=None,
        team_id=str(team.pk) if team else None,
        organization_id=str(organization.pk) if organization else None,
        allowed_models=(),
        expires_at=None,
        blocked_reason=None,
    )


def check(context) -> GatewayError | None:
    try:
        asyncio.run(entitlement_check(context))
    except GatewayError as error:
        return error
    return None


def put_state(org, **fields) -> WalletState:
    state = WalletState(customer="cust_acme", **{"at": time.time(), **fields})
    wallet_store().put({entity_key("organization", org.pk): state})
    entitlement.entitlement_cache_clear()
    return state


def closed_port_url() -> str:
    with free_socket() as sock:
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- the check itself -------------------------------------------------------------------------------


def test_with_billing_off_the_check_does_nothing(
    settings, organization, monkeypatch, django_assert_num_queries
):
    settings.LAGO_API_BASE = None

    def no_store():
        raise AssertionError("the store was touched")

    monkeypatch.setattr(entitlement, "wallet_store", no_store)
    with django_assert_num_queries(0):
        assert check(context_of(organization)) is None


def test_an_entity_without_wallet_state_is_served(billing, organization):
    assert check(context_of(organization)) is None  # not billed through Lago (no customer id)
    assert check(context_of()) is None  # the master key: no entity


def test_an_empty_wallet_is_insufficient_quota(billing, billed_org):
    put_state(billed_org, wallets={"w1": 0})
    error = check(context_of(billed_org))
    assert (error.status, error.type, error.code) == (429, "insufficient_quota", "insufficient_quota")
    assert error.headers == {"x-should-retry": "false"}
    put_state(billed_org, wallets={"w1": 0, "w2": 150})  # another wallet still has credit
    assert check(context_of(billed_org)) is None
    put_state(billed_org, wallets={})  # no active wallet: not prepaid
    assert check(context_of(billed_org)) is None


def test_teams_can_be_the_entitled_entity(billing, settings, team):
    settings.BILLING_ENTITY = "team"
    wallet_store().put(
        {entity_key("team", team.pk): WalletState(customer="c", wallets={"w": -3}, at=time.time())}
    )
    assert check(context_of(team=team)).code == "insufficient_quota"
    assert check(context_of(organization=team.organization)) is None  # no team: nothing to check


def test_the_request_path_reads_the_store_once_per_ttl_and_never_the_database_or_lago(
    billing, billed_org, settings, monkeypatch, django_assert_num_queries
):
    settings.BILLING_WALLET_CACHE_TTL = 30
    put_state(billed_org, wallets={"w1": 500})
    store = wallet_store()
    reads = []
    real = store.aget

    async def counting(entity):
        reads.append(entity)
        return await real(entity)

    monkeypatch.setattr(store, "aget", counting)

    async def many():
        for _ in range(200):
            await entitlement_check(context_of(billed_org))

    lago_requests = len(billing.requests)
    with django_assert_num_queries(0):
        asyncio.run(many())
    assert len(reads) == 1 and len(billing.requests) == lago_requests


def test_an_invalidation_message_flips_the_cached_state_at_once(billing, billed_org, settings):
    from dataclasses import asdict

    from apps.core import invalidation

    settings.BILLING_WALLET_CACHE_TTL = 30
    put_state(billed_org, wallets={"w1": 500})
    assert check(context_of(billed_org)) is None  # cached for 30 s
    depleted = WalletState(customer="cust_acme", wallets={"w1": 0}, at=time.time())
    invalidation.publish(
        {
            "kind": entitlement.KIND_WALLET,
            "entity": entity_key("organization", billed_org.pk),
            "state": asdict(depleted),
        }
    )
    assert check(context_of(billed_org)).code == "insufficient_quota"


# --- Lago unreachable: fail-open or fail-closed -----------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_stale_state_fails_open_with_an_alert(billing, billed_org, settings):
    settings.BILLING_FAIL_OPEN = True
    put_state(billed_org, wallets={"w1": 500}, at=time.time() - settings.BILLING_WALLET_STALE_AFTER - 1)
    seen = []
    alerts = _Records()
    logging.getLogger("gateway.alerts").addHandler(alerts)
    entitlement.fail_open_listeners.append(lambda entity, state: seen.append(entity))
    try:
        assert check(context_of(billed_org)) is None
        assert check(context_of(billed_org)) is None
    finally:
        entitlement.fail_open_listeners.clear()
        logging.getLogger("gateway.alerts").removeHandler(alerts)
    assert seen == [entity_key("organization", billed_org.pk)] * 2
    assert (
        len(alerts.messages) == 1 and "BILLING_FAIL_OPEN" in alerts.messages[0]
    )  # once a minute, not per request


def test_a_stale_state_fails_closed_when_set(billing, billed_org, settings):
    settings.BILLING_FAIL_OPEN = False
    put_state(billed_org, wallets={"w1": 500}, at=time.time() - settings.BILLING_WALLET_STALE_AFTER - 1)
    error = check(context_of(billed_org))
    assert (error.status, error.code) == (503, "billing_unavailable")
    put_state(billed_org, wallets={"w1": 500})  # fresh again
    assert check(context_of(billed_org)) is None


def test_a_depleted_wallet_stays_refused_even_when_stale(billing, billed_org, settings):
    settings.BILLING_FAIL_OPEN = True
    put_state(billed_org, wallets={"w1": 0}, at=1.0)
    assert check(context_of(billed_org)).code == "insufficient_quota"


def test_refresh_with_lago_down_keeps_the_last_state_until_it_is_stale(
    billing, billed_org, organization, settings
):
    billing.wallet_create("cust_acme", credits="10")
    assert wallets_refresh_task.delay().get() == 1
    good = wallet_store().get(entity_key("organization", billed_org.pk))
    assert good.balance_cents == 1000 and not good.stale()
    settings.LAGO_API_BASE = closed_port_url()
    result = wallets_refresh()
    assert result.failed == 1 and "unavailable" in result.error
    kept = wallet_store().get(entity_key("organization", billed_org.pk))
    assert kept.wallets == good.wallets and kept.at == good.at and "unavailable" in kept.error
    entitlement.entitlement_cache_clear()
    settings.BILLING_FAIL_OPEN = False
    assert check(context_of(billed_org)) is None  # still fresh: served
    settings.BILLING_WALLET_STALE_AFTER = 0
    assert check(context_of(billed_org)).status == 503  # aged past BILLING_WALLET_STALE_AFTER: closed


def test_an_entity_never_refreshed_while_lago_is_down_is_unknown(billing, billed_org, settings):
    settings.LAGO_API_BASE = closed_port_url()
    wallets_refresh()
    state = wallet_store().get(entity_key("organization", billed_org.pk))
    assert state.at == 0 and state.error
    settings.BILLING_FAIL_OPEN = False
    assert check(context_of(billed_org)).code == "billing_unavailable"
    settings.BILLING_FAIL_OPEN = True
    entitlement.entitlement_cache_clear()
    assert check(context_of(billed_org)) is None


def test_entities_no_longer_billed_are_pruned(billing, billed_org):
    billing.wallet_create("cust_acme", credits="10", ongoing_balance_cents=0)
    wallets_refresh()
    assert wallet_store().get(entity_key("organization", billed_org.pk)).depleted
    billed_org.lago_external_customer_id = billed_org.lago_external_subscription_id = ""
    billed_org.save()
    assert wallets_refresh().pruned == 1
    entitlement.entitlement_cache_clear()
    assert check(context_of(billed_org)) is None


# --- through the gateway ----------------------------------------------------------------------------


@pytest.fixture
def billed_key(billing, billed_org, make_key, make_deployment, billing_wiring, settings):
    settings.BILLING_WALLET_CACHE_TTL = 30  # only the webhook's invalidation can flip it sooner
    make_deployment("gpt-test")
    _, raw_key = make_key(organization=billed_org, alias="billed")
    return raw_key


def counting_client(gateway, raw_key, **kwargs):
    sent = []
    http_client = httpx.Client(event_hooks={"request": [lambda request: sent.append(request.url.path)]})
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=raw_key, http_client=http_client, **kwargs)
    return client, sent


def test_an_exhausted_wallet_gets_openais_quota_error_and_a_top_up_webhook_reopens_it(
    gateway, billing, billed_key, billed_org
):
    wallet = billing.wallet_create("cust_acme", credits="10", ongoing_balance_cents=0)
    wallets_refresh_task.delay().get()
    client, sent = counting_client(gateway, billed_key, max_retries=3)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert refused.value.code == "insufficient_quota" and refused.value.type == "insufficient_quota"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert len(sent) == 1  # the SDK did not retry it
    # A top-up in Lago, and its webhook: served again at once.
    transaction, _ = billing.wallet_top_up(wallet["lago_id"], "25")
    response = billing.send_webhook(
        gateway.url + "/billing/lago/webhook", "wallet_transaction.created", "wallet_transaction", transaction
    )
    assert response.status_code == 200
    assert client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices


def test_a_depletion_webhook_blocks_at_once(gateway, billing, billed_key, billed_org):
    wallet = billing.wallet_create("cust_acme", credits="10")
    wallets_refresh_task.delay().get()
    client, _ = counting_client(gateway, billed_key, max_retries=0)
    assert client.chat.completions.create(
        model="gpt-test", messages=MESSAGES
    ).choices  # cached: allowed, 30 s
    lago_calls = len(billing.requests)
    depleted = billing.wallet_consume(wallet["lago_id"], 0)
    response = billing.send_webhook(
        gateway.url + "/billing/lago/webhook",
        "wallet.depleted_ongoing_balance",
        "wallet",
        depleted,
        algorithm="jwt",
    )
    assert response.status_code == 200
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    # JWT mode fetched Lago's public key once and the webhook re-read the wallets (the body's
    # balance is not trusted); the requests themselves never called Lago.
    assert [p for _, p, _ in billing.requests[lago_calls:]] == ["/api/v1/webhooks/json_public_key",
                                                                 "/api/v1/wallets"]


@pytest.mark.parametrize("fail_open", [True, False])
def test_lago_unreachable_fails_open_or_closed_as_set(
    gateway, billing, billed_key, billed_org, settings, fail_open
):
    settings.LAGO_API_BASE = closed_port_url()
    settings.BILLING_FAIL_OPEN = fail_open
    wallets_refresh_task.delay().get()  # Lago down: the organization's wallet state is unknown
    client, _ = counting_client(gateway, billed_key, max_retries=0)
    if fail_open:
        assert client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices
    else:
        with pytest.raises(openai.InternalServerError) as refused:
            client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        assert refused.value.status_code == 503 and refused.value.code == "billing_unavailable"


def test_requests_are_reported_to_lago_exactly_once(gateway, billing, billed_key, billed_org, spend_logs):
    from decimal import Decimal

    from apps.billing.tasks import events_send_task
    from tests.spend.test_spend_logs import EXPECTED_COST

    billing.wallet_create("cust_acme", credits="10")
    wallets_refresh_task.delay().get()
    client, _ = counting_client(gateway, billed_key, max_retries=0)
    request_ids = []
    for stream in (False, True, False):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-test", messages=MESSAGES, stream=stream
        )
        request_ids.append(raw.headers["x-request-id"])
        list(raw.parse()) if stream else raw.parse()
    logs = spend_logs(3)
    assert wait_for(lambda: _outbox_count() == 3)
    assert events_send_task.delay().get() == 3
    assert events_send_task.delay().get() == 0
    assert billing.stored_ids() == set(request_ids) and set(billing.stored.values()) == {1}
    for log in logs:
        event = billing.events[("sub_acme", log.request_id)]
        assert event["code"] == "llm_usage" and event["timestamp"] == round(log.start_time.timestamp(), 3)
        properties = event["properties"]
        assert (properties["model"], properties["provider"]) == ("gpt-test", "openai")
        assert (properties["input_tokens"], properties["output_tokens"]) == (11, 7)
        assert Decimal(properties["cost_usd"]) == EXPECTED_COST
        assert Decimal(properties["credits"]) == EXPECTED_COST * 1000


def _outbox_count() -> int:
    from apps.billing.models import BillingEvent

    return BillingEvent.objects.count()


# --- across replicas (Redis) ------------------------------------------------------------------------


def _replica_wiring_present() -> bool:
    from tests.billing.conftest import proxy_wired

    return proxy_wired()


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="replicas share wallet state through Redis")
@pytest.mark.skipif(
    not _replica_wiring_present(),
    reason="needs entitlement_check wired in apps/routing/proxy.py (real server processes)",
)
def test_a_depletion_webhook_blocks_on_every_replica_at_once(billing, billed_org, make_key, make_deployment):
    from tests.fakes.replica import Replica

    make_deployment("gpt-test")
    _, raw_key = make_key(organization=billed_org, alias="replicated")
    wallet = billing.wallet_create("cust_acme", credits="10")
    wallets_refresh()
    env = {
        "LAGO_API_BASE": billing.url,
        "LAGO_API_KEY": billing.api_key,
        "LAGO_WEBHOOK_SECRET": billing.hmac_key,
        "BILLING_WALLET_CACHE_TTL": "60",
    }
    replicas = [Replica(**env), Replica(**env)]
    try:
        a, b = [r.wait_ready() for r in replicas]

        def chat(replica) -> int:
            return httpx.post(
                replica.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {raw_key}"},
                json={"model": "gpt-test", "messages": MESSAGES},
                timeout=30,
            ).status_code

        assert chat(a) == chat(b) == 200  # both have cached "allowed" for 60 s
        depleted = billing.wallet_consume(wallet["lago_id"], 0)
        started = time.monotonic()
        assert (
            billing.send_webhook(
                a.url + "/billing/lago/webhook", "wallet.depleted_ongoing_balance", "wallet", depleted
            ).status_code
            == 200
        )
        assert wait_for(lambda: chat(b) == 429, timeout=5) and chat(a) == 429
        assert time.monotonic() - started < 5  # pub/sub, not the 60 s cache
        # A replayed old webhook body (signed, under a new unique key) unblocks nothing.
        replay = billing.send_webhook(b.url + "/billing/lago/webhook", "wallet.updated", "wallet", wallet)
        assert replay.status_code == 200 and chat(a) == 429 and chat(b) == 429
        transaction, _ = billing.wallet_top_up(wallet["lago_id"], "5")
        assert (
            billing.send_webhook(
                b.url + "/billing/lago/webhook",
                "wallet_transaction.created",
                "wallet_transaction",
                transaction,
            ).status_code
            == 200
        )
        # The webhook answered once Lago was re-read and the state published: the other replica
        # serves again within a second.
        topped_up = time.monotonic()
        assert wait_for(lambda: chat(a) == 200, timeout=5) and chat(b) == 200
        assert time.monotonic() - topped_up < 1.0
    finally:
        for replica in replicas:
            replica.stop()
