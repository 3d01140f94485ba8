"""A deployment owned by an organization serves only that organization's keys."""

import openai
import pytest

from apps.teams.services import organization_create

MESSAGES = [{"role": "user", "content": "hi"}]


def test_private_deployments_serve_only_their_organization(gateway, openai_client, make_deployment, make_key):
    acme, globex = organization_create(name="acme"), organization_create(name="globex")
    make_deployment("acme-model", organization=acme)
    make_deployment("shared-model")
    _, acme_key = make_key(organization=acme)
    _, globex_key = make_key(organization=globex)

    assert openai_client(acme_key).chat.completions.create(model="acme-model", messages=MESSAGES).choices
    with pytest.raises(openai.NotFoundError):
        openai_client(globex_key).chat.completions.create(model="acme-model", messages=MESSAGES)
    assert sorted(m.id for m in openai_client(acme_key).models.list()) == ["acme-model", "shared-model"]
    assert [m.id for m in openai_client(globex_key).models.list()] == ["shared-model"]
