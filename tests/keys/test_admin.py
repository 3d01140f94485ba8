"""The admin: a key is shown once and stored hashed; provider credentials are write-only."""

import hashlib
import re

import pytest
from django.db import connection

from apps.keys.models import VirtualKey
from apps.providers.models import ModelDeployment

pytestmark = pytest.mark.django_db


def test_creating_a_key_in_the_admin_shows_it_once_and_stores_only_its_hash(admin_client, team):
    response = admin_client.post(
        "/admin/keys/virtualkey/add/",
        {"alias": "ci-bot", "team": team.pk, "models": "gpt-a, gpt-b", "metadata": "{}"},
        follow=True,
    )
    # Post/redirect/get: the key is shown by a GET, so reloading it posts nothing again.
    [(created_url, status)] = response.redirect_chain
    assert status == 302 and created_url.endswith("/created/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw_key = re.search(r'value="(sk-[^"]+)"', html).group(1)
    assert "shown only this once" in html

    key = VirtualKey.objects.get()
    assert key.token_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert key.key_display == f"sk-…{raw_key[-4:]}"
    assert key.models == ["gpt-a", "gpt-b"]
    assert key.organization_id == team.organization_id  # taken from the team
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM keys_virtualkey")
        assert raw_key not in repr(cursor.fetchall())
    # Never again: neither the change page nor the list shows it.
    assert raw_key not in admin_client.get(f"/admin/keys/virtualkey/{key.pk}/change/").content.decode()
    assert raw_key not in admin_client.get("/admin/keys/virtualkey/").content.decode()
    # Nor the key-once page drawn again (a reload): it sends to the key's page, which says why.
    again = admin_client.get(created_url, follow=True)
    assert raw_key not in again.content.decode() and "shown once already" in again.content.decode()
    assert VirtualKey.objects.count() == 1


def test_block_action_blocks_keys(admin_client, make_key):
    key, _ = make_key(alias="to-block")
    admin_client.post(
        "/admin/keys/virtualkey/", {"action": "block_keys", "_selected_action": [key.pk]}
    )
    key.refresh_from_db()
    assert key.blocked


def test_provider_credential_is_write_only_and_encrypted_at_rest(admin_client):
    response = admin_client.post(
        "/admin/providers/modeldeployment/add/",
        {
            "model_name": "gpt-admin",
            "provider": "openai",
            "upstream_model": "gpt-4o-mini",
            "api_base": "http://127.0.0.1:1/v1",
            "api_key": "sk-provider-secret-123",
            "weight": 1,
            "is_active": "on",
            "extra_params": "{}",
            "access_groups": "[]",
            "tags": "[]",
            "mode": "chat",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    deployment = ModelDeployment.objects.get()
    assert deployment.api_key == "sk-provider-secret-123"
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM providers_modeldeployment")
        stored = cursor.fetchone()[0]
    assert "sk-provider-secret" not in stored and stored.startswith("gAAAAA")

    change_page = admin_client.get(f"/admin/providers/modeldeployment/{deployment.pk}/change/")
    assert "sk-provider-secret" not in change_page.content.decode()

    # Saving the form with the credential left empty keeps it.
    admin_client.post(
        f"/admin/providers/modeldeployment/{deployment.pk}/change/",
        {
            "model_name": "gpt-admin",
            "provider": "openai",
            "upstream_model": "gpt-4o",
            "api_base": "http://127.0.0.1:1/v1",
            "api_key": "",
            "weight": 2,
            "is_active": "on",
            "extra_params": "{}",
            "access_groups": "[]",
            "tags": "[]",
            "mode": "chat",
        },
    )
    deployment.refresh_from_db()
    assert (deployment.upstream_model, deployment.weight) == ("gpt-4o", 2)
    assert deployment.api_key == "sk-provider-secret-123"


def test_admin_lists_render(admin_client, make_key, team):
    make_key(team=team)
    for url in (
        "/admin/",
        "/admin/keys/virtualkey/",
        "/admin/teams/organization/",
        "/admin/teams/team/",
        "/admin/teams/teammembership/",
        "/admin/providers/modeldeployment/",
        "/admin/spend/spendlog/",
        "/admin/keys/virtualkey/add/",
    ):
        assert admin_client.get(url).status_code == 200, url


@pytest.mark.parametrize("metadata", ["[" * 100_000 + "]" * 100_000, '{"a":' * 40 + "1" + "}" * 40])
def test_json_nested_too_deep_is_a_form_error_not_a_500(admin_client, metadata):
    response = admin_client.post("/admin/keys/virtualkey/add/", {
        "alias": "deep", "metadata": metadata, "model_max_budget": "{}", "model_rpm_limit": "{}",
        "model_tpm_limit": "{}",
    })
    assert response.status_code == 200 and b"Nested deeper than" in response.content
    from apps.keys.models import VirtualKey

    assert not VirtualKey.objects.filter(alias="deep").exists()


def test_json_holding_a_nul_character_is_a_form_error_not_a_500(admin_client):
    from apps.keys.models import VirtualKey

    response = admin_client.post("/admin/keys/virtualkey/add/", {
        "alias": "nul", "metadata": '{"a": "b\\u0000"}', "model_max_budget": "{}", "model_rpm_limit": "{}",
        "model_tpm_limit": "{}",
    })
    assert response.status_code == 200 and b"Null characters are not allowed" in response.content
    assert not VirtualKey.objects.filter(alias="nul").exists()
