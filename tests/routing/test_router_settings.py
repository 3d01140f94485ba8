"""Router settings: read from config.yaml (LiteLLM's keys), edited in the admin, applied at once;
deployment health: checked by the beat task, listed by GET /health."""

from __future__ import annotations

from io import StringIO

import httpx
import pytest
from django.core.management import CommandError, call_command

from apps.routing.selection import policy
from conftest import MASTER_KEY
from tests.routing.conftest import MESSAGES, unique

CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      tags: [paid]
      stream_timeout: 5
      connect_timeout: 2
    model_info:
      max_input_tokens: 128000
  - model_name: text-embedding
    litellm_params:
      model: openai/text-embedding-3-small
    model_info:
      mode: embedding
router_settings:
  routing_strategy: usage-based-routing-v2
  num_retries: 4
  timeout: 30
  allowed_fails: 2
  cooldown_time: 15
  retry_policy: {RateLimitErrorRetries: 1}
  fallbacks: [{gpt-4o: [gpt-4o-mini, claude]}]
  context_window_fallbacks: [{gpt-4o: [gemini-long]}]
  model_group_alias: {gpt-4: gpt-4o}
  model_group_settings:
    gpt-4o: {routing_strategy: latency-based-routing, num_retries: 1}
litellm_settings:
  num_retries: 9
  content_policy_fallbacks: [{gpt-4o: [lenient]}]
  default_fallbacks: [gpt-4o-mini]
