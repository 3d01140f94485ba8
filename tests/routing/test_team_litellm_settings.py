"""A team's LiteLLM settings on /v1, set through the management API as LiteLLM's documentation
does: per-model rate limits of the whole team, model aliases, routing tags, and each member's own
budget and models within the team (max_budget_in_team, member models)."""

import httpx
import pytest
from django.contrib.auth import get_user_model

from apps.teams.services import team_member_add
from conftest import MASTER_KEY

MESSAGES = [{"role": "user", "content": "hi"}]


def chat(gateway, key, model="gpt-a", **extra) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "messages": MESSAGES, "max_tokens": 5, **extra}, timeout=10)


def manage(gateway, path, body) -> dict:
    response = httpx.post(gateway.url + path, headers={"Authorization": f"Bearer {MASTER_KEY}"}, json=body,
                          timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def members(team, make_key):
    """Two members of the team, each with a key of the team."""
    keys = {}
    for name in ("ada", "bob"):
        user = get_user_model().objects.create_user(username=name)
        team_member_add(team=team, user=user)
        keys[name] = make_key(team=team, user=user, alias=name)[1]
    return keys


def test_a_teams_per_model_rate_limit_counts_every_key_of_the_team(gateway, make_deployment, team, members):
    make_deployment("gpt-a")
    make_deployment("gpt-b")
    manage(gateway, "/team/update", {"team_id": str(team.pk), "model_rpm_limit": {"gpt-a": 2}})

    assert [chat(gateway, members["ada"]).status_code, chat(gateway, members["bob"]).status_code] == [200, 200]
    refused = chat(gateway, members["ada"])
    assert refused.status_code == 429
    assert "team (for this model)" in refused.json()["error"]["message"]
    assert chat(gateway, members["bob"], model="gpt-b").status_code == 200  # other models unaffected


def test_a_team_made_with_its_own_team_id_is_found_by_it(gateway, make_deployment, make_key, organization):
    make_deployment("gpt-a")
    manage(gateway, "/team/new", {"team_id": "my-prod-team", "organization_id": str(organization.pk),
                                  "model_tpm_limit": {"gpt-a": 1}})
    info = httpx.get(gateway.url + "/team/info", params={"team_id": "my-prod-team"},
                     headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    assert info["team_info"]["model_tpm_limit"] == {"gpt-a": 1}
    key = manage(gateway, "/key/generate", {"team_id": "my-prod-team"})["key"]
    assert chat(gateway, key).status_code == 200  # the first request is counted after its answer
    assert chat(gateway, key).status_code == 429


def test_a_teams_model_alias_sends_its_requests_to_the_model_named(gateway, make_deployment, fake_openai, team,
                                                                   make_key):
    make_deployment("gpt-3.5-turbo-eu", upstream_model="eu-model")
    manage(gateway, "/team/update", {"team_id": str(team.pk), "models": ["gpt-3.5-turbo-eu"],
                                     "model_aliases": {"gpt-3.5-turbo": "gpt-3.5-turbo-eu"}})
    _, key = make_key(team=team)

    assert chat(gateway, key, model="gpt-3.5-turbo").status_code == 200
    assert fake_openai.requests[-1]["body"]["model"] == "eu-model"


def test_an_alias_does_not_reach_a_model_the_key_may_not_use(gateway, make_deployment, team, make_key):
    make_deployment("gpt-a")
    make_deployment("gpt-secret")
    manage(gateway, "/team/update", {"team_id": str(team.pk), "models": ["gpt-a"],
                                     "model_aliases": {"gpt-a": "gpt-secret"}})
    _, key = make_key(team=team)
    assert chat(gateway, key, model="gpt-a").status_code == 403


def test_a_teams_tags_route_its_requests(gateway, make_deployment, fake_openai, team, make_key):
    make_deployment("gpt-a", upstream_model="for-team-a", tags=["teamA"])
    make_deployment("gpt-a", upstream_model="for-others", tags=["default"])
    manage(gateway, "/team/update", {"team_id": str(team.pk), "tags": ["teamA"]})
    _, team_key = make_key(team=team)
    _, other_key = make_key()

    assert chat(gateway, team_key).status_code == 200
    assert fake_openai.requests[-1]["body"]["model"] == "for-team-a"
    assert chat(gateway, other_key).status_code == 200
    assert fake_openai.requests[-1]["body"]["model"] == "for-others"


def test_a_members_own_budget_and_models_in_the_team(gateway, make_deployment, team, members):
    make_deployment("gpt-a")
    make_deployment("gpt-b")
    manage(gateway, "/team/member_update", {"team_id": str(team.pk), "user_id": "ada", "models": ["gpt-a"],
                                            "max_budget_in_team": 0.0000001})

    assert chat(gateway, members["ada"], model="gpt-b").status_code == 403
    assert chat(gateway, members["ada"]).status_code == 429  # its budget is below one request's cost
    assert chat(gateway, members["bob"], model="gpt-b").status_code == 200  # bob keeps the team's


def test_members_added_without_models_get_the_teams_default_models(gateway, make_deployment, team, make_key):
    make_deployment("gpt-a")
    make_deployment("gpt-b")
    manage(gateway, "/team/update", {"team_id": str(team.pk), "models": ["gpt-a", "gpt-b"],
                                     "default_models": ["gpt-a"]})
    added = manage(gateway, "/team/member_add", {"team_id": str(team.pk), "member": {"role": "user",
                                                                                      "user_id": "cy"},
                                                 "max_budget_in_team": 5})
    assert added["updated_team_memberships"][0]["models"] == ["gpt-a"]
    assert added["updated_team_memberships"][0]["max_budget_in_team"] == 5.0
    _, key = make_key(team=team, user=get_user_model().objects.get(username="cy"))
    assert chat(gateway, key).status_code == 200
    assert chat(gateway, key, model="gpt-b").status_code == 403


def test_disable_logging_turns_the_teams_prompt_storage_off(gateway, team):
    team.store_prompts = True
    team.save()
    response = httpx.post(gateway.url + f"/team/{team.pk}/disable_logging",
                          headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10)
    assert response.status_code == 200, response.text
    team.refresh_from_db()
    assert team.store_prompts is False
