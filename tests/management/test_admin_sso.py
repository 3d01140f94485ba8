"""Single sign-on for the admin (apps.management.admin_sso, apps.management.sso): the whole
OpenID Connect flow against a fake issuer on loopback (tests/fakes/oidc_issuer.py), driven with
Django's test client: /oidc/authenticate/ → the issuer's authorization endpoint → the callback
it redirects to → signed in (or refused, with the reason on the login page).
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client

from apps.core.models import AuditLog
from apps.management.sso import sso_provider_cache_clear
from apps.routing.urls import DATA_PLANE_PREFIXES
from apps.teams.models import OrganizationMembership
from apps.teams.services import organization_create, team_create
from gateway_project.settings import _sso_roles
from tests.fakes.oidc_issuer import FakeOidcIssuer, rsa_key
from tests.fakes.server import free_socket

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID, CLIENT_SECRET = "gateway-admin", "s3cret-of-the-client"
CALLBACK = "http://testserver/oidc/callback/"
ROLES = {
    "claim": "groups",
    "proxy_admin": ["gateway-admins"],
    "org_admin": {"Acme": ["acme-admins"], "Globex": ["globex-admins"]},
    "viewer": {"Acme": ["acme-staff"]},
}
PASSWORD_BACKEND = "django.contrib.auth.backends.ModelBackend"
SSO_BACKEND = "apps.management.admin_sso.SsoBackend"
User = get_user_model()


def person(email: str = "ada@example.com", groups: list | None = None, **claims) -> dict:
    return {"sub": "sub-" + email, "email": email, "email_verified": True, "name": "Ada Lovelace",
            "groups": groups or [], **claims}


@pytest.fixture
def tenants():
    acme, globex = organization_create(name="Acme"), organization_create(name="Globex")
    team_create(organization=acme, alias="acme-team")
    team_create(organization=globex, alias="globex-team")
    return {"acme": acme, "globex": globex}


@pytest.fixture
def issuer():
    fake = FakeOidcIssuer(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[CALLBACK]).start()
    yield fake
    fake.stop()


@pytest.fixture
def sso(settings, issuer, tenants):
    """SSO configured as GATEWAY_SSO_* would (password sign-in still on)."""
    settings.GATEWAY_SSO_ISSUER = issuer.issuer
    settings.GATEWAY_SSO_NAME = "Keycloak"
    settings.GATEWAY_SSO_ROLES = _sso_roles(json.dumps(ROLES))  # parsed as settings.py parses it
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    settings.AUTHENTICATION_BACKENDS = [PASSWORD_BACKEND, SSO_BACKEND]
    sso_provider_cache_clear()
    yield issuer
    sso_provider_cache_clear()


def sso_authorize(client: Client, issuer: FakeOidcIssuer, claims: dict) -> str:
    """Start a sign-in and pass the issuer's login: the callback URL it redirects the browser to."""
    issuer.sign_in_as(claims)
    start = client.get("/oidc/authenticate/", {"next": "/admin/teams/team/"})
    assert start.status_code == 302 and start["Location"].startswith(issuer.authorization_endpoint + "?")
    answer = requests.get(start["Location"], allow_redirects=False, timeout=10)  # loopback only
    assert answer.status_code == 302, answer.text
    assert answer.headers["Location"].startswith(CALLBACK + "?")
    return answer.headers["Location"]


def sso_login(client: Client, issuer: FakeOidcIssuer, claims: dict):
    return client.get(sso_authorize(client, issuer, claims).removeprefix("http://testserver"))


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/teams/team/"


def refusal(client: Client, response) -> str:
    """The refused callback goes back to the login page, which says why."""
    assert response.status_code == 302 and response["Location"] == "/admin/login/"
    assert client.get("/admin/").status_code == 302  # not signed in
    return client.get("/admin/login/").content.decode()


def test_proxy_admin_claim_signs_in_a_superuser(sso):
    client = Client()
    page = client.get("/admin/login/").content.decode()
    assert "Sign in with Keycloak" in page and 'id="login-form"' in page
    assert sso.discovery_requests == 0  # discovery waits for the first sign-in

    start = client.get("/oidc/authenticate/")
    query = parse_qs(urlsplit(start["Location"]).query)
    assert query["client_id"] == [CLIENT_ID] and query["redirect_uri"] == [CALLBACK]
    assert query["state"] and query["nonce"] and query["code_challenge_method"] == ["S256"]
    assert "openid" in query["scope"][0].split()

    assert signed_in(sso_login(client, sso, person(groups=["gateway-admins"])))
    assert client.get("/admin/").status_code == 200
    user = User.objects.get(email="ada@example.com")
    assert user.username == "ada@example.com" and user.is_superuser and user.is_staff
    assert not user.has_usable_password()

    assert signed_in(sso_login(Client(), sso, person(groups=["gateway-admins"])))  # the same user again
    assert User.objects.filter(email="ada@example.com").count() == 1
    assert sso.discovery_requests == 1  # cached


