"""/anthropic/*, /openai/*, /azure/* and /gemini/*: the providers' own APIs forwarded, driven by
the native SDKs (anthropic, openai, AzureOpenAI) and by plain HTTP for Gemini's, against fakes
that check the provider's key, version header and body as the real APIs do."""

from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from conftest import MASTER_KEY
from tests.fakes import anthropic_upstream, gemini_upstream, openai_chat_upstream

PRICES = {
    "input_cost_per_token": Decimal("0.000003"),
    "output_cost_per_token": Decimal("0.000015"),
    "cache_read_input_token_cost": Decimal("0.0000003"),
}


def expected_cost(log) -> Decimal:
    fresh = log.prompt_tokens - log.cached_tokens
    return (fresh * PRICES["input_cost_per_token"] + log.cached_tokens * PRICES["cache_read_input_token_cost"]
            + log.completion_tokens * PRICES["output_cost_per_token"])


@pytest.fixture
def claude(provider_fakes, transactional_db):
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("anthropic")
    fake.server.requests.clear()
    ModelDeployment.objects.create(model_name="claude-team", provider="anthropic",
                                   upstream_model="claude-fake-1", **fake.deployment_fields(), **PRICES)
    ModelDeployment.objects.create(model_name="claude-overloaded", provider="anthropic",
                                   upstream_model="error-529", **fake.deployment_fields(), **PRICES)
    return fake


@pytest.fixture
def gpt(provider_fakes, transactional_db):
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("openai")
    fake.server.requests.clear()
    ModelDeployment.objects.create(model_name="gpt-team", provider="openai", upstream_model="fake-model",
                                   **fake.deployment_fields(), **PRICES)
    return fake


def anthropic_client(gateway, key=MASTER_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url + "/anthropic", api_key=key, max_retries=0)


def only_log(spend_logs):
    logs = spend_logs(1)
    assert len(logs) == 1, logs
    return logs[0]


def test_anthropic_sdk_message_goes_to_the_deployment_with_its_key_and_model(gateway, claude, spend_logs,
                                                                            make_key):
    _, raw_key = make_key(models=["claude-team"])
    reply = anthropic_client(gateway, raw_key).messages.create(
        model="claude-team", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert reply.type == "message" and reply.content[0].type == "text"
    seen = claude.server.requests[-1]
    assert seen["body"]["model"] == "claude-fake-1"
    assert seen["headers"]["x-api-key"] == anthropic_upstream.API_KEY
    assert raw_key not in str(seen["headers"])  # the virtual key never leaves the gateway
    log = only_log(spend_logs)
    assert log.call_type == "pass_through_endpoint" and log.provider == "anthropic"
    assert log.model == "claude-team" and log.status == "success"
    assert log.prompt_tokens == reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0)
    assert log.completion_tokens == reply.usage.output_tokens > 0
    assert log.cost == expected_cost(log) > 0


def test_anthropic_sdk_stream_is_relayed_as_is_and_priced_from_its_events(gateway, claude, spend_logs):
    with anthropic_client(gateway).messages.stream(
        model="claude-team", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens > 0
    log = only_log(spend_logs)
    assert log.is_stream and log.status == "success"
    assert log.completion_tokens == final.usage.output_tokens
    assert log.prompt_tokens == final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0)
    assert log.cost == expected_cost(log) > 0


