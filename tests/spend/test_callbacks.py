"""Logging callbacks as LiteLLM users configure them (litellm_settings.callbacks, success_callback,
failure_callback): generic_api, s3 (moto's real S3 server, started here), langfuse and a user's own
class get each request's record in the background; a destination that fails is retried, then
its records are dropped and counted, and no request waits for any of it."""

from __future__ import annotations

import base64
import socket

import openai
import orjson
import pytest
from aiohttp import web

from conftest import wait_for
from tests.fakes.server import FakeServer

RECEIVED: list[dict] = []  # what PluginLogger got


class PluginLogger:
    """A user's own callback, named by its dotted path."""

    async def send(self, records: list[dict]) -> None:
        RECEIVED.extend(records)


class Receiver(FakeServer):
    """A JSON endpoint: generic_api's, or Langfuse's ingestion API (Basic auth, 207 answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[dict] = []
        self.fail_next = 0  # answer this many posts with a 500 first
        self.langfuse_projects = {("pk-lf-test", "sk-lf-test")}  # the (public, secret) keys it takes
        self.app.router.add_post("/log", self.log)
        self.app.router.add_post("/api/public/ingestion", self.ingestion)

    async def log(self, request: web.Request) -> web.Response:
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500)
        self.posts.append({"headers": dict(request.headers), "body": orjson.loads(await request.read())})
        return web.json_response({"ok": True})

    async def ingestion(self, request: web.Request) -> web.Response:
        accepted = {"Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()
                    for public, secret in self.langfuse_projects}
        if request.headers.get("Authorization") not in accepted:
            return web.json_response({"message": "Invalid credentials"}, status=401)
        body = orjson.loads(await request.read())
        errors, successes = [], []
        for event in body["batch"]:
            valid = (event.get("type") in ("trace-create", "generation-create") and event.get("id")
                     and event.get("timestamp") and isinstance(event.get("body"), dict) and event["body"].get("id"))
            (successes if valid else errors).append({"id": event.get("id"), "status": 201 if valid else 400})
        self.posts.append({"headers": dict(request.headers), "body": body})
        return web.json_response({"successes": successes, "errors": errors}, status=207)

    def records(self) -> list[dict]:
        return [record for post in self.posts for record in post["body"].get("records", [])]


@pytest.fixture(scope="module")
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def callbacks_on(receiver, settings, monkeypatch, tmp_path):
    """Configure callbacks before the gateway starts: `use(config_yaml_text)`."""
    receiver.posts.clear()
    receiver.fail_next = 0
    receiver.langfuse_projects = {("pk-lf-test", "sk-lf-test")}
    settings.GATEWAY_CALLBACK_FLUSH_INTERVAL = 0.05
    monkeypatch.setenv("GENERIC_LOGGER_ENDPOINT", receiver.url + "/log")
    monkeypatch.setenv("GENERIC_LOGGER_HEADERS", "Authorization: Bearer log-token, X-Team: core")

    def use(litellm_settings: str) -> None:
        config = tmp_path / "config.yaml"
        config.write_text("litellm_settings:\n" + litellm_settings)
        settings.GATEWAY_CONFIG = str(config)

    return use


def dropped(callback: str, reason: str) -> float:
    from apps.core.metrics import REGISTRY

    return REGISTRY.get_sample_value("gateway_callback_records_dropped_total",
                                     {"callback": callback, "reason": reason}) or 0.0


@pytest.fixture
def configured_gateway(transactional_db, fake_openai):
    """A gateway started after the test set its callbacks (the fixture `gateway` starts too early)."""
    from apps.core import invalidation
    from tests.fakes.gateway import GatewayServer

    servers = []

    def start():
        invalidation.apply_everything()
        servers.append(GatewayServer().start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def client_for(gateway, key=None):
    from conftest import MASTER_KEY

    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key or MASTER_KEY, max_retries=0)


def test_generic_api_gets_every_request_with_its_facts_and_no_content(callbacks_on, configured_gateway,
                                                                      make_deployment, receiver):
    callbacks_on("  callbacks: [generic_api]\n")
    make_deployment("logged", upstream_model="gpt-test")
    make_deployment("logged-broken", upstream_model="error-503")
    gateway = configured_gateway()
    client = client_for(gateway)
    client.chat.completions.create(model="logged", messages=[{"role": "user", "content": "a private question"}])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="logged-broken", messages=[{"role": "user", "content": "hi"}])
    records = wait_for(lambda: len(receiver.records()) >= 2 and receiver.records())
    ok, failed = sorted(records, key=lambda r: r["status"] != "success")
    assert (ok["model"], ok["status"], ok["prompt_tokens"], ok["completion_tokens"]) == ("logged", "success", 11, 7)
    assert ok["response_cost"] > 0 and ok["custom_llm_provider"] == "openai"
    assert (failed["status"], failed["http_status"]) == ("error", 503)
    assert ok["messages"] is None and "private question" not in orjson.dumps(records).decode()
    headers = receiver.posts[0]["headers"]
    assert headers["Authorization"] == "Bearer log-token" and headers["X-Team"] == "core"


def test_success_and_failure_callbacks_get_only_theirs(callbacks_on, configured_gateway, make_deployment, receiver):
    callbacks_on("  failure_callback: [generic_api]\n")
    make_deployment("only-ok", upstream_model="gpt-test")
    make_deployment("only-broken", upstream_model="error-503")
    client = client_for(configured_gateway())
    client.chat.completions.create(model="only-ok", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="only-broken", messages=[{"role": "user", "content": "hi"}])
    assert wait_for(lambda: receiver.records())
    import time

    time.sleep(0.3)  # several flushes: a success would have been sent by now
    assert [r["model"] for r in receiver.records()] == ["only-broken"]


def test_a_failing_destination_is_retried_then_its_records_are_dropped_and_counted(callbacks_on, configured_gateway,
                                                                                    make_deployment, receiver,
                                                                                    monkeypatch):
    callbacks_on("  callbacks: [generic_api]\n")
    make_deployment("flaky-log", upstream_model="gpt-test")
    receiver.fail_next = 2  # the first two tries fail, the third gets through
    first = configured_gateway()
    client_for(first).chat.completions.create(model="flaky-log", messages=[{"role": "user", "content": "hi"}])
    assert wait_for(lambda: len(receiver.records()) == 1, timeout=10)
    first.stop()

    monkeypatch.setenv("GENERIC_LOGGER_ENDPOINT", "http://127.0.0.1:9/log")  # nothing listens there
    before = dropped("generic_api", "send_failed")
    client2 = client_for(configured_gateway())
    for _ in range(3):  # the requests themselves never wait for the callback
        client2.chat.completions.create(model="flaky-log", messages=[{"role": "user", "content": "hi"}])
    assert wait_for(lambda: dropped("generic_api", "send_failed") - before >= 3, timeout=15)


@pytest.fixture(scope="module")
def moto_s3():
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_s3_gets_batches_of_json_lines_in_the_bucket(callbacks_on, configured_gateway, make_deployment, moto_s3,
                                                    monkeypatch):
    import botocore.session

    monkeypatch.setenv("S3_LOG_SECRET", "testing-secret")
    s3 = botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=moto_s3, aws_access_key_id="testing",
        aws_secret_access_key="testing-secret")
    s3.create_bucket(Bucket="gateway-logs")
    callbacks_on(
        "  success_callback: [s3]\n"
        "  s3_callback_params:\n"
        "    s3_bucket_name: gateway-logs\n"
        "    s3_region_name: us-east-1\n"
        f"    s3_endpoint_url: {moto_s3}\n"
        "    s3_path: llm/requests\n"
        "    s3_aws_access_key_id: testing\n"
        "    s3_aws_secret_access_key: os.environ/S3_LOG_SECRET\n"
    )
    make_deployment("to-s3", upstream_model="gpt-test")
    client = client_for(configured_gateway())
    for _ in range(3):
        client.chat.completions.create(model="to-s3", messages=[{"role": "user", "content": "hi"}])

    def lines():
        listed = s3.list_objects_v2(Bucket="gateway-logs", Prefix="llm/requests/").get("Contents") or []
        found = []
        for item in listed:
            body = s3.get_object(Bucket="gateway-logs", Key=item["Key"])["Body"].read()
            found += [orjson.loads(line) for line in body.splitlines()]
        return found

    records = wait_for(lambda: len(lines()) >= 3 and lines(), timeout=10)
    assert len(records) == 3 and {r["model"] for r in records} == {"to-s3"}


def test_langfuse_gets_a_trace_and_a_generation_per_request(callbacks_on, configured_gateway, make_deployment,
                                                            receiver, monkeypatch, make_key):
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-test")
    monkeypatch.setenv("LANGFUSE_HOST", receiver.url)
    callbacks_on("  callbacks: [langfuse]\n")
    make_deployment("to-langfuse", upstream_model="gpt-test")
    key, raw_key = make_key()
    key.store_prompts = True  # this key keeps prompts: they go to Langfuse too
    key.save()
    client_for(configured_gateway(), raw_key).chat.completions.create(
        model="to-langfuse", messages=[{"role": "user", "content": "the question"}])
    posts = wait_for(lambda: receiver.posts)
    events = posts[0]["body"]["batch"]
    assert [e["type"] for e in events] == ["trace-create", "generation-create"]
    generation = events[1]["body"]
    assert generation["traceId"] == events[0]["body"]["id"]
    assert generation["usage"]["input"] == 11 and generation["usage"]["output"] == 7
    assert generation["usage"]["totalCost"] > 0 and generation["model"] == "gpt-test"
    assert "the question" in orjson.dumps(generation["input"]).decode()


def test_a_users_own_class_gets_the_records(callbacks_on, configured_gateway, make_deployment):
    RECEIVED.clear()
    callbacks_on("  callbacks: [tests.spend.test_callbacks.PluginLogger, otel, prometheus]\n")
    make_deployment("to-plugin", upstream_model="gpt-test")
    client_for(configured_gateway()).chat.completions.create(model="to-plugin",
                                                              messages=[{"role": "user", "content": "hi"}])
    assert wait_for(lambda: [r["model"] for r in RECEIVED] == ["to-plugin"])


def test_a_config_with_callbacks_is_no_longer_reported_as_ignored():
    from apps.providers.config import config_parse

    config = config_parse("litellm_settings:\n  callbacks: [generic_api]\n  success_callback: [s3]\n"
                          "  s3_callback_params: {s3_bucket_name: b}\n")
    assert not [line for line in config.ignored if "callback" in line]


class FakeGcs(FakeServer):
    """The JSON API's media upload, for bearer tokens the fake Google token endpoint issued."""

    def __init__(self, issued_tokens: set) -> None:
        super().__init__()
        self.issued_tokens = issued_tokens
        self.objects: dict[str, bytes] = {}
        self.app.router.add_post("/upload/storage/v1/b/{bucket}/o", self.upload)

    async def upload(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.issued_tokens:
            return web.json_response({"error": {"code": 401, "message": "Invalid Credentials"}}, status=401)
        if request.query.get("uploadType") != "media" or not request.query.get("name"):
            return web.json_response({"error": {"code": 400, "message": "uploadType=media and name needed"}},
                                     status=400)
        name = f"{request.match_info['bucket']}/{request.query['name']}"
        self.objects[name] = await request.read()
        return web.json_response({"kind": "storage#object", "name": request.query["name"],
                                  "bucket": request.match_info["bucket"]})


def test_gcs_gets_json_lines_objects_as_the_service_account(callbacks_on, configured_gateway, make_deployment,
                                                            provider_fakes, monkeypatch, tmp_path):
    import json

    vertex = provider_fakes("vertex_ai")
    gcs = FakeGcs(vertex.server.issued_tokens).start()
    try:
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps(vertex.server.service_account_info()))
        monkeypatch.setenv("GCS_BUCKET_NAME", "gateway-logs")
        monkeypatch.setenv("GCS_PATH_SERVICE_ACCOUNT", str(key_file))
        monkeypatch.setenv("GCS_PATH", "llm")
        monkeypatch.setenv("GCS_API_BASE", gcs.url)
        callbacks_on("  callbacks: [gcs]\n")
        make_deployment("to-gcs", upstream_model="gpt-test")
        client_for(configured_gateway()).chat.completions.create(
            model="to-gcs", messages=[{"role": "user", "content": "hi"}])
        objects = wait_for(lambda: gcs.objects)
        [(name, body)] = objects.items()
        assert name.startswith("gateway-logs/llm/") and name.endswith(".jsonl")
        assert orjson.loads(body.splitlines()[0])["model"] == "to-gcs"
    finally:
        gcs.stop()


