"""GET /metrics: spend, tokens and unpriced requests for Prometheus, from the rollups."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.spend.rollups import daily_spend_rollup_recent

MESSAGES = [{"role": "user", "content": "hi"}]


def scrape(gateway, **headers) -> dict:
    response = httpx.get(f"{gateway.url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_unpriced_requests_spend_and_tokens_are_exposed(gateway, openai_client, make_deployment, spend_logs):
    make_deployment("gpt-test")
    make_deployment("mystery", upstream_model="mystery-model", input_cost_per_token=None,
                    output_cost_per_token=None)
    client = openai_client()
    for _ in range(3):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    client.chat.completions.create(model="mystery", messages=MESSAGES)
    logs = spend_logs(4)
    daily_spend_rollup_recent()

    samples = scrape(gateway)

    priced = (("model", "gpt-test"), ("provider", "openai"))
    unpriced = (("model", "mystery"), ("provider", "openai"))
    assert samples[("gateway_requests_total", priced)] == 3
    assert samples[("gateway_unpriced_requests_total", unpriced)] == 1
    assert samples[("gateway_unpriced_requests_total", priced)] == 0
    assert samples[("gateway_spend_usd_total", priced)] == pytest.approx(
        float(sum(log.cost for log in logs if log.cost is not None)))
    assert samples[("gateway_spend_usd_total", unpriced)] == 0  # unknown, and not counted as spend
    prompt = sum(log.prompt_tokens for log in logs if log.model == "gpt-test")
    assert samples[("gateway_tokens_total", (("kind", "prompt"), *priced))] == prompt
    assert 0 <= samples[("gateway_spend_rollup_age_seconds", ())] < 60


def test_a_metrics_token_when_set_is_required(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = "scrape-secret"
    response = httpx.get(f"{gateway.url}/metrics")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert scrape(gateway, Authorization="Bearer scrape-secret")[("gateway_spend_rollup_age_seconds", ())] == -1


def test_a_teams_rate_limits_and_what_is_left_of_them_are_exposed(gateway, openai_client, make_deployment, team,
                                                                    make_key):
    from apps.teams.services import team_update

    team_update(team=team, rpm_limit=10, tpm_limit=1000)
    make_deployment("gpt-test")
    _, raw = make_key(team=team)
    client = openai_client(raw)
    for _ in range(3):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    labels = (("team", str(team.pk)), ("team_alias", "research"))
    samples = scrape(gateway)
    assert samples[("gateway_team_rpm_limit", labels)] == 10
    assert samples[("gateway_team_rpm_remaining", labels)] == 7
    assert samples[("gateway_team_tpm_limit", labels)] == 1000
    assert samples[("gateway_team_tpm_remaining", labels)] == 1000 - 3 * 18  # 11 + 7 tokens each
