"""Each request writes a SpendLog through the buffer, streamed or not, with tokens and cost."""

import time
from decimal import Decimal

import httpx
import pytest

from conftest import MASTER_KEY, wait_for
from tests.fakes.openai_upstream import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS

MESSAGES = [{"role": "user", "content": "hi"}]
# (11 - 3 cached) × 2e-6 + 3 × 0.5e-6 + 7 × 8e-6, from the make_deployment prices
EXPECTED_COST = Decimal("0.000016") + Decimal("0.0000015") + Decimal("0.000056")


def test_non_streamed_request_is_logged_with_tokens_and_cost(
    gateway, openai_client, make_deployment, make_key, team
):
    deployment = make_deployment("gpt-test", upstream_model="upstream-gpt")
    key, raw_key = make_key(team=team, alias="logged")
    openai_client(raw_key).chat.completions.create(model="gpt-test", messages=MESSAGES)

    [log] = spend_logs_written(1)
    assert log.status == "success" and log.http_status == 200
    assert log.call_type == "chat_completion"
    assert (log.model, log.provider, log.upstream_model) == ("gpt-test", "openai", "upstream-gpt")
    assert log.deployment_id == deployment.pk
    assert (log.key_id, log.key_hash) == (key.pk, key.token_hash)
    assert str(log.team_id) == str(team.pk) and str(log.organization_id) == str(team.organization_id)
    assert (log.prompt_tokens, log.completion_tokens, log.cached_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        CACHED_TOKENS,
    )
    assert log.cost == EXPECTED_COST
    assert not log.is_stream and log.usage_reported
    assert log.end_time >= log.start_time
    # The batch writer adds the cost to the key, team and organization.
    key.refresh_from_db()
    team.refresh_from_db()
    team.organization.refresh_from_db()
    assert key.spend == team.spend == team.organization.spend == EXPECTED_COST


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_request_costs_the_same_as_non_streamed(
    gateway, openai_client, make_deployment, include_usage
):
    make_deployment("gpt-test")
    client = openai_client()
    client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    list(client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True, **options))

    plain, streamed = spend_logs_written(2)
    assert streamed.is_stream and not plain.is_stream
    assert streamed.usage_reported
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert streamed.cost == plain.cost == EXPECTED_COST


def test_unknown_price_is_recorded_as_empty_not_zero(gateway, openai_client, make_deployment):
    make_deployment("unpriced", input_cost_per_token=None, output_cost_per_token=None)
    openai_client().chat.completions.create(model="unpriced", messages=MESSAGES)
    [log] = spend_logs_written(1)
    assert log.prompt_tokens == PROMPT_TOKENS
    assert log.cost is None


def test_stream_without_upstream_usage_is_estimated_and_flagged_not_priced_at_zero(
    gateway, openai_client, make_deployment
):
    make_deployment("gpt-nousage", upstream_model="no-usage")
    list(openai_client().chat.completions.create(model="gpt-nousage", messages=MESSAGES, stream=True))
    [log] = spend_logs_written(1)
    assert log.status == "success"
    assert not log.usage_reported  # estimated, and flagged as such
    assert log.prompt_tokens > 0
    assert 0 < log.completion_tokens <= 8  # "Hello from the fake upstream.", counted by the tokenizer
    assert log.cost > 0


def test_upstream_error_is_logged_as_an_error(gateway, openai_client, make_deployment):
    import openai

    make_deployment("flaky", upstream_model="error-503")
    with pytest.raises(openai.InternalServerError):
        openai_client().chat.completions.create(model="flaky", messages=MESSAGES)
    [log] = spend_logs_written(1)
    assert (log.status, log.http_status) == ("error", 503)
    assert log.cost is None


def test_client_disconnect_mid_stream_closes_upstream_and_is_still_logged(
    gateway, make_deployment, fake_openai
):
    make_deployment("endless", upstream_model="stream-forever")
    closed_before = fake_openai.closed_streams
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        json={"model": "endless", "messages": MESSAGES, "stream": True},
    ) as response:
        # The first event carries the role alone; leave once some text has come.
        for line in response.iter_lines():
            if '" more"' in line:
                break
    # The client is gone: the gateway must drop the upstream stream at once.
    assert wait_for(lambda: fake_openai.closed_streams > closed_before, timeout=5)
    [log] = spend_logs_written(1)
    assert log.status == "cancelled" and log.is_stream
    # What was used until then is still recorded (estimated: the upstream sent no usage).
    assert not log.usage_reported
    assert log.prompt_tokens > 0 and log.completion_tokens > 0
    assert log.cost > 0


def test_embeddings_are_logged_with_prompt_tokens_only(gateway, openai_client, make_deployment):
    make_deployment("embed-test")
    openai_client().embeddings.create(model="embed-test", input=["a", "b"])
    [log] = spend_logs_written(1)
    assert log.call_type == "embedding"
    assert (log.prompt_tokens, log.completion_tokens) == (8, 0)
    assert log.cost == 8 * Decimal("0.000002")


def spend_logs_written(count: int, timeout: float = 5.0) -> list:
    from apps.spend.models import SpendLog

    wait_for(lambda: SpendLog.objects.count() >= count, timeout=timeout)
    time.sleep(0.1)  # anything beyond the expected count would show up now
    logs = list(SpendLog.objects.order_by("start_time", "id"))
    assert len(logs) == count, logs
    return logs


def test_a_request_whose_metadata_holds_nul_characters_is_logged_and_blocks_no_later_one(
    gateway, openai_client, make_deployment
):
    """PostgreSQL refuses NUL in jsonb: the record keeps its metadata without them."""
    make_deployment("gpt-test")
    client = openai_client(MASTER_KEY)
    client.chat.completions.create(model="gpt-test", messages=MESSAGES, metadata={"tag": "a\u0000b"})
    client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    logs = spend_logs_written(2)
    assert {"tag": "ab"} in [{k: v for k, v in log.metadata.items() if k == "tag"} for log in logs]