# --- a team's and a key's own callbacks ------------------------------------------------------------


def langfuse_entry(receiver, project: str) -> dict:
    return {"callback_name": "langfuse", "callback_type": "success_and_failure",
            "callback_vars": {"langfuse_public_key": f"pk-{project}", "langfuse_secret_key": f"sk-{project}",
                              "langfuse_host": receiver.url}}


def basic(project: str) -> str:
    return "Basic " + base64.b64encode(f"pk-{project}:sk-{project}".encode()).decode()


def test_each_team_gets_its_own_requests_in_its_own_langfuse_project(callbacks_on, configured_gateway,
                                                                      make_deployment, receiver, settings,
                                                                      make_key):
    from apps.teams.services import organization_create, team_create, team_logging_callback_set

    settings.GATEWAY_CALLBACK_ALLOWED_HOSTS = "127.0.0.1"  # the receiver stands for a public Langfuse
    receiver.langfuse_projects = {("pk-alpha", "sk-alpha"), ("pk-beta", "sk-beta")}
    callbacks_on("  callbacks: []\n")
    make_deployment("per-team", upstream_model="gpt-test")
    alpha = team_create(organization=organization_create(name="Alpha"), alias="alpha")
    beta = team_create(organization=organization_create(name="Beta"), alias="beta")
    team_logging_callback_set(team=alpha, entry={**langfuse_entry(receiver, "alpha"), "trusted": False})
    team_logging_callback_set(team=beta, entry={**langfuse_entry(receiver, "beta"), "trusted": False})
    _, alpha_key = make_key(team=alpha)
    _, beta_key = make_key(team=beta)
    _, loner_key = make_key()
    gateway = configured_gateway()
    for raw_key in (alpha_key, alpha_key, beta_key, loner_key):
        client_for(gateway, raw_key).chat.completions.create(model="per-team",
                                                             messages=[{"role": "user", "content": "hi"}])
    wait_for(lambda: sum(len(p["body"]["batch"]) for p in receiver.posts) >= 6)
    import time

    time.sleep(0.3)  # a few more flushes: anything sent where it should not be would be here
    traces = {}
    for post in receiver.posts:
        for event in post["body"]["batch"]:
            if event["type"] == "trace-create":
                traces.setdefault(post["headers"]["Authorization"], []).append(
                    event["body"]["metadata"]["team_id"])
    assert traces == {basic("alpha"): [str(alpha.pk)] * 2, basic("beta"): [str(beta.pk)]}


