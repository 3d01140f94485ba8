"""Guardrails configured as LiteLLM's `guardrails:` list, driven with the official SDKs: each built-in
passes a clean request, masks what it masks and refuses what it refuses (streamed and not), a
guardrail that fails is a clear error (closed, or open by setting), every decision is on the spend
log, and a request can add guardrails but not drop the ones its key, team or the operator set."""

from __future__ import annotations

import json

import openai
import pytest

from conftest import MASTER_KEY, wait_for
from tests.fakes.openai_media import API_KEY as MEDIA_KEY
from tests.routing.media_fixtures import media_deployment, media_upstream  # noqa: F401 (fixtures)

GUARDRAILS = [
    {"guardrail_name": "secrets", "litellm_params": {"guardrail": "hide-secrets", "mode": "pre_call",
                                                     "default_on": True}},
    {"guardrail_name": "secrets-strict", "litellm_params": {"guardrail": "hide-secrets", "mode": "pre_call",
                                                            "action": "BLOCK"}},
    {"guardrail_name": "pii", "litellm_params": {"guardrail": "presidio", "mode": ["pre_call", "post_call"],
                                                 "pii_entities_config": {"EMAIL_ADDRESS": "MASK", "US_SSN": "BLOCK",
                                                                         "CREDIT_CARD": "MASK"}}},
    {"guardrail_name": "no-fakes", "litellm_params": {"guardrail": "litellm_content_filter", "mode": "post_call",
                                                      "blocked_words": ["fake"]}},
    {"guardrail_name": "hide-upstream", "litellm_params": {
        "guardrail": "litellm_content_filter", "mode": "post_call",
        "patterns": [{"pattern": "fake upstream", "name": "upstream name", "action": "MASK"}]}},
    {"guardrail_name": "banned-words", "litellm_params": {"guardrail": "litellm_content_filter", "mode": "pre_call",
                                                          "blocked_words": ["bomb"]}},
    {"guardrail_name": "short", "litellm_params": {"guardrail": "prompt_size", "mode": "pre_call",
                                                   "max_characters": 40}},
    {"guardrail_name": "moderated", "litellm_params": {"guardrail": "openai_moderation", "mode": "during_call",
                                                       "model": "guard-moderation"}},
    {"guardrail_name": "broken", "litellm_params": {"guardrail": "tests.routing.test_guardrails.BrokenGuardrail",
                                                    "mode": "pre_call"}},
    {"guardrail_name": "misconfigured", "litellm_params": {"guardrail": "litellm_content_filter",
                                                           "mode": "pre_call", "patterns": ["(unclosed"]}},
    {"guardrail_name": "shouting", "litellm_params": {"guardrail": "tests.routing.test_guardrails.ShoutingGuardrail",
                                                      "mode": "post_call"}},
]


from apps.routing.guardrails import Guardrail  # noqa: E402 (the plug-ins below subclass it)


class BrokenGuardrail(Guardrail):
    def check_text(self, text, mode):
        raise RuntimeError("the guardrail's service is down")


class ShoutingGuardrail(Guardrail):
    """A user's own: every answer in capitals."""

    masks = True

    def check_text(self, text, mode):
        return text.upper()


@pytest.fixture
def guarded(settings, tmp_path, transactional_db, fake_openai):
    """A gateway started with the guardrails above (config.yaml), and a client for it."""
    from apps.core import invalidation
    from tests.fakes.gateway import GatewayServer

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"guardrails": GUARDRAILS}))  # JSON is YAML
    settings.GATEWAY_CONFIG = str(config)
    invalidation.apply_everything()
    fake_openai.requests.clear()
    server = GatewayServer().start()
    yield server
    server.stop()


def client_for(gateway, key=MASTER_KEY):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def sent_text(fake_openai) -> str:
    return json.dumps([r["body"].get("messages") for r in fake_openai.requests])


def ask(gateway, text, *, key=MASTER_KEY, guardrails=None, stream=False, model="guarded"):
    extra = {"guardrails": guardrails} if guardrails else {}
    client = client_for(gateway, key)
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                                     stream=True, extra_body=extra))
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                          extra_body=extra).choices[0].message.content


def refused(gateway, text, **kwargs) -> dict:
    with pytest.raises(openai.BadRequestError) as error:
        ask(gateway, text, **kwargs)
    return error.value.body


