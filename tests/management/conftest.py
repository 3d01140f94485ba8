"""A small two-tenant world for the management API, and a client that calls it as any role.

Acme (org) has the team "research": orgadmin administers Acme, teamadmin administers research,
member and viewer belong to it, accountant is a plain member of Acme. Globex is another tenant
with the team "sales" and its member outsider. Each role calls with a key of its own; the
proxy admin with the master key; the plain key belongs to research and to no user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from rest_framework.test import APIClient

from conftest import MASTER_KEY

ROLES = ("proxy_admin", "org_admin", "team_admin", "member", "viewer", "plain_key")


@dataclass
class World:
    acme: object
    globex: object
    research: object
    sales: object
    users: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)  # name → (VirtualKey, raw key)
    credentials: dict = field(default_factory=dict)  # role → raw key

    def key(self, name):
        return self.keys[name][0]

    def raw(self, name):
        return self.keys[name][1]


@pytest.fixture
def world(db):
    from django.contrib.auth import get_user_model

    from apps.keys.services import virtual_key_create
    from apps.teams.services import organization_create, organization_member_add, team_create, team_member_add

    User = get_user_model()
    acme = organization_create(name="Acme")
    globex = organization_create(name="Globex")
    research = team_create(organization=acme, alias="research")
    sales = team_create(organization=globex, alias="sales")
    world = World(acme=acme, globex=globex, research=research, sales=sales)
    for name in ("orgadmin", "teamadmin", "member", "viewer", "accountant", "outsider"):
        world.users[name] = User.objects.create_user(name, email=f"{name}@example.com")
    organization_member_add(organization=acme, user=world.users["orgadmin"], role="admin")
    organization_member_add(organization=acme, user=world.users["accountant"], role="member")
    team_member_add(team=research, user=world.users["teamadmin"], role="admin")
    team_member_add(team=research, user=world.users["member"], role="member")
    team_member_add(team=research, user=world.users["viewer"], role="viewer")
    team_member_add(team=sales, user=world.users["outsider"], role="member")

    world.keys["orgadmin"] = virtual_key_create(alias="orgadmin-key", user=world.users["orgadmin"])
    world.keys["teamadmin"] = virtual_key_create(
        alias="teamadmin-key", team=research, user=world.users["teamadmin"]
    )
    world.keys["member"] = virtual_key_create(alias="member-key", team=research, user=world.users["member"])
    world.keys["viewer"] = virtual_key_create(alias="viewer-key", team=research, user=world.users["viewer"])
    world.keys["plain"] = virtual_key_create(alias="plain-key", team=research)
    world.keys["outsider"] = virtual_key_create(
        alias="outsider-key", team=sales, user=world.users["outsider"]
    )
    world.credentials = {
        "proxy_admin": MASTER_KEY,
        "org_admin": world.raw("orgadmin"),
        "team_admin": world.raw("teamadmin"),
        "member": world.raw("member"),
        "viewer": world.raw("viewer"),
        "plain_key": world.raw("plain"),
        "outsider": world.raw("outsider"),
    }
    return world


class Api:
    """Calls the management API with a key (the master key by default)."""

    def __init__(self) -> None:
        self.client = APIClient()

    def __call__(self, method: str, path: str, body=None, *, key: str | None = MASTER_KEY, **headers):
        if key is not None:
            headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {key}")
        if method == "GET":
            return self.client.get(path, body or {}, **headers)
        return self.client.generic(
            method,
            path,
            data=b"" if body is None else _json(body),
            content_type="application/json",
            **headers,
        )

    def get(self, path, query=None, **kwargs):
        return self("GET", path, query, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self("POST", path, body, **kwargs)


def _json(body) -> str:
    import json

    return body if isinstance(body, str) else json.dumps(body)


@pytest.fixture
def api():
    return Api()


def assert_error(response, status: int, *, param=..., code=...):
    """The answer is an OpenAI-shaped error with this status (and param, code when given)."""
    assert response.status_code == status, (response.status_code, response.content)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not ...:
        assert error["param"] == param, error
    if code is not ...:
        assert error["code"] == code, error
    return error


@pytest.fixture
def make_deployment_row(db):
    """A deployment row (no upstream behind it: for the management API's own tests)."""
    from apps.providers.models import ModelDeployment

    def make(model_name: str, **fields):
        values = {"provider": "openai", "upstream_model": model_name, "api_key": "sk-upstream-secret"}
        values.update(fields)
        return ModelDeployment.objects.create(model_name=model_name, **values)

    return make