def test_a_keys_own_generic_api_gets_only_that_keys_requests(callbacks_on, configured_gateway, make_deployment,
                                                              receiver, settings, make_key):
    settings.GATEWAY_CALLBACK_ALLOWED_HOSTS = "127.0.0.1"
    callbacks_on("  callbacks: []\n")
    make_deployment("per-key", upstream_model="gpt-test")
    logged, logged_raw = make_key(logging_callbacks=[{
        "callback_name": "generic_api", "callback_type": "success",
        "callback_vars": {"generic_logger_endpoint": receiver.url + "/log",
                          "generic_logger_headers": "Authorization: Bearer key-own-token"}}])
    _, other_raw = make_key()
    gateway = configured_gateway()
    client_for(gateway, other_raw).chat.completions.create(model="per-key", messages=[{"role": "user", "content": "a"}])
    client_for(gateway, logged_raw).chat.completions.create(model="per-key", messages=[{"role": "user", "content": "b"}])
    records = wait_for(lambda: receiver.records())
    import time

    time.sleep(0.3)
    assert [r["metadata"]["user_api_key_hash"] for r in receiver.records()] == [logged.token_hash]
    assert receiver.posts[0]["headers"]["Authorization"] == "Bearer key-own-token"
    assert records[0]["messages"] is None  # the key keeps no prompts: none go to its callback either


