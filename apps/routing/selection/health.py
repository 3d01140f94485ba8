"""Health: the readiness probe, and each deployment's health (checked by a beat task,
listed by GET /health)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.db import connection

from apps.core.db import db_call
from apps.core.errors import GatewayError, authentication_failed, permission_denied
from apps.core.redis import redis_enabled, sync_redis
from apps.keys.auth import authenticate, raw_key_from_request
from apps.providers.adapters.base import Operation
from apps.providers.registry import Deployment, deployment_state_key
from apps.providers.transport import UpstreamTransport
from apps.routing.internal_calls import deployment_call_once
from apps.routing.selection.deployment_state import COOLDOWNS_ONLY, deployment_state
from apps.routing.selectors import deployment_health_list, key_is_proxy_admin, user_from_session


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def readiness_report() -> dict:
    report = {"status": "connected", "db": "connected", "cache": "in-process"}
    try:
        await asyncio.wait_for(db_call(_database_ping), timeout=5)
    except Exception as exc:  # a readiness probe reports, it does not raise
        report["db"] = f"Not connected: {type(exc).__name__}"
        report["status"] = "unhealthy"
    if redis_enabled():
        try:
            await asyncio.wait_for(asyncio.to_thread(sync_redis().ping), timeout=5)
            report["cache"] = "redis"
        except Exception as exc:
            report["cache"] = f"redis not connected: {type(exc).__name__}"
            report["status"] = "unhealthy"
    return report


# --- deployment health (GET /health, the routing.deployments_health_check task) ---------------

_PROBES = {
    "chat": (Operation.CHAT, {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}),
    "completion": (Operation.COMPLETION, {"prompt": "ping", "max_tokens": 1}),
    "embedding": (Operation.EMBEDDING, {"input": "ping"}),
    "rerank": (Operation.RERANK, {"query": "ping", "documents": ["ping"]}),
    "moderation": (Operation.MODERATION, {"input": "ping"}),
    "audio_speech": (Operation.AUDIO_SPEECH, {"input": "ping", "voice": "alloy"}),
}
# No cheap request checks these (an image costs cents; a transcription needs an audio file): they
# stay unchecked, which routing treats as usable, rather than being probed as chat and failing.
UNPROBED_MODES = frozenset({"image_generation", "audio_transcription"})


@dataclass(slots=True)
class ProbeResult:
    deployment_id: int
    healthy: bool
    error: str = ""
    latency_ms: int | None = None


def _probe_call(deployment: Deployment, transport: UpstreamTransport):
    """The minimal request the deployment's mode calls for, through its translator (not awaited)."""
    operation, body = _PROBES.get(deployment.mode, _PROBES["chat"])
    body = {"model": deployment.upstream_model, **body}
    timeout = min(deployment.timeout or settings.GATEWAY_HEALTH_CHECK_TIMEOUT, settings.GATEWAY_HEALTH_CHECK_TIMEOUT)
    return deployment_call_once(deployment, operation, body, timeout=timeout,
                                connect_timeout=deployment.connect_timeout, over=transport)


async def deployment_probe(deployment: Deployment, transport: UpstreamTransport) -> ProbeResult:
    """One minimal request (what the deployment's mode calls for) through its translator."""
    started = time.perf_counter()
    try:
        await _probe_call(deployment, transport)
    except GatewayError as error:
        return ProbeResult(deployment.id, False, f"{error.status} {error.code or error.type}: {error.message}")
    except Exception as exc:  # a health check reports, it does not raise
        return ProbeResult(deployment.id, False, f"{type(exc).__name__}: {exc}")
    return ProbeResult(deployment.id, True, latency_ms=int((time.perf_counter() - started) * 1000))


@dataclass(slots=True)
class ConnectionCheck:
    """The admin's "Test connection": the upstream's answer to one probe, or its error."""

    status: str  # "ok", "error", or "skipped" (no cheap request checks this mode: nothing was sent)
    latency_ms: int | None = None
    reply: str = ""  # what the model answered, in short
    error_status: int | None = None  # the upstream's HTTP status (or the gateway's, e.g. 502 unreachable)
    error: str = ""


REPLY_CHARS = 200


def _reply_summary(mode: str, answer) -> str:
    """The probe's answer in a few words: the reply's text, or what came back for other modes."""
    if mode == "audio_speech":
        return f"{len(answer.body)} bytes of {answer.content_type}"
    try:
        body = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return f"{len(answer.body)} bytes of {answer.content_type}"
    if mode == "embedding":
        vector = ((body.get("data") or [{}])[0] or {}).get("embedding") or []
        return f"an embedding of {len(vector)} dimensions"
    if mode == "rerank":
        return f"{len(body.get('results') or [])} ranked document(s)"
    if mode == "moderation":
        flagged = any(result.get("flagged") for result in body.get("results") or [])
        return "flagged" if flagged else "not flagged"
    choice = (body.get("choices") or [{}])[0] or {}
    text = choice.get("text") if mode == "completion" else (choice.get("message") or {}).get("content")
    text = text if isinstance(text, str) else ""
    finish = choice.get("finish_reason")
    reply = text[:REPLY_CHARS] + ("…" if len(text) > REPLY_CHARS else "")
    return f"{reply!r}" + (f" (finish_reason: {finish})" if finish else "")


