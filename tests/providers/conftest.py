"""Fixtures the provider tests share."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.providers.models import ModelDeployment
from tests.fakes.providers import ProviderFake

INPUT_COST_PER_TOKEN = Decimal("0.000001")
OUTPUT_COST_PER_TOKEN = Decimal("0.000002")


@pytest.fixture
def deploy(transactional_db):
    """deploy(fake, upstream_model) creates a deployment of a fake upstream and returns its model
    name, `<provider>-<upstream model>`.

    `upstream_model` is the script's name for the model (tests/fakes/brain.py; the fake maps it
    to its provider's), `default_model` when not given. The deployment reaches the fake through
    `connection` (api_base, api_key, ...), the fake's own deployment_fields() unless given;
    `fields` override those and the prices. A test file binds what is its own with
    functools.partial (its fake, its default model).
    """

    def make(
        fake: ProviderFake,
        upstream_model: str | None = None,
        *,
        default_model: str = "fake-model",
        connection: dict[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        upstream_model = upstream_model or default_model
        name = f"{fake.table_name or fake.provider}-{upstream_model}"
        ModelDeployment.objects.create(
            model_name=name,
            provider=fake.provider,
            upstream_model=fake.upstream_model(upstream_model),
            **{
                "input_cost_per_token": INPUT_COST_PER_TOKEN,
                "output_cost_per_token": OUTPUT_COST_PER_TOKEN,
                **(fake.deployment_fields() if connection is None else connection),
                **fields,
            },
        )
        return name

    return make
