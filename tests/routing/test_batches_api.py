"""/v1/files and /v1/batches through the gateway to strict OpenAI and Azure fakes, driven by the
openai SDK: a batch file checked and rewritten for one deployment, ownership per team, the
batch's most cost reserved, and on completion one spend log priced at batch prices."""

from __future__ import annotations

from decimal import Decimal

import openai
import orjson
import pytest

from conftest import MASTER_KEY, wait_for
from tests.fakes.openai_batches import (
    API_KEY,
    CHAT_CACHED_TOKENS,
    CHAT_COMPLETION_TOKENS,
    CHAT_PROMPT_TOKENS,
    EMBEDDING_TOKENS,
    FakeBatchUpstream,
)

# gpt-4o-mini's catalog prices: $0.15 / $0.60 per million input / output tokens, cache reads
# $0.075; its batch prices are half: $0.075 / $0.30, cache reads $0.0375.
BATCH_INPUT = Decimal("0.000000075")
BATCH_OUTPUT = Decimal("0.0000003")
BATCH_CACHE_READ = Decimal("0.0000000375")


def chat_line_cost(completion_tokens: int = CHAT_COMPLETION_TOKENS) -> Decimal:
    uncached = CHAT_PROMPT_TOKENS - CHAT_CACHED_TOKENS
    return uncached * BATCH_INPUT + CHAT_CACHED_TOKENS * BATCH_CACHE_READ + completion_tokens * BATCH_OUTPUT


def jsonl(lines: list[dict]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def chat_lines(count: int, model: str = "mini", **body) -> bytes:
    return jsonl([
        {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": model, "messages": [{"role": "user", "content": f"question {i}"}], **body}}
        for i in range(count)
    ])


@pytest.fixture(scope="module")
def batch_upstream():
    server = FakeBatchUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def azure_batch_upstream():
    server = FakeBatchUpstream(azure=True, azure_deployments=("mini-global-batch",)).start()
    yield server
    server.stop()


@pytest.fixture
def batch_models(transactional_db, batch_upstream, azure_batch_upstream):
    from apps.providers.models import ModelDeployment

    batch_upstream.requests.clear()
    azure_batch_upstream.requests.clear()
    ModelDeployment.objects.create(model_name="mini", provider="openai", upstream_model="gpt-4o-mini",
                                   api_base=batch_upstream.base_url, api_key=API_KEY)
    ModelDeployment.objects.create(model_name="embed", provider="openai", upstream_model="text-embedding-3-small",
                                   api_base=batch_upstream.base_url, api_key=API_KEY)
    ModelDeployment.objects.create(model_name="azure-mini", provider="azure", upstream_model="mini-global-batch",
                                   api_base=azure_batch_upstream.url, api_key=API_KEY, api_version="2024-10-21",
                                   extra_params={"base_model": "gpt-4o-mini"})
    ModelDeployment.objects.create(model_name="azure-unknown", provider="azure", upstream_model="no-such-deployment",
                                   api_base=azure_batch_upstream.url, api_key=API_KEY, api_version="2024-10-21",
                                   extra_params={"base_model": "gpt-4o-mini"})
    ModelDeployment.objects.create(model_name="claude", provider="anthropic", upstream_model="claude-sonnet-4",
                                   api_base="http://127.0.0.1:9", api_key="sk-ant")
    ModelDeployment.objects.create(model_name="dead", provider="openai", upstream_model="gpt-4o-mini",
                                   api_base="http://127.0.0.1:9/v1", api_key=API_KEY)


@pytest.fixture
def poll():
    """What the beat task does, once the gateway's write buffer has the batches in the database."""
    from apps.routing.models import ManagedBatch
    from apps.routing.tasks import batches_poll_task

    def run(*batch_ids: str) -> dict:
        for batch_id in batch_ids:
            assert wait_for(lambda: ManagedBatch.objects.filter(pk=batch_id).exists()), batch_id
        return batches_poll_task()

    return run


def batch_spend_logs():
    """The settled batches' logs (a refused batch create has a log of its own, with no batch)."""
    from apps.spend.models import SpendLog

    logs = SpendLog.objects.filter(call_type="batch").order_by("start_time")
    return [log for log in logs if (log.metadata or {}).get("batch_id")]


def upload(client, content: bytes, name: str = "batch.jsonl", purpose: str = "batch"):
    return client.files.create(file=(name, content, "application/jsonl"), purpose=purpose)


def test_a_batch_runs_and_is_billed_once_at_batch_prices(gateway, openai_client, batch_models, batch_upstream, poll):
    from apps.keys.models import VirtualKey
    from apps.routing.models import ManagedBatch

    client = openai_client()
    uploaded = client.files.create(file=("batch.jsonl", chat_lines(3)), purpose="batch",
                                   extra_body={"custom_llm_provider": "openai"})
    assert uploaded.id.startswith("file-") and uploaded.purpose == "batch"
    [sent] = [r for r in batch_upstream.requests if r["path"] == "/v1/files"]
    assert sent["headers"]["Authorization"] == f"Bearer {API_KEY}"  # the deployment's key, not the client's
    lines = [orjson.loads(line) for line in sent["body"].splitlines()]
    assert [line["body"]["model"] for line in lines] == ["gpt-4o-mini"] * 3  # the deployment's model

    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"job": "nightly"},
                                  extra_body={"custom_llm_provider": "openai"})  # as LiteLLM's docs send it
    assert "custom_llm_provider" not in batch_upstream.requests[-1]["json"]
    assert batch.status == "in_progress" and batch.metadata == {"job": "nightly"}
    assert poll(batch.id) == {"running": 1, "settled": 0, "failed": 0}
    assert batch_spend_logs() == []

    batch_upstream.finish(batch.id)
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.request_counts.completed == 3
    output = client.files.content(done.output_file_id).content
    assert len(output.splitlines()) == 3

    assert poll(batch.id)["settled"] == 1
    [log] = batch_spend_logs()
    assert (log.model, log.status, log.cost_status) == ("mini", "success", "priced")
    assert (log.prompt_tokens, log.completion_tokens, log.cached_tokens) == (
        3 * CHAT_PROMPT_TOKENS, 3 * CHAT_COMPLETION_TOKENS, 3 * CHAT_CACHED_TOKENS)
    assert log.cost == 3 * chat_line_cost()
    assert log.metadata["batch_id"] == batch.id and log.metadata["request_counts"]["completed"] == 3
    row = ManagedBatch.objects.get(pk=batch.id)
    assert row.settled_at is not None and row.cost == log.cost and row.status == "completed"

    poll()  # settled batches are not polled again: still one log
    assert len(batch_spend_logs()) == 1
    assert VirtualKey.objects.count() == 0  # the master key: nothing to add spend to


