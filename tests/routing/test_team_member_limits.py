"""Team member limits (LiteLLM's team_member_budget, team_member_rpm_limit, ...): each member of a
team has its own budget and rate limits within the team, on top of the team's."""

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.spend.services import budget_periods_roll
from apps.teams.models import TeamMembership
from apps.teams.services import team_member_add
from conftest import MASTER_KEY, wait_for

MESSAGES = [{"role": "user", "content": "hi"}]
COST = Decimal("0.0000735")  # one request's cost at make_deployment's prices


def chat(gateway, key) -> httpx.Response:
    # A small max_tokens keeps the reservation (the most a request may cost) under the tiny budgets.
    return httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "gpt-test", "messages": MESSAGES, "max_tokens": 5}, timeout=10)


@pytest.fixture
def members(team, make_key):
    """Two members of the team, each with a key of the team."""
    keys = {}
    for name in ("ada", "bob"):
        user = get_user_model().objects.create_user(username=name)
        team_member_add(team=team, user=user)
        keys[name] = make_key(team=team, user=user, alias=name)[1]
    return keys


def test_each_member_has_its_own_budget_within_the_team(gateway, make_deployment, team, members):
    make_deployment("gpt-test")
    team.team_member_budget = Decimal("0.0001")  # room for one request each
    team.save()

    ada = [chat(gateway, members["ada"]) for _ in range(3)]
    bob = chat(gateway, members["bob"])

    assert [r.status_code for r in ada] == [200, 429, 429]
    error = ada[-1].json()["error"]
    assert error["code"] == "insufficient_quota" and "team member" in error["message"]
    assert bob.status_code == 200  # ada's spending is not bob's
    assert wait_for(lambda: TeamMembership.objects.get(user__username="ada").spend >= COST)
    assert wait_for(lambda: TeamMembership.objects.get(user__username="bob").spend == COST)


def test_each_member_has_its_own_rate_limit(gateway, make_deployment, team, members):
    make_deployment("gpt-test")
    team.team_member_rpm_limit = 2
    team.save()

    ada = [chat(gateway, members["ada"]).status_code for _ in range(3)]
    assert ada == [200, 200, 429]
    assert chat(gateway, members["bob"]).status_code == 200


def test_team_member_limits_through_the_management_api(gateway, make_deployment, organization, members, team):
    make_deployment("gpt-test")
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers) as client:
        created = client.post("/team/new", json={
            "organization_id": str(organization.pk), "team_alias": "limited", "team_member_budget": 2.5,
            "team_member_budget_duration": "30d", "team_member_rpm_limit": 10, "team_member_tpm_limit": 1000,
        })
        assert created.status_code == 200, created.text
        body = created.json()
        assert (body["team_member_budget"], body["team_member_budget_duration"], body["team_member_rpm_limit"],
                body["team_member_tpm_limit"]) == (2.5, "30d", 10, 1000)

        client.post("/team/update", json={"team_id": str(team.pk), "team_member_budget": 1})
        assert chat(gateway, members["ada"]).status_code == 200
        assert wait_for(lambda: TeamMembership.objects.get(user__username="ada").spend == COST)
        info = client.get("/team/info", params={"team_id": str(team.pk)}).json()
    spend = {m["user_id"]: m["spend"] for m in info["team_memberships"]}
    assert spend == {"ada": float(COST), "bob": 0.0}


def test_a_member_budget_period_starts_again(make_key, team):
    from apps.spend.models import SpendLog

    user = get_user_model().objects.create_user(username="cy")
    membership = team_member_add(team=team, user=user)
    team.team_member_budget, team.team_member_budget_duration = Decimal("1"), "1d"
    team.budget_anchor = timezone.now() - timedelta(days=2, hours=1)  # the period began an hour ago
    team.save()
    now = timezone.now()
    for cost, hours_ago in (("0.5", 3), ("0.25", 0.5)):
        when = now - timedelta(hours=hours_ago)
        SpendLog.objects.create(request_id=f"r{cost}", team=team, organization=team.organization, user=user,
                                call_type="chat_completion", model="m", status="success", cost=Decimal(cost),
                                start_time=when, end_time=when)

    budget_periods_roll(now=now)

    membership.refresh_from_db()
    assert membership.spend == Decimal("0.25") and membership.budget_period_start is not None
