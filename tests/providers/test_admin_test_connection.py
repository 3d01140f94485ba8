"""The admin's "Test connection" on a model deployment: one cheap call (what the health probe sends),
its answer or its error on the change page, never a credential; scoped as the change page is."""

from __future__ import annotations

import html

import pytest
from aiohttp import web
from django.test import Client

from apps.providers.models import ModelDeployment
from apps.teams.models import OrganizationMembership
from apps.teams.services import organization_create, organization_member_add
from tests.fakes.server import FakeServer

pytestmark = pytest.mark.django_db

SECRET = "sk-upstream-secret"  # make_deployment's api_key


def url(deployment: ModelDeployment) -> str:
    return f"/admin/providers/modeldeployment/{deployment.pk}/test-connection/"


def calls(fake_openai, model: str) -> list[dict]:
    return [r for r in fake_openai.requests if r["body"].get("model") == model]


def test_the_change_page_has_the_button_and_a_post_shows_the_reply(admin_client, make_deployment, fake_openai):
    deployment = make_deployment("probe-ok", upstream_model="probe-ok-upstream")
    page = admin_client.get(f"/admin/providers/modeldeployment/{deployment.pk}/change/").content.decode()
    assert f'action="{url(deployment)}"' in page and "Test connection" in page and "csrfmiddlewaretoken" in page

    response = admin_client.post(url(deployment), follow=True)
    assert response.redirect_chain == [(f"/admin/providers/modeldeployment/{deployment.pk}/change/", 302)]
    text = html.unescape(response.content.decode())
    assert "Test connection: OK in" in text and "Hello from the fake upstream." in text
    # One call, the health probe's: a tiny chat, the deployment's key sent upstream but not shown.
    (call,) = calls(fake_openai, "probe-ok-upstream")
    assert call["path"] == "/v1/chat/completions"
    assert call["body"]["messages"] == [{"role": "user", "content": "ping"}]
    assert call["body"].get("max_tokens", call["body"].get("max_completion_tokens")) == 1
    assert call["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in text


def test_an_upstream_error_is_shown_with_its_status_and_no_secret(admin_client, make_deployment):
    deployment = make_deployment("probe-401", upstream_model="error-401")
    text = html.unescape(admin_client.post(url(deployment), follow=True).content.decode())
    assert "Test connection failed (HTTP 401" in text and "fake upstream error 401" in text
    assert SECRET not in text and "Traceback" not in text
    deployment.refresh_from_db()
    assert deployment.health_status == ModelDeployment.Health.UNKNOWN  # a test records nothing


class KeyQuotingUpstream(FakeServer):
    """Refuses every key, quoting it back as some providers do."""

    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return web.json_response({"error": {"message": f"Incorrect API key provided: {key}.",
                                            "type": "invalid_request_error", "code": "invalid_api_key"}}, status=401)


def test_a_key_quoted_back_by_the_upstream_is_masked(admin_client, make_deployment, monkeypatch):
    upstream = KeyQuotingUpstream().start()
    try:
        monkeypatch.setenv("PROBE_TEST_KEY", "sk-from-the-environment-1234")
        literal = make_deployment("quoting-literal", api_base=upstream.url + "/v1")
        from_env = make_deployment("quoting-env", api_base=upstream.url + "/v1", api_key="os.environ/PROBE_TEST_KEY")
        text = html.unescape(admin_client.post(url(literal), follow=True).content.decode())
        assert "Incorrect API key provided: ••••" in text and SECRET not in text
        text = html.unescape(admin_client.post(url(from_env), follow=True).content.decode())
        assert "Incorrect API key provided: ••••" in text and "sk-from-the-environment-1234" not in text
    finally:
        upstream.stop()


def test_an_embedding_model_gets_one_short_input(admin_client, make_deployment, fake_openai):
    deployment = make_deployment("probe-embed", upstream_model="probe-embed-upstream", mode="embedding")
    text = html.unescape(admin_client.post(url(deployment), follow=True).content.decode())
    assert "OK in" in text and "an embedding of 3 dimensions" in text
    (call,) = calls(fake_openai, "probe-embed-upstream")
    assert call["path"] == "/v1/embeddings" and call["body"]["input"] == "ping"


def test_a_mode_without_a_cheap_request_is_not_called(admin_client, make_deployment, fake_openai):
    deployment = make_deployment("probe-image", upstream_model="probe-image-upstream", mode="image_generation")
    text = html.unescape(admin_client.post(url(deployment), follow=True).content.decode())
    assert "nothing was sent" in text
    assert calls(fake_openai, "probe-image-upstream") == []


def test_a_get_is_refused_and_calls_nothing(admin_client, make_deployment, fake_openai):
    deployment = make_deployment("probe-get", upstream_model="probe-get-upstream")
    assert admin_client.get(url(deployment)).status_code == 405
    assert calls(fake_openai, "probe-get-upstream") == []


def test_the_post_needs_a_csrf_token_and_a_login(django_user_model, make_deployment, fake_openai):
    deployment = make_deployment("probe-csrf", upstream_model="probe-csrf-upstream")
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw-long-enough"))
    assert client.post(url(deployment)).status_code == 403
    anonymous = Client().post(url(deployment))
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    assert calls(fake_openai, "probe-csrf-upstream") == []


@pytest.fixture
def acme_viewer(django_user_model):
    acme = organization_create(name="acme")
    viewer = django_user_model.objects.create_user("acme-viewer", password="pw", is_staff=True)
    organization_member_add(organization=acme, user=viewer, role=OrganizationMembership.Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return acme, client


def test_organization_staff_test_what_they_may_view_and_nothing_else(acme_viewer, make_deployment, fake_openai):
    acme, client = acme_viewer
    globex = organization_create(name="globex")
    theirs = make_deployment("globex-model", upstream_model="globex-upstream", organization=globex)
    mine = make_deployment("acme-model", upstream_model="acme-upstream", organization=acme)
    shared = make_deployment("shared-model", upstream_model="shared-upstream")

    assert client.post(url(theirs)).status_code == 404  # hidden, as its change page is
    assert calls(fake_openai, "globex-upstream") == []
    for deployment, upstream in ((mine, "acme-upstream"), (shared, "shared-upstream")):
        # Viewing is enough: the test changes nothing (the page is read-only for them).
        page = client.get(f"/admin/providers/modeldeployment/{deployment.pk}/change/").content.decode()
        assert f'action="{url(deployment)}"' in page
        text = html.unescape(client.post(url(deployment), follow=True).content.decode())
        assert "Test connection: OK in" in text and len(calls(fake_openai, upstream)) == 1


def test_save_and_test_connection_from_the_add_form(admin_client, fake_openai):
    form = {
        "model_name": "added-then-tested", "provider": "openai", "upstream_model": "added-upstream",
        "api_base": fake_openai.base_url, "api_key": "sk-added-secret", "weight": 1, "is_active": "on",
        "extra_params": "{}", "access_groups": "[]", "tags": "[]", "mode": "chat",
    }
    assert 'name="_saveandtest"' in admin_client.get("/admin/providers/modeldeployment/add/").content.decode()
    response = admin_client.post("/admin/providers/modeldeployment/add/", {**form, "_saveandtest": "1"}, follow=True)
    deployment = ModelDeployment.objects.get(model_name="added-then-tested")
    assert response.redirect_chain == [(f"/admin/providers/modeldeployment/{deployment.pk}/change/", 302)]
    text = html.unescape(response.content.decode())
    assert "was added successfully" in text and "Test connection: OK in" in text
    assert "sk-added-secret" not in text
    assert len(calls(fake_openai, "added-upstream")) == 1


def test_under_asgi_too(admin_user, make_deployment, fake_openai):
    """The admin is served by Django's ASGI handler: the sync view runs in a thread and the call on the
    event loop (async_to_sync), as in production."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    deployment = make_deployment("probe-asgi", upstream_model="probe-asgi-upstream")
    client = AsyncClient()
    client.force_login(admin_user)
    response = async_to_sync(client.post)(url(deployment))
    assert response.status_code == 302
    page = async_to_sync(client.get)(response["Location"])
    assert "Test connection: OK in" in html.unescape(page.content.decode())
    assert len(calls(fake_openai, "probe-asgi-upstream")) == 1
