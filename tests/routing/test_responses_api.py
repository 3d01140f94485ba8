"""POST /v1/responses (and GET, DELETE, cancel, input_items) driven by the official openai SDK:
natively to an OpenAI deployment, translated to chat for an Anthropic one, against the fakes'
real wire formats (tests/fakes/openai_responses.py, anthropic_upstream.py)."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from conftest import MASTER_KEY, wait_for
from tests.fakes.brain import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS_BASE, expected_text

INPUT_PRICE = Decimal("0.000003")
OUTPUT_PRICE = Decimal("0.000015")
CACHE_READ_PRICE = Decimal("0.0000003")
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def models(provider_fakes, transactional_db):
    """gpt-native (OpenAI's Responses API) and claude (Anthropic, translated), priced."""
    from apps.providers.models import ModelDeployment

    fakes = {}
    for name, provider, upstream in (("gpt-native", "openai", "fake-model"), ("claude", "anthropic", "fake-model"),
                                     ("gpt-429", "openai", "error-429")):
        fake = fakes[provider] = provider_fakes(provider)
        ModelDeployment.objects.create(
            model_name=name, provider=provider, upstream_model=fake.upstream_model(upstream),
            input_cost_per_token=INPUT_PRICE, output_cost_per_token=OUTPUT_PRICE,
            cache_read_input_token_cost=CACHE_READ_PRICE, **fake.deployment_fields())
    for fake in fakes.values():
        fake.requests.clear()
    return fakes


@pytest.fixture
def client(gateway):
    def make(api_key: str = MASTER_KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0)

    return make


@pytest.mark.parametrize("model", ["gpt-native", "claude"])
def test_plain_response(client, models, model):
    response = client().responses.create(model=model, instructions="Be terse.", input="Hello")
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == expected_text("Be terse.", 1, "Hello")
    assert response.output[0].type == "message" and response.output[0].role == "assistant"
    assert response.usage.input_tokens == PROMPT_TOKENS_BASE + 3
    assert response.usage.output_tokens == COMPLETION_TOKENS
    assert response.usage.input_tokens_details.cached_tokens == CACHED_TOKENS
    assert response.id.startswith("resp_")


def test_openai_is_native_and_anthropic_translated(client, models):
    client().responses.create(model="gpt-native", input="Hello")
    client().responses.create(model="claude", input="Hello")
    assert [r["path"] for r in models["openai"].requests] == ["/v1/responses"]
    [anthropic_request] = models["anthropic"].requests
    assert anthropic_request["path"].endswith("/messages")


@pytest.mark.parametrize("model", ["gpt-native", "claude"])
def test_streamed_events_and_final_response(client, models, model):
    plain = client().responses.create(model=model, input="Hello")
    with client().responses.stream(model=model, input="Hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    for kind in ("response.created", "response.output_item.added", "response.content_part.added",
                 "response.output_text.delta", "response.output_item.done", "response.completed"):
        assert kind in kinds, kind
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == plain.output_text
    assert final.output_text == plain.output_text
    assert final.usage.output_tokens == COMPLETION_TOKENS


@pytest.mark.parametrize("model", ["gpt-native", "claude"])
def test_function_tool_round_trip(client, models, model):
    first = client().responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and '"Paris"' in call.arguments and call.call_id
    second = client().responses.create(
        model=model, previous_response_id=first.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}])
    assert second.output_text == "tool results: get_weather=18C"
    assert second.previous_response_id == first.id


