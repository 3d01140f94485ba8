"""JWT auth: tokens verified against a JWKS endpoint (a fake on loopback), claims mapped to the
user, team and organization, whose limits then apply."""

import json
import time

import jwt
import openai
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.server import AiohttpThread

MESSAGES = [{"role": "user", "content": "hi"}]


class IdentityProvider:
    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        self.jwks = {"keys": [{**public, "kid": "key-1", "use": "sig", "alg": "RS256"}]}
        self.fetches = 0
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self.serve_jwks)
        self.server = AiohttpThread(app)

    async def serve_jwks(self, request):
        self.fetches += 1
        return web.json_response(self.jwks)

    def token(self, *, key=None, kid="key-1", audience="llm-gateway", expires_in=300, **claims) -> str:
        payload = {"iss": "https://idp.test", "aud": audience, "exp": int(time.time()) + expires_in, **claims}
        return jwt.encode(payload, key or self.private_key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def idp():
    provider = IdentityProvider()
    provider.server.start()
    yield provider
    provider.server.stop()


@pytest.fixture
def jwt_settings(settings, idp):
    settings.GATEWAY_JWT_JWKS_URL = idp.server.url + "/.well-known/jwks.json"
    settings.GATEWAY_JWT_AUDIENCE = "llm-gateway"
    settings.GATEWAY_JWT_ISSUER = "https://idp.test"
    from apps.keys import jwt_auth

    jwt_auth.signing_keys = jwt_auth.SigningKeys()
    return settings


def test_a_valid_token_runs_as_its_team(gateway, jwt_settings, idp, openai_client, make_deployment, team):
    from apps.spend.models import SpendLog
    from conftest import wait_for

    make_deployment("gpt-test")
    token = idp.token(sub="alice", team_id=str(team.pk), org_id=str(team.organization_id))
    assert openai_client(token).chat.completions.create(model="gpt-test", messages=MESSAGES).choices
    wait_for(lambda: SpendLog.objects.exists())
    log = SpendLog.objects.get()
    assert str(log.team_id) == str(team.pk) and str(log.organization_id) == str(team.organization_id)


def test_the_teams_limits_apply(gateway, jwt_settings, idp, openai_client, make_deployment, team):
    make_deployment("gpt-test")
    team.rpm_limit = 1
    team.models = ["gpt-test"]
    team.save()
    make_deployment("gpt-other")
    client = openai_client(idp.token(sub="bob", team_id=str(team.pk)))
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-other", messages=MESSAGES)
    client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)


@pytest.mark.parametrize(
    "token_args, code",
    [
        ({"expires_in": -120}, "token_expired"),
        ({"audience": "someone-else"}, "invalid_token"),
        ({"use_other_key": True}, "invalid_token"),
        ({"kid": "unknown-kid"}, "invalid_token"),
        ({"team_id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}, "invalid_token"),  # no such team
    ],
)
def test_bad_tokens_are_401(gateway, jwt_settings, idp, openai_client, make_deployment, token_args, code):
    make_deployment("gpt-test")
    if token_args.pop("use_other_key", False):
        token_args["key"] = idp.other_key
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(idp.token(sub="mallory", **token_args)).chat.completions.create(
            model="gpt-test", messages=MESSAGES
        )
    assert info.value.body["code"] == code


def test_signing_keys_are_cached(gateway, jwt_settings, idp, openai_client, make_deployment):
    make_deployment("gpt-test")
    before = idp.fetches
    for _ in range(5):
        openai_client(idp.token(sub="carol")).chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert idp.fetches - before == 1
