"""Logging callbacks, as LiteLLM users configure them: where each request's record also goes.

config.yaml's `litellm_settings.callbacks` (every request), `success_callback` (successes) and
`failure_callback` (errors) name the destinations; GATEWAY_CALLBACKS (comma-separated) adds to
`callbacks` without a config file. Known names:

- `generic_api`: a JSON POST of a batch ({"records": [...]}) to GENERIC_LOGGER_ENDPOINT, with
  GENERIC_LOGGER_HEADERS ("Name: value, Name2: value2"), as LiteLLM names them;
- `s3`: one JSON-lines object per batch, PUT to the bucket of `litellm_settings.s3_callback_params`
  (s3_bucket_name, s3_region_name, s3_endpoint_url, s3_path, s3_aws_access_key_id,
  s3_aws_secret_access_key, each value or `os.environ/NAME`; else AWS's variables), SigV4-signed
  with botocore;
- `gcs`: one JSON-lines object per batch in GCS_BUCKET_NAME (under GCS_PATH), uploaded as the
  service account of GCS_PATH_SERVICE_ACCOUNT (google-auth);
- `langfuse`: Langfuse's public ingestion API (LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY,
  LANGFUSE_HOST), a trace and a generation per request;
- `otel`: the OpenTelemetry traces (apps.routing.tracing: on with OTEL_EXPORTER_OTLP_ENDPOINT);
  `prometheus`: /metrics, always on. Both accepted, nothing more to do here;
- a dotted path `package.module.Class`: your own; the class is made once with no argument and
  its `async def send(self, records: list[dict]) -> None` gets each batch (raise to have it retried).

Off the request path: settle puts the record on one bounded queue per destination (a full
queue drops it, counted); a task of each server process sends batches (up to 100, at least once
a second), retrying a failed batch 3 times with a backoff, then dropping it (counted in
gateway_callback_records_dropped_total). Prompts and answers are in a record only where the
key or team keeps prompts (the spend log's `messages` and `response`).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from django.conf import settings
from prometheus_client import Counter

from apps.core.metrics import REGISTRY
from apps.spend.callback_settings import (
    CALLBACK_VARS,
    URL_VARS,
    CallbackSpec,
    callback_address_allowed,
    callback_host_allowed,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
QUEUE_SIZE = 10_000
RETRIES = 3
SEND_TIMEOUT = 30.0
MAX_TENANT_DESTINATIONS = 10_000
TENANT_IDLE_SECONDS = 600.0

dropped_total = Counter("gateway_callback_records_dropped",
                        "Request records a logging callback lost: its queue was full, or its sends kept failing.",
                        ("callback", "reason"), registry=REGISTRY)
sent_total = Counter("gateway_callback_records_sent", "Request records a logging callback delivered.",
                     ("callback",), registry=REGISTRY)
BUILT_IN_ELSEWHERE = {"otel", "prometheus"}


def _value(value):
    """A config value, or `os.environ/NAME`'s."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        return os.environ.get(value.removeprefix("os.environ/")) or None
    return value


def record_payload(record) -> dict:
    """A spend record as a callback gets it (LiteLLM's standard logging payload's main fields)."""
    return {
        "id": record.request_id, "call_type": record.call_type, "status": record.status,
        "model": record.model, "model_group": record.model, "custom_llm_provider": record.provider,
        "upstream_model": record.upstream_model, "model_id": record.deployment_id,
        "prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
        "total_tokens": record.prompt_tokens + record.completion_tokens, "cached_tokens": record.cached_tokens,
        "response_cost": float(record.cost) if record.cost is not None else None, "cost_status": record.cost_status,
        "startTime": record.start_time.isoformat(), "endTime": record.end_time.isoformat(),
        "latency_ms": record.latency_ms, "stream": record.is_stream, "http_status": record.http_status,
        "error_type": record.error_type or None,
        "metadata": {
            "user_api_key_hash": record.key_hash, "user_api_key_id": record.key_id,
            "user_api_key_team_id": record.team_id, "user_api_key_org_id": record.organization_id,
            "user_api_key_user_id": record.user_id, "end_user": record.end_user or None,
            "requester_metadata": record.metadata,
        },
        "messages": record.messages, "response": record.response,
    }


