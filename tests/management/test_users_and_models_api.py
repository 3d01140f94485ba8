"""/user/* and /model/*: LiteLLM's shapes, 400 naming the field, 404 for unknown ids; model
secrets never leave the database."""

import hashlib

import pytest
from django.contrib.auth import get_user_model

from apps.keys.models import VirtualKey
from apps.providers.models import ModelDeployment
from apps.teams.models import OrganizationMembership, TeamMembership, UserLimits
from tests.management.conftest import assert_error

pytestmark = pytest.mark.django_db

User = get_user_model()


# --- users --------------------------------------------------------------------------------


def test_user_new_with_limits_memberships_and_a_first_key(api, world):
    response = api.post(
        "/user/new",
        {
            "user_id": "dana",
            "user_email": "dana@example.com",
            "user_alias": "Dana",
            "user_role": "internal_user",
            "teams": [str(world.research.pk), {"team_id": str(world.sales.pk), "user_role": "admin"}],
            "organizations": [str(world.acme.pk)],
            "max_budget": 20,
            "rpm_limit": 30,
            "models": ["gpt-a"],
            "key_alias": "dana-key",
            "duration": "7d",
            "password": "a-long-password",
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["user_id"], body["user_email"], body["user_alias"], body["user_role"]) == (
        "dana",
        "dana@example.com",
        "Dana",
        "internal_user",
    )
    assert (body["max_budget"], body["rpm_limit"], body["models"]) == (
        20.0,
        30,
        ["gpt-a"],
    )  # the user's limits
    assert body["key"].startswith("sk-") and body["token"] == hashlib.sha256(body["key"].encode()).hexdigest()
    assert body["key_alias"] == "dana-key" and body["expires"] is not None
    assert body["teams"] == [str(world.research.pk), str(world.sales.pk)]

    dana = User.objects.get(username="dana")
    assert dana.check_password("a-long-password") and not dana.is_superuser
    assert UserLimits.objects.get(user=dana).max_budget == 20
    assert TeamMembership.objects.get(user=dana, team=world.sales).role == "admin"
    assert OrganizationMembership.objects.get(user=dana, organization=world.acme).role == "member"
    assert VirtualKey.objects.get(user=dana).token_hash == body["token"]


def test_user_new_roles_and_no_key(api, world):
    body = api.post(
        "/user/new", {"user_id": "root2", "user_role": "proxy_admin", "auto_create_key": False}
    ).json()
    assert body["key"] is None and body["user_role"] == "proxy_admin"
    assert User.objects.get(username="root2").is_superuser
    body = api.post(
        "/user/new", {"user_id": "boss", "user_role": "org_admin", "organizations": [str(world.globex.pk)]}
    ).json()
    assert body["user_role"] == "org_admin"
    body = api.post(
        "/user/new",
        {"user_id": "watcher", "user_role": "internal_user_viewer", "teams": [str(world.research.pk)]},
    ).json()
    assert body["user_role"] == "internal_user_viewer"
    assert TeamMembership.objects.get(user__username="watcher").role == "viewer"
    body = api.post("/user/new", {"user_email": "anon@example.com"}).json()
    assert len(body["user_id"]) == 36  # a uuid, as LiteLLM makes


def test_an_org_admin_creates_users_in_its_organization(api, world):
    response = api.post("/user/new", {"user_id": "hire"}, key=world.credentials["org_admin"])
    assert response.status_code == 200
    assert OrganizationMembership.objects.get(user__username="hire").organization == world.acme
    assert_error(
        api.post(
            "/user/new", {"user_id": "root3", "user_role": "proxy_admin"}, key=world.credentials["org_admin"]
        ),
        403,
        param="user_role",
    )


@pytest.mark.parametrize(
    "body, param, status",
    [
        ({"user_id": "member"}, "user_id", 400),  # exists
        ({"user_id": "bad name!"}, "user_id", 400),
        ({"user_email": "not-an-email"}, "user_email", 400),
        ({"user_role": "god"}, "user_role", 400),
        ({"password": "short"}, "password", 400),
        ({"teams": [5]}, "teams[0]", 400),
        ({"teams": ["00000000-0000-0000-0000-000000000000"]}, "teams", 404),
        ({"organizations": ["nope"]}, "organizations", 404),
        ({"user_role": "org_admin"}, "organizations", 400),
        ({"tpm_limit": -1}, "tpm_limit", 400),
    ],
)
def test_user_new_rejects_invalid_bodies(api, world, body, param, status):
    count = User.objects.count()
    assert_error(api.post("/user/new", body), status, param=param)
    assert User.objects.count() == count


def test_user_update(api, world):
    response = api.post(
        "/user/update",
        {
            "user_id": "member",
            "user_email": "m@example.com",
            "user_alias": "M",
            "max_budget": 5,
            "budget_duration": "1mo",
            "password": "another-password",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["user_email"], body["user_alias"], body["max_budget"], body["budget_duration"]) == (
        "m@example.com",
        "M",
        5.0,
        "1mo",
    )
    assert body["budget_reset_at"] is not None
    assert User.objects.get(username="member").check_password("another-password")
    body = api.post("/user/update", {"user_email": "m@example.com", "user_role": "proxy_admin"}).json()
    assert body["user_role"] == "proxy_admin"
    assert_error(api.post("/user/update", {"user_id": "ghost", "max_budget": 1}), 404, param="user_id")
    assert_error(api.post("/user/update", {"max_budget": 1}), 400, param="user_id")
    assert_error(api.post("/user/update", {"user_id": "member", "max_budget": "x"}), 400, param="max_budget")
    # An org admin gives no role above a member's (proxy_admin and org_admin are the proxy admin's).
    for role in ("org_admin", "proxy_admin", "admin"):
        assert_error(
            api.post(
                "/user/update", {"user_id": "viewer", "user_role": role}, key=world.credentials["org_admin"]
            ),
            403,
            param="user_role",
        )
    # A superuser is the proxy admin's alone.
    assert_error(
        api.post(
            "/user/update", {"user_id": "member", "user_alias": "x"}, key=world.credentials["org_admin"]
        ),
        403,
        param="user_id",
    )


def test_user_delete_takes_the_users_keys(api, world):
    response = api.post("/user/delete", {"user_ids": ["member"]})
    assert response.json() == {"deleted_users": ["member"]}
    assert not User.objects.filter(username="member").exists()
    assert not VirtualKey.objects.filter(alias="member-key").exists()
    assert_error(api.post("/user/delete", {"user_ids": ["viewer", "ghost"]}), 404, param="user_ids")
    assert User.objects.filter(username="viewer").exists()


def test_user_info_and_list(api, world):
    body = api.get("/user/info", key=world.credentials["member"]).json()  # without user_id: oneself
    assert set(body) == {"user_id", "user_info", "keys", "teams"}
    assert body["user_id"] == "member" and body["user_info"]["user_email"] == "member@example.com"
    assert [k["key_alias"] for k in body["keys"]] == ["member-key"]
    assert [(t["team_alias"], t["user_role"]) for t in body["teams"]] == [("research", "user")]
    assert_error(api.get("/user/info"), 400, param="user_id")  # the master key is nobody
    assert_error(api.get("/user/info", {"user_id": "ghost"}), 404, param="user_id")

    body = api.get("/user/list", {"page_size": 3, "page": 1}).json()
    assert (body["total"], body["page"], body["page_size"], body["total_pages"]) == (6, 1, 3, 2)
    assert [u["user_id"] for u in body["users"]] == ["accountant", "member", "orgadmin"]
    research = api.get("/user/list", {"team_id": str(world.research.pk)}).json()["users"]
    assert {u["user_id"] for u in research} == {"teamadmin", "member", "viewer"}
    assert {u["user_id"]: u["user_role"] for u in research}["viewer"] == "internal_user_viewer"
    assert api.get("/user/list", {"organization_id": "nope"}).json()["total"] == 0


# --- models -------------------------------------------------------------------------------


def test_model_new_stores_the_secret_encrypted_and_never_shows_it(api, world):
    response = api.post(
        "/model/new",
        {
            "model_name": "gpt-4o",
            "litellm_params": {
                "model": "openai/gpt-4o",
                "api_key": "sk-upstream-secret",
                "api_base": "https://example.test/v1",
                "rpm": 100,
                "tpm": 10000,
                "weight": 2,
                "timeout": 30,
                "input_cost_per_token": 0.0000025,
                "output_cost_per_token": 0.00001,
                "drop_params": True,
            },
            "model_info": {"id": "gpt-4o-primary"},
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_id"] == body["model_info"]["id"] == "gpt-4o-primary"
    params = body["litellm_params"]
    assert params["model"] == "openai/gpt-4o" and params["api_base"] == "https://example.test/v1"
    assert (params["rpm"], params["tpm"], params["weight"], params["timeout"], params["drop_params"]) == (
        100,
        10000,
        2,
        30.0,
        True,
    )
    assert "api_key" not in params and "sk-upstream-secret" not in response.content.decode()

    deployment = ModelDeployment.objects.get(config_id="gpt-4o-primary")
    assert deployment.api_key == "sk-upstream-secret" and not deployment.managed_by_config
    info = api.get("/model/info", {"litellm_model_id": "gpt-4o-primary"})
    assert "sk-upstream-secret" not in info.content.decode()
    assert info.json()["data"][0]["model_name"] == "gpt-4o"


def test_model_new_takes_an_environment_reference_and_a_bare_host_as_litellm_s_docs_write_them(
    api, world, monkeypatch
):
    """LiteLLM's model_management.md: api_key "os.environ/AZURE_API_KEY", api_base "my-azure-api-base"."""
    from django.db import connection

    body = {
        "model_name": "azure-gpt-turbo",
        "litellm_params": {"model": "azure/gpt-3.5-turbo", "api_key": "os.environ/AZURE_API_KEY",
                           "api_base": "my-azure-api-base"},
    }
    assert_error(api.post("/model/new", body), 400, param="litellm_params.api_key")  # not set: refused

    monkeypatch.setenv("AZURE_API_KEY", "sk-azure-secret")
    response = api.post("/model/new", body)
    assert response.status_code == 200, response.content
    assert response.json()["litellm_params"]["api_base"] == "https://my-azure-api-base"
    assert "AZURE_API_KEY" not in response.content.decode() and "sk-azure-secret" not in response.content.decode()
    deployment = ModelDeployment.objects.get(model_name="azure-gpt-turbo")
    assert deployment.api_key == "os.environ/AZURE_API_KEY"  # resolved when used, like config.yaml's
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM providers_modeldeployment WHERE id = %s", [deployment.pk])
        [stored] = cursor.fetchone()
    assert "AZURE_API_KEY" not in stored  # encrypted at rest

    bad = {**body, "litellm_params": {**body["litellm_params"], "api_base": "not a host"}}
    assert_error(api.post("/model/new", bad), 400, param="litellm_params.api_base")


def test_a_team_model_is_its_teams_own_with_its_limits(api, world):
    """LiteLLM's team_model_add.md: model_info.team_id, team_model_rpm_limit, team_model_tpm_limit;
    PATCH /model/{model_id}/update changes them."""
    team_id = str(world.research.pk)
    body = {"model_name": "my-team-model", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-x"},
            "model_info": {"team_id": team_id, "team_model_rpm_limit": 60, "team_model_tpm_limit": 120000}}
    assert_error(api.post("/model/new", body, key=world.credentials["team_admin"]), 403)  # the proxy admin's only
    response = api.post("/model/new", body)
    assert response.status_code == 200, response.content
    model_id, info = response.json()["model_id"], response.json()["model_info"]
    assert (info["team_id"], info["team_model_rpm_limit"], info["team_model_tpm_limit"]) == (team_id, 60, 120000)
    assert info["organization_id"] == str(world.acme.pk)  # the team's organization's

    # Listed to its team's members, not to a member of another team, even of its organization.
    listed = lambda role: [m["model_name"] for m in api.get("/model/info", key=world.credentials[role]).json()["data"]]
    assert listed("member") == ["my-team-model"] and listed("org_admin") == ["my-team-model"]
    other = api.get("/v2/model/info", key=world.raw("outsider")).json()["data"]
    assert other == []

    patched = api("PATCH", f"/model/{model_id}/update",
                  {"model_info": {"team_id": team_id, "team_model_rpm_limit": 80, "team_model_tpm_limit": 180000}})
    assert patched.status_code == 200, patched.content
    deployment = ModelDeployment.objects.get(pk=int(model_id))
    assert (deployment.team_id, deployment.team_model_rpm_limit, deployment.team_model_tpm_limit) == (
        world.research.pk, 80, 180000)
    assert_error(api("PATCH", f"/model/{model_id}/update", {"model_info": {"team_model_rpm_limit": 80}},
                     key=world.credentials["team_admin"]), 403)
    assert_error(api("PATCH", "/model/ghost/update", {"model_info": {"team_model_rpm_limit": 1}}), 404,
                 param="model_id")
    assert api.post(f"/model/{model_id}/update", {}).status_code == 405  # PATCH only, as in LiteLLM


@pytest.mark.parametrize(
    "model_info, param, status",
    [
        ({"team_id": "00000000-0000-0000-0000-000000000000"}, "model_info.team_id", 404),
        ({"team_model_rpm_limit": 5}, "model_info.team_model_rpm_limit", 400),  # no team to apply to
        ({"team_id": "RESEARCH", "team_model_tpm_limit": -1}, "model_info.team_model_tpm_limit", 400),
        ({"team_id": "RESEARCH", "team_model_rpm_limit": "many"}, "model_info.team_model_rpm_limit", 400),
        ({"team_id": "RESEARCH", "organization_id": "GLOBEX"}, "model_info.organization_id", 400),
    ],
)
def test_team_model_fields_are_checked(api, world, model_info, param, status):
    names = {"RESEARCH": str(world.research.pk), "GLOBEX": str(world.globex.pk)}
    model_info = {name: names.get(value, value) if isinstance(value, str) else value
                  for name, value in model_info.items()}
    body = {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": model_info}
    assert_error(api.post("/model/new", body), status, param=param)
    assert not ModelDeployment.objects.exists()


def test_v1_model_info_is_model_info(api, world, make_deployment_row):
    make_deployment_row("gpt-a")
    for key in (None, world.credentials["member"]):
        kwargs = {} if key is None else {"key": key}
        assert api.get("/v1/model/info", **kwargs).json() == api.get("/model/info", **kwargs).json()


def test_model_new_secret_params_are_never_shown(api, world):
    response = api.post(
        "/model/new",
        {
            "model_name": "claude",
            "litellm_params": {
                "model": "bedrock/anthropic.claude-3",
                "aws_access_key_id": "AKIA1",
                "aws_secret_access_key": "very-secret",
                "aws_region_name": "us-east-1",
            },
        },
    )
    assert response.status_code == 200, response.content
    assert "very-secret" not in response.content.decode()
    model_id = response.json()["model_id"]
    assert model_id == str(
        ModelDeployment.objects.get(model_name="claude").pk
    )  # no model_info.id: the row's id
    assert "very-secret" not in api.get("/model/info").content.decode()


@pytest.mark.parametrize(
    "body, param",
    [
        ({"litellm_params": {"model": "openai/gpt-4o"}}, "model_name"),
        ({"model_name": "x"}, "litellm_params"),
        ({"model_name": "x", "litellm_params": {"model": "gpt-4o"}}, "litellm_params.model"),
        ({"model_name": "x", "litellm_params": {"model": "nope/gpt-4o"}}, "litellm_params.model"),
        (
            {"model_name": "x", "litellm_params": {"model": "openai/gpt-4o", "rpm": "fast"}},
            "litellm_params.rpm",
        ),
        (
            {"model_name": "x", "litellm_params": {"model": "openai/gpt-4o", "api_base": "ftp://x"}},
            "litellm_params.api_base",
        ),
        (
            {
                "model_name": "x",
                "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/NOT_SET_ANYWHERE"},
            },
            "litellm_params.api_key",
        ),
        (
            {"model_name": "x", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": {"id": "taken"}},
            "model_info.id",
        ),
    ],
)
def test_model_new_validates_like_the_config_file(api, world, make_deployment_row, body, param):
    make_deployment_row("existing", config_id="taken")
    assert_error(api.post("/model/new", body), 400, param=param)
    assert ModelDeployment.objects.count() == 1


def test_model_update_merges_params_and_keeps_the_secret(api, world, make_deployment_row):
    deployment = make_deployment_row("gpt-a", config_id="a-1", rpm=5, api_base="https://a.test")
    response = api.post(
        "/model/update",
        {"model_id": "a-1", "litellm_params": {"rpm": 50, "api_base": None}, "model_name": "gpt-a2"},
    )
    assert response.status_code == 200, response.content
    deployment.refresh_from_db()
    assert (deployment.model_name, deployment.rpm, deployment.api_base, deployment.api_key) == (
        "gpt-a2",
        50,
        "",
        "sk-upstream-secret",
    )
    response = api.post(
        "/model/update", {"model_info": {"id": "a-1"}, "litellm_params": {"model": "openai/gpt-4.1"}}
    )
    assert response.json()["litellm_params"]["model"] == "openai/gpt-4.1"
    assert_error(
        api.post("/model/update", {"model_id": "a-1", "litellm_params": {"tpm": -1}}),
        400,
        param="litellm_params.tpm",
    )
    assert_error(api.post("/model/update", {"model_id": "ghost"}), 404, param="model_id")
    assert_error(api.post("/model/update", {}), 400, param="model_id")


def test_model_delete_and_config_managed_models(api, world, make_deployment_row):
    make_deployment_row("gpt-a", config_id="a-1")
    make_deployment_row("gpt-file", config_id="cfg-1", managed_by_config=True)
    response = api.post("/model/delete", {"id": "a-1"})
    assert response.json() == {"message": "Model: a-1 deleted successfully"}
    assert_error(api.post("/model/delete", {"id": "a-1"}), 404, param="id")
    assert_error(api.post("/model/delete", {"id": "cfg-1"}), 400, param="id")
    assert_error(
        api.post("/model/update", {"model_id": "cfg-1", "litellm_params": {"rpm": 1}}), 400, param="model_id"
    )
    assert ModelDeployment.objects.filter(config_id="cfg-1").exists()


def test_model_info_lists_inactive_models_to_the_proxy_admin_only(api, world, make_deployment_row):
    make_deployment_row("gpt-a")
    make_deployment_row("gpt-old", is_active=False)
    assert {m["model_name"] for m in api.get("/model/info").json()["data"]} == {"gpt-a", "gpt-old"}
    member = api.get("/model/info", key=world.credentials["member"]).json()["data"]
    assert [m["model_name"] for m in member] == ["gpt-a"]
    assert_error(api.get("/model/info", {"litellm_model_id": "ghost"}), 404, param="litellm_model_id")


def test_model_access_groups_and_owning_organization(api, world):
    response = api.post(
        "/model/new",
        {
            "model_name": "acme-llm",
            "litellm_params": {"model": "openai/acme-llm"},
            "model_info": {"id": "acme-1", "access_groups": ["beta"], "organization_id": str(world.acme.pk)},
        },
    )
    assert response.status_code == 200, response.content
    info = response.json()["model_info"]
    assert (info["access_groups"], info["organization_id"]) == (["beta"], str(world.acme.pk))

    info = api.post("/model/update", {"model_id": "acme-1", "litellm_params": {"rpm": 3}}).json()[
        "model_info"
    ]
    assert (info["access_groups"], info["organization_id"]) == (["beta"], str(world.acme.pk))  # kept
    info = api.post(
        "/model/update", {"model_id": "acme-1", "model_info": {"organization_id": None, "access_groups": []}}
    ).json()["model_info"]
    assert (info["access_groups"], info["organization_id"]) == ([], None)

    assert_error(
        api.post(
            "/model/new",
            {
                "model_name": "x",
                "litellm_params": {"model": "openai/x"},
                "model_info": {"organization_id": "nope"},
            },
        ),
        404,
        param="model_info.organization_id",
    )
    assert_error(
        api.post(
            "/model/new",
            {
                "model_name": "x",
                "litellm_params": {"model": "openai/x"},
                "model_info": {"access_groups": "beta"},
            },
        ),
        400,
        param="model_info.access_groups",
    )


def test_model_info_follows_the_data_planes_access_rules(api, world, make_deployment_row):
    from apps.teams.services import team_update

    make_deployment_row("gpt-a")
    make_deployment_row("claude-x", provider="anthropic")
    make_deployment_row("beta-model", access_groups=["beta"])
    make_deployment_row("acme-only", organization=world.acme)
    make_deployment_row("globex-only", organization=world.globex)
    team_update(team=world.research, models=["anthropic/*", "beta", "acme-*"])

    def names(role):
        return {m["model_name"] for m in api.get("/model/info", key=world.credentials[role]).json()["data"]}

    assert names("member") == {"claude-x", "beta-model", "acme-only"}
    assert names("org_admin") == {"gpt-a", "claude-x", "beta-model", "acme-only"}
    assert names("outsider") == {"gpt-a", "claude-x", "beta-model", "globex-only"}
    assert len(names("proxy_admin")) == 5


def test_model_info_shows_where_a_deployment_lives_to_the_proxy_admin_only(api, world, make_deployment_row):
    make_deployment_row("gpt-internal", api_base="https://llm.internal.example/v1", api_version="2025-01-01",
                        extra_params={"vertex_project": "secret-project"})
    proxy = api.get("/model/info").json()["data"][0]["litellm_params"]
    assert proxy["api_base"] == "https://llm.internal.example/v1" and proxy["vertex_project"] == "secret-project"
    for role in ("org_admin", "team_admin", "member", "viewer"):
        answer = api.get("/model/info", key=world.credentials[role])
        assert answer.status_code == 200 and answer.json()["data"], role
        for entry in answer.json()["data"]:
            params = entry["litellm_params"]
            assert not {"api_base", "api_version", "vertex_project", "api_key"} & set(params), (role, params)
            assert "internal.example" not in answer.content.decode()


def test_the_admin_shows_a_team_model_and_the_spend_resets(api, world, admin_client):
    body = {"model_name": "my-team-model", "litellm_params": {"model": "openai/gpt-4o"},
            "model_info": {"team_id": str(world.research.pk), "team_model_rpm_limit": 60}}
    deployment = ModelDeployment.objects.get(pk=int(api.post("/model/new", body).json()["model_id"]))
    page = admin_client.get(f"/admin/providers/modeldeployment/{deployment.pk}/change/")
    assert page.status_code == 200 and "research" in page.content.decode()
    assert api.post("/global/spend/reset").status_code == 200
    assert "master key" in admin_client.get("/admin/spend/spendreset/").content.decode()


@pytest.mark.parametrize("model_id", ["²", "٣", "99999999999999999999999"])
def test_a_model_id_of_non_ascii_digits_or_past_bigint_is_a_404_not_a_500(api, world, model_id):
    """Found by the schema fuzz: "²".isdigit() is true but int() refuses it."""
    response = api.get("/model/info", {"litellm_model_id": model_id})
    assert response.status_code == 404, response.content
    assert response.json()["error"]["param"] == "litellm_model_id"