def test_a_tenants_callback_aimed_at_the_gateways_network_sends_nothing(callbacks_on, configured_gateway,
                                                                        make_deployment, receiver, make_key):
    """Written around the API (refused there), the entry is still refused at its first send."""
    callbacks_on("  callbacks: []\n")
    make_deployment("sneaky", upstream_model="gpt-test")
    _, raw = make_key(logging_callbacks=[{
        "callback_name": "generic_api", "callback_type": "success",
        "callback_vars": {"generic_logger_endpoint": receiver.url + "/log"}}])
    before = dropped("key/generic_api", "not_set_up")
    client_for(configured_gateway(), raw).chat.completions.create(model="sneaky",
                                                                  messages=[{"role": "user", "content": "hi"}])
    assert wait_for(lambda: dropped("key/generic_api", "not_set_up") > before)
    assert receiver.posts == []


def test_a_dead_tenant_destination_holds_back_no_one_elses_records(callbacks_on, configured_gateway,
                                                                    make_deployment, receiver, settings, make_key):
    """A tenant's callback host that accepts and never answers: the gateway's own callback still
    gets every record at once (each destination drains on its own)."""
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(16)
    try:
        settings.GATEWAY_CALLBACK_ALLOWED_HOSTS = "127.0.0.1"
        callbacks_on("  callbacks: [generic_api]\n")
        make_deployment("crowded", upstream_model="gpt-test")
        _, stuck = make_key(logging_callbacks=[{
            "callback_name": "generic_api", "callback_type": "success",
            "callback_vars": {"generic_logger_endpoint": f"http://127.0.0.1:{black_hole.getsockname()[1]}/"}}])
        _, other = make_key()
        gateway = configured_gateway()
        client_for(gateway, stuck).chat.completions.create(model="crowded", messages=[{"role": "user", "content": "a"}])
        import time

        time.sleep(0.3)  # the stuck destination's send has started and hangs
        client_for(gateway, other).chat.completions.create(model="crowded", messages=[{"role": "user", "content": "b"}])
        assert wait_for(lambda: len(receiver.records()) >= 2, timeout=3)
    finally:
        black_hole.close()