def test_the_providers_own_name_of_the_model_reaches_its_group(gateway, claude, spend_logs):
    reply = anthropic_client(gateway).messages.create(
        model="claude-fake-1", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert reply.type == "message"
    log = only_log(spend_logs)
    assert log.model == "claude-fake-1" and log.upstream_model == "claude-fake-1" and log.cost > 0


def test_a_model_the_key_may_not_use_is_403_and_reaches_no_upstream(gateway, claude, make_key):
    _, raw_key = make_key(models=["gpt-team"])
    with pytest.raises(anthropic.PermissionDeniedError):
        anthropic_client(gateway, raw_key).messages.create(
            model="claude-team", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert claude.server.requests == []


def test_an_exhausted_budget_is_429_and_reaches_no_upstream(gateway, claude, make_key):
    _, raw_key = make_key(max_budget=Decimal("0"))
    with pytest.raises(anthropic.RateLimitError) as info:
        anthropic_client(gateway, raw_key).messages.create(
            model="claude-team", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert "budget" in info.value.message
    assert claude.server.requests == []


def test_an_upstream_error_comes_back_as_the_provider_wrote_it(gateway, claude, spend_logs):
    with pytest.raises(anthropic.APIStatusError) as info:
        anthropic_client(gateway).messages.create(
            model="claude-overloaded", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"
    log = only_log(spend_logs)
    assert log.status == "error" and log.http_status == 529 and log.cost is None


def test_an_unknown_model_is_404_and_a_key_is_needed(gateway, claude):
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client(gateway).messages.create(
            model="nobody", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(gateway, "sk-not-a-key").messages.create(
            model="claude-team", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert claude.server.requests == []


def test_a_model_without_a_deployment_of_that_provider_is_a_400(gateway, claude, gpt):
    with pytest.raises(anthropic.BadRequestError) as info:
        anthropic_client(gateway).messages.create(
            model="gpt-team", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert "no anthropic deployment" in info.value.message


def test_openai_sdk_through_openai_passthrough_plain_and_streamed(gateway, gpt, spend_logs):
    client = openai.OpenAI(base_url=gateway.url + "/openai/v1", api_key=MASTER_KEY, max_retries=0)
    reply = client.chat.completions.create(model="gpt-team", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content
    chunks = list(client.chat.completions.create(model="gpt-team", stream=True,
                                                 messages=[{"role": "user", "content": "Hi"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply.choices[0].message.content
    assert [r["body"]["model"] for r in gpt.server.requests] == ["fake-model", "fake-model"]
    # Usage asked for on the stream, so the streamed call is priced like the plain one.
    assert gpt.server.requests[1]["body"]["stream_options"] == {"include_usage": True}
    assert gpt.server.requests[1]["headers"]["Authorization"] == f"Bearer {openai_chat_upstream.API_KEY}"
    plain, streamed = spend_logs(2)
    assert streamed.is_stream and not plain.is_stream
    for log in (plain, streamed):
        assert log.call_type == "pass_through_endpoint" and log.prompt_tokens == reply.usage.prompt_tokens
        assert log.completion_tokens == reply.usage.completion_tokens
        assert log.cost == expected_cost(log) > 0


def test_azure_sdk_through_azure_passthrough(gateway, provider_fakes, spend_logs):
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("azure")
    ModelDeployment.objects.create(model_name="gpt-azure", provider="azure", upstream_model="my-deployment",
                                   **fake.deployment_fields(), **PRICES)
    client = openai.AzureOpenAI(azure_endpoint=gateway.url + "/azure", api_key=MASTER_KEY,
                                api_version="2024-10-21", max_retries=0)
    reply = client.chat.completions.create(model="gpt-azure", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content
    seen = fake.server.requests[-1]
    assert seen["path"].startswith("/openai/deployments/my-deployment/chat/completions?api-version=")
    assert seen["headers"]["api-key"] == openai_chat_upstream.API_KEY
    log = only_log(spend_logs)
    assert log.provider == "azure" and log.cost == expected_cost(log) > 0


def test_gemini_native_generate_content_with_the_key_in_the_query(gateway, provider_fakes, spend_logs):
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("gemini")
    ModelDeployment.objects.create(model_name="gemini-team", provider="gemini", upstream_model="gemini-fake",
                                   **fake.deployment_fields(), **PRICES)
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    answer = httpx.post(f"{gateway.url}/gemini/v1beta/models/gemini-team:generateContent?key={MASTER_KEY}"
                        f"&%6Bey={MASTER_KEY}", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usageMetadata"]
    seen = fake.server.requests[-1]
    assert "/models/gemini-fake:generateContent" in seen["path"] and MASTER_KEY not in seen["path"]
    log = only_log(spend_logs)
    assert log.provider == "gemini" and log.prompt_tokens == usage["promptTokenCount"]
    assert log.cost == expected_cost(log) > 0
    assert gemini_upstream.API_KEY  # the fake checked its own key


def test_a_native_call_may_not_make_the_deployment_read_a_file_uri_it_does_not_allow(gateway, provider_fakes):
    """fileData names an object the deployment's credentials read: not the operator's, nor a
    tenant's, unless the deployment lists its prefix. The uploaded-file ids of another team are
    refused the same way (a 404, as for /v1)."""
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("gemini")
    ModelDeployment.objects.create(model_name="gemini-files", provider="gemini", upstream_model="gemini-fake",
                                   **fake.deployment_fields(), **PRICES)
    count = len(fake.server.requests)
    body = {"contents": [{"role": "user", "parts": [
        {"text": "Describe"}, {"fileData": {"fileUri": "gs://operator-private/plan.pdf", "mimeType": "application/pdf"}}]}]}
    answer = httpx.post(f"{gateway.url}/gemini/v1beta/models/gemini-files:generateContent",
                        headers={"x-goog-api-key": MASTER_KEY}, json=body, timeout=30)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "file_uri_not_allowed"
    assert len(fake.server.requests) == count


def test_the_model_list_goes_to_a_deployment_the_key_may_use(gateway, claude, make_key, spend_logs):
    _, allowed = make_key(models=["claude-team"])
    _, other = make_key(models=["gpt-team"])
    answer = httpx.get(f"{gateway.url}/anthropic/v1/models", headers={"x-api-key": other}, timeout=30)
    assert answer.status_code == 403, answer.text
    assert claude.server.requests == []
    models = anthropic_client(gateway, allowed).models.list()
    assert [m.id for m in models.data] == ["claude-fake-1"]
    assert claude.server.requests[-1]["headers"]["x-api-key"] == anthropic_upstream.API_KEY
    logs = spend_logs(2)
    assert logs[-1].status == "success" and logs[-1].cost is None and logs[-1].prompt_tokens == 0


@pytest.mark.parametrize("method, path", [
    ("GET", "/openai/v1/files"),
    ("POST", "/openai/v1/batches"),
    ("POST", "/openai/v1/fine_tuning/jobs"),
    ("DELETE", "/openai/v1/files/file-123"),
    ("GET", "/anthropic/v1/messages/batches"),
    ("POST", "/azure/openai/files"),
    ("GET", "/gemini/v1beta/files"),
    ("GET", "/openai/v1/../v1/files"),
    ("POST", "/openai/v1/images/generations"),
    ("POST", "/openai/v1/responses"),
    ("POST", "/gemini/v1beta/models/gemini-team:batchEmbedContents"),
])
def test_account_wide_resources_are_not_forwarded(gateway, gpt, claude, method, path):
    """One provider account serves every tenant: its files, batches and fine-tunes would be shared."""
    answer = httpx.request(method, gateway.url + path, headers={"Authorization": f"Bearer {MASTER_KEY}"},
                           json={"model": "gpt-team"}, timeout=30)
    assert answer.status_code in (403, 404), answer.text
    assert set(answer.json()["error"]) >= {"message", "type", "param", "code"}
    assert gpt.server.requests == [] and claude.server.requests == []


def test_a_post_whose_model_the_gateway_cannot_read_is_refused(gateway, gpt):
    """A multipart upload's model field could name any model of the account: not forwarded."""
    answer = httpx.post(gateway.url + "/openai/v1/embeddings",
                        headers={"Authorization": f"Bearer {MASTER_KEY}"},
                        files={"file": ("a.mp3", b"ID3", "audio/mpeg")}, data={"model": "whisper-1"}, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "model"
    assert gpt.server.requests == []


@pytest.mark.parametrize("alt_sse", [True, False])
def test_gemini_native_stream_is_priced_with_or_without_alt_sse(gateway, provider_fakes, spend_logs, alt_sse):
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("gemini")
    ModelDeployment.objects.create(model_name="gemini-team", provider="gemini", upstream_model="gemini-fake",
                                   **fake.deployment_fields(), **PRICES)
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    answer = httpx.post(f"{gateway.url}/gemini/v1beta/models/gemini-team:streamGenerateContent",
                        params={"alt": "sse"} if alt_sse else {}, json=body, timeout=30,
                        headers={"x-goog-api-key": MASTER_KEY})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream" if alt_sse else "application/json")
    if not alt_sse:  # relayed as it came (chunked), not read whole first
        assert answer.headers.get("transfer-encoding") == "chunked" and answer.json()[-1]["usageMetadata"]
    log = only_log(spend_logs)
    assert log.status == "success" and log.completion_tokens > 0 and log.prompt_tokens > 0
    assert log.cost == expected_cost(log) > 0


def test_an_upstream_stream_cut_midway_is_logged_as_an_error_with_the_usage_seen(gateway, provider_fakes,
                                                                                  spend_logs):
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("anthropic")
    ModelDeployment.objects.create(model_name="claude-cut", provider="anthropic", upstream_model="cut",
                                   **fake.deployment_fields(), **PRICES)
    with pytest.raises(anthropic.APIError):
        with anthropic_client(gateway).messages.stream(
            model="claude-cut", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            for _ in stream.text_stream:
                pass
    log = only_log(spend_logs)
    assert (log.status, log.error_type, log.http_status) == ("error", "upstream_disconnected", 502)
    assert log.prompt_tokens > 0  # message_start arrived before the cut


def test_azure_openai_clients_pointed_at_the_gateway_use_its_own_routes(gateway, make_deployment, spend_logs):
    """LiteLLM serves /openai/deployments/{model}/... for AzureOpenAI clients: the gateway's own
    chat and embeddings, not the pass-through (any deployment of the model serves them)."""
    make_deployment("gpt-test")
    client = openai.AzureOpenAI(azure_endpoint=gateway.url, api_key=MASTER_KEY, api_version="2024-10-21",
                                max_retries=0)
    reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content
    chunks = list(client.chat.completions.create(model="gpt-test", stream=True,
                                                 messages=[{"role": "user", "content": "Hi"}]))
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert client.embeddings.create(model="gpt-test", input="hi").data
    logs = spend_logs(3)
    assert [log.call_type for log in logs] == ["chat_completion", "chat_completion", "embedding"]
    assert all(log.model == "gpt-test" and log.cost > 0 for log in logs)


def test_an_error_event_in_the_stream_reaches_the_client_and_the_log(gateway, provider_fakes, spend_logs):
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("anthropic")
    ModelDeployment.objects.create(model_name="claude-flaky", provider="anthropic",
                                   upstream_model="overloaded-midstream", **fake.deployment_fields(), **PRICES)
    with pytest.raises(anthropic.APIStatusError):
        with anthropic_client(gateway).messages.stream(
            model="claude-flaky", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            for _ in stream.text_stream:
                pass
    log = only_log(spend_logs)
    assert log.status == "error" and log.error_type and log.prompt_tokens > 0


@pytest.fixture
def bedrock_runtime(gateway):
    """botocore's bedrock-runtime client pointed at /bedrock, sending the virtual key as a bearer
    token instead of signing (as Claude Code does with CLAUDE_CODE_SKIP_BEDROCK_AUTH and a custom
    Authorization header; botocore's own bearer auth insists on HTTPS)."""
    import botocore
    import botocore.config
    import botocore.session

    def make(key=MASTER_KEY):
        client = botocore.session.get_session().create_client(
            "bedrock-runtime", region_name="us-east-1", endpoint_url=gateway.url + "/bedrock",
            config=botocore.config.Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1}),
        )

        def bearer(request, **kwargs):
            request.headers["Authorization"] = f"Bearer {key}"

        client.meta.events.register("before-send.bedrock-runtime.*", bearer)
        return client

    return make


@pytest.fixture
def bedrock_models(provider_fakes, transactional_db):
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("bedrock")
    fake.server.requests.clear()
    ModelDeployment.objects.create(model_name="claude-bedrock", provider="bedrock",
                                   upstream_model="anthropic.claude-fake-v1:0", **fake.deployment_fields(), **PRICES)
    ModelDeployment.objects.create(model_name="llama-bedrock", provider="bedrock",
                                   upstream_model="meta.llama-fake-v1:0", **fake.deployment_fields(), **PRICES)
    return fake


def test_bedrock_converse_and_its_stream_through_botocore(bedrock_runtime, bedrock_models, spend_logs):
    client = bedrock_runtime()
    messages = [{"role": "user", "content": [{"text": "Hi"}]}]
    reply = client.converse(modelId="llama-bedrock", messages=messages)
    assert reply["output"]["message"]["content"][0]["text"]
    streamed = client.converse_stream(modelId="llama-bedrock", messages=messages)
    events = list(streamed["stream"])
    assert any("contentBlockDelta" in e for e in events) and any("metadata" in e for e in events)
    seen = bedrock_models.server.requests
    assert [r["path"] for r in seen] == ["/model/meta.llama-fake-v1:0/converse",
                                         "/model/meta.llama-fake-v1:0/converse-stream"]
    assert all(r["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 ") for r in seen)  # signed by us
    plain, stream = spend_logs(2)
    for log in (plain, stream):
        assert log.provider == "bedrock" and log.call_type == "pass_through_endpoint"
        assert log.prompt_tokens == reply["usage"]["inputTokens"] + reply["usage"].get("cacheReadInputTokens", 0)
        assert log.completion_tokens == reply["usage"]["outputTokens"] > 0
        assert log.cost == expected_cost(log) > 0


def test_bedrock_invoke_with_claude_bodies_plain_and_streamed(bedrock_runtime, bedrock_models, spend_logs):
    import json

    client = bedrock_runtime()
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                       "messages": [{"role": "user", "content": "Hi"}]})
    answer = json.loads(client.invoke_model(modelId="claude-bedrock", body=body)["body"].read())
    assert answer["type"] == "message" and answer["usage"]["output_tokens"] > 0
    streamed = client.invoke_model_with_response_stream(modelId="claude-bedrock", body=body)
    inner = [json.loads(e["chunk"]["bytes"]) for e in streamed["body"]]
    assert inner[0]["type"] == "message_start" and inner[-1]["type"] == "message_stop"
    plain, stream = spend_logs(2)
    for log in (plain, stream):
        assert log.completion_tokens == answer["usage"]["output_tokens"]
        assert log.prompt_tokens == answer["usage"]["input_tokens"] + answer["usage"]["cache_read_input_tokens"]
        assert log.cost == expected_cost(log) > 0


def test_bedrock_invoke_of_another_family_is_a_400(bedrock_runtime, bedrock_models):
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError) as info:
        bedrock_runtime().invoke_model(modelId="llama-bedrock", body=b'{"prompt": "Hi"}')
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert bedrock_models.server.requests == []


def test_vertex_claude_through_the_anthropic_vertex_sdk(gateway, provider_fakes, spend_logs):
    """AnthropicVertex sends the virtual key as its access token; the client's own project and
    region become the deployment's, and its token the deployment's."""
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("vertex_ai/claude")
    fake.server.requests.clear()
    ModelDeployment.objects.create(model_name="claude-vertex", provider="vertex_ai",
                                   upstream_model="claude-sonnet-fake", **fake.deployment_fields(), **PRICES)
    client = anthropic.AnthropicVertex(region="europe-west1", project_id="my-own-project",
                                       base_url=gateway.url + "/vertex_ai/v1", access_token=MASTER_KEY,
                                       max_retries=0)
    # Vertex documents anthropic_version "vertex-2023-10-16" (what the fake insists on); this SDK
    # release defaults to its own API version, so the documented one is given (sent on as it is).
    version = {"anthropic_version": "vertex-2023-10-16"}
    reply = client.messages.create(model="claude-vertex", max_tokens=50, extra_body=version,
                                   messages=[{"role": "user", "content": "Hi"}])
    assert reply.content[0].text
    with client.messages.stream(model="claude-vertex", max_tokens=50, extra_body=version,
                                messages=[{"role": "user", "content": "Hi"}]) as stream:
        assert "".join(stream.text_stream) == reply.content[0].text
    seen = fake.server.requests
    assert [r["path"].split("/models/")[1] for r in seen] == ["claude-sonnet-fake:rawPredict",
                                                             "claude-sonnet-fake:streamRawPredict"]
    assert f"/projects/{anthropic_upstream.VERTEX_PROJECT}/locations/{anthropic_upstream.VERTEX_LOCATION}/" in seen[0]["path"]
    assert seen[0]["headers"]["Authorization"] == f"Bearer {anthropic_upstream.VERTEX_TOKEN}"
    plain, streamed = spend_logs(2)
    for log in (plain, streamed):
        assert log.provider == "vertex_ai" and log.completion_tokens == reply.usage.output_tokens
        assert log.cost == expected_cost(log) > 0


def test_vertex_gemini_generate_content(gateway, provider_fakes, spend_logs):
    from apps.providers.models import ModelDeployment

    fake = provider_fakes("vertex_ai")
    fake.server.requests.clear()
    ModelDeployment.objects.create(model_name="gemini-vertex", provider="vertex_ai", upstream_model="gemini-fake",
                                   **fake.deployment_fields(), **PRICES)
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    path = "/vertex_ai/v1/projects/mine/locations/asia-east1/publishers/google/models/gemini-vertex:generateContent"
    answer = httpx.post(gateway.url + path, json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"},
                        timeout=30)
    assert answer.status_code == 200, answer.text
    seen = fake.server.requests[-1]
    assert f"/projects/{gemini_upstream.PROJECT}/locations/{gemini_upstream.LOCATION}/" in seen["path"]
    assert "/models/gemini-fake:generateContent" in seen["path"]
    log = only_log(spend_logs)
    assert log.prompt_tokens == answer.json()["usageMetadata"]["promptTokenCount"]
    assert log.cost == expected_cost(log) > 0


def test_the_answer_carries_one_request_id_the_gateways(gateway, claude, spend_logs):
    answer = httpx.post(gateway.url + "/anthropic/v1/messages", timeout=30,
                        headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
                        json={"model": "claude-team", "max_tokens": 20, "messages": [{"role": "user", "content": "Hi"}]})
    assert answer.status_code == 200, answer.text
    assert answer.headers.get_list("x-request-id") == [only_log(spend_logs).request_id]
    assert answer.headers["request-id"] == "req_fake0001"  # Anthropic's own id, for its support
