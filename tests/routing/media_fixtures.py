"""Fixtures shared by the moderations, images and audio tests: one strict fake of OpenAI's media
endpoints (and Azure's), and deployments on it."""

from __future__ import annotations

import pytest

from tests.fakes.openai_media import API_KEY, OpenAIMediaUpstream


@pytest.fixture(scope="module")
def media_upstream():
    server = OpenAIMediaUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def media_deployment(media_upstream, transactional_db):
    """A deployment on the fake: provider "openai" (default) or "azure"; mode as LiteLLM's model_info.mode."""
    from apps.providers.models import ModelDeployment

    media_upstream.requests.clear()

    def make(model_name: str, upstream_model: str, mode: str, *, provider: str = "openai", **fields):
        api_base = media_upstream.base_url if provider == "openai" else media_upstream.url
        return ModelDeployment.objects.create(
            model_name=model_name, provider=provider, upstream_model=upstream_model, api_base=api_base,
            api_key=API_KEY, mode=mode, **fields,
        )

    return make
