"""Request-path metrics at /metrics: counted as each request settles, in process memory, with
bounded label cardinality; LiteLLM's metric names beside the gateway's."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.routing.conftest import unique


@pytest.fixture(autouse=True)
def fast_flush(settings):
    """Counted requests reach /metrics within 50 ms (the flusher's interval), not a second."""
    settings.GATEWAY_METRICS_FLUSH_INTERVAL = 0.05


def scrape_when(gateway, ready, timeout: float = 5.0) -> dict:
    """Scrape until `ready(samples)` holds (the flusher runs every 50 ms here)."""
    from conftest import wait_for

    holder = {}

    def attempt():
        holder["samples"] = scrape(gateway)
        return ready(holder["samples"])

    wait_for(attempt, timeout=timeout)
    return holder["samples"]


def scrape(gateway) -> dict:
    """{(sample name, frozenset of labels): value} of one /metrics answer."""
    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def test_a_streamed_request_with_a_retry_is_counted_timed_and_priced(gateway, openai_client, make_deployment,
                                                                     fast_retries):
    flaky = unique("fail-first-1")
    make_deployment("metered", upstream_model=flaky)
    before = scrape(gateway)
    stream = openai_client().chat.completions.create(
        model="metered", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    after = scrape_when(gateway, lambda samples: value(samples, "gateway_proxy_requests_total", model_group="metered")
                        - value(before, "gateway_proxy_requests_total", model_group="metered") >= 1)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("gateway_proxy_requests_total", model_group="metered", status_class="2xx", provider="openai") == 1
    assert delta("gateway_retries_total", model_group="metered") == 1
    assert delta("gateway_time_to_first_token_seconds_count", model_group="metered") == 1
    assert delta("gateway_request_duration_seconds_count", model_group="metered", status_class="2xx") == 1
    assert delta("gateway_overhead_duration_seconds_count", model_group="metered") == 1
    assert delta("gateway_upstream_duration_seconds_count", model_group="metered") == 1
    assert delta("gateway_proxy_tokens_total", model_group="metered", kind="prompt") == 11  # the fake's usage
    assert delta("gateway_proxy_tokens_total", model_group="metered", kind="completion") == 7
    assert delta("gateway_proxy_spend_usd_total", model_group="metered") == pytest.approx(
        8 * 0.000002 + 3 * 0.0000005 + 7 * 0.000008)  # uncached and cached input, output
    # LiteLLM's names for the same facts, which its Grafana dashboards read.
    assert delta("litellm_proxy_total_requests_metric_total", model="metered", status_code="200") == 1
    assert delta("litellm_llm_api_time_to_first_token_metric_count", model="metered") == 1
    assert delta("litellm_spend_metric_total", model="metered") > 0
    # The time to first token is within the whole request's time.
    ttft = delta("gateway_time_to_first_token_seconds_sum", model_group="metered")
    assert 0 < ttft <= delta("gateway_request_duration_seconds_sum", model_group="metered")


def test_errors_are_counted_by_status_class(gateway, openai_client, make_deployment):
    make_deployment("broken", upstream_model="error-400")
    before = scrape(gateway)
    with pytest.raises(openai.BadRequestError):
        openai_client().chat.completions.create(model="broken", messages=[{"role": "user", "content": "hi"}])
    after = scrape_when(gateway, lambda samples: value(samples, "gateway_proxy_requests_total", model_group="broken")
                        > value(before, "gateway_proxy_requests_total", model_group="broken"))
    assert (value(after, "gateway_proxy_requests_total", model_group="broken", status_class="4xx")
            - value(before, "gateway_proxy_requests_total", model_group="broken", status_class="4xx")) == 1
    assert (value(after, "litellm_proxy_failed_requests_metric_total", model="broken")
            - value(before, "litellm_proxy_failed_requests_metric_total", model="broken")) == 1


def test_label_combinations_past_the_limit_count_under_other(gateway, openai_client, make_deployment, settings):
    from apps.routing.metrics import request_metrics

    settings.GATEWAY_METRICS_MAX_SERIES = len(request_metrics._series) + 1  # room for one more
    for name in ("card-a", "card-b", "card-c"):
        make_deployment(name, upstream_model="gpt-test")
    before = scrape(gateway)
    for name in ("card-a", "card-b", "card-c"):
        openai_client().chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
    after = scrape_when(gateway, lambda samples: value(samples, "gateway_proxy_requests_total", model_group="other")
                        - value(before, "gateway_proxy_requests_total", model_group="other") >= 2)
    assert value(after, "gateway_proxy_requests_total", model_group="card-a") == 1
    assert value(after, "gateway_proxy_requests_total", model_group="card-c") == 0
    assert (value(after, "gateway_proxy_requests_total", model_group="other")
            - value(before, "gateway_proxy_requests_total", model_group="other")) == 2


def test_keys_are_labelled_only_when_asked_and_never_by_the_key(gateway, openai_client, make_deployment, make_key,
                                                                settings):
    make_deployment("keyed", upstream_model="gpt-test")
    key, raw_key = make_key(alias="billing-bot")
    openai_client(raw_key).chat.completions.create(model="keyed", messages=[{"role": "user", "content": "hi"}])
    settings.GATEWAY_METRICS_KEY_LABEL = "alias"
    openai_client(raw_key).chat.completions.create(model="keyed", messages=[{"role": "user", "content": "hi"}])
    samples = scrape_when(gateway, lambda samples: value(samples, "gateway_proxy_requests_total",
                                                         model_group="keyed") >= 2)
    assert value(samples, "gateway_proxy_requests_total", model_group="keyed", key="") == 1
    assert value(samples, "gateway_proxy_requests_total", model_group="keyed", key="billing-bot") == 1
    assert raw_key not in httpx.get(f"{gateway.url}/metrics", timeout=10).text


def test_metrics_off_counts_nothing_and_the_backlogs_are_there(gateway, openai_client, make_deployment, settings):
    settings.GATEWAY_REQUEST_METRICS = False
    make_deployment("quiet", upstream_model="gpt-test")
    openai_client().chat.completions.create(model="quiet", messages=[{"role": "user", "content": "hi"}])
    import time

    time.sleep(0.3)  # several flushes
    samples = scrape(gateway)
    assert value(samples, "gateway_proxy_requests_total", model_group="quiet") == 0
    assert ("gateway_spend_buffer_records", frozenset()) in samples
    assert ("gateway_spend_spilled_records", frozenset()) in samples
    assert value(samples, "gateway_billing_outbox_dead") == 0


def test_the_grafana_dashboard_and_alert_rules_read_only_metrics_the_gateway_exports(
        gateway, openai_client, make_deployment, make_key, team):
    import json
    import re
    from decimal import Decimal
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    team.max_budget = Decimal("10")
    team.save()
    make_deployment("dashboarded", upstream_model="gpt-test")
    _, raw_key = make_key(team=team)
    openai_client(raw_key).chat.completions.create(
        model="dashboarded", messages=[{"role": "user", "content": "hi"}], stream=True).close()
    samples = scrape_when(gateway, lambda samples: value(samples, "gateway_proxy_requests_total",
                                                         model_group="dashboarded") >= 1)
    exported = {name for name, _ in samples}
    dashboard = json.loads((root / "docs/grafana/gateway.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load((root / "docs/prometheus/alerts.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    referenced = {name for expr in exprs for name in re.findall(r"\b((?:gateway|litellm)_[a-z_]+)\b", expr)}
    assert len(referenced) >= 12
    assert sorted(referenced - exported) == []


def test_with_prometheus_multiproc_dir_metrics_add_up_across_processes(tmp_path, monkeypatch, db):
    """Two worker processes count requests into PROMETHEUS_MULTIPROC_DIR; /metrics adds them up."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.test import RequestFactory

    from apps.spend.views import metrics_view

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "gateway_project.settings",
           "DEBUG": "1"}
    count = """
import django; django.setup()
import time
from types import SimpleNamespace
from apps.providers.adapters.base import Usage
from apps.routing.metrics import request_metrics
from apps.routing.router import RouteProgress
context = SimpleNamespace(alias="", token_hash="h" * 64, team_id="t1")
account = SimpleNamespace(deployment=None, context=context, model_group="multi", started=time.perf_counter(),
                          upstream_seconds=0.0, route=RouteProgress())
for _ in range(3):
    request_metrics.observe(account, http_status=200, cancelled=False, usage=Usage(prompt_tokens=5), cost=None,
                            first_token_at=None)
request_metrics.flush()
"""
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], cwd=root, env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    output = metrics_view(RequestFactory().get("/metrics")).content.decode()
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(output) for s in family.samples}
    assert value(samples, "gateway_proxy_requests_total", model_group="multi") == 6
    assert value(samples, "gateway_proxy_tokens_total", model_group="multi", kind="prompt") == 30


def test_cooldowns_and_deployment_health_are_exported(gateway, openai_client, make_deployment, fast_retries,
                                                     router_settings):
    router_settings(allowed_fails=0, num_retries=0)
    broken = make_deployment("cooling", upstream_model="error-503")
    before = scrape(gateway)
    with pytest.raises(openai.APIStatusError):
        openai_client().chat.completions.create(model="cooling", messages=[{"role": "user", "content": "hi"}])
    after = scrape(gateway)
    assert (value(after, "gateway_deployment_cooldowns_total", deployment=str(broken.pk))
            - value(before, "gateway_deployment_cooldowns_total", deployment=str(broken.pk))) == 1
    assert value(after, "gateway_deployment_healthy", deployment=str(broken.pk)) == -1  # never checked
