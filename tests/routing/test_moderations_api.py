"""POST /v1/moderations through the gateway to OpenAI and Azure fakes: forwarded natively,
free (a spend log with cost 0 and the model), yet limited and access-checked like chat."""

from decimal import Decimal

import httpx
import openai
import pytest

from conftest import MASTER_KEY
from tests.routing.media_fixtures import media_deployment, media_upstream  # noqa: F401 (fixtures)


@pytest.fixture
def moderation_models(media_deployment):
    media_deployment("omni-moderation-latest", "omni-moderation-latest", "moderation")
    media_deployment("azure-moderation", "omni-moderation-latest", "moderation", provider="azure",
                     api_version="2024-10-21")
    media_deployment("broken-moderation", "error-500", "moderation")


def test_a_moderation_is_forwarded_natively_and_logged_free(gateway, openai_client, moderation_models,
                                                            media_upstream, spend_logs):
    result = openai_client().moderations.create(model="omni-moderation-latest",
                                                input=["I will kill the process", "hello"])
    assert result.model == "omni-moderation-latest"
    assert [r.flagged for r in result.results] == [True, False]
    assert result.results[0].categories.violence is True
    sent = media_upstream.requests[-1]
    assert sent["path"] == "/v1/moderations"
    assert sent["body"] == {"model": "omni-moderation-latest", "input": ["I will kill the process", "hello"]}
    [log] = spend_logs(1)
    assert (log.call_type, log.model, log.status) == ("moderation", "omni-moderation-latest", "success")
    assert log.cost == Decimal(0)  # free in OpenAI's price list: priced at the catalog's zero
    assert log.cost_status == "priced"


def test_the_model_defaults_to_openais(gateway, openai_client, moderation_models, media_upstream):
    result = openai_client().moderations.create(input="hello")
    assert result.results[0].flagged is False
    assert media_upstream.requests[-1]["body"]["model"] == "omni-moderation-latest"


def test_azure_deployment_gets_its_path_key_and_version(gateway, openai_client, moderation_models, media_upstream):
    result = openai_client().moderations.create(
        model="azure-moderation", input=[{"type": "text", "text": "hello there"}])
    assert result.results[0].flagged is False
    sent = media_upstream.requests[-1]
    assert sent["path"] == "/openai/deployments/omni-moderation-latest/moderations?api-version=2024-10-21"
    assert sent["headers"]["api-key"]


def test_an_upstream_error_keeps_its_status_and_is_logged(gateway, openai_client, moderation_models, spend_logs):
    with pytest.raises(openai.InternalServerError):
        openai_client().moderations.create(model="broken-moderation", input="hello")
    logs = spend_logs(1)
    assert logs[-1].status == "error" and logs[-1].cost is None


def test_a_model_the_key_may_not_use_is_403(gateway, openai_client, moderation_models, make_key, media_upstream):
    _, raw_key = make_key(models=["azure-moderation"])
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(raw_key).moderations.create(model="omni-moderation-latest", input="hello")
    assert media_upstream.requests == []


def test_an_exhausted_budget_is_429_insufficient_quota(gateway, openai_client, moderation_models, make_key,
                                                       media_upstream):
    _, raw_key = make_key(max_budget=Decimal("0"))
    with pytest.raises(openai.RateLimitError) as info:
        openai_client(raw_key).moderations.create(model="omni-moderation-latest", input="hello")
    assert info.value.body["code"] == "insufficient_quota"
    assert media_upstream.requests == []


@pytest.mark.parametrize("body, param", [
    ({"model": "omni-moderation-latest"}, "input"),
    ({"model": "omni-moderation-latest", "input": 3}, "input"),
    ({"model": "omni-moderation-latest", "input": [{"type": "audio"}]}, "input[0].type"),
    ({"model": "omni-moderation-latest", "input": "x", "stream": True}, "stream"),
])
def test_an_invalid_body_is_400_naming_the_param_without_an_upstream_call(gateway, moderation_models, body, param,
                                                                          media_upstream):
    response = httpx.post(gateway.url + "/v1/moderations", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                          json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert media_upstream.requests == []


def test_health_checks_probe_moderations_and_leave_image_models_unchecked(gateway, moderation_models,
                                                                          media_deployment, media_upstream):
    from apps.providers.models import ModelDeployment
    from apps.routing.services import deployments_health_check

    media_deployment("dall-e-3", "dall-e-3", "image_generation")
    deployments_health_check()
    status = dict(ModelDeployment.objects.values_list("model_name", "health_status"))
    assert status["omni-moderation-latest"] == "healthy"
    assert status["broken-moderation"] == "unhealthy"
    assert status["dall-e-3"] == "unknown"  # no image was generated to check it
    assert all(r["path"].endswith("/moderations") or "moderations?" in r["path"] for r in media_upstream.requests)


def test_the_routes_answer_without_the_v1_prefix(gateway, moderation_models):
    response = httpx.post(gateway.url + "/moderations", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                          json={"input": "hello"})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["flagged"] is False