def test_org_admin_claim_is_staff_scoped_to_its_organization(sso, tenants):
    client = Client()
    assert signed_in(sso_login(client, sso, person(groups=["acme-admins", "unrelated"])))
    user = User.objects.get(email="ada@example.com")
    assert user.is_staff and not user.is_superuser
    membership = OrganizationMembership.objects.get(user=user)
    assert (membership.organization, membership.role) == (tenants["acme"], "admin")
    page = client.get("/admin/teams/team/")
    assert page.status_code == 200
    assert "acme-team" in page.content.decode() and "globex-team" not in page.content.decode()
    assert client.get("/admin/teams/team/add/").status_code == 200
    assert AuditLog.objects.filter(actor="sso:ada@example.com", via="admin").exists()  # who changed the roles


def test_viewer_claim_can_view_but_not_change(sso, tenants):
    client = Client()
    assert signed_in(sso_login(client, sso, person(groups=["acme-staff"])))
    team = tenants["acme"].teams.get()
    assert "acme-team" in client.get("/admin/teams/team/").content.decode()
    assert 'name="_save"' not in client.get(f"/admin/teams/team/{team.pk}/change/").content.decode()
    assert client.get("/admin/teams/team/add/").status_code == 403
    assert client.post(f"/admin/teams/team/{team.pk}/change/", {"alias": "renamed"}).status_code == 403


def test_no_matching_role_is_refused_and_nobody_is_created(sso):
    client = Client()
    page = refusal(client, sso_login(client, sso, person(groups=["somebody-elses-group"])))
    assert "No role in this gateway for ada@example.com" in page
    assert not User.objects.filter(email="ada@example.com").exists()


def test_unverified_email_is_refused(sso):
    client = Client()
    page = refusal(client, sso_login(client, sso, person(groups=["gateway-admins"], email_verified=False)))
    assert "is not verified" in page
    assert not User.objects.exists()


def test_an_existing_account_is_matched_by_email(sso):
    User.objects.create_user("ada", email="Ada@Example.com", password="a-long-password")
    assert signed_in(sso_login(Client(), sso, person(groups=["gateway-admins"])))
    assert User.objects.get().username == "ada" and User.objects.get().is_superuser


ID_TOKEN_CHANGES = {
    "wrong nonce": {"nonce": "not-the-one-sent"}, "another audience": {"aud": "other"},
    "another issuer": {"iss": "https://evil.example"}, "expired": {"exp": 1_000_000, "iat": 999_000},
}


@pytest.mark.parametrize("fault", ["another key", *ID_TOKEN_CHANGES])
def test_an_id_token_that_does_not_verify_is_refused(sso, fault):
    if fault == "another key":
        sso.signing_key = rsa_key()  # same kid: only the signature tells
    else:
        sso.id_token_changes = ID_TOKEN_CHANGES[fault]
    client = Client()
    page = refusal(client, sso_login(client, sso, person(groups=["gateway-admins"])))
    assert "could not be verified" in page
    assert not User.objects.exists()


def test_a_reused_code_is_refused(sso):
    """A callback replayed (the same code) fails: the browser's state is spent, and with a fresh state
    the issuer refuses the code it already exchanged."""
    first = Client()
    callback = sso_authorize(first, sso, person(groups=["gateway-admins"]))
    assert signed_in(first.get(callback.removeprefix("http://testserver")))
    first.post("/admin/logout/")
    assert "already used" in refusal(first, first.get(callback.removeprefix("http://testserver")))

    second = Client()
    fresh = parse_qs(urlsplit(sso_authorize(second, sso, person(groups=["gateway-admins"]))).query)
    old_code = parse_qs(urlsplit(callback).query)["code"][0]
    response = second.get("/oidc/callback/", {"code": old_code, "state": fresh["state"][0]})
    assert "could not be verified" in refusal(second, response)
    assert sso.token_errors == ["invalid_grant"]


def test_roles_are_set_again_at_each_login(sso, tenants):
    assert signed_in(sso_login(Client(), sso, person(groups=["gateway-admins", "acme-admins"])))
    user = User.objects.get()
    assert user.is_superuser and OrganizationMembership.objects.get(user=user).role == "admin"

    assert signed_in(sso_login(Client(), sso, person(groups=["acme-staff", "globex-admins"])))  # demoted
    user.refresh_from_db()
    assert user.is_staff and not user.is_superuser
    roles = dict(OrganizationMembership.objects.filter(user=user).values_list("organization__name", "role"))
    assert roles == {"Acme": "viewer", "Globex": "admin"}

    client = Client()
    assert "No role in this gateway any more" in refusal(client, sso_login(client, sso, person(groups=[])))
    user.refresh_from_db()
    assert not user.is_staff and not user.is_superuser
    assert not OrganizationMembership.objects.filter(user=user).exists()


