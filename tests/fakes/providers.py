"""The registry of fake provider upstreams used by the conformance table (tests/providers).

A fake module named `tests/fakes/<something>_upstream.py` that defines a ProviderFake
subclass decorated with @register is picked up by the table on its own.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Self

from tests.fakes.server import FakeServer

PROVIDER_FAKES: dict[str, type["ProviderFake"]] = {}


class ProviderFake:
    """One provider's fake upstream as the table sees it; a subclass says which server it runs
    (new_server) and how a deployment reaches it (deployment_fields)."""

    provider: str = ""  # the provider part of provider/model
    table_name: str = ""  # the table's name for it, when one provider has several fakes
    # What the provider can do, so the table skips cases it cannot (e.g. images).
    features: frozenset[str] = frozenset({"tools", "parallel_tools", "images", "stream", "cache_usage"})

    def __init__(self) -> None:
        self.requests: list[dict] = []  # what reached the upstream: path, headers, body
        self.server: FakeServer | None = None  # the upstream, once started

    def new_server(self) -> FakeServer:
        """The upstream server this fake runs; it records what reaches it in `requests`."""
        raise NotImplementedError

    def start(self) -> Self:
        self.server = self.new_server()
        self.requests = self.server.requests
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def deployment_fields(self) -> dict[str, Any]:
        """ModelDeployment fields that point a deployment at this fake (api_base, api_key, ...)."""
        raise NotImplementedError

    def upstream_model(self, scripted: str) -> str:
        """The upstream model name for one of the script's model names (tests/fakes/brain.py)."""
        return scripted


def register(cls: type[ProviderFake]) -> type[ProviderFake]:
    PROVIDER_FAKES[cls.table_name or cls.provider] = cls
    return cls


def load_all() -> dict[str, type[ProviderFake]]:
    import tests.fakes

    for module in pkgutil.iter_modules(tests.fakes.__path__):
        if module.name.endswith("_upstream"):
            importlib.import_module(f"tests.fakes.{module.name}")
    return PROVIDER_FAKES