def spend_guardrails(count: int = 1) -> list:
    from apps.spend.models import SpendLog

    wait_for(lambda: SpendLog.objects.count() >= count)
    return [log.metadata.get("guardrails") for log in SpendLog.objects.order_by("start_time", "id")]


def test_secrets_are_masked_by_default_and_refused_where_asked(guarded, make_deployment, fake_openai):
    make_deployment("guarded", upstream_model="gpt-test")
    assert ask(guarded, "hello there") == "Hello from the fake upstream."
    ask(guarded, "my key is sk-proj-abcdefghijklmnopqrstuvwxyz0123 keep it")
    assert "sk-proj-abcdef" not in sent_text(fake_openai) and "[SECRET]" in sent_text(fake_openai)
    body = refused(guarded, "AKIAABCDEFGHIJKLMNOP is my AWS key", guardrails=["secrets-strict"])
    assert body["code"] == "content_policy_violation" and "secrets-strict" in body["message"]
    assert len(fake_openai.requests) == 2  # the refused one never reached the upstream
    decisions = spend_guardrails(3)
    assert decisions[0] == [{"name": "secrets", "mode": "pre_call", "outcome": "passed"}]
    assert decisions[1] == [{"name": "secrets", "mode": "pre_call", "outcome": "masked"}]


def test_personal_data_is_masked_or_refused_by_entity(guarded, make_deployment, fake_openai):
    make_deployment("guarded", upstream_model="gpt-test")
    ask(guarded, "write to alice@example.com, card 4111 1111 1111 1111, order 1234 5678 9012 3456",
        guardrails=["pii"])
    sent = sent_text(fake_openai)
    assert "alice@example.com" not in sent and "[EMAIL_ADDRESS]" in sent
    assert "4111" not in sent and "[CREDIT_CARD]" in sent
    assert "1234 5678 9012 3456" in sent  # not a card number (its Luhn check fails)
    assert "US_SSN" in refused(guarded, "my ssn is 078-05-1120", guardrails=["pii"])["message"]


def test_an_answer_is_refused_or_masked_streamed_and_not(guarded, make_deployment):
    make_deployment("guarded", upstream_model="gpt-test")
    assert refused(guarded, "hi", guardrails=["no-fakes"])["message"].startswith("Refused by guardrail 'no-fakes'")
    assert ask(guarded, "hi", guardrails=["hide-upstream"]) == "Hello from the [UPSTREAM_NAME]."
    # Streamed: "fake" and " upstream" arrive in two chunks, and are masked as one.
    assert ask(guarded, "hi", guardrails=["hide-upstream"], stream=True) == "Hello from the [UPSTREAM_NAME]."
    client = client_for(guarded)
    stream = client.chat.completions.create(model="guarded", messages=[{"role": "user", "content": "hi"}],
                                            stream=True, extra_body={"guardrails": ["no-fakes"]})
    with pytest.raises(openai.APIError) as cut:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "no-fakes" in str(cut.value)  # the stream ends with the refusal, cleanly
    decisions = spend_guardrails(4)
    assert decisions[0] == [{"name": "secrets", "mode": "pre_call", "outcome": "passed"},
                            {"name": "no-fakes", "mode": "post_call", "outcome": "refused"}]
    assert {"name": "hide-upstream", "mode": "post_call", "outcome": "masked"} in decisions[2]


def test_blocklists_prompt_size_and_a_users_own_guardrail(guarded, make_deployment):
    make_deployment("guarded", upstream_model="gpt-test")
    assert "banned-words" in refused(guarded, "how to build a BOMB", guardrails=["banned-words"])["message"]
    assert ask(guarded, "how to build a bombastic speech", guardrails=["banned-words"])
    assert "40" in refused(guarded, "x" * 41, guardrails=["short"])["message"]
    assert ask(guarded, "hi", guardrails=["shouting"]) == "HELLO FROM THE FAKE UPSTREAM."
    assert ask(guarded, "hi", guardrails=["shouting"], stream=True) == "HELLO FROM THE FAKE UPSTREAM."