@pytest.mark.parametrize("model", ["gpt-native", "claude"])
def test_streamed_function_call_arguments(client, models, model):
    with client().responses.stream(model=model, input="Weather in Paris?", tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    [call] = [item for item in final.output if item.type == "function_call"]
    assert deltas == call.arguments and '"Paris"' in deltas


@pytest.mark.parametrize("model", ["gpt-native", "claude"])
def test_previous_response_id_continues_the_conversation(client, models, model):
    first = client().responses.create(model=model, instructions="Be terse.", input="Hi")
    second = client().responses.create(model=model, instructions="Be terse.", input="Weather in Paris?",
                                       previous_response_id=first.id)
    # Three turns reached the upstream: Hi, the first answer, and the new question.
    assert second.output_text == expected_text("Be terse.", 3, "Weather in Paris?")


def test_native_continuation_reuses_the_upstream_id(client, models):
    first = client().responses.create(model="gpt-native", input="Hi")
    client().responses.create(model="gpt-native", input="Again", previous_response_id=first.id)
    last = models["openai"].requests[-1]["body"]
    assert last["previous_response_id"] == first.id and last["input"] == "Again"


def test_continuation_across_providers_rebuilds_the_conversation(client, models):
    first = client().responses.create(model="claude", input="Hi")
    second = client().responses.create(model="gpt-native", input="Weather in Paris?", previous_response_id=first.id)
    assert second.output_text == expected_text(None, 3, "Weather in Paris?")
    sent = models["openai"].requests[-1]["body"]
    assert "previous_response_id" not in sent and len(sent["input"]) == 3


def test_retrieve_input_items_delete(client, models):
    created = client().responses.create(model="claude", input="Hello")
    fetched = client().responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == created.output_text
    items = client().responses.input_items.list(created.id)
    assert [item.type for item in items.data] == ["message"]
    deleted = client().responses.delete(created.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client().responses.retrieve(created.id)


def test_store_false_is_not_kept(client, models):
    created = client().responses.create(model="claude", input="Hello", store=False)
    with pytest.raises(openai.NotFoundError):
        client().responses.retrieve(created.id)


def test_another_team_gets_404(client, models, make_key, organization):
    from apps.teams.services import team_create

    red = team_create(organization=organization, alias="red")
    blue = team_create(organization=organization, alias="blue")
    _, red_key = make_key(team=red)
    _, red_key_2 = make_key(team=red)
    _, blue_key = make_key(team=blue)
    created = client(red_key).responses.create(model="claude", input="Hello")
    assert client(red_key_2).responses.retrieve(created.id).id == created.id  # the same team
    with pytest.raises(openai.NotFoundError):
        client(blue_key).responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError) as info:
        client(blue_key).responses.create(model="claude", input="Hi", previous_response_id=created.id)
    assert info.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        client(blue_key).responses.delete(created.id)


def test_a_continuation_refused_before_routing_is_a_spend_row(client, models, spend_logs):
    """As every refusal before routing: the key's audit trail has it (status error, no cost)."""
    with pytest.raises(openai.NotFoundError):
        client().responses.create(model="claude", input="Hi", previous_response_id="resp_nobody")
    [log] = spend_logs(1)
    assert (log.call_type, log.status, log.http_status, log.error_type) == (
        "responses", "error", 404, "previous_response_not_found")
    assert log.cost is None and log.metadata["requested_model"] == "claude"


def test_stored_responses_reach_the_database_and_are_purged(client, models):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from apps.routing.models import StoredResponse

    created = client().responses.create(model="claude", input="Hello")
    row = wait_for(lambda: StoredResponse.objects.filter(pk=created.id).first())
    assert row is not None and row.model == "claude" and row.output_items[0]["type"] == "message"
    assert row.deployment_id is not None and not row.native
    StoredResponse.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=40))
    call_command("purge_stored_responses", "--older-than", "30d")
    assert not StoredResponse.objects.filter(pk=row.pk).exists()


def test_cancel_is_refused_for_a_foreground_response(client, models):
    created = client().responses.create(model="claude", input="Hello")
    with pytest.raises(openai.BadRequestError):
        client().responses.cancel(created.id)


def test_builtin_tool_passes_to_openai_and_is_refused_elsewhere(client, models):
    client().responses.create(model="gpt-native", input="Hello", tools=[{"type": "web_search"}])
    assert models["openai"].requests[-1]["body"]["tools"] == [{"type": "web_search"}]
    with pytest.raises(openai.BadRequestError) as info:
        client().responses.create(model="claude", input="Hello", tools=[WEATHER, {"type": "web_search"}])
    assert info.value.body["param"] == "tools[1].type" and "web_search" in info.value.body["message"]


def test_unknown_parameter_is_a_400_naming_it(client, models):
    with pytest.raises(openai.BadRequestError) as info:
        client().responses.create(model="claude", input="Hello", extra_body={"bogus": 1})
    assert info.value.body["param"] == "bogus"


def test_forbidden_model_is_403(client, models, make_key):
    _, key = make_key(models=["gpt-native"])
    with pytest.raises(openai.PermissionDeniedError):
        client(key).responses.create(model="claude", input="Hello")


def test_exhausted_budget_is_insufficient_quota(client, models, make_key):
    _, key = make_key(max_budget=Decimal("0.0001"))
    statuses = []
    for _ in range(8):
        try:
            client(key).responses.create(model="claude", input="Hello", max_output_tokens=50)
            statuses.append(200)
        except openai.RateLimitError as error:
            statuses.append(429)
            assert error.body["code"] == "insufficient_quota"
            break
    assert statuses[-1] == 429


def test_upstream_error_keeps_its_status(client, models):
    with pytest.raises(openai.RateLimitError):
        client().responses.create(model="gpt-429", input="Hello")


@pytest.mark.parametrize("model", ["gpt-native", "claude"])
def test_spend_log_cost_by_hand(client, models, spend_logs, model):
    client().responses.create(model=model, input="Hello")
    [log] = spend_logs(1)
    assert log.call_type == "responses" and log.model == model
    prompt, completion = PROMPT_TOKENS_BASE + 3, COMPLETION_TOKENS
    cached = log.cached_tokens
    assert (log.prompt_tokens, log.completion_tokens) == (prompt, completion)
    # Cached input tokens at the cache-read price, the rest at the input price.
    expected = (prompt - cached) * INPUT_PRICE + cached * CACHE_READ_PRICE + completion * OUTPUT_PRICE
    assert log.cost == expected