# --- destinations -------------------------------------------------------------------------------


class GenericApiCallback:
    name = "generic_api"

    def __init__(self, session_factory, endpoint: str | None, headers: str | None) -> None:
        if not endpoint:
            raise ValueError("generic_api needs GENERIC_LOGGER_ENDPOINT")
        self.endpoint = endpoint
        self.headers = {"Content-Type": "application/json"}
        for pair in (headers or "").split(","):
            name, sep, value = pair.partition(":") if ":" in pair else pair.partition("=")
            if sep and name.strip():
                self.headers[name.strip()] = value.strip()
        self.session = session_factory

    async def send(self, records: list[dict]) -> None:
        async with self.session().post(self.endpoint, data=orjson.dumps({"records": records}),
                                       headers=self.headers, allow_redirects=False) as response:
            if response.status >= 300:
                raise RuntimeError(f"generic_api answered {response.status}")


class S3Callback:
    name = "s3"

    def __init__(self, session_factory, params: dict, *, environment: bool = True) -> None:
        """`environment`: AWS's variables fill in what `params` lacks (the gateway's own callback only)."""
        env = os.environ.get if environment else (lambda name: None)
        self.bucket = _value(params.get("s3_bucket_name"))
        if not self.bucket:
            raise ValueError("s3 needs litellm_settings.s3_callback_params.s3_bucket_name")
        self.region = _value(params.get("s3_region_name")) or env("AWS_REGION") or "us-east-1"
        self.endpoint = (_value(params.get("s3_endpoint_url")) or f"https://s3.{self.region}.amazonaws.com").rstrip("/")
        self.prefix = (_value(params.get("s3_path")) or "").strip("/")
        self.access_key = _value(params.get("s3_aws_access_key_id")) or env("AWS_ACCESS_KEY_ID")
        self.secret_key = _value(params.get("s3_aws_secret_access_key")) or env("AWS_SECRET_ACCESS_KEY")
        self.session = session_factory

    def object_key(self) -> str:
        now = datetime.now(timezone.utc)
        name = f"{now:%Y-%m-%d}/{now:%H%M%S}-{uuid.uuid4().hex}.jsonl"
        return f"{self.prefix}/{name}" if self.prefix else name

    async def send(self, records: list[dict]) -> None:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        body = b"".join(orjson.dumps(r) + b"\n" for r in records)
        url = f"{self.endpoint}/{self.bucket}/{self.object_key()}"
        request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": "application/x-ndjson"})
        S3SigV4Auth(Credentials(self.access_key or "", self.secret_key or ""), "s3", self.region).add_auth(request)
        async with self.session().put(url, data=body, headers=dict(request.headers.items()),
                                      allow_redirects=False) as response:
            if response.status >= 300:
                raise RuntimeError(f"s3 answered {response.status}: {(await response.text())[:200]}")


class GcsCallback:
    """Google Cloud Storage: one JSON-lines object per batch, uploaded with the JSON API, as a
    service account (GCS_PATH_SERVICE_ACCOUNT: its key file; GCS_BUCKET_NAME; GCS_PATH: a folder)."""

    name = "gcs"

    def __init__(self, session_factory, bucket: str | None, key_file: str | None, prefix: str | None) -> None:
        from apps.providers.adapters.vertex import VertexCredentials

        self.bucket = bucket
        if not self.bucket or not key_file:
            raise ValueError("gcs needs GCS_BUCKET_NAME and GCS_PATH_SERVICE_ACCOUNT")
        self.credentials = VertexCredentials(key_file)  # a token for the service account, refreshed near expiry
        # GCS_API_BASE: an emulator's (fake-gcs-server) instead of Google's.
        self.api_base = (os.environ.get("GCS_API_BASE") or "https://storage.googleapis.com").rstrip("/")
        self.prefix = (prefix or "").strip("/")
        self.session = session_factory

    async def send(self, records: list[dict]) -> None:
        from urllib.parse import quote

        now = datetime.now(timezone.utc)
        name = f"{now:%Y-%m-%d}/{now:%H%M%S}-{uuid.uuid4().hex}.jsonl"
        name = f"{self.prefix}/{name}" if self.prefix else name
        url = (f"{self.api_base}/upload/storage/v1/b/{quote(self.bucket, safe='')}/o"
               f"?uploadType=media&name={quote(name, safe='')}")
        body = b"".join(orjson.dumps(r) + b"\n" for r in records)
        headers = {"Authorization": f"Bearer {await self.credentials.token()}", "Content-Type": "application/x-ndjson"}
        async with self.session().post(url, data=body, headers=headers, allow_redirects=False) as response:
            if response.status >= 300:
                raise RuntimeError(f"gcs answered {response.status}: {(await response.text())[:200]}")