"""


def load(tmp_path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    out = StringIO()
    call_command("load_config", str(path), stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_config_router_settings_become_the_routing_policy(tmp_path):
    from apps.providers.models import ModelDeployment
    from apps.routing.models import ModelGroupSettings, RouterSettings
    from apps.routing.selectors import routing_policy_get

    output = load(tmp_path, CONFIG)
    assert "router settings loaded" in output
    router = RouterSettings.objects.get()
    assert (router.routing_strategy, router.num_retries, router.timeout) == (policy.USAGE_BASED, 4, 30)
    assert router.model_group_alias == {"gpt-4": "gpt-4o"}
    group = ModelGroupSettings.objects.get(model_name="gpt-4o")
    assert group.fallbacks == ["gpt-4o-mini", "claude"]
    assert group.context_window_fallbacks == ["gemini-long"]
    assert group.content_policy_fallbacks == ["lenient"]

    routing = routing_policy_get()
    assert routing.default.strategy == policy.USAGE_BASED
    assert routing.default.retries_for(policy.ErrorClass.RATE_LIMIT) == 1
    assert routing.default.retries_for(policy.ErrorClass.SERVER) == 4
    assert routing.default.retries_for(policy.ErrorClass.BAD_REQUEST) == 0
    assert (routing.default.allowed_fails, routing.default.cooldown_seconds) == (2, 15)
    assert routing.for_group("gpt-4o").strategy == policy.LATENCY_BASED
    assert routing.for_group("gpt-4o").num_retries == 1
    assert routing.aliases == {"gpt-4": "gpt-4o"} and routing.default_fallbacks == ("gpt-4o-mini",)

    deployment = ModelDeployment.objects.get(model_name="gpt-4o")
    assert (deployment.tags, deployment.max_input_tokens, deployment.stream_timeout, deployment.connect_timeout) == (
        ["paid"], 128000, 5, 2)
    assert "tags" not in deployment.extra_params
    assert ModelDeployment.objects.get(model_name="text-embedding").mode == "embedding"

    # The next file without that group's settings removes them; a file without router settings leaves them.
    load(tmp_path, CONFIG.replace("  model_group_settings:\n    gpt-4o: {routing_strategy: latency-based-routing, "
                                  "num_retries: 1}\n", "").replace("fallbacks: [{gpt-4o:", "fallbacks: [{other:"))
    assert set(ModelGroupSettings.objects.values_list("model_name", flat=True)) == {"other"}
    load(tmp_path, CONFIG.split("router_settings:")[0])
    assert RouterSettings.objects.get().num_retries == 4


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text, message",
    [
        ("router_settings: {routing_strategy: fastest}", "router_settings.routing_strategy: must be one of"),
        ("router_settings: {num_retries: -1}", "router_settings.num_retries"),
        ("router_settings: {retry_policy: {SlowErrorRetries: 1}}", "router_settings.retry_policy.SlowErrorRetries"),
        ("router_settings: {fallbacks: [{gpt-4o: 3}]}", "router_settings.fallbacks[0].gpt-4o"),
        ("router_settings: {model_group_settings: {gpt-4o: {colour: red}}}",
         "router_settings.model_group_settings.gpt-4o.colour"),
        ("model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, stream_timeout: 0}",
         "litellm_params.stream_timeout"),
        ("model_list:\n  - model_name: x\n    litellm_params: {model: openai/x}\n    model_info: {mode: image}",
         "model_info.mode"),
    ],
)
def test_invalid_router_settings_name_the_key_and_change_nothing(tmp_path, text, message):
    from apps.routing.models import RouterSettings

    with pytest.raises(CommandError, match="Nothing was changed") as info:
        load(tmp_path, text)
    assert message in str(info.value)
    assert not RouterSettings.objects.exists()


def test_settings_saved_in_the_admin_apply_to_the_next_request(
    gateway, make_deployment, django_user_model, settings, fast_retries
):
    from django.test import Client

    make_deployment("gpt-test")
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "a-long-password")
    client = Client()
    client.force_login(admin)
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    body = {"model": "gpt-4", "messages": MESSAGES}
    assert httpx.post(gateway.url + "/v1/chat/completions", headers=headers, json=body).status_code == 404
    response = client.post("/admin/routing/routersettings/add/", {
        "routing_strategy": "simple-shuffle", "routing_strategy_args": "{}", "num_retries": "2",
        "retry_policy": "{}", "retry_after": "0", "allowed_fails": "3", "allowed_fails_policy": "{}",
        "cooldown_time": "5", "default_fallbacks": "[]", "model_group_alias": '{"gpt-4": "gpt-test"}',
    })
    assert response.status_code == 302, response.content[:2000]
    assert httpx.post(gateway.url + "/v1/chat/completions", headers=headers, json=body).status_code == 200

    response = client.post("/admin/routing/modelgroupsettings/add/", {
        "model_name": "gpt-test", "routing_strategy": "", "retry_policy": '{"NoSuchRetries": 1}',
        "fallbacks": "[]", "context_window_fallbacks": "[]", "content_policy_fallbacks": "[]",
    })
    assert response.status_code == 200 and b"Unknown keys: NoSuchRetries" in response.content


# --- health -------------------------------------------------------------------------------------


def test_health_needs_the_master_key_or_an_admin(gateway, make_key, django_user_model):
    from django.test import Client

    assert httpx.get(gateway.url + "/health").status_code == 401
    _, raw_key = make_key()
    refused = httpx.get(gateway.url + "/health", headers={"Authorization": f"Bearer {raw_key}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_only"
    assert httpx.get(gateway.url + "/health", headers={"Authorization": f"Bearer {MASTER_KEY}"}).status_code == 200

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "a-long-password")
    _, admin_key = make_key(user=admin, issued_by_proxy_admin=True)
    assert httpx.get(gateway.url + "/health", headers={"Authorization": f"Bearer {admin_key}"}).status_code == 200
    _, not_issued = make_key(user=admin)  # a superuser's key the proxy admin did not issue
    assert httpx.get(gateway.url + "/health", headers={"Authorization": f"Bearer {not_issued}"}).status_code == 403
    client = Client()
    client.force_login(admin)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    assert httpx.get(gateway.url + "/health", cookies=cookies).status_code == 200
    staff = django_user_model.objects.create_user("staff", "staff@example.com", "a-long-password", is_staff=True)
    client.force_login(staff)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    assert httpx.get(gateway.url + "/health", cookies=cookies).status_code == 403


def test_the_health_check_task_marks_deployments_and_health_lists_them(gateway, make_deployment, chat, settings):
    from apps.routing.tasks import deployments_health_check_task

    healthy = make_deployment("gpt-test")
    broken = make_deployment("broken", upstream_model="error-500")
    embedding = make_deployment("embedder", upstream_model="text-embedding-3-small", mode="embedding")
    make_deployment("openai/*", upstream_model="*")  # wildcards name no model to check
    limited = make_deployment("limited", upstream_model=unique("rate-limited-30"))
    chat("limited")  # puts it in cooldown

    assert deployments_health_check_task.delay().get() == {"healthy": 2, "unhealthy": 2}
    report = httpx.get(gateway.url + "/health", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    assert report["healthy_count"] == 2 and report["unhealthy_count"] == 2
    assert {e["model_id"] for e in report["healthy_endpoints"]} == {healthy.pk, embedding.pk}
    unhealthy = {e["model_id"]: e for e in report["unhealthy_endpoints"]}
    assert set(unhealthy) == {broken.pk, limited.pk}
    assert "fake upstream error 500" in unhealthy[broken.pk]["error"]
    assert unhealthy[broken.pk]["cooldown_remaining_s"] == 0
    assert 25 < unhealthy[limited.pk]["cooldown_remaining_s"] <= 30  # the 429 a request met
    assert [e["model"] for e in report["unchecked_endpoints"]] == ["openai/*"]
    assert all(e["last_checked"] and e["latency_ms"] is not None for e in report["healthy_endpoints"])


def test_the_health_check_runs_on_beat():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["routing-deployments-health-check"]
    assert entry["task"] == "routing.deployments_health_check"
    assert entry["schedule"] == settings.GATEWAY_HEALTH_CHECK_INTERVAL