async def deployment_connection_check(deployment: Deployment,
                                      transport: UpstreamTransport) -> ConnectionCheck:
    """The health probe's request, its answer kept: for an operator checking a deployment by hand."""
    if deployment.mode in UNPROBED_MODES:
        return ConnectionCheck("skipped", error=f"No cheap request checks a {deployment.mode} model "
                                                "(it would cost a generation): nothing was sent.")
    started = time.perf_counter()

    def elapsed_ms() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        answer = await _probe_call(deployment, transport)
        latency_ms = elapsed_ms()
        return ConnectionCheck("ok", latency_ms, reply=_reply_summary(deployment.mode, answer))
    except GatewayError as error:
        return ConnectionCheck("error", elapsed_ms(), error_status=error.status,
                               error=f"{error.code or error.type}: {error.message}")
    except Exception as exc:  # reported to the operator, never raised into the page
        return ConnectionCheck("error", elapsed_ms(), error=f"{type(exc).__name__}: {exc}"[:500])


async def deployments_probe(deployments: list[Deployment], *, concurrency: int = 10) -> list[ProbeResult]:
    """Probe every deployment, a few at a time, over a transport of their own (the caller
    is a Celery worker with its own event loop, not a server process)."""
    deployments = [d for d in deployments if d.mode not in UNPROBED_MODES]
    transport = UpstreamTransport()
    semaphore = asyncio.Semaphore(concurrency)

    async def probe(deployment: Deployment) -> ProbeResult:
        async with semaphore:
            return await deployment_probe(deployment, transport)

    try:
        return list(await asyncio.gather(*(probe(d) for d in deployments)))
    finally:
        await transport.close()


def _endpoint(row, cooldowns: dict[int, float], now: float) -> dict:
    entry = {
        "model": row.model_name,
        "model_id": row.pk,
        "provider": row.provider,
        "upstream_model": row.upstream_model,
        "api_base": row.api_base or None,
        "last_checked": row.health_checked_at.isoformat() if row.health_checked_at else None,
        "latency_ms": row.health_latency_ms,
        "cooldown_remaining_s": round(cooldowns[row.pk] - now, 1) if cooldowns.get(row.pk, 0) > now else 0,
    }
    if row.health_status == row.Health.UNHEALTHY:
        entry["error"] = row.health_error
    return entry


async def deployments_health_report() -> dict:
    """LiteLLM's GET /health shape, from the last checks (the beat task runs them), with
    the deployments never checked yet and each one's current cooldown."""
    rows = await db_call(deployment_health_list)
    keys = [deployment_state_key(row.pk, row.created_at) for row in rows]
    try:
        loads = await deployment_state().read(keys, COOLDOWNS_ONLY) if keys else []
    except Exception:
        loads = []
    cooldowns = {row.pk: load.cooldown_until for row, load in zip(rows, loads)}
    now = time.time()
    report = {"healthy_endpoints": [], "unhealthy_endpoints": [], "unchecked_endpoints": []}
    bucket = {"healthy": "healthy_endpoints", "unhealthy": "unhealthy_endpoints", "unknown": "unchecked_endpoints"}
    for row in rows:
        report[bucket[row.health_status]].append(_endpoint(row, cooldowns, now))
    report["healthy_count"] = len(report["healthy_endpoints"])
    report["unhealthy_count"] = len(report["unhealthy_endpoints"])
    report["unchecked_count"] = len(report["unchecked_endpoints"])
    return report


async def health_access_check(request) -> None:
    """GET /health is for operators: the master key, a superuser's key that acts as the proxy
    admin, or a superuser's admin session. Anything else: 401 (no or invalid credentials) or 403."""
    denied = permission_denied("GET /health is for the master key or an admin.", code="admin_only")
    if raw_key_from_request(request):
        context = await authenticate(request)
        if context.is_master:
            return
        if context.key_id is not None and await db_call(key_is_proxy_admin, key_id=context.key_id):
            return
        raise denied
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if session_key:
        user = await db_call(user_from_session, session_key=session_key)
        if user.is_authenticated and user.is_active and user.is_superuser:
            return
        raise denied
    raise authentication_failed(
        "No API key provided. Send the master key as 'Authorization: Bearer <key>'.", code="missing_api_key"
    )
