"""A team's and a key's own logging callbacks through the management API (LiteLLM's
POST /team/{team_id}/callback and a key's metadata.logging): who may set them, what they may
reach, and that their secrets are stored encrypted and shown masked."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.management.conftest import assert_error

PUBLIC_LANGFUSE = {"callback_name": "langfuse", "callback_type": "success",
                   "callback_vars": {"langfuse_public_key": "pk-lf-research",
                                     "langfuse_secret_key": "sk-lf-research-secret-0001",
                                     "langfuse_host": "https://cloud.langfuse.com"}}


def callback_path(team) -> str:
    return f"/team/{team.pk}/callback"


def stored_column(model, pk) -> str:
    """The column as the database holds it (not decrypted by the field)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT logging_callbacks FROM {model._meta.db_table} WHERE id = %s",
                       [model._meta.pk.get_db_prep_value(pk, connection)])
        return cursor.fetchone()[0]


def test_a_team_admin_sets_its_teams_callback_stored_encrypted_and_shown_masked(api, world):
    key = world.credentials["team_admin"]
    answer = api.post(callback_path(world.research), PUBLIC_LANGFUSE, key=key)
    assert answer.status_code == 200, answer.content
    data = api.get(callback_path(world.research), key=key).json()["data"]
    assert (data["success_callbacks"], data["failure_callbacks"]) == (["langfuse"], [])
    assert data["callback_vars"]["langfuse_public_key"] == "pk-lf-research"
    assert data["callback_vars"]["langfuse_secret_key"] == "*****0001"
    world.research.refresh_from_db()
    assert world.research.logging_callbacks[0]["callback_vars"]["langfuse_secret_key"] == "sk-lf-research-secret-0001"
    from apps.teams.models import Team

    assert "sk-lf-research" not in stored_column(Team, world.research.pk)


def test_sending_the_masked_secret_back_keeps_the_stored_one(api, world):
    key = world.credentials["team_admin"]
    api.post(callback_path(world.research), PUBLIC_LANGFUSE, key=key)
    shown = api.get(callback_path(world.research), key=key).json()["data"]["callbacks"][0]
    shown["callback_type"] = "success_and_failure"
    assert api.post(callback_path(world.research), shown, key=key).status_code == 200
    world.research.refresh_from_db()
    (entry,) = world.research.logging_callbacks
    assert entry["callback_type"] == "success_and_failure"
    assert entry["callback_vars"]["langfuse_secret_key"] == "sk-lf-research-secret-0001"


@pytest.mark.parametrize("var, value", [
    ("langfuse_secret_key", "os.environ/OPENAI_API_KEY"),  # the gateway's own secrets, to a host of theirs
    ("langfuse_host", "http://127.0.0.1:6379"),  # the gateway's Redis
    ("langfuse_host", "http://169.254.169.254/latest/meta-data"),  # the cloud's metadata service
    ("langfuse_host", "http://localhost:8000"),
    ("langfuse_host", "http://[::1]:5432"),
    ("langfuse_host", "http://[::ffff:127.0.0.1]:5432"),
    ("langfuse_host", "http://10.1.2.3"),
    ("langfuse_host", "http://2130706433"),  # 127.0.0.1 as one number
    ("langfuse_host", "http://127.1:6379"),  # and in the short forms resolvers still read
    ("langfuse_host", "http://0x7f.0.0.1"),
    ("langfuse_host", "https://pk@[fe80::1%25eth0]/"),
    ("langfuse_host", "http://postgres:5432"),  # a name on the cluster's own network
    ("langfuse_host", "http://metadata.google.internal"),
])
def test_only_the_proxy_admin_points_a_callback_at_the_gateways_environment_or_network(api, world, var, value):
    body = {**PUBLIC_LANGFUSE, "callback_vars": {**PUBLIC_LANGFUSE["callback_vars"], var: value}}
    for role in ("org_admin", "team_admin"):
        assert_error(api.post(callback_path(world.research), body, key=world.credentials[role]), 403,
                     param=f"callback_vars.{var}")
    world.research.refresh_from_db()
    assert world.research.logging_callbacks == []
    assert api.post(callback_path(world.research), body).status_code == 200  # the proxy admin


