"""A fake OpenID Connect issuer on loopback, strict like a real one (Keycloak's paths, under
/realms/gateway, so the issuer URL has a path as most do).

- Discovery: /realms/gateway/.well-known/openid-configuration (counted: `discovery_requests`).
- Authorization: checks response_type=code, the client, the registered redirect URI, the openid
  scope, a state, and S256 for PKCE; signs in whoever the test set (`sign_in_as(claims)`) and
  redirects back with a one-use code.
- Token: client_secret_post or Basic; the code must be this client's, unused (a reused code is
  invalid_grant and revokes what it gave), unexpired, for the same redirect_uri, and the PKCE
  verifier must match. Answers an RS256 ID token (kid in its header) and an access token.
- Userinfo: Bearer access token → the claims (those in `userinfo_only`, groups by default, are
  there and not in the ID token, as with a Keycloak mapper set to userinfo only).
- JWKS: the RSA public key, generated here.

Faults to order: `signing_key` (sign with another key under the same kid), `id_token_changes`
(claims set in the ID token last: a wrong nonce, aud, iss or exp).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.server import FakeServer

REALM = "/realms/gateway"
CODE_LIFETIME = 60.0


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _oauth_error(error: str, status: int = 400, description: str = "") -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


class FakeOidcIssuer(FakeServer):
    def __init__(self, *, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        super().__init__()
        self.issuer = self.url + REALM
        self.client_id, self.client_secret, self.redirect_uris = client_id, client_secret, redirect_uris
        self.key, self.kid = rsa_key(), "fake-key-1"
        self.lock = threading.Lock()
        self.claims: dict | None = None  # who signs in at the authorization endpoint
        self.userinfo_only = {"groups"}
        self.signing_key: rsa.RSAPrivateKey | None = None  # None: self.key
        self.id_token_changes: dict = {}
        self.discovery_requests = 0
        self.token_errors: list[str] = []  # the `error` of every refused token request
        self._codes: dict[str, dict] = {}
        self._used_codes: dict[str, list[str]] = {}  # code → access tokens it gave (revoked on reuse)
        self._access_tokens: dict[str, dict] = {}
        router = self.app.router
        router.add_get(REALM + "/.well-known/openid-configuration", self._discovery)
        router.add_get(REALM + "/protocol/openid-connect/auth", self._authorize)
        router.add_post(REALM + "/protocol/openid-connect/token", self._token)
        router.add_get(REALM + "/protocol/openid-connect/userinfo", self._userinfo)
        router.add_get(REALM + "/protocol/openid-connect/certs", self._jwks)

    @property
    def authorization_endpoint(self) -> str:
        return self.issuer + "/protocol/openid-connect/auth"

    def sign_in_as(self, claims: dict) -> None:
        self.claims = dict(claims)

    # --- the endpoints -------------------------------------------------------------------------

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_requests += 1
        base = self.issuer + "/protocol/openid-connect"
        return web.json_response({
            "issuer": self.issuer,
            "authorization_endpoint": base + "/auth",
            "token_endpoint": base + "/token",
            "userinfo_endpoint": base + "/userinfo",
            "jwks_uri": base + "/certs",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        })

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="Client not found.")
        if query.get("redirect_uri") not in self.redirect_uris:
            return web.Response(status=400, text="Invalid parameter: redirect_uri")
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return web.Response(status=400, text="Invalid response_type or scope")
        pkce_not_s256 = query.get("code_challenge") and query.get("code_challenge_method") != "S256"
        if not query.get("state") or pkce_not_s256:
            return web.Response(status=400, text="Missing state, or PKCE not S256")
        if self.claims is None:
            return web.Response(status=401, text="Nobody signs in (sign_in_as was not called).")
        code = secrets.token_urlsafe(24)
        with self.lock:
            self._codes[code] = {"redirect_uri": query["redirect_uri"], "nonce": query.get("nonce"),
                                 "challenge": query.get("code_challenge"), "claims": dict(self.claims),
                                 "expires": time.monotonic() + CODE_LIFETIME}
        location = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return web.Response(status=302, headers={"Location": location})

    def _token_error(self, error: str, description: str = "", status: int = 400) -> web.Response:
        self.token_errors.append(error)
        return _oauth_error(error, status, description)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if request.headers.get("Authorization", "").startswith("Basic "):
            decoded = base64.b64decode(request.headers["Authorization"][6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        if client_id != self.client_id or client_secret != self.client_secret:
            return self._token_error("invalid_client", "Invalid client credentials", 401)
        if form.get("grant_type") != "authorization_code":
            return self._token_error("unsupported_grant_type")
        code = form.get("code", "")
        with self.lock:
            if code in self._used_codes:
                for token in self._used_codes[code]:  # RFC 6749 4.1.2: revoke what the code gave
                    self._access_tokens.pop(token, None)
                return self._token_error("invalid_grant", "Code already used")
            grant = self._codes.pop(code, None)
            if grant is not None:
                self._used_codes[code] = []
        if grant is None or grant["expires"] < time.monotonic():
            return self._token_error("invalid_grant", "Code not valid")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return self._token_error("invalid_grant", "Incorrect redirect_uri")
        verifier = form.get("code_verifier")
        if grant["challenge"] is not None:
            digest = hashlib.sha256((verifier or "").encode()).digest()
            if not verifier or base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
                return self._token_error("invalid_grant", "PKCE verification failed")
        elif verifier:
            return self._token_error("invalid_grant", "PKCE verifier without a challenge")
        claims = grant["claims"]
        access_token = secrets.token_urlsafe(32)
        with self.lock:
            self._access_tokens[access_token] = claims
            self._used_codes[code].append(access_token)
        now = int(time.time())
        id_claims = {name: value for name, value in claims.items() if name not in self.userinfo_only}
        payload = {**id_claims, "iss": self.issuer, "aud": self.client_id, "azp": self.client_id,
                   "iat": now, "exp": now + 300, "auth_time": now, "nonce": grant["nonce"],
                   **self.id_token_changes}
        key = self.signing_key or self.key
        id_token = jwt.encode(payload, key, algorithm="RS256", headers={"kid": self.kid})
        return web.json_response({"access_token": access_token, "token_type": "Bearer", "expires_in": 300,
                                  "id_token": id_token, "scope": "openid email profile"})

    async def _userinfo(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        claims = self._access_tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if claims is None:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return web.json_response(claims)

    async def _jwks(self, request: web.Request) -> web.Response:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return web.json_response({"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]})
