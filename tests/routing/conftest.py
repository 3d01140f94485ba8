"""Fixtures of the router's tests: router settings, fast retries, a plain HTTP client."""

from __future__ import annotations

import uuid

import httpx
import pytest

from conftest import MASTER_KEY

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fast_retries(settings):
    """Backoffs of milliseconds, so retry tests take no time (the algorithm is the same)."""
    settings.GATEWAY_ROUTER_RETRY_BASE_DELAY = 0.01
    settings.GATEWAY_ROUTER_RETRY_MAX_DELAY = 0.05


@pytest.fixture
def router_settings(transactional_db):
    """Save router-wide settings (as the admin does): every process picks them up at once."""
    from apps.routing.models import RouterSettings

    def save(**fields) -> RouterSettings:
        row = RouterSettings.objects.first() or RouterSettings()
        for name, value in fields.items():
            setattr(row, name, value)
        row.full_clean()
        row.save()
        return row

    return save


@pytest.fixture
def group_settings(transactional_db):
    from apps.routing.models import ModelGroupSettings

    def save(model_name: str, **fields) -> ModelGroupSettings:
        row, _ = ModelGroupSettings.objects.get_or_create(model_name=model_name)
        for name, value in fields.items():
            setattr(row, name, value)
        row.full_clean()
        row.save()
        return row

    return save


@pytest.fixture
def chat(gateway):
    """POST /v1/chat/completions with the master key (or `key`); returns the httpx response."""
    client = httpx.Client(base_url=gateway.url, timeout=30)

    def post(model: str, key: str = MASTER_KEY, messages=MESSAGES, **extra) -> httpx.Response:
        return client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": model, "messages": messages, **extra})

    yield post
    client.close()


def unique(name: str) -> str:
    """A fake upstream model name of its own for one test (the fake counts by name)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"
