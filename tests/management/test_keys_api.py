"""/key/*: LiteLLM's shapes, the raw key shown once (only its sha256 stored), 400 naming the
field, 404 for unknown keys."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.keys.models import VirtualKey
from tests.management.conftest import assert_error

pytestmark = pytest.mark.django_db

KEY_FIELDS = {
    "token",
    "token_id",
    "key_name",
    "key_alias",
    "user_id",
    "team_id",
    "organization_id",
    "expires",
    "models",
    "spend",
    "max_budget",
    "soft_budget",
    "budget_duration",
    "budget_reset_at",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "metadata",
    "blocked",
    "created_at",
    "updated_at",
    "model_max_budget",
    "model_rpm_limit",
    "model_tpm_limit",
    "store_prompts",
    "aliases",
    "tags",
    "permissions",
    "enforced_params",
    "guardrails",
    "budget_id",
    "litellm_budget_table",
    "temp_budget_increase",
    "temp_budget_expiry",
    "key_max_budget",
    "duration",
    "allowed_cache_controls",
    "config",
}


def test_generate_returns_the_key_once_and_stores_only_its_hash(api, world):
    response = api.post(
        "/key/generate",
        {
            "key_alias": "ci",
            "duration": "30d",
            "models": ["gpt-a", "gpt-b"],
            "max_budget": 12.5,
            "soft_budget": 10,
            "budget_duration": "1mo",
            "user_id": "member",
            "team_id": str(world.research.pk),
            "rpm_limit": 60,
            "tpm_limit": 1000,
            "max_parallel_requests": 2,
            "metadata": {"env": "ci"},
            "model_max_budget": {"gpt-a": 2.5},
            "model_rpm_limit": {"gpt-a": 6},
            "model_tpm_limit": {"gpt-b": 100},
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == KEY_FIELDS | {"key"}
    raw = body["key"]
    assert raw.startswith("sk-")
    assert body["token"] == body["token_id"] == hashlib.sha256(raw.encode()).hexdigest()
    assert body["key_name"] == f"sk-…{raw[-4:]}"
    assert (body["key_alias"], body["user_id"], body["team_id"], body["organization_id"]) == (
        "ci",
        "member",
        str(world.research.pk),
        str(world.acme.pk),
    )
    assert (body["models"], body["max_budget"], body["soft_budget"], body["budget_duration"]) == (
        ["gpt-a", "gpt-b"],
        12.5,
        10.0,
        "1mo",
    )
    assert (body["rpm_limit"], body["tpm_limit"], body["max_parallel_requests"]) == (60, 1000, 2)
    assert body["budget_reset_at"] is not None and body["expires"] is not None
    assert (body["model_max_budget"], body["model_rpm_limit"], body["model_tpm_limit"]) == (
        {"gpt-a": 2.5},
        {"gpt-a": 6},
        {"gpt-b": 100},
    )

    key = VirtualKey.objects.get(token_hash=body["token"])
    assert raw not in {key.token_hash, key.key_display}
    assert timedelta(days=29) < key.expires_at - timezone.now() <= timedelta(days=30)
    # Nothing shows the raw key again.
    info = api.get("/key/info", {"key": raw}).json()
    assert raw not in str(info) and info["key"] == body["token"]


def test_generate_without_duration_never_expires_and_for_an_unknown_user_creates_it(api, world):
    from django.contrib.auth import get_user_model

    body = api.post("/key/generate", {"user_id": "new-person", "duration": None}).json()
    assert body["expires"] is None and body["user_id"] == "new-person"
    assert get_user_model().objects.filter(username="new-person").exists()


@pytest.mark.parametrize(
    "body, param",
    [
        ({"models": "gpt-a"}, "models"),
        ({"models": [1, {}]}, "models[1]"),
        ({"max_budget": -1}, "max_budget"),
        ({"max_budget": "lots"}, "max_budget"),
        ({"rpm_limit": 1.5}, "rpm_limit"),
        ({"tpm_limit": -3}, "tpm_limit"),
        ({"duration": "soon"}, "duration"),
        ({"budget_duration": "weekly"}, "budget_duration"),
        ({"metadata": [1]}, "metadata"),
        ({"blocked": "maybe"}, "blocked"),
        ({"model_max_budget": {"gpt-a": -1}}, "model_max_budget.gpt-a"),
        ({"model_rpm_limit": [1]}, "model_rpm_limit"),
        # Refused, not silently ignored: a LiteLLM field this gateway does not act on, one LiteLLM
        # takes on /key/update only, a typo.
        ({"key": "sk-my-own-choice"}, "key"),
        ({"temp_budget_increase": 5}, "temp_budget_increase"),
        ({"max_budge": 5}, "max_budge"),
    ],
)
def test_generate_rejects_an_invalid_body_naming_the_field(api, world, body, param):
    code = {"key": "unsupported_field", "temp_budget_increase": "unknown_field", "max_budge": "unknown_field"}
    assert_error(api.post("/key/generate", body), 400, param=param, code=code.get(param, "invalid_request"))
    assert VirtualKey.objects.count() == len(world.keys)


def test_generate_answers_404_for_an_unknown_team_organization_or_user(api, world):
    unknown = "00000000-0000-0000-0000-000000000000"
    assert_error(api.post("/key/generate", {"team_id": unknown}), 404, param="team_id")
    assert_error(api.post("/key/generate", {"organization_id": unknown}), 404, param="organization_id")
    # Only the proxy admin makes users on the fly.
    assert_error(
        api.post("/key/generate", {"user_id": "nobody"}, key=world.credentials["org_admin"]),
        404,
        param="user_id",
    )
    assert VirtualKey.objects.count() == len(world.keys)


def test_generate_rejects_a_team_of_another_organization(api, world):
    response = api.post(
        "/key/generate", {"team_id": str(world.research.pk), "organization_id": str(world.globex.pk)}
    )
    assert_error(response, 400, param="organization_id")


def test_a_body_that_is_not_json_is_400(api, world):
    assert_error(api.post("/key/generate", "{not json"), 400, code="invalid_json")
    assert_error(api.post("/key/generate", "[1, 2]"), 400)


def test_update_changes_the_fields_given_by_raw_key_or_hash(api, world):
    member = world.key("member")
    response = api.post(
        "/key/update",
        {
            "key": world.raw("member"),
            "key_alias": "renamed",
            "max_budget": 3,
            "models": ["gpt-a"],
            "budget_duration": "1d",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["key"] == body["token"]  # LiteLLM's answer; no raw key outside generate/regenerate
    assert (body["key_alias"], body["max_budget"], body["models"], body["budget_duration"]) == (
        "renamed",
        3.0,
        ["gpt-a"],
        "1d",
    )
    assert body["budget_reset_at"] is not None
    response = api.post("/key/update", {"key": member.token_hash, "max_budget": None, "team_id": None})
    member.refresh_from_db()
    assert (member.max_budget, member.team_id, member.alias) == (None, None, "renamed")
    assert member.organization_id == world.acme.pk  # leaving the team keeps the organization


def test_update_moves_a_key_to_another_team_with_its_organization(api, world):
    response = api.post(
        "/key/update", {"key": world.key("member").token_hash, "team_id": str(world.sales.pk)}
    )
    assert response.status_code == 200
    assert (response.json()["team_id"], response.json()["organization_id"]) == (
        str(world.sales.pk),
        str(world.globex.pk),
    )


def test_update_and_friends_answer_404_for_an_unknown_key(api, world):
    for path in ("/key/update", "/key/regenerate", "/key/block", "/key/unblock"):
        assert_error(api.post(path, {"key": "sk-unknown"}), 404, param="key", code="not_found")
    assert_error(api.post("/key/delete", {"keys": ["sk-unknown"]}), 404, param="keys")
    assert_error(api.post("/key/delete", {"key_aliases": ["nope"]}), 404, param="key_aliases")
    assert_error(api.get("/key/info", {"key": "0" * 64}), 404, param="key")
    assert_error(api.post("/key/update", {"key_alias": "x"}), 400, param="key")


def test_delete_by_keys_and_by_aliases(api, world):
    response = api.post("/key/delete", {"keys": [world.raw("member")], "key_aliases": ["viewer-key"]})
    assert response.status_code == 200
    assert response.json() == {"deleted_keys": [world.raw("member"), "viewer-key"]}
    assert not VirtualKey.objects.filter(alias__in=["member-key", "viewer-key"]).exists()
    assert_error(api.post("/key/delete", {}), 400, param="keys")


def test_delete_by_alias_only_touches_the_callers_keys(api, world):
    from apps.keys.services import virtual_key_create

    virtual_key_create(alias="shared-name", user=world.users["outsider"], team=world.sales)
    mine, _ = virtual_key_create(alias="shared-name", user=world.users["member"], team=world.research)
    response = api.post("/key/delete", {"key_aliases": ["shared-name"]}, key=world.credentials["member"])
    assert response.status_code == 200
    assert list(VirtualKey.objects.filter(alias="shared-name").values_list("user__username", flat=True)) == [
        "outsider"
    ]
    assert not VirtualKey.objects.filter(pk=mine.pk).exists()


def test_info_without_key_describes_the_callers_key(api, world):
    response = api.get("/key/info", key=world.raw("member"))
    assert response.status_code == 200
    body = response.json()
    assert body["key"] == world.key("member").token_hash
    assert set(body["info"]) == KEY_FIELDS
    assert_error(api.get("/key/info"), 400, param="key")  # the master key has no key of its own


def test_info_shows_budget_reset_at_as_the_end_of_the_current_period(api, world):
    from apps.keys.services import virtual_key_update

    anchor = timezone.now() - timedelta(hours=30)
    virtual_key_update(key=world.key("member"), budget_duration="1d", budget_anchor=anchor)
    info = api.get("/key/info", {"key": world.key("member").token_hash}).json()["info"]
    assert info["budget_reset_at"].startswith((anchor + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"))


def test_list_pages_filters_and_full_objects(api, world):
    response = api.get("/key/list", {"size": 2, "page": 2})
    body = response.json()
    assert (body["total_count"], body["current_page"], body["total_pages"]) == (6, 2, 3)
    assert len(body["keys"]) == 2 and all(len(k) == 64 for k in body["keys"])

    research = api.get("/key/list", {"team_id": str(world.research.pk), "return_full_object": "true"}).json()
    assert research["total_count"] == 4
    assert {k["key_alias"] for k in research["keys"]} == {
        "teamadmin-key",
        "member-key",
        "viewer-key",
        "plain-key",
    }
    assert api.get("/key/list", {"user_id": "member"}).json()["keys"] == [world.key("member").token_hash]
    assert api.get("/key/list", {"key_alias": "plain-key"}).json()["total_count"] == 1
    assert api.get("/key/list", {"user_id": "nobody"}).json()["total_count"] == 0
    assert api.get("/key/list", {"organization_id": str(world.globex.pk)}).json()["total_count"] == 1
    assert_error(api.get("/key/list", {"size": 0}), 400, param="size")


def test_regenerate_replaces_the_key(api, world):
    old_raw = world.raw("member")
    response = api.post("/key/regenerate", {"key": old_raw}, key=world.credentials["member"])
    assert response.status_code == 200
    body = response.json()
    assert body["key"] != old_raw and body["token"] == hashlib.sha256(body["key"].encode()).hexdigest()
    assert body["key_alias"] == "member-key"
    assert_error(api.get("/key/info", key=old_raw), 401, code="invalid_api_key")
    assert api.get("/key/info", key=body["key"]).status_code == 200


def test_block_and_unblock(api, world):
    raw = world.raw("member")
    response = api.post("/key/block", {"key": raw})
    assert response.status_code == 200 and response.json()["blocked"] is True
    assert_error(api.get("/key/info", key=raw), 401, code="key_blocked")
    response = api.post("/key/unblock", {"key": world.key("member").token_hash})
    assert response.json()["blocked"] is False
    assert api.get("/key/info", key=raw).status_code == 200


# --- LiteLLM's key fields ------------------------------------------------------------------


def test_a_service_account_key_belongs_to_its_team_and_no_user(api, world):
    team_id = str(world.research.pk)
    response = api.post("/key/service-account/generate", {"team_id": team_id}, key=world.raw("teamadmin"))
    assert response.status_code == 200, response.content
    assert (response.json()["team_id"], response.json()["user_id"]) == (team_id, None)
    # A member makes keys only for itself; a service account names no user; the team is required.
    member = api.post("/key/service-account/generate", {"team_id": team_id}, key=world.raw("member"))
    assert_error(member, 403, param="user_id")
    assert_error(api.post("/key/service-account/generate", {"team_id": team_id, "user_id": "member"}), 400,
                 param="user_id")
    assert_error(api.post("/key/service-account/generate", {}), 400, param="team_id")


def test_budget_id_links_a_budget_of_the_keys_organization_for_its_admins_only(api, world):
    acme = str(world.acme.pk)
    assert api.post("/budget/new", {"budget_id": "acme-tier", "rpm_limit": 5, "organization_id": acme}).status_code == 200
    assert api.post("/budget/new", {"budget_id": "proxy-tier", "max_budget": 1}).status_code == 200
    team_id = str(world.research.pk)

    linked = api.post("/key/generate", {"team_id": team_id, "budget_id": "acme-tier"}, key=world.raw("orgadmin"))
    assert linked.status_code == 200, linked.content
    assert linked.json()["budget_id"] == "acme-tier"
    assert linked.json()["litellm_budget_table"]["rpm_limit"] == 5
    # Not a team admin's to link; and only the key's own organization's budgets (404 otherwise).
    assert_error(api.post("/key/generate", {"team_id": team_id, "budget_id": "acme-tier"},
                          key=world.raw("teamadmin")), 403, param="budget_id")
    assert_error(api.post("/key/generate", {"team_id": team_id, "budget_id": "proxy-tier"}), 404, param="budget_id")
    assert_error(api.post("/key/update", {"key": world.raw("outsider"), "budget_id": "acme-tier"}), 404,
                 param="budget_id")
    # Moving the key out of its budget's organization needs the budget named again.
    moved = api.post("/key/update", {"key": linked.json()["token"], "team_id": str(world.sales.pk)})
    assert_error(moved, 400, param="budget_id")
    cleared = api.post("/key/update", {"key": linked.json()["token"], "team_id": str(world.sales.pk), "budget_id": None})
    assert cleared.status_code == 200 and cleared.json()["budget_id"] is None


def test_regenerate_in_the_path_changes_fields_on_the_way(api, world):
    old = world.raw("member")
    response = api.post(f"/key/{old}/regenerate", {"max_budget": 100, "metadata": {"team": "core-infra"},
                                                   "models": ["gpt-4"]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["key"] != old and (body["max_budget"], body["models"]) == (100.0, ["gpt-4"])
    assert api.get("/key/info", key=old).status_code == 401
    # The owner regenerates its own key, but changes only what an owner may.
    own = api.post(f"/key/{body['key']}/regenerate", {"max_budget": 1000}, key=body["key"])
    assert_error(own, 403, param="max_budget")
    assert_error(api.post("/key/regenerate", {}), 400, param="key")


def test_key_health_lists_the_keys_own_logging_callbacks(api, world):
    assert api.post("/key/health", key=world.raw("plain")).json() == {"key": "healthy", "logging_callbacks": None}
    logging = [{"callback_name": "langfuse", "callback_vars": {"langfuse_public_key": "pk-1",
                                                               "langfuse_secret_key": "sk-1"}}]
    logging_key = api.post("/key/generate", {"metadata": {"logging": logging}}).json()["key"]
    callbacks = api.post("/key/health", key=logging_key).json()["logging_callbacks"]
    assert (callbacks["callbacks"], callbacks["status"]) == (["langfuse"], "healthy")


@pytest.mark.parametrize(
    "body, param",
    [
        ({"temp_budget_increase": 10, "temp_budget_expiry": "2025-01-15"}, "temp_budget_expiry"),
        ({"temp_budget_increase": 10}, "temp_budget_expiry"),
        ({"temp_budget_increase": 10, "temp_budget_expiry": "soon"}, "temp_budget_expiry"),
        ({"permissions": {"hide_secrets": True}}, "permissions.hide_secrets"),
        ({"permissions": {"enable_llm_guard_check": True}}, "permissions.enable_llm_guard_check"),
        ({"permissions": {"rule_them_all": True}}, "permissions.rule_them_all"),
        ({"model_max_budget": {"gpt-4o": {"budget_limit": 1, "time_period": "1 fortnight"}}},
         "model_max_budget.gpt-4o"),
        ({"model_max_budget": {"gpt-4o": {"limit": 1}}}, "model_max_budget.gpt-4o"),
        ({"auto_rotate": True, "rotation_interval": "30d"}, "auto_rotate"),
    ],
)
def test_update_refuses_litellm_key_fields_it_cannot_keep_naming_them(api, world, body, param):
    assert_error(api.post("/key/update", {"key": world.raw("member"), **body}), 400, param=param)


def test_litellm_values_are_read_as_litellm_reads_them(api, world):
    response = api.post("/key/generate", {
        "max_budget": 0.0000001, "soft_budget": 1.23456789, "duration": "2w",
        "model_max_budget": {"gpt-4o": {"budget_limit": "0.5", "time_period": "1d"}, "gpt-4": 2},
    })
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["max_budget"], body["soft_budget"]) == (0.000001, 1.234568)
    assert body["model_max_budget"] == {"gpt-4o": {"budget_limit": 0.5, "time_period": "1d"}, "gpt-4": 2.0}
    expires = timezone.datetime.fromisoformat(body["expires"])
    assert abs(expires - (timezone.now() + timedelta(weeks=2))) < timedelta(minutes=1)


def test_a_temporary_budget_increase_is_shown_and_cleared(api, world):
    key = world.raw("member")
    raised = api.post("/key/update", {"key": key, "max_budget": 5, "temp_budget_increase": 10,
                                      "temp_budget_expiry": "2099-01-01T00:00:00Z"}).json()
    assert (raised["temp_budget_increase"], raised["key_max_budget"]) == (10.0, 15.0)
    assert raised["temp_budget_expiry"].startswith("2099-01-01")
    cleared = api.post("/key/update", {"key": key, "temp_budget_increase": None}).json()
    assert (cleared["temp_budget_increase"], cleared["temp_budget_expiry"], cleared["key_max_budget"]) == (
        None, None, 5.0)
    # A key's owner does not raise its own budget.
    assert_error(api.post("/key/update", {"key": key, "temp_budget_increase": 1, "temp_budget_expiry": "1d"},
                          key=key), 403, param="temp_budget_increase")


def test_bulk_update_takes_litellms_items(api, world):
    assert api.post("/budget/new", {"budget_id": "budget-456", "max_budget": 10}).status_code == 200
    plain = api.post("/key/generate", {}).json()["key"]
    response = api.post("/key/bulk_update", {"keys": [
        {"key": world.raw("member"), "max_budget": 100.0, "tags": ["production", "api"]},
        {"key": plain, "budget_id": "budget-456", "tags": ["staging"]},
    ]})
    assert response.status_code == 200, response.content
    first, second = (item["key_info"] for item in response.json()["successful_updates"])
    assert (first["tags"], second["tags"], second["budget_id"]) == (["production", "api"], ["staging"], "budget-456")