def test_an_allowed_in_house_host_is_open_to_tenants(api, world, settings):
    settings.GATEWAY_CALLBACK_ALLOWED_HOSTS = "langfuse.internal, 10.1.2.3"
    for host in ("http://langfuse.internal:3000", "http://10.1.2.3"):
        body = {**PUBLIC_LANGFUSE, "callback_vars": {**PUBLIC_LANGFUSE["callback_vars"], "langfuse_host": host}}
        assert api.post(callback_path(world.research), body, key=world.credentials["team_admin"]).status_code == 200


def test_the_proxy_admins_callback_cannot_be_bent_by_a_team_admin(api, world):
    """Two legal-looking steps: the proxy admin gives the team a callback reading the environment; the
    team admin sends it back (masked) with its own host, which would send the gateway's secret there."""
    body = {"callback_name": "langfuse", "callback_vars": {"langfuse_public_key": "pk-lf-ops",
                                                            "langfuse_secret_key": "os.environ/LANGFUSE_SECRET_KEY",
                                                            "langfuse_host": "https://langfuse.example.com"}}
    assert api.post(callback_path(world.research), body).status_code == 200
    key = world.credentials["team_admin"]
    shown = api.get(callback_path(world.research), key=key).json()["data"]["callbacks"][0]
    assert shown["callback_vars"]["langfuse_secret_key"] == "*****"  # not even the variable's name
    assert api.post(callback_path(world.research), shown, key=key).status_code == 200  # unchanged: fine
    shown["callback_vars"]["langfuse_host"] = "https://attacker.example.com"
    assert_error(api.post(callback_path(world.research), shown, key=key), 403,
                 param="callback_vars.langfuse_secret_key")
    world.research.refresh_from_db()
    assert world.research.logging_callbacks[0]["callback_vars"]["langfuse_host"] == "https://langfuse.example.com"


def test_members_viewers_and_other_tenants_cannot_set_a_teams_callback(api, world):
    for role in ("member", "viewer", "plain_key"):
        assert_error(api.post(callback_path(world.research), PUBLIC_LANGFUSE, key=world.credentials[role]), 403)
    outsider = api.post(callback_path(world.research), PUBLIC_LANGFUSE, key=world.credentials["outsider"])
    assert outsider.status_code in (403, 404)
    world.research.refresh_from_db()
    assert world.research.logging_callbacks == []


@pytest.mark.parametrize("body, param", [
    ({"callback_name": "datadog"}, "callback_name"),
    ({"callback_name": "langfuse", "callback_vars": {"langfuse_public_key": "pk"}}, "callback_vars"),
    ({**PUBLIC_LANGFUSE, "callback_vars": {**PUBLIC_LANGFUSE["callback_vars"], "s3_bucket_name": "b"}},
     "callback_vars.s3_bucket_name"),
    ({**PUBLIC_LANGFUSE, "callback_vars": {**PUBLIC_LANGFUSE["callback_vars"], "langfuse_host": "ftp://x.com"}},
     "callback_vars.langfuse_host"),
    ({**PUBLIC_LANGFUSE, "callback_type": "sometimes"}, "callback_type"),
])
def test_a_bad_callback_is_a_400_naming_the_field(api, world, body, param):
    assert_error(api.post(callback_path(world.research), body, key=world.credentials["team_admin"]), 400,
                 param=param)


def test_a_gcs_key_file_is_the_proxy_admins_only(api, world):
    body = {"callback_name": "gcs_bucket", "callback_vars": {"gcs_bucket_name": "logs",
                                                              "gcs_path_service_account": "/etc/gateway/sa.json"}}
    assert_error(api.post(callback_path(world.research), body, key=world.credentials["org_admin"]), 403,
                 param="callback_vars.gcs_path_service_account")
    assert api.post(callback_path(world.research), body).status_code == 200


def test_delete_and_disable_logging_remove_the_teams_callbacks(api, world):
    key = world.credentials["team_admin"]
    api.post(callback_path(world.research), PUBLIC_LANGFUSE, key=key)
    assert_error(api("DELETE", callback_path(world.research), {"callback_name": "s3"}, key=key), 404,
                 param="callback_name")
    assert api("DELETE", callback_path(world.research), {"callback_name": "langfuse"}, key=key).status_code == 200
    assert api.get(callback_path(world.research), key=key).json()["data"]["callbacks"] == []
    api.post(callback_path(world.research), PUBLIC_LANGFUSE, key=key)
    answer = api.post(f"/team/{world.research.pk}/disable_logging", key=world.credentials["org_admin"])
    assert answer.status_code == 200 and answer.json()["data"]["callbacks"] == []