def test_the_spend_lands_on_the_key_and_the_reservation_is_released(gateway, openai_client, batch_models,
                                                                    batch_upstream, make_key, poll):
    from apps.spend.models import SpendLog

    # Each 2-line file can cost at most 2 × (~10 prompt tokens × $0.075/M + 1000 × $0.30/M) ≈ $0.0006;
    # the budget holds one such reservation, not two.
    key, raw_key = make_key(max_budget=Decimal("0.0009"))
    client = openai_client(raw_key)
    first = client.batches.create(input_file_id=upload(client, chat_lines(2, max_tokens=1000)).id,
                                  endpoint="/v1/chat/completions", completion_window="24h")
    second_file = upload(client, chat_lines(2, max_tokens=1000))
    with pytest.raises(openai.RateLimitError) as refused:
        client.batches.create(input_file_id=second_file.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert refused.value.body["code"] == "insufficient_quota"
    # The refusal's own log, written by the spend buffer in its next batch.
    [refusal] = wait_for(lambda: list(SpendLog.objects.filter(call_type="batch", status="error")))
    assert (refusal.error_type, refusal.model) == ("insufficient_quota", "mini")

    batch_upstream.finish(first.id)
    poll(first.id)
    [log] = batch_spend_logs()
    assert log.cost == 2 * chat_line_cost()  # far less than reserved: 12 tokens answered, not 1000
    key.refresh_from_db()
    assert key.spend == log.cost
    # Settled: the reservation is gone and only the real cost counts, so the second one fits.
    client.batches.create(input_file_id=second_file.id, endpoint="/v1/chat/completions", completion_window="24h")


def test_a_cancelled_batch_costs_what_it_answered(gateway, openai_client, batch_models, batch_upstream, poll):
    client = openai_client()
    batch = client.batches.create(input_file_id=upload(client, chat_lines(5)).id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    assert client.batches.cancel(batch.id).status == "cancelling"
    batch_upstream.finish(batch.id, completed=2)
    poll(batch.id)
    [log] = batch_spend_logs()
    assert (log.status, log.cost) == ("cancelled", 2 * chat_line_cost())
    assert log.metadata["batch_status"] == "cancelled"


def test_failed_lines_cost_nothing_and_a_failed_batch_costs_zero(gateway, openai_client, batch_models,
                                                                 batch_upstream, azure_batch_upstream, poll):
    client = openai_client()
    partly = client.batches.create(input_file_id=upload(client, chat_lines(3)).id, endpoint="/v1/chat/completions",
                                   completion_window="24h")
    batch_upstream.finish(partly.id, failed={"req-0", "req-2"})
    # Azure's validation fails a batch whose lines name a deployment it does not have.
    failed = client.batches.create(input_file_id=upload(client, chat_lines(2, model="azure-unknown")).id,
                                   endpoint="/v1/chat/completions", completion_window="24h")
    assert failed.status == "failed"
    poll(partly.id, failed.id)
    logs = {log.metadata["batch_id"]: log for log in batch_spend_logs()}
    assert logs[partly.id].cost == chat_line_cost()
    assert (logs[failed.id].cost, logs[failed.id].status, logs[failed.id].error_type) == (0, "error", "batch_failed")


def test_an_embeddings_batch_is_priced_per_input_token(gateway, openai_client, batch_models, batch_upstream, poll):
    client = openai_client()
    content = jsonl([{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
                      "body": {"model": "embed", "input": "some text"}} for i in range(4)])
    batch = client.batches.create(input_file_id=upload(client, content).id, endpoint="/v1/embeddings",
                                  completion_window="24h")
    batch_upstream.finish(batch.id)
    poll(batch.id)
    [log] = batch_spend_logs()
    assert log.cost == 4 * EMBEDDING_TOKENS * Decimal("0.00000001")  # text-embedding-3-small: $0.02/M, batch $0.01/M


def test_azure_gets_its_own_spelling_and_the_client_sees_openais(gateway, openai_client, batch_models,
                                                                 azure_batch_upstream, poll):
    client = openai_client()
    uploaded = upload(client, chat_lines(2, model="azure-mini"))
    sent = next(r for r in azure_batch_upstream.requests if r["path"].startswith("/openai/files"))
    assert sent["path"] == "/openai/files?api-version=2024-10-21" and sent["headers"]["api-key"] == API_KEY
    lines = [orjson.loads(line) for line in sent["body"].splitlines()]
    assert {(line["url"], line["body"]["model"]) for line in lines} == {("/chat/completions", "mini-global-batch")}
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    created = next(r for r in azure_batch_upstream.requests if r["path"].startswith("/openai/batches"))
    assert created["json"]["endpoint"] == "/chat/completions"
    assert batch.status == "in_progress" and batch.endpoint == "/v1/chat/completions"
    azure_batch_upstream.finish(batch.id)
    assert client.batches.retrieve(batch.id).endpoint == "/v1/chat/completions"
    poll(batch.id)
    [log] = batch_spend_logs()
    assert log.cost == 2 * chat_line_cost()  # priced as its base model, at batch prices


def test_files_and_batches_belong_to_the_team(gateway, openai_client, batch_models, make_key, team, organization,
                                              poll):
    from apps.teams.services import team_create

    _, mine = make_key(team=team)
    _, teammate = make_key(team=team)
    _, outsider = make_key(team=team_create(organization=organization, alias="other"))
    owner = openai_client(mine)
    uploaded = upload(owner, chat_lines(1))
    batch = owner.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")

    assert openai_client(teammate).batches.retrieve(batch.id).id == batch.id
    assert openai_client(teammate).files.retrieve(uploaded.id).id == uploaded.id
    other = openai_client(outsider)
    for call in (lambda: other.files.retrieve(uploaded.id), lambda: other.files.content(uploaded.id),
                 lambda: other.files.delete(uploaded.id), lambda: other.batches.retrieve(batch.id),
                 lambda: other.batches.cancel(batch.id),
                 lambda: other.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                              completion_window="24h")):
        with pytest.raises(openai.NotFoundError):
            call()
    poll(batch.id)  # in the database now: the lists read it there
    assert wait_for(lambda: [f.id for f in openai_client(teammate).files.list()] == [uploaded.id])
    assert [b.id for b in openai_client(teammate).batches.list()] == [batch.id]
    assert list(other.files.list()) == [] and list(other.batches.list()) == []
    assert uploaded.id in [f.id for f in openai_client(MASTER_KEY).files.list()]


def test_a_deleted_file_is_gone_for_everyone(gateway, openai_client, batch_models, batch_upstream, make_key, team):
    _, raw_key = make_key(team=team)
    client = openai_client(raw_key)
    uploaded = upload(client, b"hello", name="notes.txt", purpose="user_data")
    assert client.files.delete(uploaded.id).deleted is True
    assert uploaded.id not in batch_upstream.files
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        openai_client().files.retrieve(uploaded.id)


def test_a_forbidden_model_is_403_and_nothing_is_uploaded(gateway, openai_client, batch_models, batch_upstream,
                                                         make_key):
    _, raw_key = make_key(models=["embed"])
    with pytest.raises(openai.PermissionDeniedError) as info:
        upload(openai_client(raw_key), chat_lines(2))
    assert info.value.body["param"] == "model"
    assert batch_upstream.requests == []


@pytest.mark.parametrize(("content", "message"), [
    (b"not json\n", "Line 1"),
    (jsonl([{"method": "POST", "url": "/v1/chat/completions", "body": {"model": "mini"}}]), "custom_id"),
    (chat_lines(1) + chat_lines(1), "used twice"),
    (chat_lines(1) + jsonl([{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions",
                             "body": {"model": "embed", "messages": []}}]), "same model"),
    (jsonl([{"custom_id": "x", "method": "GET", "url": "/v1/chat/completions", "body": {"model": "mini"}}]), "POST"),
    (jsonl([{"custom_id": "x", "method": "POST", "url": "/v1/images/generations", "body": {"model": "mini"}}]),
     "'url'"),
    (chat_lines(1, stream=True), "streamed"),
    (b"\n\n", "no request"),
])
def test_a_bad_batch_file_is_a_400_naming_the_file(gateway, openai_client, batch_models, batch_upstream, content,
                                                   message):
    with pytest.raises(openai.BadRequestError) as info:
        upload(openai_client(), content)
    assert info.value.body["param"] == "file" and message in info.value.body["message"]
    assert batch_upstream.requests == []


def test_bad_requests_are_400s_naming_the_param(gateway, openai_client, batch_models, batch_upstream):
    client = openai_client()
    with pytest.raises(openai.BadRequestError) as info:
        upload(client, chat_lines(1), purpose="homework")
    assert info.value.body["param"] == "purpose"
    with pytest.raises(openai.BadRequestError) as info:
        upload(client, chat_lines(1), name="batch.csv")
    assert info.value.body["param"] == "file"
    with pytest.raises(openai.BadRequestError) as info:
        upload(client, chat_lines(1, model="claude"))
    assert info.value.body["code"] == "batches_not_supported"
    uploaded = upload(client, chat_lines(1))
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="1h")
    assert info.value.body["param"] == "completion_window"
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    assert info.value.body["param"] == "endpoint"
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                              extra_body={"priority": "high"})
    assert info.value.body["param"] == "priority"
    notes = upload(client, b"hello", name="notes.txt", purpose="user_data")
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(input_file_id=notes.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert info.value.body["param"] == "input_file_id"
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    assert not any(r["path"].startswith("/v1/batches") for r in batch_upstream.requests)


def test_a_dead_upstream_is_a_502_and_releases_the_reservation(gateway, openai_client, batch_models, make_key):
    from apps.spend.models import SpendLog

    _, raw_key = make_key(max_budget=Decimal("1"))
    client = openai_client(raw_key)
    with pytest.raises(openai.APIStatusError) as info:
        upload(client, chat_lines(1, model="dead"))
    assert info.value.status_code == 502
    assert list(SpendLog.objects.filter(call_type="batch")) == []


def test_a_request_may_name_only_its_own_teams_files(gateway, openai_client, batch_models, make_deployment,
                                                     make_key, team, organization, fake_openai):
    from apps.teams.services import team_create

    make_deployment("gpt-test")
    _, mine = make_key(team=team)
    _, outsider = make_key(team=team_create(organization=organization, alias="other"))
    secret = upload(openai_client(mine), b"%PDF-1.4 the secret", name="secret.pdf", purpose="user_data")
    file_part = {"type": "file", "file": {"file_id": secret.id}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "Summarize it."}, file_part]}]
    with pytest.raises(openai.NotFoundError) as info:
        openai_client(outsider).chat.completions.create(model="gpt-test", messages=messages)
    assert info.value.body["param"] == "file_id"
    with pytest.raises(openai.NotFoundError):
        openai_client(outsider).responses.create(
            model="gpt-test", input=[{"role": "user", "content": [{"type": "input_file", "file_id": secret.id}]}])
    with pytest.raises(openai.NotFoundError):  # nor an id the gateway never issued
        openai_client(mine).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-x"}}]}])
    assert fake_openai.requests == []
    openai_client(mine).chat.completions.create(model="gpt-test", messages=messages)
    assert fake_openai.requests[-1]["body"]["messages"][0]["content"][1] == file_part
    # A `file_id` elsewhere (metadata, a tool's schema) names no file.
    openai_client(mine).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], metadata={"file_id": "not-a-file"},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"file_id": {"type": "string"}}}}}])