def test_a_name_that_resolves_to_the_gateways_network_is_not_connected_to(settings):
    """A host name is checked again at each connection (a name may later resolve elsewhere)."""
    import asyncio

    from apps.spend.callbacks import _PublicOnlyResolver

    async def resolve():
        resolver = _PublicOnlyResolver()
        try:
            return await resolver.resolve("localhost", 80)
        finally:
            await resolver.close()

    with pytest.raises(OSError, match="no address"):
        asyncio.run(resolve())
    settings.GATEWAY_CALLBACK_ALLOWED_HOSTS = "localhost"
    assert asyncio.run(resolve())


def test_default_team_settings_send_a_teams_requests_to_its_langfuse(callbacks_on, configured_gateway,
                                                                      make_deployment, receiver, make_key,
                                                                      monkeypatch, team):
    monkeypatch.setenv("TEAM_LANGFUSE_SECRET", "sk-ops")
    receiver.langfuse_projects = {("pk-ops", "sk-ops")}
    callbacks_on(
        "  default_team_settings:\n"
        f"    - team_id: \"{team.pk}\"\n"
        "      success_callback: [langfuse]\n"
        "      langfuse_public_key: pk-ops\n"
        "      langfuse_secret: os.environ/TEAM_LANGFUSE_SECRET\n"
        f"      langfuse_host: {receiver.url}\n"
    )
    make_deployment("team-default", upstream_model="gpt-test")
    _, raw = make_key(team=team)
    _, outside = make_key()
    gateway = configured_gateway()
    client_for(gateway, outside).chat.completions.create(model="team-default", messages=[{"role": "user", "content": "a"}])
    client_for(gateway, raw).chat.completions.create(model="team-default", messages=[{"role": "user", "content": "b"}])
    posts = wait_for(lambda: receiver.posts)
    import time

    time.sleep(0.3)
    traces = [e["body"] for p in receiver.posts for e in p["body"]["batch"] if e["type"] == "trace-create"]
    assert [t["metadata"]["team_id"] for t in traces] == [str(team.pk)]
    assert posts[0]["headers"]["Authorization"] == basic("ops")
