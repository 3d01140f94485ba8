"""The reads that go to the PostgreSQL read replica (apps.core.db_router), end to end: the management
API's /spend/logs and reports, the admin's spend-log list and spend report, and the rollup rebuild
read their rows on the replica, while who the caller is and what it may see, and every write, stay
on the primary.

The test settings have no replica (unless DATABASE_REPLICA_URL is set), so this module adds a
"replica" alias for its length: the default's settings (the test database) with TEST MIRROR, as
DATABASE_REPLICA_URL makes it, reached through a connection of its own, which sees what the
primary committed as a replica would (transactional tests). The alias is added before
pytest-django sets up each test (a module-scoped fixture: Django refuses a test a connection to an
alias it did not declare, and checks that the declared ones exist), and every test here declares
it. Each connection's queries are captured apart (CaptureQueriesContext): a test fails if the reads
it expects on the replica ran on the primary.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.core.db_router import REPLICA_DB_ALIAS, replica_reads
from conftest import MASTER_KEY

pytestmark = pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA_DB_ALIAS])


@pytest.fixture(scope="module", autouse=True)
def replica_alias(django_db_setup):
    """The "replica" alias, in connections.settings (which is settings.DATABASES: the router looks
    there) for this module's tests; its connection (and pool, on PostgreSQL) closed after. A run
    with DATABASE_REPLICA_URL set has one already, mirroring the test database: it is used as is."""
    configured = REPLICA_DB_ALIAS in connections.settings
    if configured:
        assert connections.settings[REPLICA_DB_ALIAS]["TEST"]["MIRROR"] == DEFAULT_DB_ALIAS
    else:
        assert connections.settings is settings.DATABASES
        database = copy.deepcopy(connections[DEFAULT_DB_ALIAS].settings_dict)
        database["TEST"] = {**database["TEST"], "MIRROR": DEFAULT_DB_ALIAS}  # never flushed, never created
        connections.settings[REPLICA_DB_ALIAS] = database
    try:
        yield
    finally:
        # Closed either way: an open connection (or pool) would keep the test database from being dropped.
        wrapper = connections[REPLICA_DB_ALIAS]
        wrapper.close()
        if hasattr(wrapper, "close_pool"):
            wrapper.close_pool()
        if not configured:
            del connections[REPLICA_DB_ALIAS]
            del connections.settings[REPLICA_DB_ALIAS]


class Queries:
    """The SQL each connection ran while inside."""

    def __enter__(self):
        self._contexts = {alias: CaptureQueriesContext(connections[alias]) for alias in (DEFAULT_DB_ALIAS,
                                                                                      REPLICA_DB_ALIAS)}
        for context in self._contexts.values():
            context.__enter__()
        return self

    def __exit__(self, *exc_info):
        for context in self._contexts.values():
            context.__exit__(*exc_info)

    def all(self, alias: str) -> list[str]:
        return [q["sql"] for q in self._contexts[alias].captured_queries]

    def on(self, alias: str, table: str, verb: str = "SELECT") -> list[str]:
        return [q["sql"] for q in self._contexts[alias].captured_queries
                if q["sql"].lstrip().upper().startswith(verb) and f'"{table}"' in q["sql"]]


def add_log(*, when: datetime, key=None, cost: str = "0.01"):
    from apps.spend.models import SpendLog

    return SpendLog.objects.create(
        request_id=uuid.uuid4().hex, call_type="chat_completion", model="gpt-a", provider="openai",
        upstream_model="gpt-a", status="success", http_status=200, prompt_tokens=10, completion_tokens=5,
        cost=Decimal(cost), start_time=when, end_time=when + timedelta(milliseconds=250), latency_ms=250,
        **({"key_id": key.pk, "key_hash": key.token_hash, "team_id": key.team_id,
            "organization_id": key.organization_id, "user_id": key.user_id} if key is not None else {}),
    )


def test_spend_logs_are_read_on_the_replica_and_the_caller_on_the_primary(team, make_key,
                                                                           django_user_model):
    from apps.teams.services import team_member_add

    user = django_user_model.objects.create_user("ada", email="ada@example.com")
    team_member_add(team=team, user=user, role="admin")
    key, raw_key = make_key(team=team, organization=team.organization, user=user, alias="ada-key")
    now = datetime.now(UTC)
    logs = [add_log(when=now - timedelta(minutes=n), key=key) for n in range(3)]
    client = APIClient()

    with Queries() as queries:
        response = client.get("/spend/logs", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 200, response.content
    assert [row["request_id"] for row in response.json()] == [log.request_id for log in logs]
    assert queries.on(REPLICA_DB_ALIAS, "spend_spendlog")
    assert not queries.on(DEFAULT_DB_ALIAS, "spend_spendlog")
    # Who the caller is and what it may see: the primary's answer, never a replica's.
    for table in ("teams_organizationmembership", "teams_teammembership"):
        assert queries.on(DEFAULT_DB_ALIAS, table) and not queries.on(REPLICA_DB_ALIAS, table)

    with Queries() as queries:  # a report over the rollups, as the proxy admin
        response = client.get("/spend/report", {"start_date": str(now.date()), "end_date": str(now.date())},
                              HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    assert response.status_code == 200, response.content
    assert queries.on(REPLICA_DB_ALIAS, "spend_dailyspend")
    assert not queries.on(DEFAULT_DB_ALIAS, "spend_dailyspend")


def test_spend_writes_stay_on_the_primary():
    with Queries() as queries:
        response = APIClient().post("/global/spend/reset", {}, format="json",
                                    HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    assert response.status_code == 200, response.content
    assert queries.on(DEFAULT_DB_ALIAS, "spend_spendreset", "INSERT")
    assert queries.all(REPLICA_DB_ALIAS) == []


def test_the_admin_spend_log_list_and_report_read_on_the_replica(team, make_key, admin_client,
                                                                 django_user_model):
    from apps.teams.models import OrganizationMembership
    from apps.teams.services import organization_member_add

    key, _ = make_key(team=team, organization=team.organization, alias="listed")
    log = add_log(when=datetime.now(UTC), key=key)

    with Queries() as queries:
        response = admin_client.get("/admin/spend/spendlog/")
    assert response.status_code == 200
    assert log.request_id in response.content.decode()
    assert queries.on(REPLICA_DB_ALIAS, "spend_spendlog")
    assert not queries.on(DEFAULT_DB_ALIAS, "spend_spendlog")

    # An organization's staff: its organizations (what the list may show) come from the primary.
    staff = django_user_model.objects.create_user("acme-staff", password="pw", is_staff=True)
    organization_member_add(organization=team.organization, user=staff, role=OrganizationMembership.Role.VIEWER)
    admin_client.force_login(staff)
    with Queries() as queries:
        response = admin_client.get("/admin/spend/spendlog/")
    assert response.status_code == 200 and log.request_id in response.content.decode()
    for table in ("teams_organizationmembership", "auth_permission"):
        assert queries.on(DEFAULT_DB_ALIAS, table) and not queries.on(REPLICA_DB_ALIAS, table)
    assert queries.on(REPLICA_DB_ALIAS, "spend_spendlog") and not queries.on(DEFAULT_DB_ALIAS, "spend_spendlog")

    with Queries() as queries:
        response = admin_client.get(f"/admin/teams/organization/{team.organization.pk}/spend-report/")
    assert response.status_code == 200
    assert queries.on(REPLICA_DB_ALIAS, "spend_dailyspend")
    assert not queries.on(DEFAULT_DB_ALIAS, "spend_dailyspend")
    assert queries.on(DEFAULT_DB_ALIAS, "teams_organization")  # the object and its permission


def test_the_rollup_rebuild_reads_the_logs_on_the_replica_and_writes_on_the_primary():
    from apps.spend.models import DailySpend, SpendRollupDay
    from apps.spend.rollups import daily_spend_rollup

    day = date(2026, 3, 14)
    noon = datetime(2026, 3, 14, 12, tzinfo=UTC)
    add_log(when=noon, cost="0.25")
    add_log(when=noon, cost="0.50")

    with Queries() as queries, replica_reads():
        result = daily_spend_rollup(day=day)
    assert (result.logs, result.rows) == (2, 1)
    assert DailySpend.objects.get(day=day).cost == Decimal("0.75")
    assert queries.on(REPLICA_DB_ALIAS, "spend_spendlog")
    assert not queries.on(DEFAULT_DB_ALIAS, "spend_spendlog")
    assert queries.on(DEFAULT_DB_ALIAS, "spend_dailyspend", "INSERT")
    assert not queries.on(REPLICA_DB_ALIAS, "spend_dailyspend")
    assert not queries.on(REPLICA_DB_ALIAS, "spend_spendrollupday")

    # A day marked stale (logs replayed into it), and a forced rebuild, read the primary.
    SpendRollupDay.objects.filter(day=day).update(stale=True)
    for force in (False, True):
        with Queries() as queries, replica_reads():
            daily_spend_rollup(day=day, force=force)
        assert queries.on(DEFAULT_DB_ALIAS, "spend_spendlog") and not queries.on(REPLICA_DB_ALIAS, "spend_spendlog")

    # Outside the scope (the reconciliation's rebuild): the primary.
    with Queries() as queries:
        daily_spend_rollup(day=day)
    assert queries.on(DEFAULT_DB_ALIAS, "spend_spendlog") and not queries.on(REPLICA_DB_ALIAS, "spend_spendlog")


def test_the_beat_task_rebuilds_from_the_replica():
    from apps.spend.tasks import daily_rollup_recent_task

    add_log(when=datetime.now(UTC))
    with Queries() as queries:
        assert daily_rollup_recent_task() == 1
    assert queries.on(REPLICA_DB_ALIAS, "spend_spendlog")
    assert not queries.on(DEFAULT_DB_ALIAS, "spend_spendlog")


