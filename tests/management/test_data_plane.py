"""Keys made through the management API work on /v1 at once, and stop at once when blocked,
regenerated or deleted (through the real server: the management API on Django's stack, /v1 on
the data plane)."""

import httpx
import openai
import pytest

from conftest import MASTER_KEY

MESSAGES = [{"role": "user", "content": "hi"}]


def _manage(gateway, path: str, body: dict) -> dict:
    response = httpx.post(gateway.url + path, json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_generated_key_works_until_blocked_and_again_once_unblocked(
    gateway, openai_client, make_deployment
):
    make_deployment("gpt-test")
    raw_key = _manage(gateway, "/key/generate", {"models": ["gpt-test"], "key_alias": "sdk"})["key"]
    client = openai_client(raw_key)
    assert client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices[0].message.content

    _manage(gateway, "/key/block", {"key": raw_key})
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert raised.value.status_code == 401 and raised.value.code == "key_blocked"

    _manage(gateway, "/key/unblock", {"key": raw_key})
    assert client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices[0].message.content


def test_regenerate_and_delete_end_a_key_at_once(gateway, openai_client, make_deployment):
    make_deployment("gpt-test")
    old_key = _manage(gateway, "/key/generate", {})["key"]
    openai_client(old_key).chat.completions.create(model="gpt-test", messages=MESSAGES)  # cached now

    new_key = _manage(gateway, "/key/regenerate", {"key": old_key})["key"]
    with pytest.raises(openai.AuthenticationError):
        openai_client(old_key).chat.completions.create(model="gpt-test", messages=MESSAGES)
    openai_client(new_key).chat.completions.create(model="gpt-test", messages=MESSAGES)

    _manage(gateway, "/key/delete", {"keys": [new_key]})
    with pytest.raises(openai.AuthenticationError):
        openai_client(new_key).chat.completions.create(model="gpt-test", messages=MESSAGES)


def test_a_model_the_key_may_not_use_is_refused(gateway, openai_client, make_deployment):
    make_deployment("gpt-test")
    make_deployment("gpt-other")
    raw_key = _manage(gateway, "/key/generate", {"models": ["gpt-test"]})["key"]
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(raw_key).chat.completions.create(model="gpt-other", messages=MESSAGES)


def test_a_blocked_team_s_keys_are_refused_within_a_second_and_work_again_once_unblocked(
    gateway, openai_client, make_deployment
):
    from conftest import wait_for

    make_deployment("gpt-test")
    team = _manage(gateway, "/team/new", {"team_alias": "blockable"})  # in the default organization
    raw_key = _manage(gateway, "/key/generate", {"team_id": team["team_id"]})["key"]
    client = openai_client(raw_key)
    assert client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices  # its context is cached now

    def refused() -> bool:
        try:
            client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        except openai.AuthenticationError as error:
            return "team is blocked" in error.message
        return False

    _manage(gateway, "/team/block", {"team_id": team["team_id"]})
    assert wait_for(refused, timeout=1.0)
    _manage(gateway, "/team/unblock", {"team_id": team["team_id"]})
    assert wait_for(lambda: not refused(), timeout=1.0)


def test_v1_model_info_is_answered_by_the_management_api(gateway, make_deployment):
    """/v1/model/info is a management route under the data plane's prefix (LiteLLM's clients
    call it on their OpenAI base URL): the ASGI app hands it to Django's stack."""
    make_deployment("gpt-test")
    response = httpx.get(gateway.url + "/v1/model/info", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code == 200, response.text
    assert [model["model_name"] for model in response.json()["data"]] == ["gpt-test"]


def test_a_team_model_serves_its_team_only_within_the_teams_limit(gateway, openai_client, make_deployment, team):
    from apps.keys.services import virtual_key_create
    from apps.teams.services import team_create

    other_team = team_create(organization=team.organization, alias="other")
    make_deployment("team-gpt", team=team, organization=team.organization, team_model_rpm_limit=2)
    _, own = virtual_key_create(team=team)
    _, other = virtual_key_create(team=other_team)
    client = openai_client(own)
    for _ in range(2):
        assert client.chat.completions.create(model="team-gpt", messages=MESSAGES).choices
    with pytest.raises(openai.RateLimitError):  # the team's 2 requests a minute to it
        client.chat.completions.create(model="team-gpt", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError):  # another team's key does not see it
        openai_client(other).chat.completions.create(model="team-gpt", messages=MESSAGES)
    assert "team-gpt" not in [m.id for m in openai_client(other).models.list()]
