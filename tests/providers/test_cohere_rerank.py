"""Cohere rerank through the adapter's public methods against the fake Cohere v2 API.

Each request goes as the gateway sends it (apps.routing.proxy): build_request, the HTTP
call, then translate_error for a status >= 400 or translate_response, all in one task.
"""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from apps.core.errors import GatewayError
from apps.providers.adapters import adapter_for
from apps.providers.adapters.base import Operation
from apps.providers.adapters.cohere import SEARCH_UNITS_HEADER, CohereAdapter, billed_search_units
from apps.providers.registry import Deployment
from tests.fakes.cohere_rerank import API_KEY, CohereRerankServer

QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States.",
    "Capital punishment is old.",
]


@pytest.fixture(scope="module")
def cohere():
    server = CohereRerankServer().start()
    yield server
    server.stop()


@pytest.fixture
def deployment(cohere):
    cohere.requests.clear()

    def make(**fields) -> Deployment:
        values = dict(
            id=1, model_name="rerank", provider="cohere", upstream_model="rerank-v3.5",
            adapter=CohereAdapter(), api_base=cohere.url, api_key=API_KEY, api_version=None, weight=1,
            timeout=None, rpm=None, tpm=None,
            input_cost_per_token=None, output_cost_per_token=None, cache_read_input_token_cost=None,
            extra_params={},
        )
        values.update(fields)
        return Deployment(**values)

    return make


async def _rerank(deployment: Deployment, body: dict):
    adapter = deployment.adapter
    payload = adapter.prepare_body(Operation.RERANK, body, drop_params=False)
    upstream = await adapter.build_request(Operation.RERANK, deployment, payload, stream=False)
    async with aiohttp.ClientSession() as session:
        async with session.request(
            upstream.method, upstream.url, data=upstream.body, headers=upstream.headers
        ) as response:
            raw, status, headers = await response.read(), response.status, response.headers
    if status >= 400:
        raise adapter.translate_error(status, raw, headers)
    return adapter.translate_response(Operation.RERANK, deployment, raw)


def rerank(deployment: Deployment, **body):
    return asyncio.run(_rerank(deployment, {"model": "rerank", **body}))


def results_of(translated) -> list[dict]:
    return orjson.loads(translated.body)["results"]


# --- the request sent upstream -------------------------------------------------------------


def test_the_adapter_is_registered_for_rerank_only():
    adapter = adapter_for("cohere")
    assert isinstance(adapter, CohereAdapter)
    with pytest.raises(GatewayError) as info:
        adapter.prepare_body(Operation.CHAT, {"model": "m", "messages": []}, drop_params=False)
    assert info.value.code == "unsupported_operation"


def test_the_v2_request_carries_the_upstream_model_key_and_v2_fields_only(deployment, cohere):
    rerank(deployment(), query=QUERY, documents=DOCUMENTS, top_n=2, return_documents=True,
           max_tokens_per_doc=512, max_chunks_per_doc=10)
    [sent] = cohere.requests
    assert sent["path"] == "/v2/rerank"
    assert sent["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert sent["body"] == {
        "model": "rerank-v3.5", "query": QUERY, "documents": DOCUMENTS, "top_n": 2, "max_tokens_per_doc": 512,
    }


def test_document_objects_are_sent_as_their_text(deployment, cohere):
    rerank(deployment(), query=QUERY, documents=[{"text": d} for d in DOCUMENTS])
    assert cohere.requests[-1]["body"]["documents"] == DOCUMENTS


@pytest.mark.parametrize("api_base", ["{url}/", "{url}/v1", "{url}/v2", "{url}/v2/rerank"])
def test_a_base_url_given_with_a_version_or_path_still_reaches_v2_rerank(deployment, cohere, api_base):
    rerank(deployment(api_base=api_base.format(url=cohere.url)), query=QUERY, documents=DOCUMENTS)
    assert cohere.requests[-1]["path"] == "/v2/rerank"


def test_the_key_falls_back_to_co_api_key(deployment, cohere, monkeypatch):
    monkeypatch.setenv("CO_API_KEY", API_KEY)
    rerank(deployment(api_key=None), query=QUERY, documents=DOCUMENTS)
    assert cohere.requests[-1]["headers"]["Authorization"] == f"Bearer {API_KEY}"


def test_a_deployment_without_any_key_is_a_configuration_error(deployment, cohere, monkeypatch):
    monkeypatch.delenv("CO_API_KEY", raising=False)
    with pytest.raises(GatewayError) as info:
        rerank(deployment(api_key=None), query=QUERY, documents=DOCUMENTS)
    assert (info.value.status, info.value.code) == (500, "deployment_misconfigured")
    assert not cohere.requests


