"""POST /v1/rerank (and /v2/rerank) through the gateway to a Cohere fake, priced per search unit."""

from decimal import Decimal

import httpx
import pytest

from conftest import MASTER_KEY, wait_for
from tests.fakes.cohere_rerank import API_KEY, CohereRerankServer


@pytest.fixture(scope="module")
def cohere():
    server = CohereRerankServer().start()
    yield server
    server.stop()


@pytest.fixture
def rerank_model(cohere, transactional_db):
    from apps.providers.models import ModelDeployment

    ModelDeployment.objects.create(model_name="rerank", provider="cohere", upstream_model="rerank-v3.5",
                                   api_base=cohere.url, api_key=API_KEY,
                                   extra_params={"input_cost_per_query": "0.002"})
    return "rerank"


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank", "/v2/rerank"])
def test_rerank_orders_documents_and_is_priced_per_search_unit(gateway, rerank_model, path):
    from apps.spend.models import SpendLog

    response = httpx.post(
        gateway.url + path,
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        json={"model": rerank_model, "query": "capital of the United States",
              "documents": ["Carson City is the capital of Nevada.",
                            "Washington, D.C. is the capital of the United States."],
              "top_n": 2, "return_documents": True},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["index"] == 1
    assert results[0]["document"]["text"].startswith("Washington")
    wait_for(lambda: SpendLog.objects.exists())
    log = SpendLog.objects.get()
    assert log.call_type == "rerank"
    assert log.cost == Decimal("0.002")


def test_rerank_without_documents_is_400(gateway, rerank_model):
    response = httpx.post(gateway.url + "/v1/rerank", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                          json={"model": rerank_model, "query": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "documents"
