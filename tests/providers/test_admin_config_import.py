"""The admin's config.yaml import: upload, preview what would change (never a secret), apply exactly
that; an invalid file changes nothing; superusers only."""

from __future__ import annotations

import html
import os
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.providers.models import ModelDeployment
from apps.routing.models import ModelGroupSettings, RouterSettings
from apps.teams.models import OrganizationMembership
from apps.teams.services import organization_create, organization_member_add

pytestmark = pytest.mark.django_db

URL = "/admin/providers/modeldeployment/import-config/"
LITERAL_SECRETS = ("sk-literal-secret-in-file", "literal-aws-secret-value", "sk-master-in-file", "AKIA-literal-id")

CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/IMPORT_TEST_KEY
      rpm: 600
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o-2024-08-06
      api_base: http://127.0.0.1:9/v1
      api_key: sk-literal-secret-in-file
      weight: 3
  - model_name: claude
    litellm_params:
      model: bedrock/anthropic.claude-3-haiku
      aws_access_key_id: AKIA-literal-id
      aws_secret_access_key: literal-aws-secret-value
      aws_region_name: us-east-1
  - model_name: llama
    litellm_params:
      model: groq/llama-3.3-70b-versatile
      rpm: 600
    model_info:
      id: groq-llama
router_settings:
  routing_strategy: least-busy
  num_retries: 4
  fallbacks: [{gpt-4o: [llama]}]
general_settings:
  master_key: sk-master-in-file
environment_variables:
  IMPORT_ONLY_IN_THE_FILE: some-value
"""


@pytest.fixture
def existing(monkeypatch):
    """Before the import: a deployment the file changes, one it no longer lists, one made in the admin."""
    monkeypatch.setenv("IMPORT_TEST_KEY", "sk-from-the-environment")
    return {
        "llama": ModelDeployment.objects.create(
            model_name="llama", provider="groq", upstream_model="llama-3.3-70b-versatile", rpm=10,
            config_id="groq-llama", managed_by_config=True),
        "gone": ModelDeployment.objects.create(
            model_name="old-model", provider="openai", upstream_model="gpt-3.5-turbo", config_id="gone",
            managed_by_config=True),
        "manual": ModelDeployment.objects.create(model_name="manual", provider="openai", upstream_model="gpt-4o-mini"),
    }


def upload(client: Client, text: str, name: str = "config.yaml"):
    return client.post(URL, {"file": SimpleUploadedFile(name, text.encode(), content_type="application/yaml")})


def text_of(response) -> str:
    """The page's text, entities decoded and white space collapsed."""
    return " ".join(html.unescape(response.content.decode()).split())


def token_of(page: str) -> str:
    return re.search(r'name="token" value="([^"]+)"', page).group(1)


def snapshot() -> list[tuple]:
    return list(ModelDeployment.objects.order_by("pk").values_list(
        "pk", "config_id", "is_active", "rpm", "weight", "api_key", "updated_at"))


def test_a_valid_file_is_previewed_without_a_change_or_a_secret(admin_client, existing):
    before = snapshot()
    response = upload(admin_client, CONFIG)
    assert response.status_code == 200
    page = text_of(response)
    assert "3 deployment(s) to add, 1 to change, 1 to deactivate, 0 unchanged" in page
    assert "router settings: create" in page
    # Which fields change, old and new; deactivated by label; the admin's deployment not at all.
    update = page[page.index('id="config-update"'):]
    assert re.search(r'<td class="field">rpm</td><td class="old">10</td><td>600</td>', update)
    assert "llama (groq/llama-3.3-70b-versatile)" in update
    assert "old-model (openai/gpt-3.5-turbo)" in page[page.index('id="config-deactivate"'):]
    assert "manual" not in page[page.index('id="config-summary"'):]
    # Secrets: the reference is shown, literal values only as ••••.
    assert "os.environ/IMPORT_TEST_KEY" in page and "••••" in page
    for secret in (*LITERAL_SECRETS, "sk-from-the-environment"):
        assert secret not in page, secret
    assert "aws_secret_access_key: ••••" in page
    assert "general_settings.master_key" in page[page.index('id="config-not-applied"'):]
    # A preview changes nothing, and does not set the file's environment_variables in the server.
    assert snapshot() == before and not RouterSettings.objects.exists()
    assert "IMPORT_ONLY_IN_THE_FILE" not in os.environ


