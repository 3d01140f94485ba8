"""One translator per provider, found by the provider part of `provider/model`.

Translators are imported on first use, so a provider's dependencies (botocore,
google-auth) cost nothing to a gateway that does not use it.
"""

from __future__ import annotations

from importlib import import_module

from apps.providers.adapters.base import ProviderAdapter
from apps.providers.adapters.openai import OPENAI_COMPATIBLE_PRESETS, OpenAICompatibleAdapter

_ADAPTER_CLASSES = {
    "openai": "apps.providers.adapters.openai.OpenAIAdapter",
    "azure": "apps.providers.adapters.openai.AzureOpenAIAdapter",
    "anthropic": "apps.providers.adapters.anthropic.AnthropicAdapter",
    "gemini": "apps.providers.adapters.gemini.GeminiAdapter",
    "vertex_ai": "apps.providers.adapters.vertex.VertexAIAdapter",
    "vertex_ai/anthropic": "apps.providers.adapters.vertex_anthropic.VertexAnthropicAdapter",
    "bedrock": "apps.providers.adapters.bedrock.BedrockAdapter",
    "ollama": "apps.providers.adapters.ollama.OllamaAdapter",
    "cohere": "apps.providers.adapters.cohere.CohereAdapter",
}
_adapters: dict[str, ProviderAdapter] = {
    name: OpenAICompatibleAdapter(name, base, env) for name, (base, env) in OPENAI_COMPATIBLE_PRESETS.items()
}


# Models a provider serves in another's format: (provider, model prefix) → translator key.
_PARTNER_MODELS = {("vertex_ai", "claude"): "vertex_ai/anthropic"}


def adapter_for(provider: str, upstream_model: str = "") -> ProviderAdapter | None:
    """The translator for a provider, or for one of its partner models (Claude on Vertex AI)."""
    for (partner_provider, prefix), key in _PARTNER_MODELS.items():
        if provider == partner_provider and upstream_model.startswith(prefix):
            provider = key
            break
    adapter = _adapters.get(provider)
    if adapter is None and provider in _ADAPTER_CLASSES:
        module_name, _, class_name = _ADAPTER_CLASSES[provider].rpartition(".")
        try:
            adapter = getattr(import_module(module_name), class_name)()
        except (ImportError, AttributeError):
            return None
        _adapters[provider] = adapter
    return adapter


def known_providers() -> list[str]:
    return sorted((set(_adapters) | set(_ADAPTER_CLASSES)) - set(_PARTNER_MODELS.values()))
