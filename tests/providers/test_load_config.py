"""load_config reads LiteLLM's config.yaml format; a bad file fails clearly and changes nothing."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.core import crypto
from apps.providers.models import ModelDeployment

pytestmark = pytest.mark.django_db

GOOD = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/TEST_OPENAI_KEY
      rpm: 600
      tpm: 100000
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o-2024-08-06
      api_base: http://127.0.0.1:8001/v1
      api_key: sk-inline-secret
      weight: 3
  - model_name: llama
    litellm_params:
      model: groq/llama-3.3-70b-versatile
      timeout: 30
    model_info:
      id: groq-llama
general_settings:
  master_key: sk-from-config
"""


def load(tmp_path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    out = StringIO()
    call_command("load_config", str(path), stdout=out)
    return out.getvalue()


def test_good_file_upserts_deployments(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-from-env")
    output = load(tmp_path, GOOD)
    assert "3 created" in output

    rows = {(d.model_name, d.upstream_model): d for d in ModelDeployment.objects.all()}
    first = rows[("gpt-4o", "gpt-4o")]
    assert (first.provider, first.rpm, first.tpm, first.weight) == ("openai", 600, 100000, 1)
    assert str(first.input_cost_per_token) == "0.000002500000"
    # The environment reference is stored, never the secret it names.
    assert first.api_key == "os.environ/TEST_OPENAI_KEY"
    second = rows[("gpt-4o", "gpt-4o-2024-08-06")]
    assert (second.api_base, second.weight, second.api_key) == ("http://127.0.0.1:8001/v1", 3, "sk-inline-secret")
    llama = rows[("llama", "llama-3.3-70b-versatile")]
    assert (llama.provider, llama.timeout, llama.config_id) == ("groq", 30.0, "groq-llama")
    assert all(d.managed_by_config and d.is_active for d in rows.values())
    stored = _raw_api_key(second.pk)
    assert "sk-inline-secret" not in stored and crypto.decrypt(stored) == "sk-inline-secret"


def _raw_api_key(pk: int) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM providers_modeldeployment WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_loading_again_is_idempotent_and_removed_entries_are_deactivated(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-from-env")
    load(tmp_path, GOOD)
    assert "3 unchanged" in load(tmp_path, GOOD)

    without_llama = GOOD.split("  - model_name: llama")[0] + "general_settings: {}\n"
    output = load(tmp_path, without_llama.replace("rpm: 600", "rpm: 700"))
    assert "1 updated" in output and "1 deactivated" in output
    assert ModelDeployment.objects.get(config_id="groq-llama").is_active is False
    assert ModelDeployment.objects.get(upstream_model="gpt-4o").rpm == 700
    assert ModelDeployment.objects.count() == 3


def test_deployments_made_in_the_admin_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-from-env")
    ModelDeployment.objects.create(model_name="manual", provider="openai", upstream_model="gpt-4o-mini")
    load(tmp_path, GOOD)
    assert ModelDeployment.objects.get(model_name="manual").is_active


@pytest.mark.parametrize(
    "text, message",
    [
        ("model_list: 5", "model_list: must be a list"),
        ("model_list:\n  - litellm_params: {model: openai/x}", r"model_list\[0\]\.model_name: required"),
        ("model_list:\n  - model_name: a", r"model_list\[0\] \(a\)\.litellm_params: required"),
        (
            "model_list:\n  - model_name: a\n    litellm_params: {model: gpt-4o}",
            r"model_list\[0\] \(a\)\.litellm_params\.model: must be 'provider/model'",
        ),
        (
            "model_list:\n  - model_name: a\n    litellm_params: {model: nosuch/x}",
            r"litellm_params\.model: unknown provider 'nosuch'",
        ),
        (
            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n"
            "  - model_name: b\n    litellm_params: {model: openai/x, rpm: many}",
            r"model_list\[1\] \(b\)\.litellm_params\.rpm: must be a whole number",
        ),
        (
            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_key: os.environ/NOT_SET_ANYWHERE}",
            r"litellm_params\.api_key: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_base: ftp://x}",
            r"litellm_params\.api_base: must be an http\(s\) URL",
        ),
        ("model_list: [\n", "not valid YAML"),
    ],
)
def test_invalid_file_names_entry_and_field_and_changes_nothing(tmp_path, text, message):
    existing = ModelDeployment.objects.create(
        model_name="kept", provider="openai", upstream_model="x", managed_by_config=True, config_id="kept"
    )
    with pytest.raises(CommandError, match=message) as info:
        load(tmp_path, text)
    assert "Nothing was changed" in str(info.value)
    assert list(ModelDeployment.objects.all()) == [existing]
    assert ModelDeployment.objects.get().is_active


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("load_config", str(tmp_path / "nope.yaml"))


LITELLM_EXTRAS = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: sk-inline
    model_info:
      id: a
      base_model: azure/gpt-4o
litellm_settings:
  drop_params: true
  num_retries: 2
  cache: true
  cache_params: {type: redis}
  redact_user_api_key_info: true
  max_internal_user_budget: 10
  success_callback: [langfuse]
router_settings:
  routing_strategy: simple-shuffle
  redis_host: redis.internal
  enable_tag_filtering: true
  provider_budget_config: {openai: {budget_limit: 10}}
general_settings:
  master_key: sk-x
  alerting: [slack]
mcp_servers:
  zapier: {url: "https://mcp.example.com"}
guardrails:
  - guardrail_name: pii
    litellm_params: {guardrail: presidio, mode: pre_call}
"""


def test_keys_not_acted_on_are_reported_by_name(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(LITELLM_EXTRAS)
    out, err = StringIO(), StringIO()
    call_command("load_config", str(path), stdout=out, stderr=err)
    reported = err.getvalue()
    for key in ("litellm_settings.redact_user_api_key_info:", "litellm_settings.max_internal_user_budget:",
                "router_settings.redis_host: the gateway reads REDIS_URL", "router_settings.enable_tag_filtering:",
                "router_settings.provider_budget_config:", "general_settings.alerting:", "mcp_servers:",
                "model_list[0].model_info.base_model:"):
        assert key in reported, (key, reported)
    # What it does act on is not reported.
    for key in ("drop_params", "num_retries", "routing_strategy", "master_key", "model_info.id", "success_callback",
                "litellm_settings.cache:", "litellm_settings.cache_params:", "guardrails:"):
        assert key not in reported, (key, reported)
    assert "1 created" in out.getvalue()


def test_strict_refuses_a_file_with_keys_not_acted_on_and_changes_nothing(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(LITELLM_EXTRAS)
    with pytest.raises(CommandError, match=r"8 key\(s\) this gateway does not act on"):
        call_command("load_config", str(path), "--strict", stdout=StringIO(), stderr=StringIO())
    assert not ModelDeployment.objects.exists()
    path.write_text(GOOD.replace("api_key: os.environ/TEST_OPENAI_KEY", "api_key: sk-inline"))
    call_command("load_config", str(path), "--strict", stdout=StringIO(), stderr=StringIO())
    assert ModelDeployment.objects.count() == 3
