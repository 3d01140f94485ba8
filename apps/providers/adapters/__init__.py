"""One translator per provider, found by the provider part of `provider/model`."""

from __future__ import annotations

from apps.providers.adapters.base import ProviderAdapter
from apps.providers.adapters.openai import (
    OPENAI_COMPATIBLE_PRESETS,
    OpenAIAdapter,
    OpenAICompatibleAdapter,
)

ADAPTERS: dict[str, ProviderAdapter] = {"openai": OpenAIAdapter()}
for _name, (_base, _env) in OPENAI_COMPATIBLE_PRESETS.items():
    ADAPTERS[_name] = OpenAICompatibleAdapter(_name, _base, _env)


def adapter_for(provider: str) -> ProviderAdapter | None:
    return ADAPTERS.get(provider)


def known_providers() -> list[str]:
    return sorted(ADAPTERS)
