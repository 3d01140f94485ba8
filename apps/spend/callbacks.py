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
import uuid
from collections import deque
from datetime import datetime, timezone

import aiohttp
import orjson
from django.conf import settings
from prometheus_client import Counter

from apps.core.metrics import REGISTRY

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
QUEUE_SIZE = 10_000
RETRIES = 3
SEND_TIMEOUT = 30.0

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

    def __init__(self, session_factory) -> None:
        self.endpoint = os.environ.get("GENERIC_LOGGER_ENDPOINT")
        if not self.endpoint:
            raise ValueError("generic_api needs GENERIC_LOGGER_ENDPOINT")
        self.headers = {"Content-Type": "application/json"}
        for pair in (os.environ.get("GENERIC_LOGGER_HEADERS") or "").split(","):
            name, sep, value = pair.partition(":") if ":" in pair else pair.partition("=")
            if sep and name.strip():
                self.headers[name.strip()] = value.strip()
        self.session = session_factory

    async def send(self, records: list[dict]) -> None:
        async with self.session().post(self.endpoint, data=orjson.dumps({"records": records}),
                                       headers=self.headers) as response:
            if response.status >= 300:
                raise RuntimeError(f"generic_api answered {response.status}")


class S3Callback:
    name = "s3"

    def __init__(self, session_factory, params: dict) -> None:
        self.bucket = _value(params.get("s3_bucket_name"))
        if not self.bucket:
            raise ValueError("s3 needs litellm_settings.s3_callback_params.s3_bucket_name")
        self.region = _value(params.get("s3_region_name")) or os.environ.get("AWS_REGION") or "us-east-1"
        self.endpoint = (_value(params.get("s3_endpoint_url")) or f"https://s3.{self.region}.amazonaws.com").rstrip("/")
        self.prefix = (_value(params.get("s3_path")) or "").strip("/")
        self.access_key = _value(params.get("s3_aws_access_key_id")) or os.environ.get("AWS_ACCESS_KEY_ID")
        self.secret_key = _value(params.get("s3_aws_secret_access_key")) or os.environ.get("AWS_SECRET_ACCESS_KEY")
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
        async with self.session().put(url, data=body, headers=dict(request.headers.items())) as response:
            if response.status >= 300:
                raise RuntimeError(f"s3 answered {response.status}: {(await response.text())[:200]}")


class GcsCallback:
    """Google Cloud Storage: one JSON-lines object per batch, uploaded with the JSON API, as a
    service account (GCS_PATH_SERVICE_ACCOUNT: its key file; GCS_BUCKET_NAME; GCS_PATH: a folder)."""

    name = "gcs"

    def __init__(self, session_factory) -> None:
        from apps.providers.adapters.vertex import VertexCredentials

        self.bucket = os.environ.get("GCS_BUCKET_NAME")
        key_file = os.environ.get("GCS_PATH_SERVICE_ACCOUNT")
        if not self.bucket or not key_file:
            raise ValueError("gcs needs GCS_BUCKET_NAME and GCS_PATH_SERVICE_ACCOUNT")
        self.credentials = VertexCredentials(key_file)  # a token for the service account, refreshed near expiry
        # GCS_API_BASE: an emulator's (fake-gcs-server) instead of Google's.
        self.api_base = (os.environ.get("GCS_API_BASE") or "https://storage.googleapis.com").rstrip("/")
        self.prefix = (os.environ.get("GCS_PATH") or "").strip("/")
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
        async with self.session().post(url, data=body, headers=headers) as response:
            if response.status >= 300:
                raise RuntimeError(f"gcs answered {response.status}: {(await response.text())[:200]}")


class LangfuseCallback:
    name = "langfuse"

    def __init__(self, session_factory) -> None:
        public, secret = os.environ.get("LANGFUSE_PUBLIC_KEY"), os.environ.get("LANGFUSE_SECRET_KEY")
        if not public or not secret:
            raise ValueError("langfuse needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
        self.url = (os.environ.get("LANGFUSE_HOST") or "https://cloud.langfuse.com").rstrip("/") + "/api/public/ingestion"
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
        async with self.session().post(self.url, data=orjson.dumps({"batch": batch}), headers=self.headers) as response:
            if response.status >= 300:
                raise RuntimeError(f"langfuse answered {response.status}")
            answer = await response.json(content_type=None)
            errors = (answer or {}).get("errors") or []
            # 207: some events refused; retrying the same events would refuse them again.
            for error in errors[:3]:
                logger.warning("langfuse refused an event: %s", str(error)[:300])


class _Destination:
    __slots__ = ("callback", "queue", "only")

    def __init__(self, callback, only: str | None) -> None:
        self.callback = callback
        self.queue: deque[dict] = deque()
        self.only = only  # "success", "failure" or None (every request)


class LoggingCallbacks:
    def __init__(self) -> None:
        self.destinations: list[_Destination] = []
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self._session_loop = None

    @property
    def on(self) -> bool:
        return bool(self.destinations)

    def _session_get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT))
            self._session_loop = loop  # one per event loop (a test may run servers one after another)
        return self._session

    def _make(self, name: str, litellm_settings: dict):
        if name == "generic_api":
            return GenericApiCallback(self._session_get)
        if name == "s3":
            return S3Callback(self._session_get, litellm_settings.get("s3_callback_params") or {})
        if name == "langfuse":
            return LangfuseCallback(self._session_get)
        if name == "gcs":
            return GcsCallback(self._session_get)
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

    def add(self, record) -> None:
        """A settled request's record (the spend record): queued for each destination that takes it."""
        payload = None
        failed = record.status != "success"
        for destination in self.destinations:
            if destination.only == "success" and failed or destination.only == "failure" and not failed:
                continue
            if len(destination.queue) >= QUEUE_SIZE:
                dropped_total.labels(destination.callback.name, "queue_full").inc()
                continue
            if payload is None:
                payload = record_payload(record)
            destination.queue.append(payload)

    def start(self) -> None:
        if self.destinations and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="logging-callbacks")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(settings.GATEWAY_CALLBACK_FLUSH_INTERVAL)
            await self.flush()

    async def flush(self) -> None:
        await asyncio.gather(*(self._drain(d) for d in self.destinations))

    async def _drain(self, destination: _Destination) -> None:
        name = destination.callback.name
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
        if self._session is not None and self._session_loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None


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

