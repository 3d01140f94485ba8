"""The admin's sign-in with OpenID Connect: mozilla-django-oidc's backend and views, with the
issuer's endpoints taken from its discovery document (apps.management.sso) on first use, the
ID token checked in full, and the gateway's role mapping (sso_user_sync).

Served under /oidc/ (gateway_project.urls): a control-plane path, so Django's session and CSRF
middleware run as the library expects; both views are GETs, and the session cookie (SameSite=Lax)
comes back on the identity provider's redirect. With no issuer configured, both answer 404.
"""

from __future__ import annotations

import logging
import re

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpResponseRedirect
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from apps.core.audit import audit_actor, request_audit_actor
from apps.management.sso import SsoRefused, SsoUnavailable, sso_enabled, sso_provider_get, sso_user_sync

logger = logging.getLogger(__name__)

NOT_VERIFIED = "Sign-in refused: the identity provider's answer could not be verified."


class SsoBackend(OIDCAuthenticationBackend):
    def __init__(self, *args, **kwargs):
        # Not the library's: it reads the endpoints, known only after discovery, and Django builds
        # this backend for every password sign-in and every signed-in request too.
        self.UserModel = get_user_model()

    get_user = ModelBackend.get_user  # a deactivated user's sessions end (the library's keeps them)

    def authenticate(self, request, **kwargs):
        # Only the callback view passes a nonce: a password form never reaches the issuer.
        if request is None or "nonce" not in kwargs or not sso_enabled():
            return None
        try:
            provider = sso_provider_get()
            self.OIDC_OP_TOKEN_ENDPOINT = provider.token_endpoint
            self.OIDC_OP_USER_ENDPOINT = provider.userinfo_endpoint
            self.OIDC_OP_JWKS_ENDPOINT = provider.jwks_uri
            self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
            self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
            self.OIDC_RP_SIGN_ALGO = "RS256"
            self.OIDC_RP_IDP_SIGN_KEY = None  # always the issuer's JWKS
            self.issuer = provider.issuer
            return super().authenticate(request, **kwargs)
        except (SsoRefused, SsoUnavailable) as exc:
            message = str(exc)
        except (SuspiciousOperation, requests.RequestException, jwt.PyJWTError, KeyError, ValueError) as exc:
            logger.warning("sso: sign-in refused: %s", exc)  # a wrong or reused code, a forged token...
            message = NOT_VERIFIED
        messages.error(request, message)
        return None

    def get_payload_data(self, token, key):
        # The library checks the signature only: the ID token must also be the issuer's, for this
        # client, and current.
        try:
            payload = jwt.decode(
                token, key, algorithms=[self.OIDC_RP_SIGN_ALGO], audience=self.OIDC_RP_CLIENT_ID,
                issuer=self.issuer, leeway=60, options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}") from exc
        several = isinstance(payload["aud"], list) and len(payload["aud"]) > 1
        if several and payload.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("ID token refused: issued to another party (azp).")
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        # The signed ID token's claims, plus what only the userinfo endpoint says (groups may be
        # there only; Entra's userinfo has none, its groups and roles are in the ID token).
        if not self.OIDC_OP_USER_ENDPOINT:
            return dict(payload)
        userinfo = super().get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload["sub"]:  # OpenID Connect Core 5.3.4
            logger.warning("sso: sign-in refused: the userinfo endpoint answered for another subject")
            raise SsoRefused(NOT_VERIFIED)  # not SuspiciousOperation: the library would drop the reason
        return {**userinfo, **payload}

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        actor = f"sso:{claims.get('email') or claims['sub']}"
        # The role changes are this sign-in's (the request is anonymous until it ends).
        with audit_actor(request_audit_actor(self.request, actor, "admin")):
            return sso_user_sync(claims=claims)


class SsoAuthenticateView(OIDCAuthenticationRequestView):
    """GET /oidc/authenticate/: to the issuer's authorization endpoint, with state, nonce and PKCE."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the library's reads the endpoint, known after discovery only

    def get(self, request):
        if not sso_enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            provider = sso_provider_get()
        except SsoUnavailable as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(settings.LOGIN_REDIRECT_URL_FAILURE)
        self.OIDC_OP_AUTH_ENDPOINT = provider.authorization_endpoint
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """GET /oidc/callback/: the issuer's redirect back; signs in, or says on the login page why not."""

    def get(self, request):
        if not sso_enabled():
            raise Http404("Single sign-on is not configured.")
        if request.GET.get("error"):
            code = re.sub(r"[^a-z_]", "", request.GET["error"])[:40]  # never the provider's free text
            messages.error(request, f"Your identity provider did not sign you in ({code}).")
        elif "code" in request.GET and request.GET.get("state") not in request.session.get("oidc_states", {}):
            # Not started in this browser, or already used: the library would answer 400.
            messages.error(request, "This sign-in was not started here or was already used; sign in again.")
            return self.login_failure()
        return super().get(request)


def sso_login_context(request) -> dict:
    """For templates/admin/login.html: the SSO button, and whether the password form is shown."""
    return {"gateway_sso": {"enabled": sso_enabled(), "name": settings.GATEWAY_SSO_NAME,
                            "password_login": settings.GATEWAY_ADMIN_PASSWORD_LOGIN}}
