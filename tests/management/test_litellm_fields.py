"""Every body field a management route does not act on is a 400 naming it (never silently
dropped): LiteLLM's fields it does not act on yet ("unsupported_field", unless sent empty, as
LiteLLM's UI and SDK send every unset field) and fields nobody knows ("unknown_field")."""

from pathlib import Path

import pytest

from apps.keys.models import VirtualKey
from apps.management.urls import api_urlpatterns
from tests.management.conftest import assert_error
from tests.management.litellm_fields import render_markdown

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "litellm-compat.md"
POST_ROUTES = [  # the routes taking a body, but PATCH /model/{model_id}/update (tested below)
    "/" + str(p.pattern) for p in api_urlpatterns
    if getattr(p.callback.view_class, "input_serializer", None) and "<" not in str(p.pattern)
]


@pytest.mark.parametrize(
    "field, value",
    [
        ("allowed_routes", ["/v1/chat/completions"]),
        ("policies", ["my-policy"]),
        ("prompts", ["my-prompt"]),
        ("key", "sk-chosen-by-me"),
        ("send_invite_email", True),
        ("key_type", "read_only"),
        ("spend", 3),
        ("auto_rotate", True),
        ("router_settings", {"num_retries": 3}),
    ],
)
def test_key_generate_refuses_a_litellm_field_it_does_not_act_on(api, world, field, value):
    error = assert_error(api.post("/key/generate", {"key_alias": "k", field: value}), 400,
                         param=field, code="unsupported_field")
    assert "does not act on" in error["message"]
    assert VirtualKey.objects.count() == len(world.keys)


def test_a_typo_is_an_unknown_field_with_a_suggestion_and_makes_no_key(api, world):
    error = assert_error(api.post("/key/generate", {"max_budge": 5}), 400, param="max_budge", code="unknown_field")
    assert "max_budget" in error["message"]
    # Unknown fields are refused even when null: only LiteLLM's own fields may come empty.
    assert_error(api.post("/key/generate", {"max_budge": None}), 400, param="max_budge", code="unknown_field")
    assert VirtualKey.objects.count() == len(world.keys)


def test_litellm_fields_sent_empty_or_at_a_value_without_effect_are_accepted(api, world):
    body = {
        "key_alias": "from-the-ui", "tags": None, "guardrails": [], "aliases": {}, "config": {},
        "permissions": {}, "allowed_cache_controls": [], "send_invite_email": False, "key_type": "llm_api",
        "duration": None, "spend": 0, "auto_rotate": False, "rotation_interval": None, "budget_id": "",
        "model_max_budget": {}, "object_permission": None,
    }
    response = api.post("/key/generate", body)
    assert response.status_code == 200, response.content
    assert response.json()["key_alias"] == "from-the-ui"
    assert api.post("/key/generate", {"key_type": "default"}).status_code == 200


@pytest.mark.parametrize("path", POST_ROUTES)
def test_every_post_route_refuses_an_unknown_field(api, world, path):
    path = path.replace("<str:team_id>", str(world.research.pk))
    assert_error(api.post(path, {"definitely_not_a_field": 1}), 400, param="definitely_not_a_field",
                 code="unknown_field")


def test_patch_model_update_refuses_an_unknown_field(api, world, make_deployment_row):
    make_deployment_row("gpt-a", config_id="m-1")
    assert_error(api("PATCH", "/model/m-1/update", {"definitely_not_a_field": 1}), 400,
                 param="definitely_not_a_field", code="unknown_field")


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("/team/new", {"team_alias": "t", "policies": ["x"]}, "policies"),
        ("/team/update", {"team_id": "ACME-TEAM", "router_settings": {"a": "b"}}, "router_settings"),
        ("/team/update", {"team_id": "ACME-TEAM", "team_member_permissions": ["/key/generate"]},
         "team_member_permissions"),
        ("/user/new", {"user_id": "u2", "model_max_budget": {"gpt": 1}}, "model_max_budget"),
        ("/user/update", {"user_id": "member", "spend": 0}, "spend"),  # would reset spend in LiteLLM
        ("/organization/new", {"organization_alias": "O", "model_rpm_limit": {"gpt": 1}}, "model_rpm_limit"),
        ("/organization/member_add", {"organization_id": "ACME", "member": {"user_id": "u", "role": "internal_user"},
                                      "max_budget_in_organization": 3}, "max_budget_in_organization"),
    ],
)
def test_team_user_and_organization_routes_refuse_litellm_fields_they_do_not_act_on(api, world, path, body, param):
    body = {k: str(world.acme.pk) if v == "ACME" else str(world.research.pk) if v == "ACME-TEAM" else v
            for k, v in body.items()}
    assert_error(api.post(path, body), 400, param=param, code="unsupported_field")


def test_the_same_fields_sent_empty_pass_on_team_and_user_routes(api, world):
    team = api.post("/team/new", {"team_alias": "t", "organization_id": str(world.acme.pk), "tags": None,
                                  "guardrails": [], "model_aliases": {}, "admins": [], "members": []})
    assert team.status_code == 200, team.content
    user = api.post("/user/new", {"user_id": "u3", "model_max_budget": {}, "send_invite_email": False,
                                  "spend": 0, "sso_user_id": None})
    assert user.status_code == 200, user.content


def test_nested_member_objects_are_held_to_the_same_rule(api, world):
    team_id = str(world.research.pk)
    assert_error(
        api.post("/team/member_add", {"team_id": team_id, "member": {"user_id": "n", "role": "user", "budget": 1}}),
        400, param="member[0].budget",
    )
    assert_error(
        api.post("/user/new", {"user_id": "n", "teams": [{"team_id": team_id, "max_budget_in_team": 5}]}),
        400, param="teams[0]",
    )
    ok = api.post("/user/new", {"user_id": "n", "teams": [{"team_id": team_id, "max_budget_in_team": None,
                                                           "user_role": "user"}]})
    assert ok.status_code == 200, ok.content


def test_queries_tolerate_parameters_the_route_does_not_read(api, world):
    response = api.get("/key/list", {"page": 1, "size": 10, "include_team_keys": "true", "sort_by": "created_at"})
    assert response.status_code == 200
    assert api.get("/team/list", {"page": 2, "whatever": "x"}).status_code == 200


def test_docs_litellm_compat_md_lists_the_fields_not_acted_on():
    assert render_markdown() in DOCS.read_text(), (
        "docs/litellm-compat.md is out of date: paste `python -m tests.management.litellm_fields` into it"
    )
