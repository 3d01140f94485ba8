"""Exactly-once reporting: outbox rows with the spend logs, batches of at most 100, retries with back-off,
422 duplicates counted as delivered, bad items split out into dead letters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.billing.models import BillingEvent
from apps.billing.services import billing_events_add, billing_events_replay, billing_events_send
from apps.billing.tasks import events_send_task
from apps.spend.models import SpendLog
from tests.billing.helpers import T0, queue, record
from tests.fakes.server import free_socket

pytestmark = pytest.mark.django_db(transaction=True)


def closed_port_url() -> str:
    with free_socket() as sock:
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def statuses() -> dict[str, int]:
    from collections import Counter

    return dict(Counter(BillingEvent.objects.values_list("status", flat=True)))


# --- queueing -------------------------------------------------------------------------------------


def test_nothing_is_queued_when_billing_is_off(settings, billed_org, django_assert_num_queries):
    settings.LAGO_API_BASE = None
    with django_assert_num_queries(0):
        assert billing_events_add(records=[record(organization=billed_org)]) == 0
    assert not BillingEvent.objects.exists()


def test_spend_log_and_outbox_row_are_written_in_one_transaction(billing, billed_org, billing_wiring):
    from apps.spend.services import spend_logs_write_batch

    records = [record(organization=billed_org), record(organization=billed_org)]
    assert spend_logs_write_batch(records=records) == 2
    assert set(BillingEvent.objects.values_list("transaction_id", flat=True)) == {
        r.request_id for r in records
    }
    # Replaying the batch (a retried flush) queues nothing twice.
    assert spend_logs_write_batch(records=records) == 0
    assert BillingEvent.objects.count() == 2


def test_an_outbox_failure_rolls_the_spend_logs_back(billing, billed_org, billing_wiring, monkeypatch):
    import apps.billing.services as billing_services
    import apps.spend.services as spend_services

    def broken(*, records):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(billing_services, "billing_events_add", broken)
    monkeypatch.setattr(spend_services, "billing_events_add", broken, raising=False)  # if imported at the top
    with pytest.raises(RuntimeError):
        spend_services.spend_logs_write_batch(records=[record(organization=billed_org)])
    assert not SpendLog.objects.exists() and not BillingEvent.objects.exists()


def test_the_event_carries_the_request(billing, billed_org, settings):
    settings.LAGO_API_EVENT_CODE = "gateway_credits"
    [r] = queue(1, billed_org, cost="0.000073")
    event = BillingEvent.objects.get()
    assert (event.transaction_id, event.external_subscription_id, event.external_customer_id) == (
        r.request_id,
        "sub_acme",
        "cust_acme",
    )
    assert (event.entity_kind, event.entity_id, event.code) == (
        "organization",
        str(billed_org.pk),
        "gateway_credits",
    )
    assert event.timestamp == T0
    assert event.properties == {
        "request_id": r.request_id,
        "model": "gpt-test",
        "provider": "openai",
        "upstream_model": "upstream-gpt",
        "call_type": "chat_completion",
        "input_tokens": 11,
        "output_tokens": 7,
        "total_tokens": 18,
        "cached_tokens": 3,
        "reasoning_tokens": 0,
        "cost_usd": "0.000073",
        "credits": "0.073000",
        "credits_name": "credits",
        "cost_known": True,
        "usage_estimated": False,
        "organization_id": str(billed_org.pk),
        "team_id": "",
        "key_id": "",
    }
    assert event.lago_payload() == {
        "transaction_id": r.request_id,
        "external_subscription_id": "sub_acme",
        "code": "gateway_credits",
        "timestamp": round(T0.timestamp(), 3),
        "properties": event.properties,
    }


def test_only_billable_requests_of_billed_entities_are_queued(billing, billed_org, organization):
    from apps.teams.services import organization_create

    other = organization_create(name="Not billed")
    records = [
        record(organization=billed_org),
        record(organization=other),  # no Lago subscription: not billed
        record(organization=None),  # the master key
        record(
            organization=billed_org, cost=None, prompt_tokens=0, completion_tokens=0
        ),  # an error: nothing used
        record(organization=billed_org, cost=None),  # price unknown, tokens used: billed, 0 credits
        record(
            organization=billed_org, cost="0.002", prompt_tokens=0, completion_tokens=0
        ),  # rerank: priced per query
    ]
    with transaction.atomic():
        assert billing_events_add(records=records) == 3
    unknown = BillingEvent.objects.get(transaction_id=records[4].request_id)
    assert unknown.properties["cost_known"] is False and unknown.properties["credits"] == "0.000000"


def test_teams_can_be_the_billed_entity(billing, settings, team):
    settings.BILLING_ENTITY = "team"
    team.lago_external_customer_id, team.lago_external_subscription_id = "cust_team", "sub_team"
    team.save()
    with transaction.atomic():
        assert billing_events_add(records=[record(team=team)]) == 1
    event = BillingEvent.objects.get()
    assert (event.entity_kind, event.entity_id, event.external_subscription_id) == (
        "team",
        str(team.pk),
        "sub_team",
    )


# --- delivery -------------------------------------------------------------------------------------


def test_events_go_in_batches_of_at_most_100_and_are_marked_sent(billing, billed_org):
    records = queue(250, billed_org)
    assert events_send_task.delay().get() == 250
    assert [p["size"] for p in billing.batch_posts] == [100, 100, 50]
    assert billing.stored_ids() == {r.request_id for r in records}
    assert statuses() == {"sent": 250}
    assert not BillingEvent.objects.filter(sent_at__isnull=True).exists()
    sent = billing.events[("sub_acme", records[7].request_id)]
    assert sent["timestamp"] == round((T0 + timedelta(seconds=7)).timestamp(), 3)
    assert sent["properties"]["credits"] == "0.073000"
    # Nothing left: another run posts nothing.
    assert billing_events_send().posts == 0


def test_a_duplicate_transaction_id_counts_as_delivered(billing, billed_org):
    records = queue(3, billed_org)
    # Lago already has the second one (sent before a crash, say): the batch is refused whole.
    billing.events[("sub_acme", records[1].request_id)] = {"transaction_id": records[1].request_id}
    result = billing_events_send()
    assert (result.sent, result.duplicates, result.dead) == (2, 1, 0)
    assert [p["status"] for p in billing.batch_posts] == [422, 200]
    assert statuses() == {"sent": 3}


def test_a_bad_item_is_split_out_and_dead_lettered_with_its_reason(billing, billed_org, admin_client):
    records = queue(5, billed_org)
    bad = records[2].request_id
    billing.reject[bad] = {"properties": ["invalid_value"]}
    result = billing_events_send()
    assert (result.sent, result.dead) == (4, 1)
    assert billing.stored_ids() == {r.request_id for r in records} - {bad}
    letter = BillingEvent.objects.get(transaction_id=bad)
    assert letter.status == "dead" and "invalid_value" in letter.last_error
    # Visible in the admin, with the reason.
    page = admin_client.get("/admin/billing/billingevent/?status__exact=dead")
    assert (
        page.status_code == 200 and bad in page.content.decode() and "invalid_value" in page.content.decode()
    )
    # Fixed in Lago: the replay sends it.
    del billing.reject[bad]
    assert billing_events_replay(ids=[letter.pk]) == 1
    assert billing_events_send().sent == 1
    assert statuses() == {"sent": 5}


def test_the_admin_action_resends_dead_letters(billing, billed_org, admin_client):
    [r] = queue(1, billed_org)
    billing.reject[r.request_id] = {"code": ["value_is_mandatory"]}
    billing_events_send()
    letter = BillingEvent.objects.get()
    del billing.reject[r.request_id]
    response = admin_client.post(
        "/admin/billing/billingevent/", {"action": "resend", "_selected_action": [letter.pk]}, follow=True
    )
    assert response.status_code == 200
    letter.refresh_from_db()
    assert letter.status == "pending"
    billing_events_send()
    assert statuses() == {"sent": 1}


def test_without_index_keyed_errors_the_batch_is_halved_until_the_bad_item_is_alone(
    billing, billed_org, monkeypatch
):
    from apps.billing.lago import LagoClient, LagoError

    records = queue(8, billed_org)
    bad = records[5].request_id
    real = LagoClient.events_batch

    def events_batch(self, events):
        if any(e["transaction_id"] == bad for e in events):
            raise LagoError(
                422,
                {
                    "status": 422,
                    "error": "Unprocessable Entity",
                    "code": "validation_errors",
                    "error_details": {"properties": ["invalid"]},
                },
            )
        return real(self, events)

    monkeypatch.setattr(LagoClient, "events_batch", events_batch)
    result = billing_events_send()
    assert (result.sent, result.dead) == (7, 1)
    assert BillingEvent.objects.get(transaction_id=bad).status == "dead"


def test_network_errors_back_off_exponentially_with_jitter(billing, billed_org, settings):
    settings.LAGO_API_BASE = closed_port_url()
    settings.BILLING_RETRY_BASE_DELAY = 10.0
    queue(3, billed_org)
    before = timezone.now()
    result = billing_events_send()
    assert result.error.startswith("Lago unavailable") and result.retried == 3 and result.delivered == 0
    first = list(BillingEvent.objects.all())
    for event in first:
        assert event.status == "pending" and event.attempts == 1 and "Lago unavailable" in event.last_error
        assert event.claimed_until is None
        assert (
            before + timedelta(seconds=5) <= event.next_attempt_at <= timezone.now() + timedelta(seconds=10)
        )
    # Not due yet: an ordinary run sends nothing; lago_flush's force does (and doubles the wait).
    assert billing_events_send().posts == 0
    billing_events_send(force=True)
    for event in BillingEvent.objects.all():
        assert event.attempts == 2
        assert (
            timezone.now() + timedelta(seconds=9)
            <= event.next_attempt_at
            <= timezone.now() + timedelta(seconds=20)
        )


def test_5xx_is_retried_and_429_honours_the_rate_limit_reset(billing, billed_org):
    queue(2, billed_org)
    billing.fail_next(1, 502)
    assert billing_events_send().error.startswith("Lago answered 502")
    assert statuses() == {"pending": 2}
    billing.rate_limit_next(1, reset=30)
    before = timezone.now()
    result = billing_events_send(force=True)
    assert "rate limited" in result.error
    for event in BillingEvent.objects.all():
        assert (
            before + timedelta(seconds=30) <= event.next_attempt_at <= timezone.now() + timedelta(seconds=31)
        )
    assert billing_events_send().posts == 0  # waits for the reset
    assert billing_events_send(force=True).sent == 2


def test_lago_down_for_a_while_then_back_delivers_every_event_exactly_once(billing, billed_org, settings):
    records = queue(230, billed_org)
    fake_url = settings.LAGO_API_BASE
    # Down: connections refused. Each run tries once, puts the batch back, and stops.
    settings.LAGO_API_BASE = closed_port_url()
    for _ in range(3):
        billing_events_send(force=True)
    # Up, but failing: 503s for a while.
    settings.LAGO_API_BASE = fake_url
    billing.fail_next(4, 503)
    for _ in range(4):
        assert billing_events_send(force=True).delivered == 0
    # Back: a timeout on the second batch after Lago stored it (the answer is lost).
    billing.hang_on_post(2, store_first=True)
    settings.LAGO_TIMEOUT = 0.5
    result = billing_events_send(force=True)
    assert result.sent == 100 and result.error
    billing.release()
    settings.LAGO_TIMEOUT = 10.0
    result = billing_events_send(force=True)
    assert result.duplicates == 100 and result.sent == 30
    assert statuses() == {"sent": 230}
    assert billing.stored_ids() == {r.request_id for r in records}
    assert set(billing.stored.values()) == {1}  # each transaction_id stored exactly once
    assert max(BillingEvent.objects.values_list("attempts", flat=True)) >= 4


def test_lago_flush_status_and_replay_commands(billing, billed_org):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    records = queue(3, billed_org)
    billing.reject[records[0].request_id] = {"timestamp": ["invalid_format"]}
    out = StringIO()
    call_command("lago_status", stdout=out)
    text = out.getvalue()
    assert "backlog: 3 pending" in text and "oldest pending: 20" in text and "last success: never" in text
    out = StringIO()
    call_command("lago_flush", stdout=out)
    assert "sent 2" in out.getvalue() and "dead letters 1" in out.getvalue()
    out = StringIO()
    call_command("lago_status", stdout=out)
    text = out.getvalue()
    assert "backlog: 0 pending" in text and "dead letters: 1" in text and "invalid_format" in text
    assert "last success: 20" in text
    with pytest.raises(CommandError):
        call_command("lago_replay", stdout=StringIO())
    del billing.reject[records[0].request_id]
    out = StringIO()
    call_command("lago_replay", "--all", "--send", stdout=out)
    assert "1 dead letter(s) back" in out.getvalue() and "sent 1" in out.getvalue()
    assert statuses() == {"sent": 3}


def test_lago_flush_refuses_when_billing_is_off(settings):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    settings.LAGO_API_BASE = None
    with pytest.raises(CommandError, match="billing is off"):
        call_command("lago_flush")


# --- several senders ------------------------------------------------------------------------------


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SELECT ... FOR UPDATE SKIP LOCKED needs PostgreSQL (SQLite ignores it; "
    "there its database-wide write lock serializes claims)",
)
def test_the_claim_uses_for_update_skip_locked(billing, billed_org):
    from django.test.utils import CaptureQueriesContext

    from apps.billing.services.events import _claim

    queue(2, billed_org)
    with CaptureQueriesContext(connection) as queries:
        _, events = _claim(force=False)
    assert len(events) == 2
    assert any("FOR UPDATE SKIP LOCKED" in q["sql"] for q in queries.captured_queries)
    # Claimed rows are nobody else's until the claim runs out.
    assert _claim(force=True) is None
    BillingEvent.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert len(_claim(force=False)[1]) == 2


def test_a_row_being_claimed_is_skipped_not_waited_for(billing, billed_org):
    """Two senders at the same moment: the second passes over what the first holds."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) need PostgreSQL; SQLite serializes claims with its write lock")
    import threading

    from django.db import connections

    from apps.billing.services.events import _claim

    queue(150, billed_org)
    holding = threading.Event()
    done = threading.Event()

    def first_sender():
        try:
            with transaction.atomic():
                list(BillingEvent.objects.select_for_update().order_by("id")[:100])
                holding.set()
                done.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_sender)
    thread.start()
    assert holding.wait(10)
    try:
        _, events = _claim(force=False)  # does not block on the 100 locked rows
        assert len(events) == 50
        assert min(e.pk for e in events) > max(
            BillingEvent.objects.order_by("id").values_list("id", flat=True)[:100]
        )
    finally:
        done.set()
        thread.join()


def test_a_run_stops_claiming_after_its_time_budget(billing, billed_org):
    queue(150, billed_org)
    result = billing_events_send(time_budget=0)  # the Celery task's budget is spent: nothing more claimed
    assert result.batches == 0 and statuses() == {"pending": 150}
    assert billing_events_send(time_budget=60).delivered == 150


def test_a_cache_hit_is_billed_only_when_the_operator_says_so(billing, billed_org, settings):
    from decimal import Decimal

    hit = record(organization=billed_org, cost="0", cache_hit=True, saved_cost=Decimal("0.000073"))
    assert billing_events_add(records=[hit]) == 0  # no upstream call, nothing to bill
    settings.GATEWAY_CACHE_BILL_HITS = True
    assert billing_events_add(records=[hit]) == 1
    event = BillingEvent.objects.get()
    assert event.properties["cost_usd"] == "0.000073" and event.properties["cache_hit"] == "true"
