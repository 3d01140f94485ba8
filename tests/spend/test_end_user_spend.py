"""End users' spend (apps.customers) in the batch spend writer: counted per (organization, end user)
in the logs' transaction, rows made on first sight, a replayed batch counted once; and their
budget periods rolled like every other level's."""

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from apps.customers.models import EndUser
from apps.customers.services import budget_create, end_user_create
from apps.spend.models import SpendLog
from apps.spend.records import SpendRecord
from apps.spend.services import budget_periods_roll, spend_logs_write_batch
from apps.teams.services import organization_create

pytestmark = pytest.mark.django_db(transaction=True)


def record(end_user: str, cost="0.5", organization=None, status="success", when=None) -> SpendRecord:
    when = when or datetime.now(timezone.utc)
    return SpendRecord(
        request_id=uuid.uuid4().hex, key_id=None, key_hash="", team_id=None,
        organization_id=str(organization.pk) if organization else None, user_id=None,
        call_type="chat_completion", model="gpt-test", deployment_id=None, provider="openai",
        upstream_model="gpt-test", prompt_tokens=1, completion_tokens=1, cached_tokens=0, reasoning_tokens=0,
        usage_reported=True, cost=None if cost is None else Decimal(cost), status=status,
        http_status=200 if status == "success" else 429, error_type="", is_stream=False, latency_ms=1,
        start_time=when, end_time=when, end_user=end_user,
    )


def spend_of(user_id: str, organization=None) -> Decimal:
    return EndUser.objects.get(user_id=user_id, organization=organization).spend


def test_a_batch_adds_each_end_users_spend_once_even_when_replayed():
    acme, globex = organization_create(name="Acme"), organization_create(name="Globex")
    end_user_create(organization=acme, user_id="alice", spend=Decimal("1"))
    batch = [record("alice", "0.5", acme), record("alice", "0.25", acme), record("alice", "2", globex),
             record("bob", "0.125"), record("", "9"), record("carol", None, acme, status="error")]

    assert spend_logs_write_batch(records=batch) == 6
    assert spend_logs_write_batch(records=batch) == 0  # a replay after a failed flush
    assert spend_logs_write_batch(records=batch[:2] + [record("alice", "0.5", acme)]) == 1

    assert spend_of("alice", acme) == Decimal("2.25")
    assert spend_of("alice", globex) == Decimal("2")  # another organization's alice
    assert spend_of("bob") == Decimal("0.125")  # keys outside every organization: the proxy admin's
    assert not EndUser.objects.filter(user_id="carol").exists()  # a refusal, no cost: not a customer yet
    assert EndUser.objects.count() == 3
    assert sorted(SpendLog.objects.values_list("end_user", flat=True)) == [
        "", "alice", "alice", "alice", "alice", "bob", "carol"]


def test_an_end_user_of_an_organization_deleted_meanwhile_does_not_fail_the_batch():
    gone = organization_create(name="Gone")
    batch = [record("alice", "1", gone), record("alice", "1")]
    gone.delete()
    assert spend_logs_write_batch(records=batch) == 2
    assert list(EndUser.objects.values_list("user_id", "organization_id", "spend")) == [
        ("alice", None, Decimal("1"))]


def test_an_end_users_budget_period_starts_again():
    now = datetime.now(timezone.utc)
    acme = organization_create(name="Acme")
    monthly = budget_create(organization=acme, budget_id="monthly", max_budget=Decimal("5"),
                            budget_duration="30d", budget_anchor=now - timedelta(days=31))
    alice = end_user_create(organization=acme, user_id="alice", budget=monthly)
    spend_logs_write_batch(records=[record("alice", "3", acme, when=now - timedelta(days=5)),
                                    record("alice", "1", acme, when=now - timedelta(hours=2)),
                                    record("alice", "7")])  # the proxy admin's alice: not hers
    assert spend_of("alice", acme) == Decimal("4")

    assert budget_periods_roll(now=now) == 1
    alice.refresh_from_db()
    assert alice.spend == Decimal("1") and alice.budget_period_start == monthly.budget_anchor + timedelta(days=30)
    assert budget_periods_roll(now=now) == 0