class LangfuseCallback:
    name = "langfuse"

    def __init__(self, session_factory, public: str | None, secret: str | None, host: str | None) -> None:
        if not public or not secret:
            raise ValueError("langfuse needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
        self.url = (host or "https://cloud.langfuse.com").rstrip("/") + "/api/public/ingestion"
        credentials = base64.b64encode(f"{public}:{secret}".encode()).decode()
        self.headers = {"Authorization": f"Basic {credentials}", "Content-Type": "application/json"}
        self.session = session_factory

    @staticmethod
    def events(record: dict) -> list[dict]:
        now = datetime.now(timezone.utc).isoformat()
        trace_id = record["id"]
        generation = {
            "id": f"{trace_id}-generation", "traceId": trace_id, "name": record["call_type"],
            "model": record["upstream_model"] or record["model"], "startTime": record["startTime"],
            "endTime": record["endTime"], "level": "DEFAULT" if record["status"] == "success" else "ERROR",
            "statusMessage": record["error_type"],
            "usage": {"input": record["prompt_tokens"], "output": record["completion_tokens"], "unit": "TOKENS"},
            "metadata": {"model_group": record["model_group"], "cost_status": record["cost_status"],
                         "deployment": record["model_id"]},
        }
        if record["response_cost"] is not None:
            generation["usage"]["totalCost"] = record["response_cost"]
        if record["messages"] is not None:
            generation["input"] = record["messages"]
        if record["response"] is not None:
            generation["output"] = record["response"]
        trace = {"id": trace_id, "name": record["call_type"], "timestamp": record["startTime"],
                 "userId": record["metadata"]["end_user"], "metadata": {"team_id": record["metadata"]["user_api_key_team_id"]}}
        return [{"id": uuid.uuid4().hex, "timestamp": now, "type": "trace-create", "body": trace},
                {"id": uuid.uuid4().hex, "timestamp": now, "type": "generation-create", "body": generation}]

    async def send(self, records: list[dict]) -> None:
        batch = [event for record in records for event in self.events(record)]
        async with self.session().post(self.url, data=orjson.dumps({"batch": batch}), headers=self.headers,
                                       allow_redirects=False) as response:
            if response.status >= 300:
                raise RuntimeError(f"langfuse answered {response.status}")
            answer = await response.json(content_type=None)
            errors = (answer or {}).get("errors") or []
            # 207: some events refused; retrying the same events would refuse them again.
            for error in errors[:3]:
                logger.warning("langfuse refused an event: %s", str(error)[:300])


class _Destination:
    __slots__ = ("callback", "queue", "only", "spec", "last_used", "sending")

    def __init__(self, callback, only: str | None, spec: CallbackSpec | None = None) -> None:
        self.callback = callback  # a team's or key's own: made at its first send (off the request path)
        self.queue: deque[dict] = deque()
        self.only = only  # "success", "failure" or None (every request)
        self.spec = spec
        self.last_used = time.monotonic()
        self.sending: asyncio.Task | None = None  # its drain: each destination sends on its own

    @property
    def label(self) -> str:
        """The metrics' label: the callback's name (a team's or key's own: `team/langfuse`, no id)."""
        if self.spec is not None:
            return f"{self.spec.owner.partition(':')[0]}/{self.spec.name}"
        return self.callback.name


class _PublicOnlyResolver(AbstractResolver):
    """Name resolution for a tenant's callbacks: only addresses the internet reaches (or
    GATEWAY_CALLBACK_ALLOWED_HOSTS lists), checked at each connection, so a name that later
    resolves to the gateway's own network (DNS rebinding) gets nowhere."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):
        addresses = [a for a in await self._resolver.resolve(host, port, family)
                     if callback_address_allowed(a["host"], host)]
        if not addresses:
            raise OSError(f"{host} resolves to no address a team's or key's callback may reach")
        return addresses

    async def close(self) -> None:
        await self._resolver.close()


def tenant_callback_make(spec: CallbackSpec, session_factory):
    """The callback of a team's or key's entry. Only the proxy admin's may read the environment or
    reach the gateway's network (refused at the write; checked again here)."""
    values = dict(spec.vars)
    if not spec.trusted:
        for var, value in values.items():
            if value.startswith("os.environ/"):
                raise ValueError(f"{var} reads the environment")
            if var in URL_VARS and not callback_host_allowed(urlsplit(value).hostname or ""):
                raise ValueError(f"{var} names a host on the gateway's own network")
    else:
        values = {var: _value(value) for var, value in values.items()}
    if spec.name == "langfuse":
        callback = LangfuseCallback(session_factory, values.get("langfuse_public_key"),
                                    values.get("langfuse_secret_key") or values.get("langfuse_secret"),
                                    values.get("langfuse_host"))
        url = callback.url
    elif spec.name == "generic_api":
        callback = GenericApiCallback(session_factory, values.get("generic_logger_endpoint"),
                                      values.get("generic_logger_headers"))
        url = callback.endpoint
    elif spec.name == "s3":
        callback = S3Callback(session_factory, values, environment=False)
        url = f"{callback.endpoint}/{callback.bucket}/"
    elif spec.name == "gcs_bucket" and spec.trusted:
        return GcsCallback(session_factory, values.get("gcs_bucket_name"), values.get("gcs_path_service_account"),
                           values.get("gcs_path"))
    else:
        raise ValueError(f"unknown callback {spec.name!r}")
    # The URL it will send to, as built: its host must be one a tenant may reach.
    if not spec.trusted and not callback_host_allowed(urlsplit(url).hostname or ""):
        raise ValueError("its URL names a host on the gateway's own network")
    return callback


def _team_default_specs(items) -> dict[str, tuple[CallbackSpec, ...]]:
    """litellm_settings.default_team_settings: per team id, its callbacks and their settings (the
    operator's config: its values may read the environment)."""
    specs: dict[str, list[CallbackSpec]] = {}
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or not item.get("team_id"):
            continue
        team_id = str(item["team_id"])
        for key, only in (("callbacks", None), ("success_callback", "success"), ("failure_callback", "failure")):
            names = item.get(key) or []
            for name in [names] if isinstance(names, str) else names:
                if name not in CALLBACK_VARS:
                    if name not in BUILT_IN_ELSEWHERE:
                        logger.warning("default_team_settings of team %s: callback %r is not one a team may "
                                       "have (%s)", team_id, name, ", ".join(sorted(CALLBACK_VARS)))
                    continue
                variables = {var: str(item[var]) for var in CALLBACK_VARS[name] if item.get(var)}
                specs.setdefault(team_id, []).append(CallbackSpec(
                    owner=f"team:{team_id}", name=name, only=only,
                    vars=tuple(sorted(variables.items())), trusted=True))
    return {team_id: tuple(team_specs) for team_id, team_specs in specs.items()}


class LoggingCallbacks:
    def __init__(self) -> None:
        self.destinations: list[_Destination] = []
        # A team's or key's own callbacks (their entries, and config.yaml's default_team_settings),
        # by entry: a changed entry is another destination; an idle one is dropped after a while.
        self.tenant_destinations: dict[CallbackSpec, _Destination] = {}
        self.team_defaults: dict[str, tuple[CallbackSpec, ...]] = {}
        self._task: asyncio.Task | None = None
        self._sessions: dict[bool, tuple[aiohttp.ClientSession, object]] = {}

    @property
    def on(self) -> bool:
        return bool(self.destinations)

    def wanted(self, context) -> bool:
        """Does a request of this key's have anywhere to go? (Cheap: checked per request.)"""
        return bool(self.destinations or context.logging_callbacks or self.team_defaults)

    def _session_get(self, *, public_only: bool = False) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session, session_loop = self._sessions.get(public_only, (None, None))
        if session is None or session.closed or session_loop is not loop:
            # One per event loop (a test may run servers one after another).
            connector = aiohttp.TCPConnector(resolver=_PublicOnlyResolver()) if public_only else None
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT), connector=connector)
            self._sessions[public_only] = (session, loop)
        return session

    def _public_session_get(self) -> aiohttp.ClientSession:
        return self._session_get(public_only=True)

    def _make(self, name: str, litellm_settings: dict):
        if name == "generic_api":
            return GenericApiCallback(self._session_get, os.environ.get("GENERIC_LOGGER_ENDPOINT"),
                                      os.environ.get("GENERIC_LOGGER_HEADERS"))
        if name == "s3":
            return S3Callback(self._session_get, litellm_settings.get("s3_callback_params") or {})
        if name == "langfuse":
            return LangfuseCallback(self._session_get, os.environ.get("LANGFUSE_PUBLIC_KEY"),
                                    os.environ.get("LANGFUSE_SECRET_KEY"), os.environ.get("LANGFUSE_HOST"))
        if name in ("gcs", "gcs_bucket"):
            return GcsCallback(self._session_get, os.environ.get("GCS_BUCKET_NAME"),
                               os.environ.get("GCS_PATH_SERVICE_ACCOUNT"), os.environ.get("GCS_PATH"))
        if "." in name:
            module, _, attribute = name.rpartition(".")
            instance = getattr(importlib.import_module(module), attribute)()
            if not callable(getattr(instance, "send", None)):
                raise ValueError(f"{name} has no send(records) method")
            instance.name = getattr(instance, "name", name)
            return instance
        raise ValueError(f"unknown callback {name!r}")

    def configure(self, litellm_settings: dict) -> None:
        self.destinations = []
        self.tenant_destinations = {}
        self.team_defaults = _team_default_specs(litellm_settings.get("default_team_settings"))
        names = [("callbacks", None), ("success_callback", "success"), ("failure_callback", "failure")]
        extra = [n.strip() for n in (settings.GATEWAY_CALLBACKS or "").split(",") if n.strip()]
        for key, only in names:
            listed = litellm_settings.get(key) or []
            if isinstance(listed, str):
                listed = [listed]
            for name in [*listed, *(extra if key == "callbacks" else [])]:
                if not isinstance(name, str) or name in BUILT_IN_ELSEWHERE:
                    continue
                try:
                    self.destinations.append(_Destination(self._make(name, litellm_settings), only))
                except Exception:
                    logger.exception("logging callback %r not set up: its records are not sent", name)

    def add(self, record, specs: tuple[CallbackSpec, ...] = ()) -> None:
        """A settled request's record (the spend record): queued for each destination that takes it:
        the gateway's, and the callbacks of the request's own key and team (`specs`, from its context)."""
        payload = None
        failed = record.status != "success"
        defaults = self.team_defaults.get(record.team_id, ()) if self.team_defaults and record.team_id else ()
        tenant = [self._tenant_destination(spec) for spec in (*specs, *defaults)] if specs or defaults else ()
        for destination in (*self.destinations, *tenant):
            if destination is None:
                continue
            if destination.only == "success" and failed or destination.only == "failure" and not failed:
                continue
            if len(destination.queue) >= QUEUE_SIZE:
                dropped_total.labels(destination.label, "queue_full").inc()
                continue
            if payload is None:
                payload = record_payload(record)
            destination.queue.append(payload)

    def _tenant_destination(self, spec: CallbackSpec) -> _Destination | None:
        destination = self.tenant_destinations.get(spec)
        if destination is None:
            if len(self.tenant_destinations) >= MAX_TENANT_DESTINATIONS:
                self._prune(idle_for=0.0)
                if len(self.tenant_destinations) >= MAX_TENANT_DESTINATIONS:
                    dropped_total.labels(f"{spec.owner.partition(':')[0]}/{spec.name}", "too_many").inc()
                    return None
            destination = self.tenant_destinations[spec] = _Destination(None, spec.only, spec)
        destination.last_used = time.monotonic()
        return destination

    def _prune(self, *, idle_for: float) -> None:
        """Forget the team and key destinations with nothing queued, unused for `idle_for` seconds."""
        now = time.monotonic()
        for spec, destination in list(self.tenant_destinations.items()):
            sending = destination.sending is not None and not destination.sending.done()
            if not destination.queue and not sending and now - destination.last_used >= idle_for:
                del self.tenant_destinations[spec]

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="logging-callbacks")

    async def _run(self) -> None:
        """Each destination drains in a task of its own, so a slow or dead one (a tenant's host that
        never answers) holds back only its own records."""
        try:
            while True:
                await asyncio.sleep(settings.GATEWAY_CALLBACK_FLUSH_INTERVAL)
                for destination in (*self.destinations, *self.tenant_destinations.values()):
                    if destination.queue and (destination.sending is None or destination.sending.done()):
                        destination.sending = asyncio.get_running_loop().create_task(self._drain(destination))
                self._prune(idle_for=TENANT_IDLE_SECONDS)
        finally:
            for destination in (*self.destinations, *self.tenant_destinations.values()):
                if destination.sending is not None and not destination.sending.done():
                    destination.sending.cancel()

    async def flush(self) -> None:
        destinations = (*self.destinations, *self.tenant_destinations.values())
        running = [d.sending for d in destinations if d.sending is not None and not d.sending.done()]
        await asyncio.gather(*running, return_exceptions=True)
        await asyncio.gather(*(self._drain(d) for d in destinations))

    async def _drain(self, destination: _Destination) -> None:
        name = destination.label
        if destination.callback is None and destination.queue:
            try:
                destination.callback = tenant_callback_make(destination.spec, self._session_get
                                                            if destination.spec.trusted else self._public_session_get)
            except Exception as exc:
                # Refused when it was set, so only an entry written around the API gets here.
                logger.warning("logging callback %s of %s not set up (%s): %d records dropped", name,
                               destination.spec.owner, exc, len(destination.queue))
                dropped_total.labels(name, "not_set_up").inc(len(destination.queue))
                destination.queue.clear()
                return
        while destination.queue:
            batch = [destination.queue.popleft() for _ in range(min(BATCH_SIZE, len(destination.queue)))]
            for attempt in range(RETRIES + 1):
                try:
                    await destination.callback.send(batch)
                    sent_total.labels(name).inc(len(batch))
                    break
                except asyncio.CancelledError:
                    destination.queue.extendleft(reversed(batch))
                    raise
                except Exception:
                    if attempt == RETRIES:
                        logger.warning("logging callback %s: a batch of %d records dropped after %d tries",
                                       name, len(batch), RETRIES + 1, exc_info=True)
                        dropped_total.labels(name, "send_failed").inc(len(batch))
                    else:
                        await asyncio.sleep(min(0.2 * 2 ** attempt, 5.0))

    async def stop(self) -> None:
        """Send what is queued (shutdown), then close."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await asyncio.wait_for(self.flush(), timeout=10)
        except Exception:
            logger.warning("logging callbacks: records still queued at shutdown were not all sent", exc_info=True)
        loop = asyncio.get_running_loop()
        for session, session_loop in self._sessions.values():
            if session_loop is loop:
                await session.close()
        self._sessions = {}


logging_callbacks = LoggingCallbacks()


def logging_callbacks_configure() -> None:
    """From GATEWAY_CONFIG's litellm_settings (and GATEWAY_CALLBACKS), at a server process's start."""
    litellm_settings: dict = {}
    if settings.GATEWAY_CONFIG:
        from apps.providers.config import ConfigError, config_read

        try:
            litellm_settings = config_read(settings.GATEWAY_CONFIG).litellm_settings
        except (ConfigError, OSError):
            logger.exception("GATEWAY_CONFIG could not be read for its callbacks")
    logging_callbacks.configure(litellm_settings)

