"""The /v1 endpoints driven by the official openai SDK against a fake OpenAI upstream."""


import httpx
import pytest

from conftest import MASTER_KEY
from tests.fakes.openai_upstream import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS, REPLY_WORDS

MESSAGES = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]
REPLY = "".join(REPLY_WORDS)


def test_chat_completion_is_proxied_with_the_deployments_model_and_credentials(
    gateway, openai_client, make_deployment, fake_openai
):
    make_deployment("gpt-test", upstream_model="upstream-gpt")
    reply = openai_client().chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert reply.choices[0].message.content == REPLY
    assert reply.usage.prompt_tokens == PROMPT_TOKENS
    assert reply.usage.completion_tokens == COMPLETION_TOKENS
    sent = fake_openai.requests[-1]
    assert sent["body"]["model"] == "upstream-gpt"
    assert sent["body"]["messages"] == MESSAGES
    # The upstream sees the deployment's credential, never the client's key.
    assert sent["headers"]["Authorization"] == "Bearer sk-upstream-secret"


def test_routes_answer_without_the_v1_prefix_too(gateway, make_deployment):
    import openai

    make_deployment("gpt-test")
    client = openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0)
    assert client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices[0].message.content == REPLY
    assert [m.id for m in client.models.list()] == ["gpt-test"]


def test_streaming_chat_with_include_usage_ends_with_a_usage_chunk(
    gateway, openai_client, make_deployment
):
    make_deployment("gpt-test")
    stream = openai_client().chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert chunks[-1].usage.completion_tokens == COMPLETION_TOKENS
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_chat_without_include_usage_sends_no_usage_chunk_but_asks_upstream_for_it(
    gateway, openai_client, make_deployment, fake_openai
):
    make_deployment("gpt-test")
    chunks = list(openai_client().chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True))

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    # The gateway always asks for usage, so the stream can be priced.
    assert fake_openai.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_stream_is_valid_sse_ending_with_done(gateway, make_deployment):
    make_deployment("gpt-test")
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        json={"model": "gpt-test", "messages": MESSAGES, "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = [e for e in body.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_text_completion(gateway, openai_client, make_deployment):
    make_deployment("instruct-test")
    reply = openai_client().completions.create(model="instruct-test", prompt="Hello")
    assert reply.choices[0].text == " world"
    assert reply.usage.total_tokens == 7


@pytest.mark.parametrize("encoding_format", [None, "float"])
def test_embeddings_in_both_encodings(gateway, openai_client, make_deployment, fake_openai, encoding_format):
    make_deployment("embed-test")
    kwargs = {"encoding_format": encoding_format} if encoding_format else {}
    result = openai_client().embeddings.create(model="embed-test", input=["a", "b"], **kwargs)

    assert [d.embedding for d in result.data] == [[0.5, -0.25, 0.875], [0.5, -0.25, 0.125]]
    assert result.usage.prompt_tokens == 8
    # The SDK asks for base64 unless told otherwise; the gateway passes that through.
    assert fake_openai.requests[-1]["body"]["encoding_format"] == (encoding_format or "base64")


def test_models_lists_only_what_the_key_may_use(gateway, openai_client, make_deployment, make_key):
    make_deployment("gpt-a")
    make_deployment("gpt-b")
    make_deployment("gpt-b")  # a second deployment of the same group is listed once
    _, raw_key = make_key(models=["gpt-b"])

    assert sorted(m.id for m in openai_client().models.list()) == ["gpt-a", "gpt-b"]
    assert [m.id for m in openai_client(raw_key).models.list()] == ["gpt-b"]
    assert openai_client(raw_key).models.retrieve("gpt-b").id == "gpt-b"


def test_weight_decides_among_deployments_of_a_group(gateway, openai_client, make_deployment, fake_openai):
    make_deployment("gpt-w", upstream_model="never", weight=0)
    make_deployment("gpt-w", upstream_model="always", weight=5)
    for _ in range(20):
        openai_client().chat.completions.create(model="gpt-w", messages=MESSAGES)
    assert {r["body"]["model"] for r in fake_openai.requests} == {"always"}


def test_keys_are_accepted_from_each_header(gateway, make_deployment, make_key):
    make_deployment("gpt-test")
    _, raw_key = make_key()
    body = {"model": "gpt-test", "messages": MESSAGES}
    for headers in ({"Authorization": f"Bearer {raw_key}"}, {"api-key": raw_key}, {"x-api-key": raw_key}):
        response = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200, headers
        assert response.headers["x-request-id"]


def test_cached_tokens_from_usage_details_are_passed_through(gateway, openai_client, make_deployment):
    make_deployment("gpt-test")
    reply = openai_client().chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert reply.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS


def test_an_upstreams_cookies_are_never_sent_back(fake_openai, make_deployment, openai_client):
    """Upstream cookies (a CDN's) would be one tenant's, sent with the next tenant's requests."""
    make_deployment("gpt-cookies", upstream_model="gpt-test",
                    api_base=fake_openai.base_url.replace("127.0.0.1", "localhost"))  # a jar keeps no IP's cookies
    client = openai_client()
    for _ in range(2):
        client.chat.completions.create(model="gpt-cookies", messages=[{"role": "user", "content": "hi"}])
    sent = [r["headers"] for r in fake_openai.requests if r["path"] == "/v1/chat/completions"]
    assert len(sent) == 2 and not any("Cookie" in headers or "cookie" in headers for headers in sent)
