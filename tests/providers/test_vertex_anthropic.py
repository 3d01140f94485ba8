"""Claude on Vertex AI: vertex_ai/claude-* deployments speak Anthropic's format to Vertex's
Anthropic publisher (the conformance table runs every case against it as "vertex_ai/claude")."""

import functools

import openai
import pytest

from tests.fakes.anthropic_upstream import VERTEX_LOCATION, VERTEX_PROJECT


@pytest.fixture
def claude(provider_fakes):
    return provider_fakes("vertex_ai/claude")


@pytest.fixture
def deploy(deploy, claude):
    # The fake's upstream models are "claude-" + the script's name: this is claude-sonnet-4-5@20250929.
    return functools.partial(deploy, claude, default_model="sonnet-4-5@20250929")


def test_a_claude_model_goes_to_the_anthropic_publisher_in_anthropic_format(gateway, openai_client, claude,
                                                                             deploy):
    model = deploy()
    answer = openai_client().chat.completions.create(
        model=model, max_tokens=50,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    )

    assert answer.choices[0].message.content
    request = claude.requests[-1]
    assert request["path"] == (f"/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}/publishers/anthropic"
                               "/models/claude-sonnet-4-5@20250929:rawPredict")
    assert request["headers"]["Authorization"].startswith("Bearer ")
    assert "x-api-key" not in {name.lower() for name in request["headers"]}
    body = request["body"]
    assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
    assert body["system"] == "Be brief." and body["max_tokens"] == 50


def test_a_google_platform_error_keeps_its_meaning(gateway, openai_client, deploy):
    model = deploy(api_key="ya29.expired")
    with pytest.raises(openai.AuthenticationError):
        openai_client().chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def test_gemini_models_on_vertex_still_go_to_google(claude):
    from apps.providers.adapters import adapter_for
    from apps.providers.adapters.vertex import VertexAIAdapter
    from apps.providers.adapters.vertex_anthropic import VertexAnthropicAdapter

    assert isinstance(adapter_for("vertex_ai", "gemini-2.5-pro"), VertexAIAdapter)
    assert isinstance(adapter_for("vertex_ai", "claude-opus-4-1@20250805"), VertexAnthropicAdapter)
