"""LiteLLM's bodies with its required fields only work: where the gateway's model needs more (a
team's organization), it defaults instead of refusing."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.teams.models import Organization, Team
from tests.management.conftest import assert_error

from conftest import MASTER_KEY

pytestmark = pytest.mark.django_db


def test_the_proxy_admins_team_without_organization_lands_in_the_default_one(api, world):
    first = api.post("/team/new", {"team_alias": "x", "models": ["gpt-4o"]})
    assert first.status_code == 200, first.content
    default = Organization.objects.get(name="default")
    assert first.json()["organization_id"] == str(default.pk) and first.json()["models"] == ["gpt-4o"]
    second = api.post("/team/new", {})  # LiteLLM's team_alias is optional too
    assert second.json()["organization_id"] == str(default.pk)
    assert Organization.objects.filter(name="default").count() == 1
    # An organization like any other: listed, and in the admin.
    assert "default" in {o["organization_alias"] for o in api.get("/organization/list").json()}


def test_the_default_organization_is_in_the_admin(api, world, client):
    from django.contrib.auth import get_user_model

    api.post("/team/new", {"team_alias": "x"})
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-long-enough"))
    page = client.get("/admin/teams/organization/")
    assert page.status_code == 200 and b">default<" in page.content


def test_org_admins_and_others_keep_their_rules(api, world):
    response = api.post("/team/new", {"team_alias": "ops"}, key=world.credentials["org_admin"])
    assert response.json()["organization_id"] == str(world.acme.pk)  # its only organization
    assert_error(api.post("/team/new", {"team_alias": "t"}, key=world.credentials["team_admin"]), 403)
    assert_error(api.post("/team/new", {"team_alias": "t"}, key=world.credentials["member"]), 403)
    assert not Organization.objects.filter(name="default").exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_teams_make_one_default_organization(world):
    errors, statuses = [], []
    barrier = threading.Barrier(6)

    def create(index):
        try:
            client = APIClient()
            barrier.wait()
            response = client.post("/team/new", {"team_alias": f"t{index}"}, format="json",
                                   HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
            statuses.append(response.status_code)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and statuses == [200] * 6
    assert Organization.objects.filter(name="default").count() == 1
    assert Team.objects.filter(organization__name="default").count() == 6


# LiteLLM's optional fields of /user/new and /key/generate, each alone with a plausible value.
USER_NEW_FIELDS = {
    "user_id": "solo", "user_email": "solo@example.com", "user_alias": "Solo", "user_role": "internal_user",
    "teams": ["RESEARCH"], "team_id": "RESEARCH", "organizations": ["ACME"], "auto_create_key": False,
    "send_invite_email": True, "password": "a-long-password", "sso_user_id": "sso-1", "key_alias": "first",
    "duration": "30d", "models": ["gpt-4o"], "spend": 2, "max_budget": 10, "max_parallel_requests": 2,
    "metadata": {"a": 1}, "tpm_limit": 1000, "rpm_limit": 10, "budget_duration": "30d",
    "allowed_cache_controls": ["no-cache"], "config": {"a": 1}, "permissions": {"a": 1},
    "model_max_budget": {"gpt-4o": 1}, "model_rpm_limit": {"gpt-4o": 1}, "model_tpm_limit": {"gpt-4o": 1},
    "guardrails": ["g"], "policies": ["p"], "prompts": ["p"], "blocked": True, "aliases": {"a": "b"},
    "object_permission": {"vector_stores": ["v"]}, "agent_id": "agent-1",
}
KEY_GENERATE_FIELDS = {
    "key_alias": "k", "duration": "30d", "models": ["gpt-4o"], "spend": 2, "max_budget": 10, "user_id": "member",
    "team_id": "RESEARCH", "organization_id": "ACME", "max_parallel_requests": 2, "metadata": {"a": 1},
    "tpm_limit": 1000, "rpm_limit": 10, "budget_duration": "30d", "allowed_cache_controls": ["no-cache"],
    "config": {"a": 1}, "permissions": {"get_spend_routes": True}, "model_max_budget": {"gpt-4o": 1},
    "model_rpm_limit": {"gpt-4o": 1}, "model_tpm_limit": {"gpt-4o": 1}, "guardrails": ["g"], "policies": ["p"],
    "prompts": ["p"], "blocked": True, "aliases": {"a": "b"}, "object_permission": {"vector_stores": ["v"]},
    "agent_id": "agent-1", "key": "sk-mine", "budget_id": "b", "tags": ["t"], "enforced_params": ["user"],
    "allowed_routes": ["/v1/chat/completions"], "allowed_passthrough_routes": ["/x"],
    "allowed_vector_store_indexes": [{"index_name": "i", "index_permissions": ["read"]}],
    "rpm_limit_type": "best_effort_throughput", "tpm_limit_type": "best_effort_throughput",
    "router_settings": {"num_retries": 1}, "access_group_ids": ["g"], "soft_budget": 5,
    "send_invite_email": True, "key_type": "management", "auto_rotate": True, "rotation_interval": "30d",
    "project_id": "p",
}


def _placed(world, value):
    places = {"RESEARCH": str(world.research.pk), "ACME": str(world.acme.pk)}
    if isinstance(value, list):
        return [places.get(v, v) if isinstance(v, str) else v for v in value]
    return places.get(value, value) if isinstance(value, str) else value


def _succeeds_or_names_it(response, field, serializer):
    """200 for a field the route acts on; the 400 naming it for one it does not act on yet."""
    if field in serializer().fields:
        assert response.status_code == 200, (field, response.content)
    else:
        assert_error(response, 400, param=field, code="unsupported_field")


def test_user_new_and_key_generate_with_no_fields_at_all(api, world):
    user = api.post("/user/new", {})
    assert user.status_code == 200 and user.json()["key"].startswith("sk-") and user.json()["user_id"]
    key = api.post("/key/generate", {})
    assert key.status_code == 200 and key.json()["key"].startswith("sk-")


@pytest.mark.parametrize("field", sorted(USER_NEW_FIELDS))
def test_user_new_with_each_litellm_field_alone(api, world, field):
    from apps.teams.serializers import UserNewInput

    response = api.post("/user/new", {field: _placed(world, USER_NEW_FIELDS[field])})
    _succeeds_or_names_it(response, field, UserNewInput)


@pytest.mark.parametrize("field", sorted(KEY_GENERATE_FIELDS))
def test_key_generate_with_each_litellm_field_alone(api, world, field):
    from apps.customers.services import budget_create
    from apps.keys.serializers import KeyGenerateInput

    budget_create(organization=None, budget_id="b", rpm_limit=10)  # the proxy admin's, for budget_id
    response = api.post("/key/generate", {field: _placed(world, KEY_GENERATE_FIELDS[field])})
    _succeeds_or_names_it(response, field, KeyGenerateInput)


def test_user_new_takes_litellms_older_team_id_as_a_team(api, world):
    response = api.post("/user/new", {"user_id": "joiner", "team_id": str(world.research.pk)})
    assert response.json()["teams"] == [str(world.research.pk)]
    members = api.get("/team/info", {"team_id": str(world.research.pk)}).json()["team_memberships"]
    assert "joiner" in {m["user_id"] for m in members}
