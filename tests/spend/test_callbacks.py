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
        self.app.router.add_post("/log", self.log)
        self.app.router.add_post("/api/public/ingestion", self.ingestion)

    async def log(self, request: web.Request) -> web.Response:
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500)
        self.posts.append({"headers": dict(request.headers), "body": orjson.loads(await request.read())})
        return web.json_response({"ok": True})

    async def ingestion(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(b"pk-lf-test:sk-lf-test").decode()
        if request.headers.get("Authorization") != expected:
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
