"""Cost cases: each provider's usage shape priced from the catalog and the deployment's prices.

The catalog here is a small LiteLLM-format price map of the test's own (not the shipped one, so
the expected costs never move with a price update); every expected cost is worked out by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable

import orjson
import pytest

from apps.providers.adapters import adapter_for
from apps.providers.adapters.anthropic import usage_from_anthropic
from apps.providers.adapters.base import Operation, Usage
from apps.providers.adapters.bedrock import usage_from_converse
from apps.providers.adapters.gemini import usage_from_gemini
from apps.providers.adapters.openai import usage_from_openai
from apps.providers.registry import Deployment
from apps.spend.pricing import CostStatus, price_catalog, price_usage

EFFECTIVE = datetime(2025, 1, 1, tzinfo=timezone.utc)
SONNET_TIER = {
    "input_cost_per_token_above_200k_tokens": 6e-06,
    "output_cost_per_token_above_200k_tokens": 2.25e-05,
    "cache_read_input_token_cost_above_200k_tokens": 6e-07,
    "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
}
TEST_PRICES = {
    "gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06,
               "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06,
               "max_input_tokens": 128000, "max_output_tokens": 16384},
    "o3": {"litellm_provider": "openai", "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
           "cache_read_input_token_cost": 5e-07},
    "reasoner-x": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
                   "output_cost_per_reasoning_token": 4e-06},
    "text-embedding-3-small": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": 2e-08},
    "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04},
    "whisper-1": {"litellm_provider": "openai", "mode": "audio_transcription", "input_cost_per_second": 0.0001},
    "claude-sonnet-4-5": {"litellm_provider": "anthropic", "input_cost_per_token": 3e-06,
                          "output_cost_per_token": 1.5e-05, "cache_read_input_token_cost": 3e-07,
                          "cache_creation_input_token_cost": 3.75e-06,
                          "cache_creation_input_token_cost_above_1hr": 6e-06, **SONNET_TIER},
    "gemini/gemini-2.5-pro": {"litellm_provider": "gemini", "input_cost_per_token": 1.25e-06,
                              "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-07,
                              "input_cost_per_token_above_200k_tokens": 2.5e-06,
                              "output_cost_per_token_above_200k_tokens": 1.5e-05,
                              "cache_read_input_token_cost_above_200k_tokens": 2.5e-07},
    "gemini-2.5-flash": {"litellm_provider": "vertex_ai-language-models", "input_cost_per_token": 3e-07,
                         "output_cost_per_token": 2.5e-06, "cache_read_input_token_cost": 3e-08},
    "anthropic.claude-3-5-sonnet-20241022-v2:0": {
        "litellm_provider": "bedrock_converse", "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
        "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06},
    "groq/llama-3.3-70b-versatile": {"litellm_provider": "groq", "input_cost_per_token": 5.9e-07,
                                     "output_cost_per_token": 7.9e-07},
    "deepseek/deepseek-chat": {"litellm_provider": "deepseek", "input_cost_per_token": 2.8e-07,
                               "output_cost_per_token": 4.2e-07, "cache_read_input_token_cost": 2.8e-08},
    "xai/grok-4": {"litellm_provider": "xai", "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                   "input_cost_per_token_above_128k_tokens": 6e-06, "output_cost_per_token_above_128k_tokens": 3e-05},
    "mistral/mistral-large-latest": {"litellm_provider": "mistral", "input_cost_per_token": 2e-06,
                                     "output_cost_per_token": 6e-06},
    "rerank-v3.5": {"litellm_provider": "cohere", "mode": "rerank", "input_cost_per_query": 0.002},
}


def install_prices(document: dict, effective_from: datetime = EFFECTIVE) -> None:
    """This test's catalog alone (the shipped one is set aside inside the test's transaction)."""
    from apps.spend.models import ModelPrice
    from apps.spend.price_imports import model_prices_import

    ModelPrice.objects.all().delete()
    model_prices_import(document=orjson.loads(orjson.dumps(document)), source="test",
                        effective_from=effective_from)
    price_catalog.reload()


@pytest.fixture
def catalog(db):
    install_prices(TEST_PRICES)
    yield price_catalog
    price_catalog.invalidate()  # the next test loads its own database's


def deployment(provider: str, upstream_model: str, **fields) -> Deployment:
    values: dict[str, Any] = dict(
        id=1, model_name="m", provider=provider, upstream_model=upstream_model, adapter=adapter_for(provider),
        api_base=None, api_key=None, api_version=None, weight=1, timeout=None, rpm=None, tpm=None,
        input_cost_per_token=None, output_cost_per_token=None, cache_read_input_token_cost=None,
        extra_params={},
    )
    values.update(fields)
    return Deployment(**values)


@dataclass
class Case:
    id: str
    provider: str
    model: str
    usage: Callable[[], Usage]
    cost: str | None
    status: str = CostStatus.PRICED
    version: str = ""  # the price version it must record ("" = the model key's)
    fields: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.version and self.status != CostStatus.NO_USAGE:
            self.version = f"{self.fields.get('extra_params', {}).get('base_model') or self.key}@2025-01-01T00:00:00Z"

    @property
    def key(self) -> str:
        bare = self.model.split(".", 1)[1] if self.model.startswith("us.") else self.model
        return f"{self.provider}/{bare}" if f"{self.provider}/{bare}" in TEST_PRICES else bare


def reported(**counts) -> Callable[[], Usage]:
    return lambda: Usage(reported=True, **counts)


CASES = [
    # OpenAI's usage: prompt_tokens include the cached ones; completion_tokens include reasoning.
    Case("openai-plain", "openai", "gpt-4o",
         lambda: usage_from_openai({"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}),
         "0.0075"),  # 1000 × 2.5e-6 + 500 × 1e-5
    Case("openai-cached-tokens", "openai", "gpt-4o",
         lambda: usage_from_openai({"prompt_tokens": 1000, "completion_tokens": 500,
                                    "prompt_tokens_details": {"cached_tokens": 400}}),
         "0.007"),  # 600 × 2.5e-6 + 400 × 1.25e-6 + 500 × 1e-5
    Case("openai-reasoning-at-output-price", "openai", "o3",
         lambda: usage_from_openai({"prompt_tokens": 100, "completion_tokens": 1000,
                                    "completion_tokens_details": {"reasoning_tokens": 800}}),
         "0.0082"),  # 100 × 2e-6 + 1000 × 8e-6
    Case("reasoning-at-its-own-price", "openai", "reasoner-x",
         lambda: usage_from_openai({"prompt_tokens": 100, "completion_tokens": 1000,
                                    "completion_tokens_details": {"reasoning_tokens": 800}}),
         "0.0037"),  # 100 × 1e-6 + 200 × 2e-6 + 800 × 4e-6
    Case("openai-embedding", "openai", "text-embedding-3-small",
         lambda: usage_from_openai({"prompt_tokens": 1000, "total_tokens": 1000}), "0.00002"),
    Case("openai-per-image", "openai", "dall-e-3", reported(output_images=2), "0.08"),
    Case("openai-per-second", "openai", "whisper-1", reported(input_seconds=90), "0.009"),
    # Anthropic's usage: input_tokens exclude cache reads and writes.
    Case("anthropic-cache-read-and-write", "anthropic", "claude-sonnet-4-5",
         lambda: usage_from_anthropic({"input_tokens": 100, "cache_creation_input_tokens": 1000,
                                       "cache_read_input_tokens": 2000, "output_tokens": 300}),
         "0.00915"),  # 100 × 3e-6 + 2000 × 3e-7 + 1000 × 3.75e-6 + 300 × 1.5e-5
    Case("anthropic-cache-write-1h", "anthropic", "claude-sonnet-4-5",
         reported(prompt_tokens=1100, cache_write_tokens=1000, cache_write_1h_tokens=600),
         "0.0054"),  # 100 × 3e-6 + 400 × 3.75e-6 + 600 × 6e-6
    Case("anthropic-tier-above-200k", "anthropic", "claude-sonnet-4-5",
         lambda: usage_from_anthropic({"input_tokens": 150000, "cache_read_input_tokens": 60000,
                                       "output_tokens": 1000}),
         "0.9585"),  # 210k prompt > 200k: 150000 × 6e-6 + 60000 × 6e-7 + 1000 × 2.25e-5
    Case("anthropic-at-the-threshold-base-prices", "anthropic", "claude-sonnet-4-5",
         lambda: usage_from_anthropic({"input_tokens": 200000, "output_tokens": 1000}),
         "0.615"),  # 200000 × 3e-6 + 1000 × 1.5e-5
    # Gemini's usage: thoughts apart from candidates; cached content inside the prompt count.
    Case("gemini-thinking-and-cache", "gemini", "gemini-2.5-pro",
         lambda: usage_from_gemini({"promptTokenCount": 1000, "candidatesTokenCount": 200,
                                    "thoughtsTokenCount": 300, "cachedContentTokenCount": 400}),
         "0.0058"),  # 600 × 1.25e-6 + 400 × 1.25e-7 + 500 × 1e-5
    Case("gemini-tier-above-200k", "gemini", "gemini-2.5-pro",
         lambda: usage_from_gemini({"promptTokenCount": 250000, "candidatesTokenCount": 1000}),
         "0.64"),  # 250000 × 2.5e-6 + 1000 × 1.5e-5
    Case("vertex-bare-model-key", "vertex_ai", "gemini-2.5-flash",
         lambda: usage_from_gemini({"promptTokenCount": 1000, "candidatesTokenCount": 100}),
         "0.00055"),  # 1000 × 3e-7 + 100 × 2.5e-6
    # Bedrock Converse: inputTokens exclude cache reads and writes.
    Case("bedrock-converse-cache", "bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0",
         lambda: usage_from_converse({"inputTokens": 100, "outputTokens": 50, "cacheReadInputTokens": 1000,
                                      "cacheWriteInputTokens": 200}),
         "0.0021"),  # 100 × 3e-6 + 1000 × 3e-7 + 200 × 3.75e-6 + 50 × 1.5e-5
    Case("bedrock-cross-region-profile", "bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
         lambda: usage_from_converse({"inputTokens": 1000, "outputTokens": 100}), "0.0045"),
    Case("groq-provider-key", "groq", "llama-3.3-70b-versatile",
         lambda: usage_from_openai({"prompt_tokens": 1000, "completion_tokens": 1000}), "0.00138"),
    Case("deepseek-cache-hits", "deepseek", "deepseek-chat",
         lambda: usage_from_openai({"prompt_tokens": 1000, "completion_tokens": 100,
                                    "prompt_tokens_details": {"cached_tokens": 900}}),
         "0.0000952"),  # 100 × 2.8e-7 + 900 × 2.8e-8 + 100 × 4.2e-7
    Case("xai-tier-above-128k", "xai", "grok-4",
         lambda: usage_from_openai({"prompt_tokens": 130000, "completion_tokens": 100}),
         "0.783"),  # 130000 × 6e-6 + 100 × 3e-5
    Case("mistral", "mistral", "mistral-large-latest",
         lambda: usage_from_openai({"prompt_tokens": 500, "completion_tokens": 250}), "0.0025"),
    Case("cohere-rerank-search-units", "cohere", "rerank-v3.5", reported(search_units=2), "0.004"),
    # The deployment's own prices.
    Case("deployment-price-overrides-catalog", "openai", "gpt-4o",
         lambda: usage_from_openai({"prompt_tokens": 1000, "completion_tokens": 500}),
         "0.006",  # 1000 × 1e-6 (the deployment's) + 500 × 1e-5 (the catalog's)
         version="deployment:1+gpt-4o@2025-01-01T00:00:00Z",
         fields={"input_cost_per_token": Decimal("0.000001")}),
    Case("deployment-prices-drop-the-catalog-tier", "anthropic", "claude-sonnet-4-5",
         lambda: usage_from_anthropic({"input_tokens": 250000, "output_tokens": 1000}),
         "0.51",  # 250000 × 2e-6 + 1000 × 1e-5: its own prices, no tier of other prices
         version="deployment:1+claude-sonnet-4-5@2025-01-01T00:00:00Z",
         fields={"input_cost_per_token": Decimal("0.000002"), "output_cost_per_token": Decimal("0.00001")}),
    Case("azure-custom-name-priced-as-base-model", "azure", "my-gpt4o-deployment",
         lambda: usage_from_openai({"prompt_tokens": 1000, "completion_tokens": 500}), "0.0075",
         fields={"extra_params": {"base_model": "gpt-4o"}}),
    Case("litellm-price-params-on-a-local-model", "ollama", "llama3.2",
         reported(prompt_tokens=10, completion_tokens=5), "0", version="deployment:1",
         fields={"extra_params": {"input_cost_per_token": "0", "output_cost_per_token": 0}}),
    # Estimated, unpriced, nothing used.
    Case("no-usage-reported-is-estimated", "openai", "gpt-4o",
         lambda: Usage(prompt_tokens=1000, completion_tokens=500, reported=False), "0.0075",
         status=CostStatus.ESTIMATED),
    Case("unknown-model-is-unpriced-not-zero", "openai", "gpt-unknown",
         reported(prompt_tokens=10, completion_tokens=5), None, status=CostStatus.UNPRICED, version="-"),
    Case("local-model-without-price-is-unpriced", "ollama", "llama3.2",
         reported(prompt_tokens=10, completion_tokens=5), None, status=CostStatus.UNPRICED, version="-"),
    Case("missing-output-price-is-unpriced", "openai", "text-embedding-3-small",
         reported(prompt_tokens=10, completion_tokens=5), None, status=CostStatus.UNPRICED),
    Case("refused-request-used-nothing", "openai", "gpt-4o", lambda: Usage(), None,
         status=CostStatus.NO_USAGE),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_cost_case(catalog, case: Case):
    priced = price_usage(deployment(case.provider, case.model, **case.fields), case.usage())
    assert priced.status == case.status
    assert priced.cost == (None if case.cost is None else Decimal(case.cost))
    assert priced.version == ("" if case.version == "-" else case.version)


def test_there_are_at_least_twenty_cost_cases():
    assert len(CASES) >= 20


# --- streamed or not: the same tokens cost the same --------------------------------------------


def _sse(*events: dict) -> list[tuple[str | None, bytes]]:
    return [(None, orjson.dumps(event)) for event in events] + [(None, b"[DONE]")]


STREAM_CASES = {
    "openai": (
        "gpt-4o",
        {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 1200, "completion_tokens": 80, "prompt_tokens_details": {"cached_tokens": 1024},
                   "completion_tokens_details": {"reasoning_tokens": 0}}},
        _sse(
            {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
            {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {},
                                                                           "finish_reason": "stop"}]},
            {"id": "c1", "object": "chat.completion.chunk", "choices": [],
             "usage": {"prompt_tokens": 1200, "completion_tokens": 80,
                       "prompt_tokens_details": {"cached_tokens": 1024}}},
        ),
    ),
    "anthropic": (
        "claude-sonnet-4-5",
        {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
         "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
         "usage": {"input_tokens": 30, "cache_creation_input_tokens": 500, "cache_read_input_tokens": 2000,
                   "output_tokens": 47}},
        [
            ("message_start", orjson.dumps({"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                "usage": {"input_tokens": 30, "cache_creation_input_tokens": 500, "cache_read_input_tokens": 2000,
                          "output_tokens": 1}}})),
            ("content_block_start", orjson.dumps({"type": "content_block_start", "index": 0,
                                                  "content_block": {"type": "text", "text": ""}})),
            ("content_block_delta", orjson.dumps({"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "text_delta", "text": "Hi"}})),
            ("content_block_stop", orjson.dumps({"type": "content_block_stop", "index": 0})),
            ("message_delta", orjson.dumps({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                            "usage": {"output_tokens": 47}})),
            ("message_stop", orjson.dumps({"type": "message_stop"})),
        ],
    ),
    "gemini": (
        "gemini-2.5-pro",
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi there"}]}, "finishReason": "STOP",
                         "index": 0}],
         "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 12, "thoughtsTokenCount": 40,
                           "cachedContentTokenCount": 512, "totalTokenCount": 952},
         "modelVersion": "gemini-2.5-pro", "responseId": "r1"},
        [
            (None, orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "index": 0}],
                                 "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 1},
                                 "modelVersion": "gemini-2.5-pro", "responseId": "r1"})),
            (None, orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": " there"}]},
                                                 "finishReason": "STOP", "index": 0}],
                                 "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 12,
                                                   "thoughtsTokenCount": 40, "cachedContentTokenCount": 512,
                                                   "totalTokenCount": 952},
                                 "modelVersion": "gemini-2.5-pro", "responseId": "r1"})),
        ],
    ),
    "bedrock": (
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        {"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}, "stopReason": "end_turn",
         "usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42, "cacheReadInputTokens": 700,
                   "cacheWriteInputTokens": 100}},
        [
            ("messageStart", orjson.dumps({"role": "assistant"})),
            ("contentBlockDelta", orjson.dumps({"contentBlockIndex": 0, "delta": {"text": "Hi"}})),
            ("contentBlockStop", orjson.dumps({"contentBlockIndex": 0})),
            ("messageStop", orjson.dumps({"stopReason": "end_turn"})),
            ("metadata", orjson.dumps({"usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42,
                                                 "cacheReadInputTokens": 700, "cacheWriteInputTokens": 100}})),
        ],
    ),
}


@pytest.mark.parametrize("provider", sorted(STREAM_CASES))
def test_streamed_and_non_streamed_answers_cost_the_same(catalog, provider):
    model, response, events = STREAM_CASES[provider]
    target = deployment(provider, model)
    adapter = target.adapter
    plain = adapter.translate_response(Operation.CHAT, target, orjson.dumps(response)).usage
    translator = adapter.stream_translator(Operation.CHAT, target)
    for event, data in events:
        translator.feed(event, data)
    translator.finish()
    streamed = translator.usage

    assert streamed.reported and plain.reported
    plain_cost = price_usage(target, plain)
    streamed_cost = price_usage(target, streamed)
    assert plain_cost.status == streamed_cost.status == CostStatus.PRICED
    assert plain_cost.cost is not None and plain_cost.cost > 0
    assert streamed_cost == plain_cost  # cost, status and price version


# --- price versions: a change applies from its date on -----------------------------------------


def test_a_price_change_applies_from_its_date_and_leaves_earlier_requests_at_the_old_price(catalog):
    from apps.spend.price_imports import model_prices_import

    change = datetime(2030, 6, 1, tzinfo=timezone.utc)
    model_prices_import(
        document={"gpt-4o": {**TEST_PRICES["gpt-4o"], "input_cost_per_token": Decimal("0.000005")}},
        source="test", effective_from=change,
    )
    price_catalog.reload()
    target = deployment("openai", "gpt-4o")
    usage = Usage(prompt_tokens=1000, completion_tokens=0, reported=True)

    before = price_usage(target, usage, at=change.timestamp() - 1)
    after = price_usage(target, usage, at=change.timestamp())
    assert (before.cost, before.version) == (Decimal("0.0025"), "gpt-4o@2025-01-01T00:00:00Z")
    assert (after.cost, after.version) == (Decimal("0.005"), "gpt-4o@2030-06-01T00:00:00Z")


def test_a_request_before_the_first_price_is_unpriced(catalog):
    target = deployment("openai", "gpt-4o")
    usage = Usage(prompt_tokens=1000, reported=True)
    priced = price_usage(target, usage, at=EFFECTIVE.timestamp() - 1)
    assert (priced.cost, priced.status) == (None, CostStatus.UNPRICED)


def test_unpriced_models_are_counted_for_metrics(catalog):
    before = price_catalog.unpriced.get("openai/gpt-unknown", 0)
    price_usage(deployment("openai", "gpt-unknown"), Usage(prompt_tokens=3, reported=True))
    assert price_catalog.unpriced["openai/gpt-unknown"] == before + 1


def test_cost_for_usage_keeps_its_signature(catalog):
    from apps.spend.pricing import cost_for_usage

    usage = usage_from_openai({"prompt_tokens": 1000, "completion_tokens": 500})
    assert cost_for_usage(deployment("openai", "gpt-4o"), usage) == Decimal("0.0075")
    assert cost_for_usage(deployment("openai", "gpt-unknown"), usage) is None


def test_context_window_comes_with_the_prices(catalog):
    from apps.spend.pricing import prices_in_force

    prices = prices_in_force(deployment("openai", "gpt-4o"))
    assert (prices.max_input_tokens, prices.max_output_tokens) == (128000, 16384)


def test_a_batch_line_is_priced_at_the_batch_columns_with_cache_reads_discounted_alike(catalog):
    from apps.spend.pricing import price_batch_usage

    install_prices({"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 2.5e-06,
                               "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06,
                               "input_cost_per_token_batches": 1.25e-06, "output_cost_per_token_batches": 5e-06},
                    "gpt-4": {"litellm_provider": "openai", "input_cost_per_token": 3e-05,
                              "output_cost_per_token": 6e-05}})
    usage = Usage(prompt_tokens=1000, cached_tokens=400, completion_tokens=100, reasoning_tokens=30, reported=True)
    priced = price_batch_usage(deployment("openai", "gpt-4o"), usage)
    assert priced.status == CostStatus.PRICED
    assert priced.cost == 600 * Decimal("1.25e-06") + 400 * Decimal("0.625e-06") + 100 * Decimal("5e-06")
    # No batch price known: the list price, marked estimated (an upper bound, never $0).
    without = price_batch_usage(deployment("openai", "gpt-4"), usage)
    assert (without.cost, without.status) == (1000 * Decimal("3e-05") + 100 * Decimal("6e-05"), CostStatus.ESTIMATED)


def test_the_shipped_catalog_halves_openai_and_azure_prices_for_batches():
    import json
    from pathlib import Path

    import apps.spend

    document = json.loads((Path(apps.spend.__file__).parent / "data" / "prices.json").read_text(), parse_float=Decimal)
    batched = {name: entry for name, entry in document.items() if not name.startswith("_")
               and entry.get("litellm_provider") in ("openai", "azure") and entry.get("mode") in ("chat", "embedding")}
    assert len(batched) >= 25
    for name, entry in batched.items():
        assert entry["input_cost_per_token_batches"] * 2 == entry["input_cost_per_token"], name
        assert entry["output_cost_per_token_batches"] * 2 == entry.get("output_cost_per_token", 0), name