def test_password_login_off_shows_only_sso_and_refuses_passwords(sso, settings):
    User.objects.create_superuser("root", "root@example.com", "a-long-password")
    credentials = {"username": "root", "password": "a-long-password", "next": "/admin/"}
    assert Client().post("/admin/login/", credentials).status_code == 302  # on: the password works

    settings.GATEWAY_ADMIN_PASSWORD_LOGIN = False
    settings.AUTHENTICATION_BACKENDS = [SSO_BACKEND]  # as settings.py lists them then
    client = Client()
    page = client.get("/admin/login/").content.decode()
    assert "Sign in with Keycloak" in page
    assert 'id="login-form"' not in page and 'name="password"' not in page
    response = client.post("/admin/login/", credentials)
    assert response.status_code == 200 and "Password sign-in is turned off" in response.content.decode()
    assert client.get("/admin/").status_code == 302
    assert signed_in(sso_login(client, sso, person(groups=["gateway-admins"])))


def test_the_flow_through_the_real_server(sso, gateway, settings):
    """The same sign-in through uvicorn and the ASGI entry point (gateway_project.asgi), a browser's
    cookies carrying the session from /oidc/authenticate/ to the callback."""
    settings.SESSION_COOKIE_SECURE = False  # plain http on loopback: no client sends a Secure cookie over it
    callback = gateway.url + "/oidc/callback/"
    sso.redirect_uris.append(callback)
    sso.sign_in_as(person(groups=["acme-admins"]))
    with httpx.Client(base_url=gateway.url, timeout=10) as browser:
        login = browser.get("/admin/login/", params={"next": "/admin/teams/team/"})
        start = browser.get(html.unescape(re.search(r'href="(/oidc/authenticate/[^"]*)"', login.text).group(1)))
        assert start.status_code == 302
        back = httpx.get(start.headers["Location"], timeout=10)  # the issuer signs the person in
        assert back.status_code == 302 and back.headers["Location"].startswith(callback + "?")
        done = browser.get(back.headers["Location"])
        assert done.status_code == 302 and done.headers["Location"] == "/admin/teams/team/"
        assert "acme-team" in browser.get("/admin/teams/team/").text


def test_an_unreachable_issuer_is_said_on_the_login_page(sso, settings):
    with free_socket() as sock:  # a port nobody listens on
        settings.GATEWAY_SSO_ISSUER = f"http://127.0.0.1:{sock.getsockname()[1]}/realms/gateway"
    client = Client()
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 302 and response["Location"] == "/admin/login/"
    assert "cannot be reached" in client.get("/admin/login/").content.decode()


def test_without_sso_the_login_page_is_unchanged_and_oidc_answers_404():
    page = Client().get("/admin/login/").content.decode()
    assert 'id="login-form"' in page and "Sign in with" not in page
    assert Client().get("/oidc/authenticate/").status_code == 404
    assert Client().get("/oidc/callback/", {"code": "x", "state": "y"}).status_code == 404
    assert not "/oidc/callback/".startswith(DATA_PLANE_PREFIXES)  # the control plane: sessions, CSRF


def _settings_of(env: dict) -> subprocess.CompletedProcess:
    names = ("AUTHENTICATION_BACKENDS", "GATEWAY_SSO_ISSUER", "OIDC_RP_CLIENT_ID", "GATEWAY_SSO_ROLES")
    return subprocess.run(
        [sys.executable, "-c", "import json, django; django.setup(); from django.conf import settings as s; "
         f"print(json.dumps({{n: getattr(s, n) for n in {names!r}}}))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_SSO_")},
             "GATEWAY_ENV_FILE": os.devnull, "DJANGO_SETTINGS_MODULE": "gateway_project.settings",
             "SECRET_KEY": "x", "GATEWAY_ENCRYPTION_KEY": "y", "ALLOWED_HOSTS": "gw.example.com", **env},
    )


def test_settings_read_sso_from_the_environment_without_contacting_the_issuer():
    env = {"GATEWAY_SSO_ISSUER": "https://127.0.0.1:9/realms/gateway/", "GATEWAY_SSO_CLIENT_ID": CLIENT_ID,
           "GATEWAY_SSO_CLIENT_SECRET": CLIENT_SECRET, "GATEWAY_ADMIN_PASSWORD_LOGIN": "false",
           "GATEWAY_SSO_ROLES": json.dumps({"proxy_admin": ["admins"]})}
    result = _settings_of(env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "AUTHENTICATION_BACKENDS": [SSO_BACKEND], "GATEWAY_SSO_ISSUER": "https://127.0.0.1:9/realms/gateway",
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "GATEWAY_SSO_ROLES": {"claim": "groups", "proxy_admin": ["admins"], "org_admin": {}, "viewer": {}},
    }
    refused = _settings_of({**env, "GATEWAY_SSO_ROLES": '{"org_admin": ["not-a-mapping"]}'})
    assert refused.returncode != 0 and "GATEWAY_SSO_ROLES must be" in refused.stderr