def test_a_keys_enforced_params_hold_on_every_line(gateway, openai_client, batch_models, batch_upstream, make_key):
    key, raw_key = make_key()
    key.enforced_params = ["user"]
    key.save()
    client = openai_client(raw_key)
    with pytest.raises(openai.BadRequestError) as info:
        upload(client, chat_lines(2))
    assert info.value.body["param"] == "user" and batch_upstream.requests == []
    assert upload(client, chat_lines(2, user="u1")).purpose == "batch"


def test_a_non_multipart_upload_is_a_400(gateway, batch_models, batch_upstream):
    import httpx

    response = httpx.post(gateway.url + "/v1/files", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                          json={"purpose": "batch"}, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["code"] == "unsupported_content_type"
    for path in ("/v1/files?limit=abc", "/v1/batches?limit=0", "/v1/files?order=sideways"):
        answer = httpx.get(gateway.url + path, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10)
        assert answer.status_code == 400 and answer.json()["error"]["param"] in ("limit", "order"), path
    assert batch_upstream.requests == []


@pytest.mark.skipif(not __import__("django.conf").conf.settings.REDIS_URL, reason="needs Redis")
def test_a_batch_created_while_the_database_is_down_then_lost_in_a_crash_is_still_billed(
        gateway, openai_client, batch_models, batch_upstream, monkeypatch, poll):
    """The database refuses the write buffer, then the process dies with the batch in it: Redis
    has it, the recovery task writes it, and the poll bills it as any other batch."""
    from apps.routing.batch_store import batch_store
    from apps.routing.models import ManagedBatch
    from apps.routing.tasks import owned_records_recover_task

    def database_down(records):
        raise ConnectionError("database unavailable")

    monkeypatch.setattr(batch_store, "_write_batch", database_down)
    client = openai_client()
    batch = client.batches.create(input_file_id=upload(client, chat_lines(2)).id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    assert wait_for(lambda: batch_store._pending)  # held, the database refused it
    batch_store._pending.clear()  # the crash: the buffer is gone
    monkeypatch.undo()
    assert not ManagedBatch.objects.filter(pk=batch.id).exists()
    assert owned_records_recover_task(older_than=0)["batches"] == 1
    assert owned_records_recover_task(older_than=0)["batches"] == 0  # written once
    batch_upstream.finish(batch.id)
    poll(batch.id)
    [log] = batch_spend_logs()
    assert log.cost == 2 * chat_line_cost()


@pytest.fixture
def fast_batch_poll(settings):
    settings.GATEWAY_BATCH_POLL_INTERVAL = 0.2


def test_without_a_broker_the_server_follows_and_bills_the_batches_itself(fast_batch_poll, gateway, openai_client,
                                                                         batch_models, batch_upstream, make_key):
    """The embedded default (`make run`) has no Celery beat: the server process polls."""
    key, raw_key = make_key(max_budget=Decimal("1"))
    client = openai_client(raw_key)
    batch = client.batches.create(input_file_id=upload(client, chat_lines(2)).id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    batch_upstream.finish(batch.id)
    [log] = wait_for(batch_spend_logs, timeout=10)
    assert log.cost == 2 * chat_line_cost()
    key.refresh_from_db()
    assert key.spend == log.cost