def test_a_moderation_deployment_is_a_guardrail(guarded, make_deployment, media_deployment, media_upstream):
    make_deployment("guarded", upstream_model="gpt-test")
    media_deployment("guard-moderation", "omni-moderation-latest", "moderation")
    assert ask(guarded, "a kind word", guardrails=["moderated"])
    body = refused(guarded, "how do I kill a process", guardrails=["moderated"])
    assert "violence" in body["message"]
    assert [r["body"]["input"] for r in media_upstream.requests] == [["a kind word"], ["how do I kill a process"]]


def test_a_failing_guardrail_is_a_503_or_lets_the_request_through_by_setting(guarded, make_deployment, settings,
                                                                             fake_openai):
    make_deployment("guarded", upstream_model="gpt-test")
    with pytest.raises(openai.APIStatusError) as error:
        ask(guarded, "hi", guardrails=["broken"])
    assert error.value.status_code == 503 and error.value.body["code"] == "guardrail_error"
    assert "Traceback" not in str(error.value.body)
    with pytest.raises(openai.APIStatusError) as error:  # configured, but could not be set up: not skipped
        ask(guarded, "hi", guardrails=["misconfigured"])
    assert error.value.status_code == 503 and "misconfigured" in error.value.body["message"]
    settings.GATEWAY_GUARDRAIL_FAIL_OPEN = True
    assert ask(guarded, "hi", guardrails=["broken"]) == "Hello from the fake upstream."
    assert {"name": "broken", "mode": "pre_call", "outcome": "error"} in spend_guardrails(3)[-1]


def test_guardrails_named_in_metadata_apply_and_never_reach_the_provider(guarded, make_deployment, fake_openai):
    make_deployment("guarded", upstream_model="gpt-test")
    client = client_for(guarded)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="guarded", messages=[{"role": "user", "content": "a bomb"}],
                                       metadata={"guardrails": ["banned-words"]})
    client.chat.completions.create(model="guarded", messages=[{"role": "user", "content": "hi"}],
                                   metadata={"guardrails": ["banned-words"], "run": "7"})
    assert fake_openai.requests[-1]["body"]["metadata"] == {"run": "7"}
    assert "guardrails" not in fake_openai.requests[-1]["body"]


def test_an_unknown_guardrail_is_a_400_naming_it(guarded, make_deployment):
    make_deployment("guarded", upstream_model="gpt-test")
    body = refused(guarded, "hi", guardrails=["nope"])
    assert (body["param"], body["code"]) == ("guardrails", "guardrail_not_found")


def test_the_teams_and_the_model_groups_guardrails_hold_whatever_the_request_says(guarded, make_deployment, team,
                                                                                  make_key, group_settings):
    from apps.teams.services import team_update

    make_deployment("guarded", upstream_model="gpt-test")
    make_deployment("guarded-group", upstream_model="gpt-test")
    team_update(team=team, guardrails=["no-fakes"])
    _, raw = make_key(team=team)
    assert refused(guarded, "hi", key=raw)["message"].startswith("Refused by guardrail 'no-fakes'")
    assert refused(guarded, "hi", key=raw, guardrails=[])["code"] == "content_policy_violation"
    group_settings("guarded-group", guardrails=["banned-words"])
    assert "banned-words" in refused(guarded, "a bomb", model="guarded-group")["message"]
    _, keyed = make_key(guardrails=["short"])
    assert "short" in refused(guarded, "y" * 60, key=keyed)["message"]


def test_only_admins_of_the_key_give_it_guardrails_or_take_them_off(guarded, make_deployment):
    """A key's guardrails are its team's or organization's admins' to set: its owner cannot drop them."""
    from tests.management.conftest import Api

    api = Api()
    from django.contrib.auth import get_user_model

    from apps.keys.services import virtual_key_create
    from apps.teams.services import organization_create, team_create, team_member_add

    organization = organization_create(name="Guarded")
    team = team_create(organization=organization, alias="guarded")
    member = get_user_model().objects.create_user("guarded-member")
    team_member_add(team=team, user=member, role="member")
    key, raw = virtual_key_create(team=team, user=member, guardrails=["short"])
    answer = api.post("/key/update", {"key": key.token_hash, "guardrails": []}, key=raw)
    assert answer.status_code == 403 and answer.json()["error"]["param"] == "guardrails"
    answer = api.post("/team/update", {"team_id": str(team.pk), "guardrails": []}, key=raw)
    assert answer.status_code == 403
