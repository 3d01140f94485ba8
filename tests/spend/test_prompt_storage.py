"""Spend logs keep the client's metadata always, and the messages and answer only for keys and
teams that opted in (off by default)."""

import httpx
import pytest

from apps.spend.models import SpendLog
from conftest import MASTER_KEY
from tests.fakes.openai_upstream import REPLY_WORDS

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
ANSWER = "".join(REPLY_WORDS)


def ask(openai_client, raw_key, *, stream=False, **extra):
    client = openai_client(raw_key)
    if stream:
        list(client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True, **extra))
    else:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, **extra)


@pytest.fixture
def deployment(make_deployment):
    return make_deployment("gpt-test")


def test_prompts_are_not_stored_by_default_but_metadata_is(gateway, openai_client, make_deployment, make_key,
                                                           spend_logs):
    make_deployment("gpt-test", tags=["batch"])
    _, raw_key = make_key()
    ask(openai_client, raw_key, extra_body={"metadata": {"job": "nightly", "run": 7}, "tags": ["batch"]})

    [log] = spend_logs(1)
    assert log.messages is None and log.response is None
    assert log.metadata == {"job": "nightly", "run": 7, "tags": ["batch"]}


@pytest.mark.parametrize("stream", [False, True])
def test_a_key_that_opted_in_keeps_messages_and_answer(gateway, openai_client, deployment, make_key, spend_logs,
                                                        stream):
    _, raw_key = make_key(store_prompts=True)
    ask(openai_client, raw_key, stream=stream)

    [log] = spend_logs(1)
    assert log.messages == {"messages": MESSAGES}
    message = log.response["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"] == ANSWER
    assert log.response["choices"][0]["finish_reason"] == "stop"


def test_a_team_opts_its_keys_in_and_a_key_may_opt_itself_out(gateway, openai_client, deployment, make_key, team,
                                                               spend_logs):
    team.store_prompts = True
    team.save()
    inheriting, inheriting_raw = make_key(team=team, alias="inherits")
    refusing, refusing_raw = make_key(team=team, alias="refuses", store_prompts=False)
    ask(openai_client, inheriting_raw)
    ask(openai_client, refusing_raw)

    logs = {log.key_id: log for log in spend_logs(2)}
    assert logs[inheriting.pk].messages == {"messages": MESSAGES}
    assert logs[refusing.pk].messages is None and logs[refusing.pk].response is None


def test_the_gateway_default_can_turn_it_on(gateway, openai_client, deployment, make_key, spend_logs, settings):
    settings.GATEWAY_STORE_PROMPTS = True
    _, raw_key = make_key()
    ask(openai_client, raw_key)
    assert spend_logs(1)[0].messages == {"messages": MESSAGES}


def test_a_prompt_larger_than_the_limit_is_cut_and_marked(gateway, openai_client, deployment, make_key, spend_logs,
                                                          settings):
    settings.GATEWAY_STORED_PROMPT_MAX_BYTES = 64
    _, raw_key = make_key(store_prompts=True)
    ask(openai_client, raw_key)

    [log] = spend_logs(1)
    assert log.messages["truncated"] is True and log.messages["bytes"] > 64
    assert len(log.messages["head"]) <= 64


def test_oversized_metadata_is_not_kept_whole(gateway, openai_client, make_deployment, make_key, spend_logs,
                                              settings):
    make_deployment("gpt-test", tags=["t"])
    settings.GATEWAY_SPEND_METADATA_MAX_BYTES = 100
    _, raw_key = make_key()
    ask(openai_client, raw_key, extra_body={"metadata": {"blob": "x" * 500}, "tags": ["t"]})

    [log] = spend_logs(1)
    assert log.metadata["truncated"] is True and log.metadata["tags"] == ["t"] and "blob" not in log.metadata


def test_the_management_api_sets_prompt_storage_on_keys_and_teams(gateway, team):
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers) as client:
        generated = client.post("/key/generate", json={"team_id": str(team.pk), "store_prompts": True}).json()
        assert generated["store_prompts"] is True
        info = client.get("/key/info", params={"key": generated["key"]}).json()["info"]
        assert info["store_prompts"] is True

        updated = client.post("/team/update", json={"team_id": str(team.pk), "store_prompts": True}).json()
        assert updated["store_prompts"] is True
    team.refresh_from_db()
    assert team.store_prompts is True
    assert SpendLog.objects.count() == 0
