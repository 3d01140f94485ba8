"""Who the management API recognises (master key, virtual keys, staff sessions), its
OpenAI-shaped errors, its OpenAPI schema, and its place beside the data plane."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.management.urls import api_urlpatterns
from apps.routing.urls import CONTROL_PLANE_PATHS, DATA_PLANE_PREFIXES
from tests.management.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_without_a_key_the_answer_is_401_with_a_bearer_challenge(api, world):
    response = api.get("/key/list", key=None)
    assert_error(response, 401, code="missing_api_key")
    assert response.json()["error"]["type"] == "authentication_error"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_expired_and_blocked_keys_are_401(api, world):
    from apps.keys.services import virtual_key_create, virtual_key_set_blocked

    assert_error(api.get("/key/info", key="sk-not-a-key"), 401, code="invalid_api_key")
    _, expired = virtual_key_create(
        user=world.users["member"], expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert_error(api.get("/key/info", key=expired), 401, code="key_expired")
    virtual_key_set_blocked(key=world.key("member"), blocked=True)
    assert_error(api.get("/key/info", key=world.raw("member")), 401, code="key_blocked")


def test_a_key_of_an_inactive_user_is_401(api, world):
    world.users["member"].is_active = False
    world.users["member"].save()
    assert_error(api.get("/key/info", key=world.raw("member")), 401, code="user_inactive")


@pytest.mark.parametrize("header", ["HTTP_X_API_KEY", "HTTP_API_KEY"])
def test_keys_are_read_from_the_data_planes_headers_too(api, world, header):
    assert api.get("/key/info", key=None, **{header: world.raw("member")}).status_code == 200


def test_the_master_key_may_come_from_the_config_file(api, world, settings, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("general_settings:\n  master_key: sk-from-file\n")
    settings.GATEWAY_MASTER_KEY = None
    settings.GATEWAY_CONFIG = str(config)
    assert api.get("/organization/list", key="sk-from-file").status_code == 200
    assert_error(api.get("/organization/list", key="sk-master-test"), 401)


def test_a_superusers_key_is_the_proxy_admin_when_the_proxy_admin_issued_it(api, world):
    from apps.keys.services import virtual_key_create

    root = world.users["accountant"]
    root.is_superuser = True
    root.save()
    _, raw = virtual_key_create(user=root, issued_by_proxy_admin=True)
    assert api.post("/organization/new", {"organization_alias": "Root Inc"}, key=raw).status_code == 200


def test_a_superusers_key_made_by_anyone_else_or_in_a_team_is_not_the_proxy_admin(api, world):
    from apps.keys.services import virtual_key_create

    root = world.users["accountant"]
    root.is_superuser = True
    root.save()
    _, not_issued = virtual_key_create(user=root)
    _, in_team = virtual_key_create(user=root, team=world.research, issued_by_proxy_admin=True)
    for raw in (not_issued, in_team):
        assert_error(api.post("/organization/new", {"organization_alias": "Root Inc"}, key=raw), 403)


def test_staff_sessions_authenticate_with_csrf_on_writes(world, django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin)
    assert client.get("/organization/list").status_code == 200
    response = client.post("/organization/new", {"organization_alias": "Session Inc"}, format="json")
    assert_error(response, 403)
    assert "CSRF" in response.json()["error"]["message"]

    client.get("/admin/")  # a page with a form: it sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/organization/new", {"organization_alias": "Session Inc"}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200


def test_sessions_of_staff_act_with_their_memberships_and_others_are_not_recognised(world):
    orgadmin = world.users["orgadmin"]
    orgadmin.is_staff = True
    orgadmin.save()
    client = APIClient()
    client.force_login(orgadmin)
    assert [o["organization_alias"] for o in client.get("/organization/list").json()] == ["Acme"]
    assert_error(client.post("/organization/new", {"organization_alias": "X"}, format="json"), 403)

    client.force_login(world.users["member"])  # not staff: not an admin session
    assert_error(client.get("/organization/list"), 401)


def test_errors_keep_openais_shape(api, world, monkeypatch):
    response = api.get("/key/generate")
    assert_error(response, 405, code="method_not_allowed")

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("apps.teams.api.selectors.organization_list", broken)
    response = api.get("/organization/list")
    error = assert_error(response, 500, code="internal_error")
    assert error["type"] == "server_error" and "boom" not in error["message"]


def test_the_openapi_schema_documents_every_route(api, world):
    response = api.get("/management/openapi.json", key=None)
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {"/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(p.pattern))
                                    for p in api_urlpatterns}
    callback = schema["paths"]["/team/{team_id}/callback"]["get"]
    assert [(p["name"], p["in"]) for p in callback["parameters"]] == [("team_id", "path")]
    regenerate = schema["paths"]["/key/{key}/regenerate"]["post"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in regenerate] == [("key", "path", True)]
    generate = schema["paths"]["/key/generate"]["post"]
    assert generate["operationId"] == "keyGenerate"
    body = generate["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"key_alias", "duration", "team_id", "max_budget"} <= set(
        schema["components"]["schemas"][body]["properties"]
    )
    parameters = {p["name"] for p in schema["paths"]["/key/list"]["get"]["parameters"]}
    assert {"page", "size", "team_id", "return_full_object"} <= parameters


def test_no_management_route_falls_under_the_data_plane():
    for pattern in api_urlpatterns:
        path = "/" + str(pattern.pattern)
        assert path in CONTROL_PLANE_PATHS or not path.startswith(DATA_PLANE_PREFIXES), pattern.pattern


def test_management_json_nested_past_the_limit_is_a_400(api, world, settings):
    """The review's 10,000 levels (a 500 before), and just past the configured depth."""
    assert_error(api.post("/key/generate", _deep_json(10_000)), 400, code="invalid_json")
    assert_error(api.post("/key/generate", _deep_json(settings.GATEWAY_MAX_JSON_DEPTH + 1)), 400)
    assert api.post("/key/generate", _deep_json(settings.GATEWAY_MAX_JSON_DEPTH)).status_code == 200


def _deep_json(levels: int) -> str:
    """{"metadata": {"a": ... {}}}: objects `levels` deep, the body itself included."""
    return '{"metadata":' + '{"a":' * (levels - 2) + "{}" + "}" * (levels - 2) + "}"