def test_apply_applies_what_was_previewed_and_a_second_apply_changes_nothing(admin_client, existing):
    token = token_of(upload(admin_client, CONFIG).content.decode())
    response = admin_client.post(URL, {"token": token, "apply": "1"}, follow=True)
    assert response.redirect_chain == [("/admin/providers/modeldeployment/", 302)]
    assert "Imported config.yaml: 3 created, 1 updated, 0 unchanged, 1 deactivated" in text_of(response)

    rows = {d.config_id: d for d in ModelDeployment.objects.filter(managed_by_config=True)}
    assert len(rows) == 5
    llama = rows["groq-llama"]
    assert (llama.pk, llama.rpm, llama.is_active) == (existing["llama"].pk, 600, True)
    assert rows["gone"].is_active is False
    created = {(d.model_name, d.upstream_model): d for d in rows.values() if d.config_id not in ("groq-llama", "gone")}
    assert created[("gpt-4o", "gpt-4o")].api_key == "os.environ/IMPORT_TEST_KEY"
    assert created[("gpt-4o", "gpt-4o")].rpm == 600
    assert created[("gpt-4o", "gpt-4o-2024-08-06")].api_key == "sk-literal-secret-in-file"
    assert created[("gpt-4o", "gpt-4o-2024-08-06")].weight == 3
    assert created[("claude", "anthropic.claude-3-haiku")].secret_params == {
        "aws_secret_access_key": "literal-aws-secret-value"}
    assert ModelDeployment.objects.get(model_name="manual").is_active
    router = RouterSettings.objects.get()
    assert (router.routing_strategy, router.num_retries, router.managed_by_config) == ("least-busy", 4, True)
    assert ModelGroupSettings.objects.get(model_name="gpt-4o").fallbacks == ["llama"]

    # The same preview again: what it would change is no longer what it showed, so nothing is applied.
    after = snapshot()
    again = text_of(admin_client.post(URL, {"token": token, "apply": "1"}))
    assert "no longer what was previewed" in again and "Nothing was applied" in again
    assert "Nothing to change" in again and 'name="token"' not in again
    assert snapshot() == after
    # And the file uploaded again: nothing to change.
    page = text_of(upload(admin_client, CONFIG))
    assert "0 deployment(s) to add, 0 to change, 0 to deactivate, 4 unchanged" in page
    assert "Nothing to change" in page


def test_a_change_made_after_the_preview_stops_the_apply(admin_client, existing):
    token = token_of(upload(admin_client, CONFIG).content.decode())
    ModelDeployment.objects.filter(config_id="groq-llama").update(rpm=20)  # someone else, meanwhile
    before = snapshot()
    page = text_of(admin_client.post(URL, {"token": token, "apply": "1"}))
    assert "no longer what was previewed" in page
    assert re.search(r'<td class="field">rpm</td><td class="old">20</td><td>600</td>', page)
    assert snapshot() == before and not RouterSettings.objects.exists()
    # The new preview's token applies.
    admin_client.post(URL, {"token": token_of(page), "apply": "1"})
    assert ModelDeployment.objects.get(config_id="groq-llama").rpm == 600


@pytest.mark.parametrize(
    "text, message, line",
    [
        ("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x\n", "not valid YAML", 4),
        ("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      rpm: many\n",
         "model_list[0] (a).litellm_params.rpm: must be a whole number", 5),
        ("model_list:\n  - model_name: a\n    litellm_params:\n      model: nosuch/x\n",
         "litellm_params.model: unknown provider 'nosuch'", 4),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_key: os.environ/NOT_SET_ANYWHERE}\n",
         "environment variable NOT_SET_ANYWHERE is not set", 3),
    ],
)
def test_an_invalid_file_shows_the_error_and_its_line_and_changes_nothing(admin_client, existing, text, message, line):
    before = snapshot()
    response = upload(admin_client, text)
    page = response.content.decode()
    assert response.status_code == 200
    error = html.unescape(re.search(r'id="config-error">([^<]*)<', page).group(1))
    assert message in error and re.search(rf"\(line {line}\b", error) and "Nothing was changed" in error
    assert 'name="token"' not in page
    assert snapshot() == before


def test_a_yaml_error_does_not_quote_the_line_it_is_on(admin_client, existing):
    page = text_of(upload(admin_client, "model_list:\n  - api_key: sk-literal-secret-in-file: x\n"))
    assert "not valid YAML" in page and "(line 2" in page
    assert "sk-literal-secret-in-file" not in page


def test_a_value_read_from_the_environment_is_not_quoted_in_an_error(admin_client, existing, monkeypatch):
    monkeypatch.setenv("IMPORT_TEST_SECRET_VALUE", "a-secret-in-the-environment")
    text = "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, rpm: os.environ/IMPORT_TEST_SECRET_VALUE}\n"
    page = text_of(upload(admin_client, text))
    assert "litellm_params.rpm: must be a whole number" in page
    assert "a-secret-in-the-environment" not in page


def test_an_altered_or_borrowed_token_is_refused(admin_client, existing, django_user_model):
    token = token_of(upload(admin_client, CONFIG).content.decode())
    before = snapshot()
    page = admin_client.post(URL, {"token": token[:-4] + "AAAA", "apply": "1"}).content.decode()
    assert "expired or is not valid" in page
    other = Client()
    other.force_login(django_user_model.objects.create_superuser("other", "o@example.com", "pw-long-enough"))
    assert "expired or is not valid" in other.post(URL, {"token": token, "apply": "1"}).content.decode()
    assert snapshot() == before


def test_only_superusers_import(existing, django_user_model, admin_client):
    acme = organization_create(name="acme")
    staff = django_user_model.objects.create_user("acme-admin", password="pw", is_staff=True)
    organization_member_add(organization=acme, user=staff, role=OrganizationMembership.Role.ADMIN)
    client = Client()
    client.force_login(staff)
    before = snapshot()
    assert client.get(URL).status_code == 403
    assert upload(client, CONFIG).status_code == 403
    assert snapshot() == before
    assert "import-config" not in client.get("/admin/providers/modeldeployment/").content.decode()
    listing = admin_client.get("/admin/providers/modeldeployment/").content.decode()
    assert f'href="{URL}"' in listing and "Import config.yaml" in listing
    form = admin_client.get(URL).content.decode()
    assert 'enctype="multipart/form-data"' in form and 'type="file"' in form