@pytest.mark.parametrize(
    "body, param",
    [
        ({"documents": DOCUMENTS}, "query"),
        ({"query": "  ", "documents": DOCUMENTS}, "query"),
        ({"query": QUERY}, "documents"),
        ({"query": QUERY, "documents": []}, "documents"),
        ({"query": QUERY, "documents": ["a", 3]}, "documents[1]"),
        ({"query": QUERY, "documents": ["a", {"title": "no text"}]}, "documents[1]"),
        ({"query": QUERY, "documents": DOCUMENTS, "top_n": 0}, "top_n"),
        ({"query": QUERY, "documents": DOCUMENTS, "top_n": True}, "top_n"),
        ({"query": QUERY, "documents": DOCUMENTS, "max_tokens_per_doc": "4k"}, "max_tokens_per_doc"),
        ({"query": QUERY, "documents": DOCUMENTS, "return_documents": "yes"}, "return_documents"),
        ({"query": QUERY, "documents": DOCUMENTS, "rank_fields": ["title"]}, "rank_fields"),
    ],
)
def test_an_invalid_request_is_a_400_naming_the_field(deployment, cohere, body, param):
    with pytest.raises(GatewayError) as info:
        rerank(deployment(), **body)
    assert (info.value.status, info.value.param) == (400, param)
    assert not cohere.requests


def test_rerank_cannot_stream(deployment):
    with pytest.raises(GatewayError) as info:
        asyncio.run(CohereAdapter().build_request(
            Operation.RERANK,
            deployment(),
            {"model": "m", "query": QUERY, "documents": DOCUMENTS},
            stream=True,
        ))
    assert (info.value.status, info.value.param) == (400, "stream")


# --- answers -------------------------------------------------------------------------------


def test_the_answer_is_cohere_v2_shaped_and_ranked(deployment):
    translated = rerank(deployment(), query=QUERY, documents=DOCUMENTS, top_n=2)
    answer = orjson.loads(translated.body)
    assert answer["id"] == "rerank-fake"
    assert [r["index"] for r in answer["results"]] == [1, 0]
    assert answer["results"][0]["relevance_score"] > answer["results"][1]["relevance_score"]
    assert all(set(r) == {"index", "relevance_score"} for r in answer["results"])
    assert answer["meta"]["billed_units"] == {"search_units": 1}


def test_usage_is_zero_tokens_reported_and_search_units_are_exposed(deployment):
    translated = rerank(deployment(), query=QUERY, documents=DOCUMENTS)
    usage = translated.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reported) == (0, 0, True)
    assert translated.headers == {SEARCH_UNITS_HEADER: "1"}
    assert billed_search_units(translated) == 1


def test_search_units_grow_with_the_documents(deployment):
    translated = rerank(deployment(), query=QUERY, documents=[f"document {i}" for i in range(150)])
    assert billed_search_units(translated) == 2


def test_return_documents_adds_each_results_text(deployment):
    translated = rerank(deployment(), query=QUERY, documents=[{"text": d} for d in DOCUMENTS], top_n=2,
                        return_documents=True)
    assert [(r["index"], r["document"]) for r in results_of(translated)] == [
        (1, {"text": DOCUMENTS[1]}), (0, {"text": DOCUMENTS[0]}),
    ]


def test_concurrent_requests_each_get_their_own_documents(deployment):
    async def both():
        first = _rerank(deployment(), {"model": "r", "query": "alpha", "documents": ["alpha", "beta"],
                                       "return_documents": True})
        second = _rerank(deployment(), {"model": "r", "query": "gamma", "documents": ["delta", "gamma"],
                                        "return_documents": True})
        return await asyncio.gather(first, second)

    first, second = asyncio.run(both())
    assert results_of(first)[0]["document"] == {"text": "alpha"}
    assert results_of(second)[0]["document"] == {"text": "gamma"}


def test_a_malformed_answer_is_a_502(deployment):
    with pytest.raises(GatewayError) as info:
        rerank(deployment(upstream_model="bad-json"), query=QUERY, documents=DOCUMENTS)
    assert info.value.status == 502


# --- errors --------------------------------------------------------------------------------


def test_a_wrong_key_is_a_401_with_cohere_message(deployment):
    with pytest.raises(GatewayError) as info:
        rerank(deployment(api_key="wrong"), query=QUERY, documents=DOCUMENTS)
    assert (info.value.status, info.value.type) == (401, "authentication_error")
    assert "invalid api token" in info.value.message


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_upstream_errors_keep_their_status_and_message(deployment, status):
    with pytest.raises(GatewayError) as info:
        rerank(deployment(upstream_model=f"error-{status}"), query=QUERY, documents=DOCUMENTS)
    assert info.value.status == status
    assert info.value.message == f"cohere error: fake error {status}"
    assert info.value.headers == ({"Retry-After": "7"} if status == 429 else {})


def test_cohere_invalid_token_status_498_becomes_401():
    error = CohereAdapter().translate_error(498, b'{"message": "invalid api token"}', {})
    assert (error.status, error.type) == (401, "authentication_error")