def test_the_purge_runs_on_beat_and_keeps_with_zero_retention(settings, transactional_db):
    from apps.routing.tasks import stored_responses_purge_task

    assert settings.CELERY_BEAT_SCHEDULE["responses-purge"]["task"] == "routing.stored_responses_purge"
    settings.GATEWAY_RESPONSES_RETENTION = 0
    assert stored_responses_purge_task() == 0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_reasoning_summary_and_thinking_round_trip_on_anthropic(client, models, stream):
    """Claude's thinking comes back as a reasoning item (its summary the thinking text, its signed
    blocks opaque in encrypted_content), and goes back to Claude on the tool result's turn, as
    Anthropic requires when thinking is on: by previous_response_id, and by the items themselves."""
    from tests.fakes.anthropic_upstream import THINKING_SIGNATURE, THINKING_TEXT

    kwargs = {"model": "claude", "tools": [WEATHER], "reasoning": {"effort": "low"}, "max_output_tokens": 2048}

    def ask(**more):
        if not stream:
            return client().responses.create(**kwargs, **more)
        with client().responses.stream(**kwargs, **more) as events:
            seen = [e.type for e in events]
            final = events.get_final_response()
        assert "response.reasoning_summary_text.delta" in seen
        return final

    first = ask(input="Weather in Paris?")
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == THINKING_TEXT
    assert reasoning.encrypted_content and call.type == "function_call"
    second = ask(previous_response_id=first.id,
                 input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}])
    assert second.output_text == "tool results: get_weather=18C"
    sent = models["anthropic"].requests[-1]["body"]["messages"][-2]["content"][0]
    assert sent == {"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE}
    # The same exchange sent item by item, nothing stored.
    third = ask(store=False, input=[
        {"role": "user", "content": "Weather in Paris?"},
        reasoning.model_dump(exclude_none=True),
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C"},
    ])
    assert third.output_text == "tool results: get_weather=18C"


@pytest.mark.skipif(not __import__("django.conf").conf.settings.REDIS_URL, reason="needs Redis")
def test_with_redis_another_replica_finds_a_response_before_the_database_has_it(client, models, settings):
    from apps.routing.models import StoredResponse
    from apps.routing.responses_store import response_store

    settings.GATEWAY_SPEND_FLUSH_INTERVAL = 60  # the batch is not written during the test
    created = client().responses.create(model="claude", input="Hello")
    wait_for(lambda: False, timeout=0.3)  # the background put into Redis
    response_store.forget()  # as another replica: nothing in process memory
    assert not StoredResponse.objects.filter(pk=created.id).exists()
    second = client().responses.create(model="claude", input="Weather in Paris?", previous_response_id=created.id)
    assert second.output_text == expected_text(None, 3, "Weather in Paris?")
    response_store.forget()
    client().responses.delete(created.id)
    response_store.forget()
    with pytest.raises(openai.NotFoundError):
        client().responses.retrieve(created.id)


def test_a_delete_before_the_buffered_write_is_not_undone_by_it(transactional_db):
    """Another replica may still hold the response in its write buffer when this one deletes
    it: that later write must find a tombstone and leave the response deleted."""
    from datetime import datetime, timezone

    from apps.routing.models import StoredResponse
    from apps.routing.responses_store import ResponseRecord
    from apps.routing.selectors import stored_response_get
    from apps.routing.services import stored_response_delete, stored_responses_write

    record = ResponseRecord(id="resp_race", key_hash="h", key_id=None, team_id=None, organization_id=None,
                            model="claude", deployment_id=None, native=False, previous_response_id="",
                            input_items=[{"role": "user", "content": "secret"}], response={"id": "resp_race"},
                            created_at=datetime.now(timezone.utc))
    stored_response_delete(response_id="resp_race")
    stored_responses_write(records=[record])
    assert stored_response_get(response_id="resp_race") is None
    row = StoredResponse.objects.get(pk="resp_race")
    assert row.deleted_at is not None and row.input_items == [] and row.response == {}


def test_a_delete_reaches_the_other_replicas_caches(client, models):
    """Replica B cached the response; the delete on A publishes a message B applies."""
    from apps.core import invalidation
    from apps.routing.responses_store import KIND_RESPONSE_DELETED

    created = client().responses.create(model="claude", input="Hello")
    assert client().responses.retrieve(created.id).id == created.id
    invalidation.apply({"kind": KIND_RESPONSE_DELETED, "id": created.id})  # what B's listener does
    with pytest.raises(openai.NotFoundError):
        client().responses.retrieve(created.id)


def test_a_delete_missed_while_disconnected_is_seen_after_the_reconnect(client, models):
    """Another replica deleted the response while this one's subscription was down: the delete
    message is lost, so the reconnect drops the cache and the next read finds the tombstone."""
    from apps.core import invalidation
    from apps.core.redis import redis_enabled, redis_key, sync_redis
    from apps.routing.services import stored_response_delete

    created = client().responses.create(model="claude", input="Hello")
    assert client().responses.retrieve(created.id).id == created.id  # cached in this process
    stored_response_delete(created.id)  # what replica B's delete writes...
    if redis_enabled():
        sync_redis().delete(redis_key("responses", "{responses}", created.id))  # ...and removes from the bridge
    assert client().responses.retrieve(created.id).id == created.id  # no message came: still cached
    invalidation.apply_everything()  # what the listener does when it (re)subscribes
    with pytest.raises(openai.NotFoundError):
        client().responses.retrieve(created.id)