# --- a key's own: metadata.logging --------------------------------------------------------------------

KEY_LOGGING = [{"callback_name": "generic_api", "callback_type": "success_and_failure",
                "callback_vars": {"generic_logger_endpoint": "https://logs.example.com/ingest",
                                  "generic_logger_headers": "Authorization: Bearer member-log-token"}}]


def test_a_members_key_logs_where_its_metadata_says_with_the_secret_masked(api, world):
    key = world.credentials["member"]
    answer = api.post("/key/generate", {"metadata": {"logging": KEY_LOGGING, "team": "x"}}, key=key)
    assert answer.status_code == 200, answer.content
    assert answer.json()["metadata"]["logging"][0]["callback_vars"]["generic_logger_headers"] == "*****oken"
    token = answer.json()["token"]
    info = api.get("/key/info", {"key": token}, key=key).json()["info"]
    assert "member-log-token" not in str(info) and info["metadata"]["team"] == "x"
    from apps.keys.models import VirtualKey

    stored = VirtualKey.objects.get(token_hash=token)
    assert stored.logging_callbacks[0]["callback_vars"]["generic_logger_headers"].endswith("member-log-token")
    with connection.cursor() as cursor:
        cursor.execute("SELECT logging_callbacks, metadata FROM keys_virtualkey WHERE token_hash = %s", [token])
        assert "member-log-token" not in " ".join(str(v) for v in cursor.fetchone())
    # Sent back as /key/info showed it, with another field changed: the secret stays.
    metadata = {**info["metadata"], "team": "y"}
    assert api.post("/key/update", {"key": token, "metadata": metadata}, key=key).status_code == 200
    stored.refresh_from_db()
    assert stored.logging_callbacks[0]["callback_vars"]["generic_logger_headers"].endswith("member-log-token")
    # metadata without logging: the callbacks are gone.
    assert api.post("/key/update", {"key": token, "metadata": {"team": "z"}}, key=key).status_code == 200
    stored.refresh_from_db()
    assert stored.logging_callbacks == []


@pytest.mark.parametrize("var, value", [
    ("generic_logger_endpoint", "http://127.0.0.1:9000/"),
    ("generic_logger_headers", "os.environ/GATEWAY_MASTER_KEY"),
])
def test_a_members_key_cannot_reach_the_gateways_network_or_environment(api, world, var, value):
    logging = [{**KEY_LOGGING[0], "callback_vars": {**KEY_LOGGING[0]["callback_vars"], var: value}}]
    assert_error(api.post("/key/generate", {"metadata": {"logging": logging}}, key=world.credentials["member"]),
                 403, param=f"metadata.logging[0].callback_vars.{var}")


def test_an_s3_region_or_bucket_cannot_carry_another_host(api, world):
    """S3's URL is built from them (https://s3.{region}.<AWS host>/{bucket}/...): neither may name another host."""
    s3 = {"callback_name": "s3", "callback_vars": {"s3_bucket_name": "logs", "s3_aws_access_key_id": "AKIA1",
                                                    "s3_aws_secret_access_key": "secret"}}
    key = world.credentials["team_admin"]
    for var, value in (("s3_region_name", "x@127.0.0.1:6379/"), ("s3_bucket_name", "b?x=@127.0.0.1")):
        body = {**s3, "callback_vars": {**s3["callback_vars"], var: value}}
        assert_error(api.post(callback_path(world.research), body, key=key), 400, param=f"callback_vars.{var}")
    good = {**s3, "callback_vars": {**s3["callback_vars"], "s3_region_name": "eu-west-3"}}
    assert api.post(callback_path(world.research), good, key=key).status_code == 200


def test_a_bad_key_logging_entry_is_a_400_naming_it(api, world):
    assert_error(api.post("/key/generate", {"metadata": {"logging": [{"callback_name": "nope"}]}}), 400,
                 param="metadata.logging[0].callback_name")
    assert_error(api.post("/key/generate", {"metadata": {"logging": {"callback_name": "langfuse"}}}), 400,
                 param="metadata.logging")
