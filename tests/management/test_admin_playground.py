"""The admin's playground: who may mint a credential for which key, and what the credential is on
the real /v1 path (the key it acts as: its models, budget, block and spend), what it is not
(a management credential, a long-lived one, something written to a log), and how the page's
endpoints answer broken input and a dead Redis."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import httpx
import orjson
import pytest
import redis
from django.test import Client, override_settings

from apps.keys.models import VirtualKey
from apps.keys.services import virtual_key_create, virtual_key_set_blocked
from apps.providers.adapters.base import Usage
from apps.providers.models import ModelDeployment
from apps.providers.registry import deployment_from_row
from apps.spend.models import SpendLog
from apps.spend.pricing import price_usage
from apps.teams.services import organization_create, organization_member_add, team_create
from tests.fakes.openai_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, REPLY_WORDS

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_URL = "/admin/playground/token/"
RESULT_URL = "/admin/playground/result/"


@pytest.fixture
def tenants(django_user_model, make_deployment):
    acme, globex = organization_create(name="Acme"), organization_create(name="Globex")
    research = team_create(organization=acme, alias="research")
    sales = team_create(organization=globex, alias="sales")
    users = {}
    for name, org, role in (("orgadmin", acme, "admin"), ("viewer", acme, "viewer"), ("member", acme, "member"),
                            ("globexadmin", globex, "admin")):
        users[name] = django_user_model.objects.create_user(name, password="pw", is_staff=True)
        organization_member_add(organization=org, user=users[name], role=role)
    users["root"] = django_user_model.objects.create_superuser("root", password="pw")
    make_deployment("gpt-shared")
    make_deployment("gpt-other")
    globex_private = make_deployment("gpt-globex", organization=globex)
    keys = {
        "acme": virtual_key_create(alias="acme-bot", team=research)[0],
        "globex": virtual_key_create(alias="globex-bot", team=sales)[0],
        "viewer_own": virtual_key_create(alias="viewer-own", organization=acme, user=users["viewer"])[0],
    }
    return {"acme": acme, "globex": globex, "research": research, "users": users, "keys": keys,
            "globex_private": globex_private}


def _client(user) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    return client


def _mint(client: Client, body) -> tuple[int, dict]:
    response = client.post(TOKEN_URL, data=body if isinstance(body, (str, bytes)) else orjson.dumps(body),
                           content_type="application/json")
    return response.status_code, response.json() if response["Content-Type"] == "application/json" else {}


def _chat(gateway, credential: str, model: str = "gpt-shared", **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}, **extra}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {credential}"})


def _streamed_text(response: httpx.Response) -> str:
    text = ""
    for line in response.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunk = orjson.loads(line[6:])
            for choice in chunk.get("choices") or []:
                text += choice.get("delta", {}).get("content") or ""
    return text


# --- who may mint for which key -----------------------------------------------------------------


def test_an_org_viewer_may_mint_nothing(tenants):
    viewer = _client(tenants["users"]["viewer"])
    status, body = _mint(viewer, {"key_id": tenants["keys"]["acme"].pk})
    assert status == 403 and body["error"]["type"] == "permission_error", body
    status, body = _mint(viewer, {})  # its own playground key: viewers make no keys
    assert status == 403, body
    status, body = _mint(viewer, {"key_id": tenants["keys"]["viewer_own"].pk})  # not even its own key
    assert status == 403, body
    assert not VirtualKey.objects.filter(user=tenants["users"]["viewer"], metadata__playground=True).exists()


def test_an_org_admin_mints_for_its_own_keys_only(tenants):
    orgadmin = _client(tenants["users"]["orgadmin"])
    globex_key = tenants["keys"]["globex"]
    # Another organization's key, found by guessing ids: as if it did not exist.
    status, body = _mint(orgadmin, {"key_id": globex_key.pk})
    assert status == 404, body
    status, body = _mint(orgadmin, {"key_id": VirtualKey.objects.order_by("-pk").first().pk + 1000})
    assert status == 404, body
    # A fellow staff user's key in its organization: only the proxy admin hands those out.
    status, body = _mint(orgadmin, {"key_id": tenants["keys"]["viewer_own"].pk})
    assert status == 403, body
    response = orgadmin.post(TOKEN_URL, data=orjson.dumps({"key_id": tenants["keys"]["acme"].pk}),
                             content_type="application/json")
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"]
    minted = response.json()
    assert minted["credential"].startswith("sk-playground-")
    assert minted["key"]["id"] == tenants["keys"]["acme"].pk
    # Another organization named for its own playground key: refused.
    status, body = _mint(orgadmin, {"organization_id": str(tenants["globex"].pk)})
    assert status == 403, body


def test_the_proxy_admin_mints_for_any_key(tenants):
    root = _client(tenants["users"]["root"])
    for name in ("acme", "globex", "viewer_own"):
        status, body = _mint(root, {"key_id": tenants["keys"][name].pk})
        assert status == 200, (name, body)


def test_an_operators_own_playground_key_is_made_once_inside_its_organization(tenants):
    orgadmin = tenants["users"]["orgadmin"]
    client = _client(orgadmin)
    first_status, first = _mint(client, {})
    second_status, second = _mint(client, {})
    assert first_status == second_status == 200, (first, second)
    assert first["key"]["id"] == second["key"]["id"]
    assert first["credential"] != second["credential"]
    key = VirtualKey.objects.get(pk=first["key"]["id"])
    assert (key.user, key.organization, key.team) == (orgadmin, tenants["acme"], None)
    assert key.alias == "playground: orgadmin (Acme)" and key.metadata == {"playground": True}
    # The proxy admin's own is outside every organization, and no proxy admin key.
    status, root_minted = _mint(_client(tenants["users"]["root"]), {})
    assert status == 200, root_minted
    root_key = VirtualKey.objects.get(pk=root_minted["key"]["id"])
    assert root_key.organization is None and not root_key.issued_by_proxy_admin


def test_broken_requests_get_a_clear_4xx(tenants):
    root = _client(tenants["users"]["root"])
    status, body = _mint(root, "{not json")
    assert status == 400 and body["error"]["code"] == "invalid_json", body
    status, body = _mint(root, "[1, 2]")
    assert status == 400 and body["error"]["code"] == "invalid_json", body
    status, body = _mint(root, {"key_id": "12"})
    assert status == 400 and body["error"]["param"] == "key_id", body
    status, body = _mint(root, '{"key_id": 9223372036854775808}')  # beyond any id column
    assert status == 400 and body["error"]["param"] == "key_id", body
    assert root.get(TOKEN_URL).status_code == 405
    # CSRF holds: a browser session without the token is refused.
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(tenants["users"]["root"])
    assert csrf_client.post(TOKEN_URL, data="{}", content_type="application/json").status_code == 403
    # Not staff: the admin's login page, never a credential.
    assert Client().post(TOKEN_URL, data="{}", content_type="application/json").status_code == 302
    status, body = _mint(root, {"key_id": None, "organization_id": 5})
    assert status == 400, body


def test_minting_with_redis_down_is_a_clear_503(tenants, monkeypatch, caplog):
    from apps.keys import playground

    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5)
    monkeypatch.setattr(playground, "_store", playground.RedisPlaygroundStore())
    monkeypatch.setattr(playground, "sync_redis", lambda: dead)
    status, body = _mint(_client(tenants["users"]["root"]), {"key_id": tenants["keys"]["acme"].pk})
    assert status == 503, body
    assert body["error"]["code"] == "playground_unavailable" and "Redis" in body["error"]["message"]


# --- the credential on the real /v1 path --------------------------------------------------------


def test_redis_down_on_v1_is_a_503_not_a_crash(tenants, gateway, monkeypatch):
    import redis.asyncio as aioredis

    from apps.core import redis as gateway_redis
    from apps.keys import playground

    monkeypatch.setattr(playground, "_store", playground.RedisPlaygroundStore())
    # The store's client is made on its first use, after this: it is the only one pointed at a dead port.
    monkeypatch.setattr(gateway_redis, "new_async_redis", lambda: aioredis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5))
    response = _chat(gateway, "sk-playground-" + "y" * 43)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "playground_unavailable"



def test_the_credential_acts_as_the_chosen_key(tenants, gateway, spend_logs):
    limited, _ = virtual_key_create(alias="limited", team=tenants["research"], models=["gpt-shared"])
    status, minted = _mint(_client(tenants["users"]["orgadmin"]), {"key_id": limited.pk})
    assert status == 200, minted
    credential = minted["credential"]

    response = _chat(gateway, credential)
    assert response.status_code == 200, response.text
    assert _streamed_text(response) == "".join(REPLY_WORDS)
    deployment = ModelDeployment.objects.get(model_name="gpt-shared")
    assert response.headers["x-litellm-model-id"] == str(deployment.pk)

    refused = _chat(gateway, credential, model="gpt-other")  # not among the key's models
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed", refused.text

    logs = spend_logs(2)
    success = next(log for log in logs if log.status == "success")
    assert success.key_id == limited.pk and success.key_hash == limited.token_hash
    assert success.team_id == tenants["research"].pk
    assert "playground" in success.metadata["tags"]
    assert success.metadata["spend_logs_metadata"] == {"playground_operator": "orgadmin"}
    assert (success.prompt_tokens, success.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert success.cost > 0


def test_the_keys_budget_applies(tenants, gateway):
    broke, _ = virtual_key_create(alias="broke", team=tenants["research"], max_budget=Decimal("0.0001"))
    _, minted = _mint(_client(tenants["users"]["root"]), {"key_id": broke.pk})
    response = _chat(gateway, minted["credential"], max_tokens=4000)
    assert response.status_code in (400, 429), response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and "budget" in error["message"].lower(), error


def test_an_expired_credential_is_refused(tenants, gateway):
    with override_settings(GATEWAY_PLAYGROUND_CREDENTIAL_TTL=1):
        _, minted = _mint(_client(tenants["users"]["root"]), {"key_id": tenants["keys"]["acme"].pk})
    assert _chat(gateway, minted["credential"]).status_code == 200
    time.sleep(1.2)
    response = _chat(gateway, minted["credential"])
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "authentication_error"
    unknown = _chat(gateway, "sk-playground-" + "x" * 43)
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "invalid_api_key"


def test_blocking_the_key_blocks_its_credentials(tenants, gateway):
    key = tenants["keys"]["acme"]
    root = _client(tenants["users"]["root"])
    _, minted = _mint(root, {"key_id": key.pk})
    assert _chat(gateway, minted["credential"]).status_code == 200
    virtual_key_set_blocked(key=key, blocked=True)
    deadline = time.monotonic() + 5
    while (response := _chat(gateway, minted["credential"])).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert response.status_code == 401 and response.json()["error"]["code"] == "key_blocked", response.text
    status, body = _mint(root, {"key_id": key.pk})  # and no new one is minted for it
    assert status == 403 and "blocked" in body["error"]["message"], body


def test_the_credential_opens_no_management_route(tenants, gateway):
    _, minted = _mint(_client(tenants["users"]["root"]), {"key_id": tenants["keys"]["acme"].pk})
    headers = {"Authorization": f"Bearer {minted['credential']}"}
    for path in ("/key/info", "/key/list", "/team/list", "/spend/logs", "/user/info"):
        response = httpx.get(f"{gateway.url}{path}", headers=headers, timeout=10)
        assert response.status_code == 401, (path, response.status_code, response.text)
    response = httpx.post(f"{gateway.url}/key/generate", headers=headers, json={}, timeout=10)
    assert response.status_code == 401, response.text
    # /health is for the proxy admin: the credential carries only its key's rights.
    assert httpx.get(f"{gateway.url}/health", headers=headers, timeout=10).status_code == 403
    # And the admin's own endpoints want a staff session, not a bearer credential.
    response = httpx.post(f"{gateway.url}{TOKEN_URL}", headers=headers, json={}, timeout=10)
    assert response.status_code in (302, 403), response.status_code


def test_the_credential_is_written_to_no_log(tenants, gateway, spend_logs, caplog):
    caplog.set_level(logging.DEBUG)
    with override_settings(GATEWAY_REQUEST_LOG=True):
        _, minted = _mint(_client(tenants["users"]["root"]), {"key_id": tenants["keys"]["acme"].pk})
        assert _chat(gateway, minted["credential"]).status_code == 200
        logs = spend_logs(1)
    secret = minted["credential"][len("sk-playground-"):]
    assert secret not in caplog.text
    assert all(secret not in orjson.dumps(log.metadata or {}).decode() for log in logs)


# --- the price of a streamed answer ---------------------------------------------------------------


def test_the_result_is_priced_by_the_spend_paths_function(tenants):
    deployment = ModelDeployment.objects.get(model_name="gpt-shared")
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    response = _client(tenants["users"]["orgadmin"]).post(
        RESULT_URL, data=orjson.dumps({"deployment_id": deployment.pk, "usage": usage}),
        content_type="application/json")
    assert response.status_code == 200, response.content
    result = response.json()
    expected = price_usage(deployment_from_row(deployment), Usage(prompt_tokens=1000, completion_tokens=500,
                                                                  reported=True)).cost
    assert Decimal(result["cost"]) == expected > 0
    assert result["deployment"] == {"id": deployment.pk, "model_name": "gpt-shared", "provider": "openai",
                                    "upstream_model": "gpt-shared", "api_base": deployment.api_base}
    assert "sk-upstream-secret" not in response.content.decode()


def test_the_result_endpoint_keeps_to_the_callers_scope_and_refuses_nonsense(tenants):
    orgadmin = _client(tenants["users"]["orgadmin"])

    def post(body):
        return orgadmin.post(RESULT_URL, data=orjson.dumps(body) if not isinstance(body, str) else body,
                             content_type="application/json")

    private = tenants["globex_private"]
    assert post({"deployment_id": private.pk, "usage": {"prompt_tokens": 1}}).status_code == 404
    assert post({"deployment_id": 999999}).status_code == 404
    assert post("nope").status_code == 400
    assert post({"deployment_id": "x"}).status_code == 400
    shared = ModelDeployment.objects.get(model_name="gpt-shared").pk
    assert post({"deployment_id": shared, "usage": {"prompt_tokens": "lots"}}).status_code == 400
    assert post({"deployment_id": shared, "usage": {"prompt_tokens": -5}}).status_code == 400


# --- the page -----------------------------------------------------------------------------------


def test_the_page_offers_what_the_staff_user_may_use(tenants):
    page = _client(tenants["users"]["orgadmin"]).get("/admin/playground/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="gpt-shared"' in html and 'value="gpt-globex"' not in html
    assert f'value="key:{tenants["keys"]["acme"].pk}"' in html
    assert f'value="key:{tenants["keys"]["globex"].pk}"' not in html
    assert f'value="key:{tenants["keys"]["viewer_own"].pk}"' not in html  # a staff user's key: not its to use
    assert f'value="self:{tenants["acme"].pk}"' in html
    assert "management/playground.js" in html and "<script>" not in html  # no inline script

    root_html = _client(tenants["users"]["root"]).get("/admin/playground/").content.decode()
    assert 'value="gpt-globex"' in root_html and f'value="key:{tenants["keys"]["globex"].pk}"' in root_html

    index = _client(tenants["users"]["orgadmin"]).get("/admin/").content.decode()
    assert 'href="/admin/playground/"' in index

    found = _client(tenants["users"]["orgadmin"]).get("/admin/playground/keys/", {"q": "acme"}).json()
    assert [key["id"] for key in found["keys"]] == [tenants["keys"]["acme"].pk]
    found = _client(tenants["users"]["orgadmin"]).get("/admin/playground/keys/", {"q": "globex"}).json()
    assert found["keys"] == []
