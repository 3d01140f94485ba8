"""The price catalog: the shipped prices, import_prices, versions, the admin, and spend logs."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from apps.spend.models import ModelPrice, SpendLog
from apps.spend.pricing import KIND_PRICES, price_catalog
from conftest import wait_for
from tests.fakes.openai_upstream import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS

LITELLM_MAP = {
    "sample_spec": {"max_tokens": "LEGACY parameter. set to max_output_tokens if provider specifies it.",
                    "input_cost_per_token": 0.0, "litellm_provider": "one of https://docs.litellm.ai/docs/providers"},
    "test-model-a": {"litellm_provider": "openai", "mode": "chat", "max_input_tokens": 128000,
                     "max_output_tokens": 16384, "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                     "cache_read_input_token_cost": 1.25e-06, "supports_vision": True},
    "test/model-b": {"litellm_provider": "anthropic", "max_tokens": 8192, "input_cost_per_token": 3e-06,
                     "output_cost_per_token": 1.5e-05, "input_cost_per_token_above_200k_tokens": 6e-06,
                     "output_cost_per_token_above_200k_tokens": 2.25e-05},
}


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def price_map(tmp_path):
    def write(document, name="prices.json") -> str:
        path = tmp_path / name
        path.write_text(json.dumps(document) if not isinstance(document, str) else document)
        return str(path)

    return write


@pytest.fixture(autouse=True)
def fresh_catalog():
    yield
    price_catalog.invalidate()


# --- the shipped catalog ---------------------------------------------------------------------------


def test_the_shipped_catalog_is_valid_and_covers_the_providers():
    from apps.spend.price_format import document_parse
    from apps.spend.price_imports import default_prices_document

    document = default_prices_document()
    parsed = document_parse(document)
    assert parsed.errors == []
    providers = {entry.values.get("litellm_provider") for entry in parsed.entries}
    for provider in ("openai", "azure", "anthropic", "gemini", "vertex_ai-language-models", "bedrock_converse",
                     "groq", "mistral", "deepseek", "xai", "cohere"):
        assert provider in providers
    assert 30 <= len(parsed.entries) <= 300  # dozens of models, not LiteLLM's whole map
    metadata = document["_catalog"]
    assert metadata["compiled_on"] and "Check them" in metadata["warning"]
    by_key = {entry.model_key: entry.values for entry in parsed.entries}
    sonnet = by_key["claude-sonnet-4-5"]  # every kind of price is represented
    assert sonnet["cache_creation_input_token_cost_above_1hr"] > sonnet["cache_creation_input_token_cost"]
    assert sonnet["tier_threshold_tokens"] == 200_000
    assert by_key["rerank-v3.5"]["input_cost_per_query"] == Decimal("0.002")
    assert by_key["dall-e-3"]["output_cost_per_image"] and by_key["whisper-1"]["input_cost_per_second"]
    assert all(values.get("max_input_tokens") for key, values in by_key.items()
               if values.get("mode") == "chat")


def test_migrate_loads_the_shipped_catalog_into_an_empty_database(db):
    gpt = ModelPrice.objects.get(model_key="gpt-4o")
    assert gpt.source.startswith("default catalog (") and gpt.input_cost_per_token > 0
    assert "up to date" in run("load_default_prices")


def test_load_default_prices_keeps_prices_changed_locally(db):
    latest = ModelPrice.objects.filter(model_key="gpt-4o").latest("effective_from")
    ModelPrice.objects.create(model_key="gpt-4o", litellm_provider="openai", mode="chat",
                              effective_from=latest.effective_from + timedelta(seconds=1),
                              input_cost_per_token=Decimal("0.000001"), output_cost_per_token=Decimal("0.000002"),
                              source="admin: operator")
    output = run("load_default_prices")
    assert "kept     gpt-4o" in output
    assert ModelPrice.objects.filter(model_key="gpt-4o").latest("effective_from").source == "admin: operator"


# --- import_prices -----------------------------------------------------------------------------------


def test_import_prices_creates_versions_and_reports_them(db, price_map, django_capture_on_commit_callbacks):
    published = []
    from apps.core import invalidation

    invalidation.register_handler(published.append)
    with django_capture_on_commit_callbacks(execute=True):
        output = run("import_prices", price_map(LITELLM_MAP))
    assert "2 new model(s), 0 changed" in output
    assert "new      test-model-a" in output and "new      test/model-b" in output
    assert "sample_spec" not in output
    a = ModelPrice.objects.get(model_key="test-model-a")
    assert (a.input_cost_per_token, a.output_cost_per_token) == (Decimal("0.0000025"), Decimal("0.00001"))
    assert (a.max_input_tokens, a.max_output_tokens, a.extra) == (128000, 16384, {"supports_vision": True})
    b = ModelPrice.objects.get(model_key="test/model-b")
    assert (b.tier_threshold_tokens, b.input_cost_per_token_above_tier) == (200_000, Decimal("0.000006"))
    assert b.max_output_tokens == 8192  # LiteLLM's legacy max_tokens
    assert {"kind": KIND_PRICES} in published

    again = run("import_prices", price_map(LITELLM_MAP))
    assert "0 new model(s), 0 changed, 2 unchanged" in again and "nothing to change" in again
    assert ModelPrice.objects.filter(model_key__in=["test-model-a", "test/model-b"]).count() == 2


def test_a_changed_price_is_a_new_version_and_the_old_one_stays(db, price_map):
    run("import_prices", price_map(LITELLM_MAP))
    changed = json.loads(json.dumps(LITELLM_MAP))
    changed["test-model-a"]["input_cost_per_token"] = 3e-06
    output = run("import_prices", price_map(changed, "changed.json"))
    assert "0 new model(s), 1 changed, 1 unchanged" in output
    assert "input_cost_per_token: 0.0000025 -> 0.000003" in output
    versions = list(ModelPrice.objects.filter(model_key="test-model-a").order_by("effective_from"))
    assert [v.input_cost_per_token for v in versions] == [Decimal("0.0000025"), Decimal("0.000003")]


@pytest.mark.parametrize("document, message", [
    ({**LITELLM_MAP, "bad-model": {"input_cost_per_token": "cheap"}}, "bad-model.input_cost_per_token"),
    ({**LITELLM_MAP, "negative": {"output_cost_per_token": -1}}, "negative.output_cost_per_token"),
    ({**LITELLM_MAP, "not-an-object": [1, 2]}, "not-an-object: must be an object"),
    ({**LITELLM_MAP, "bad-window": {"max_input_tokens": 1.5}}, "bad-window.max_input_tokens"),
    ([LITELLM_MAP], "must be a JSON object"),
    ("{not json", "not valid JSON"),
])
def test_invalid_input_changes_nothing(db, price_map, document, message):
    before = ModelPrice.objects.count()
    with pytest.raises(CommandError) as info:
        run("import_prices", price_map(document))
    assert message in str(info.value) and "nothing was changed" in str(info.value).lower()
    assert ModelPrice.objects.count() == before


def test_a_missing_file_changes_nothing(db):
    with pytest.raises(CommandError, match="Nothing was changed"):
        run("import_prices", "/nonexistent/prices.json")


def test_dry_run_and_past_effective_dates_change_nothing(db, price_map):
    run("import_prices", price_map(LITELLM_MAP))
    changed = json.loads(json.dumps(LITELLM_MAP))
    changed["test-model-a"]["output_cost_per_token"] = 2e-05
    count = ModelPrice.objects.count()
    assert "would be effective" in run("import_prices", price_map(changed, "c.json"), "--dry-run")
    with pytest.raises(CommandError, match="cannot take effect in the past|must take effect after"):
        run("import_prices", price_map(changed, "c.json"), "--effective-from", "2020-01-01")
    assert ModelPrice.objects.count() == count
    future = (datetime.now(timezone.utc) + timedelta(days=30)).date().isoformat()
    assert "1 changed" in run("import_prices", price_map(changed, "c.json"), "--effective-from", future)


def test_import_prices_from_a_url(db):
    body = json.dumps(LITELLM_MAP).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        output = run("import_prices", f"http://127.0.0.1:{server.server_port}/model_prices.json")
    finally:
        server.shutdown()
    assert "2 new model(s)" in output
    assert ModelPrice.objects.get(model_key="test-model-a").source.startswith("import: http://127.0.0.1:")


# --- the admin ---------------------------------------------------------------------------------------


def test_admin_lists_searches_and_filters_prices(admin_client):
    response = admin_client.get("/admin/spend/modelprice/", {"q": "claude-sonnet-4-5"})
    assert response.status_code == 200 and b"claude-sonnet-4-5" in response.content
    response = admin_client.get("/admin/spend/modelprice/", {"litellm_provider": "groq"})
    assert b"groq/llama-3.3-70b-versatile" in response.content and b"claude" not in response.content


def test_admin_adds_a_version_and_every_process_reloads(admin_client, django_capture_on_commit_callbacks):
    from apps.core import invalidation

    published = []
    invalidation.register_handler(published.append)
    current = ModelPrice.objects.filter(model_key="gpt-4o").latest("effective_from")
    form = admin_client.get(f"/admin/spend/modelprice/{current.pk}/change/")
    assert b"Add a new version from these prices" in form.content
    when = datetime.now(timezone.utc) + timedelta(minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/spend/modelprice/add/", {
            "model_key": "gpt-4o", "litellm_provider": "openai", "mode": "chat",
            "effective_from_0": when.strftime("%Y-%m-%d"), "effective_from_1": when.strftime("%H:%M:%S"),
            "input_cost_per_token": "0.000002", "output_cost_per_token": "0.000008", "extra": "{}",
            "source": "admin: test",
        })
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ModelPrice.objects.filter(model_key="gpt-4o").count() == 2
    assert {"kind": KIND_PRICES} in published


def test_admin_never_edits_or_deletes_a_version_in_force(admin_client):
    current = ModelPrice.objects.filter(model_key="gpt-4o").latest("effective_from")
    admin_client.post(f"/admin/spend/modelprice/{current.pk}/change/", {"input_cost_per_token": "1"})
    current.refresh_from_db()
    assert current.input_cost_per_token != 1
    response = admin_client.post(f"/admin/spend/modelprice/{current.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert ModelPrice.objects.filter(pk=current.pk).exists()


def test_admin_refuses_a_change_in_the_past(admin_client):
    response = admin_client.post("/admin/spend/modelprice/add/", {
        "model_key": "gpt-4o", "effective_from_0": "2020-01-01", "effective_from_1": "00:00:00",
        "input_cost_per_token": "0.000002", "extra": "{}",
    })
    assert response.status_code == 200 and b"must take effect after" in response.content
    assert ModelPrice.objects.filter(model_key="gpt-4o").count() == 1


# --- requests: the spend log keeps the price version, and flags what it could not price -------------


def spend_logs_written(count: int, timeout: float = 5.0) -> list:
    wait_for(lambda: SpendLog.objects.count() >= count, timeout=timeout)
    logs = list(SpendLog.objects.order_by("start_time", "id"))
    assert len(logs) == count, logs
    return logs


def test_a_request_is_priced_from_the_catalog_and_logs_the_version(gateway, openai_client, make_deployment):
    make_deployment("catalog-priced", upstream_model="gpt-4o-mini", input_cost_per_token=None,
                    output_cost_per_token=None, cache_read_input_token_cost=None)
    client = openai_client()
    messages = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="catalog-priced", messages=messages)
    list(client.chat.completions.create(model="catalog-priced", messages=messages, stream=True))

    plain, streamed = spend_logs_written(2)
    price = ModelPrice.objects.filter(model_key="gpt-4o-mini").latest("effective_from")
    expected = ((PROMPT_TOKENS - CACHED_TOKENS) * price.input_cost_per_token
                + CACHED_TOKENS * price.cache_read_input_token_cost + COMPLETION_TOKENS * price.output_cost_per_token)
    assert plain.cost == streamed.cost == expected.quantize(Decimal("1e-10"))
    assert plain.cost_status == streamed.cost_status == SpendLog.CostStatus.PRICED
    assert plain.price_version == streamed.price_version == price.version


def test_an_unpriced_model_is_logged_empty_and_flagged_in_the_admin(gateway, openai_client, make_deployment,
                                                                    admin_client):
    make_deployment("mystery", upstream_model="mystery-model-1", input_cost_per_token=None,
                    output_cost_per_token=None, cache_read_input_token_cost=None)
    make_deployment("gpt-nousage", upstream_model="no-usage")
    openai_client().chat.completions.create(model="mystery", messages=[{"role": "user", "content": "hi"}])
    list(openai_client().chat.completions.create(model="gpt-nousage", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    unpriced, estimated = spend_logs_written(2)
    assert (unpriced.cost, unpriced.cost_status, unpriced.prompt_tokens) == (None, "unpriced", PROMPT_TOKENS)
    assert estimated.cost > 0 and estimated.cost_status == "estimated" and not estimated.usage_reported

    response = admin_client.get("/admin/spend/spendlog/", {"cost_status": "unpriced"})
    assert response.status_code == 200
    assert unpriced.request_id.encode() in response.content and b"unpriced" in response.content
    assert estimated.request_id.encode() not in response.content

    from apps.spend.selectors import spend_cost_status_counts, spend_unpriced_models

    assert spend_cost_status_counts() == {"unpriced": 1, "estimated": 1}
    [row] = spend_unpriced_models()
    assert (row["provider"], row["upstream_model"], row["requests"]) == ("openai", "mystery-model-1", 1)


def test_a_price_change_in_the_admin_prices_the_next_request(gateway, openai_client, make_deployment):
    from apps.spend.price_imports import model_prices_import

    make_deployment("catalog-priced", upstream_model="gpt-4o-mini", input_cost_per_token=None,
                    output_cost_per_token=None, cache_read_input_token_cost=None)
    client = openai_client()
    client.chat.completions.create(model="catalog-priced", messages=[{"role": "user", "content": "hi"}])
    spend_logs_written(1)
    model_prices_import(document={"gpt-4o-mini": {"litellm_provider": "openai", "input_cost_per_token": 1,
                                                  "output_cost_per_token": 1, "cache_read_input_token_cost": 1}},
                        source="test")  # publishes the "prices" invalidation on commit
    client.chat.completions.create(model="catalog-priced", messages=[{"role": "user", "content": "hi"}])
    before, after = spend_logs_written(2)
    assert after.cost == PROMPT_TOKENS + COMPLETION_TOKENS
    assert before.cost < 1 and before.price_version != after.price_version  # the past kept its price
