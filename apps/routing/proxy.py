"""One request through the data plane: authorize, route, call upstream, settle spend.

The router (apps.routing.router) picks deployments and fails over; this module makes
one attempt on one deployment (`_deployment_call`). A request is settled exactly once
(usage → cost → a record on the spend buffer), whatever happened: an answer, the
error left after every retry and fallback, a client disconnect or a cut stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import AsyncIterator

import aiohttp
import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from apps.billing.entitlement import entitlement_check
from apps.core.background import spawn
from apps.core.edge import REQUEST_ID_SCOPE_KEY, PlainHeadersMixin, new_request_id
from apps.core.errors import GatewayError, internal_error, invalid_request
from apps.core.hot_settings import setting
from apps.keys.context import KeyContext
from apps.providers.adapters.base import Operation, StreamTranslator, TranslatedResponse, Usage
from apps.providers.registry import Deployment
from apps.providers.streaming import OpenAISSEWriter, decoder_for
from apps.providers.transport import transport, upstream_timeout
from apps.routing.batch_store import referenced_files_check
from apps.routing.guardrails import (
    GuardrailRefusal,
    GuardrailRun,
    guardrail_run_for,
    guardrails,
    request_guardrail_names,
)
from apps.routing.metrics import request_metrics
from apps.routing.semantic_cache import semantic_cache
from apps.routing.response_cache import (
    CacheDecision,
    CacheEntry,
    EmbeddingItems,
    replay_chunks,
    response_cache,
    usage_as_dict,
)
from apps.routing.tracing import attempt_span, request_span_end, request_span_start, tracing
from apps.routing.limits import (
    end_user_scope,
    limits_acquire,
    limits_settle_soon,
    request_end_user,
    request_scopes,
)
from apps.routing.router import (
    RouteProgress,
    RouteRequest,
    Timeouts,
    costliest_deployment,
    model_group_resolve,
    route_request,
    routing_fields_pop,
)
from apps.routing.selection.policy import routing_policy_cache
from apps.routing.validation import enforced_params_check, json_body, validate_body
from apps.spend.buffer import spend_buffer
from apps.spend.callbacks import logging_callbacks
from apps.spend.journal import pending_puts
from apps.spend.models import SpendLog
from apps.spend.payloads import StreamedAnswer, bounded_json, spend_metadata, stored_answer, stored_request
from apps.spend.pricing import price_usage
from apps.spend.records import SpendRecord
from apps.spend.tokens import estimate_text_tokens, request_prompt_tokens

request_log = logging.getLogger("gateway.requests")

SEMANTIC_OPERATIONS = frozenset({Operation.CHAT, Operation.COMPLETION})
_CALL_TYPES = {
    Operation.CHAT: "chat_completion",
    Operation.COMPLETION: "text_completion",
    Operation.EMBEDDING: "embedding",
    Operation.RERANK: "rerank",
    Operation.MODERATION: "moderation",
    Operation.IMAGE_GENERATION: "image_generation",
    Operation.IMAGE_EDIT: "image_edit",
    Operation.IMAGE_VARIATION: "image_variation",
    Operation.AUDIO_SPEECH: "speech",
    Operation.AUDIO_TRANSCRIPTION: "transcription",
    Operation.AUDIO_TRANSLATION: "translation",
    Operation.RESPONSES: "responses",
}


# The requests whose messages may name an uploaded file (a file part); /v1/responses checks
# its input_file parts before translating them (apps.routing.responses_api).
_NAMES_FILES = frozenset({Operation.CHAT})


class GatewayResponse(PlainHeadersMixin, HttpResponse):
    """A /v1 answer: the gateway's own headers (request id, limits, attempts, cost) go out
    without Django's per-header checks (apps.core.edge.PlainHeadersMixin)."""


class SSEResponse(PlainHeadersMixin, StreamingHttpResponse):
    """A server-sent-event stream; the data plane's ASGI handler drives `events` directly
    so it can close the generator, and with it the upstream stream, on a disconnect."""

    def __init__(self, events: AsyncIterator[bytes], *, headers: dict[str, str]) -> None:
        super().__init__(
            events, content_type="text/event-stream",
            plain_headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.events = events


class RequestAccount:
    """What is known about one request as it goes; turned into a spend record at the end."""

    __slots__ = ("request_id", "context", "operation", "model", "deployment", "stream", "started",
                 "started_wall", "settled", "body", "limits_acquired", "limit_headers", "scopes",
                 "route", "upstream_seconds", "metadata", "stored_response", "model_group", "cost", "call_type",
                 "end_user", "span", "cache", "cache_hit", "saved_cost", "cache_items", "guardrails",
                 "cache_similarity")

    def __init__(self, context: KeyContext, operation: Operation, request_id: str | None = None) -> None:
        self.request_id = request_id or new_request_id()
        self.context = context
        self.operation = operation
        self.model = ""
        self.deployment: Deployment | None = None
        self.stream = False
        self.started = time.perf_counter()
        self.started_wall = time.time()
        self.settled = False
        self.body: dict | None = None  # the OpenAI-format request, for estimates when usage is missing
        self.limits_acquired = False  # counted against the key's limits: settle must release them
        self.scopes: tuple = ()
        self.limit_headers: dict[str, str] = {}
        self.route = RouteProgress()  # retries, fallbacks and the deployment's lease
        self.upstream_seconds = 0.0  # waiting for upstreams, every attempt included
        self.metadata: dict | None = None  # the client's metadata and tags, for the spend log
        self.stored_response: dict | None = None  # the answer, when the key stores prompts
        self.model_group = ""  # the group serving the model (an alias's target)
        self.cost = None  # USD, once settled and priced
        self.end_user = ""  # the tenant's customer named by the request (`user`), if any
        self.call_type = _CALL_TYPES[operation]  # the pass-through names its own
        self.span = None  # the request's trace span, when tracing is on (apps.routing.tracing)
        self.cache: CacheDecision | None = None  # what the response cache may do for it
        self.cache_hit = False
        self.saved_cost = None  # a cache hit: what the upstream call would have cost
        self.cache_items: EmbeddingItems | None = None  # a batched embedding request, cached per item
        self.guardrails: GuardrailRun | None = None  # the request's guardrails and their decisions
        self.cache_similarity: float | None = None  # a semantic cache hit: how close its prompt was

    def settle(self, *, status: str, usage: Usage | None = None, http_status: int | None = None,
               error_type: str = "") -> None:
        if self.settled:
            return
        self.settled = True
        usage = usage or Usage()
        deployment = self.deployment
        context = self.context
        ended = time.time()
        priced = price_usage(deployment, usage, at=self.started_wall)  # the prices in force at its start
        cost = self.cost = priced.cost
        if self.cache_hit:  # no upstream call: charged nothing unless the operator says otherwise
            self.saved_cost = cost
            if not settings.GATEWAY_CACHE_CHARGE_BUDGETS:
                cost = self.cost = Decimal(0)
        elif self.cache_items is not None and self.cache_items.cached:  # some items came from the cache
            self.saved_cost = price_usage(deployment, self.cache_items.cached_usage(), at=self.started_wall).cost
        lease = self.route.lease
        first_token_at = lease.first_token_at if self.stream and lease is not None else None
        release = self.route.settle(tokens=usage.prompt_tokens + usage.completion_tokens,
                                    succeeded=status == SpendLog.Status.SUCCESS)
        if release is not None:
            spawn(release, name="route-release")
        record = SpendRecord(
            request_id=self.request_id,
            key_id=context.key_id,
            key_hash=context.token_hash,
            team_id=context.team_id,
            organization_id=context.organization_id,
            user_id=context.user_id,
            call_type=self.call_type,
            model=self.model,
            deployment_id=deployment.id if deployment else None,
            provider=deployment.provider if deployment else "",
            upstream_model=deployment.upstream_model if deployment else "",
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            usage_reported=usage.reported,
            cost=cost,
            status=status,
            http_status=http_status,
            error_type=error_type,
            is_stream=self.stream,
            latency_ms=int((time.perf_counter() - self.started) * 1000),
            start_time=datetime.fromtimestamp(self.started_wall, timezone.utc),
            end_time=datetime.fromtimestamp(ended, timezone.utc),
            cost_status=priced.status,
            price_version=priced.version,
            metadata=self.metadata if self.guardrails is None or not self.guardrails.decisions
            else {**(self.metadata or {}), "guardrails": self.guardrails.decisions},
            messages=stored_request(self.body) if context.store_prompts else None,
            response=bounded_json(self.stored_response) if self.stored_response is not None else None,
            end_user=self.end_user,
            cache_hit=self.cache_hit,
            saved_cost=self.saved_cost,
        )
        spend_buffer.add(record)
        if self.limits_acquired:
            puts = pending_puts.get()
            limits_settle_soon(self.scopes, self.request_id, usage.prompt_tokens + usage.completion_tokens, cost,
                               after=tuple(puts) if puts else ())
        if logging_callbacks.wanted(context):
            logging_callbacks.add(record, context.logging_callbacks)
        if setting("GATEWAY_REQUEST_METRICS"):
            request_metrics.observe(self, http_status=http_status, cancelled=status == SpendLog.Status.CANCELLED,
                                    usage=usage, cost=cost, first_token_at=first_token_at)
        if setting("GATEWAY_REQUEST_LOG"):
            self._log(status, http_status, error_type, usage, priced.status, first_token_at)
        if self.span is not None:
            request_span_end(self, status=status, http_status=http_status, error_type=error_type, usage=usage,
                             cost=cost)

    def _log(self, status, http_status, error_type, usage: Usage, cost_status: str, first_token_at) -> None:
        """The request's log line (GATEWAY_REQUEST_LOG): what happened, never what was said."""
        context, deployment, route = self.context, self.deployment, self.route
        total_ms = (time.perf_counter() - self.started) * 1000
        request_log.info("%s %s %s", self.call_type, self.model or "-", status, extra={"request": {
            "request_id": self.request_id, "key_alias": context.alias or "", "key": context.token_hash[:8],
            "team": context.team_id or "", "organization": context.organization_id or "", "model": self.model,
            "model_group": self.model_group, "deployment": deployment.id if deployment else None,
            "provider": deployment.provider if deployment else "", "call_type": self.call_type, "status": status,
            "http_status": http_status, "error": error_type, "stream": self.stream,
            "latency_ms": round(total_ms, 1),
            "upstream_ms": round(self.upstream_seconds * 1000, 1),
            "ttft_ms": round((first_token_at - self.started) * 1000, 1) if first_token_at else None,
            "retries": route.attempted_retries, "fallbacks": route.attempted_fallbacks,
            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "cost": format(self.cost, "f") if self.cost is not None else None, "cost_status": cost_status,
            "end_user": self.end_user,
        }})

    def settle_error(self, error: GatewayError) -> None:
        self.settle(status=SpendLog.Status.ERROR, http_status=error.status, error_type=error.code or error.type)

    def response_headers(self) -> dict[str, str]:
        route = self.route
        # Time spent in the gateway itself: not waiting for upstreams, nor backing off.
        overhead = time.perf_counter() - self.started - self.upstream_seconds - route.waited_seconds
        headers = {
            "x-request-id": self.request_id,
            **self.limit_headers,
            "x-gateway-attempted-retries": str(route.attempted_retries),
            "x-gateway-attempted-fallbacks": str(route.attempted_fallbacks),
            "x-gateway-overhead-ms": f"{max(overhead, 0.0) * 1000:.2f}",
        }
        if self.deployment is not None:
            headers["x-gateway-model-id"] = str(self.deployment.id)
        # LiteLLM's names for the same facts, which its clients and dashboards read.
        headers["x-litellm-call-id"] = self.request_id
        headers["x-litellm-attempted-retries"] = headers["x-gateway-attempted-retries"]
        headers["x-litellm-attempted-fallbacks"] = headers["x-gateway-attempted-fallbacks"]
        headers["x-litellm-overhead-duration-ms"] = headers["x-gateway-overhead-ms"]
        if self.deployment is not None:
            headers["x-litellm-model-id"] = headers["x-gateway-model-id"]
        if self.model_group:
            headers["x-litellm-model-group"] = self.model_group
        if self.cost is not None:
            headers["x-litellm-response-cost"] = format(self.cost, "f")
        if self.context.key_spend is not None:
            headers["x-litellm-key-spend"] = format(self.context.key_spend, "f")
        if self.context.key_max_budget is not None:
            headers["x-litellm-key-max-budget"] = format(self.context.key_max_budget, "f")
        if self.cache is not None:
            headers["x-gateway-cache"] = (("semantic-hit" if self.cache_similarity is not None else "hit")
                                          if self.cache_hit else "miss")
            headers["x-litellm-cache-key"] = self.cache.key
            if self.cache_similarity is not None:
                headers["x-gateway-cache-similarity"] = f"{self.cache_similarity:.4f}"
        return headers

    def error_with_headers(self, error: GatewayError) -> GatewayError:
        error.headers = {**self.response_headers(), **error.headers}
        return error


class ClientFormat:
    """How the client speaks: OpenAI's format here; apps.routing.anthropic_format for /v1/messages."""

    def stream_writer(self, *, include_usage: bool, model: str):
        return OpenAISSEWriter(include_usage=include_usage)

    def response_body(self, translated: TranslatedResponse, model: str) -> bytes:
        return translated.body

    def request_body(self, body: dict) -> dict:
        """The client's body as an OpenAI-format request (validated after)."""
        return body

    def read_body(self, request: HttpRequest) -> dict:
        """The request's body (JSON here; multipart for audio uploads, apps.routing.media)."""
        return self.request_body(json_body(request))

    def usage_priced(self, usage: Usage, body: dict) -> Usage:
        """The usage to price: what the request asked may decide the price (an image's size)."""
        return usage

    async def deployment_call(self, deployment: Deployment, timeouts: "Timeouts", operation: Operation,
                              body: dict, account: "RequestAccount") -> HttpResponse:
        """One attempt on one deployment (an audio stream is answered differently: apps.routing.media)."""
        return await _deployment_call(deployment, timeouts, operation, body, account, self)

    def upstream_call(self, deployment: Deployment, operation: Operation, body: dict) -> tuple[Operation, dict]:
        """The operation and body one attempt sends to this deployment (apps.routing.responses_format
        forwards /v1/responses natively where the provider has the Responses API)."""
        return operation, body


OPENAI_FORMAT = ClientFormat()


def refused_before_routing(request: HttpRequest, operation: Operation, error: GatewayError,
                           *, model: str = "") -> GatewayError:
    """A request a view refused before proxy_request: a spend row all the same (status error,
    no cost), as proxy_request writes for its own refusals; returns the error to raise."""
    account = RequestAccount(request.auth, operation, request.scope.get(REQUEST_ID_SCOPE_KEY))
    if model:  # not resolved: kept out of the model column and its rollups, as an unknown model is
        account.metadata = {"requested_model": model[:200]}
    account.settle_error(error)
    return account.error_with_headers(error)


async def proxy_request(
    request: HttpRequest,
    operation: Operation,
    *,
    client_format: ClientFormat = OPENAI_FORMAT,
) -> HttpResponse:
    """Serve one request, whatever its client format."""
    context: KeyContext = request.auth
    account = RequestAccount(context, operation, request.scope.get(REQUEST_ID_SCOPE_KEY))
    if tracing.tracer is not None:
        request_span_start(request, account)
    try:
        body = client_format.read_body(request)
        model, stream = validate_body(operation, body)
        if operation in _NAMES_FILES:
            await referenced_files_check(request.body, body, context)
        if context.enforced_params:
            enforced_params_check(body, context.enforced_params)
        model = context.model_aliases.get(model, model)  # the key's aliases (LiteLLM's `aliases`)
        account.stream = stream
        account.body = body
        account.end_user = request_end_user(body, request.META)
        upstream_body, tags, client_fallbacks = routing_fields_pop(body)
        if context.team_tags:  # the team's routing tags go with every request of it
            tags = (*tags, *(tag for tag in context.team_tags if tag not in tags))
        if tags or "metadata" in upstream_body or context.spend_tags or context.spend_logs_metadata:
            account.metadata = spend_metadata(
                upstream_body.get("metadata"), tags,
                key_tags=context.spend_tags, key_spend_logs_metadata=context.spend_logs_metadata,
            )
        routing_policy = await routing_policy_cache.get()
        # The team's alias names the model served (the key must be allowed that model).
        model = context.team_model_aliases.get(model, model)
        try:
            group = await model_group_resolve(model, context, routing_policy, tags=tags)
        except GatewayError as error:
            if error.code == "model_not_found":
                # Kept out of the model column, and so out of the per-model rollups and metrics,
                # which a key could otherwise flood with made-up names.
                account.metadata = {**(account.metadata or {}), "requested_model": model[:200]}
            else:
                account.model = model
            raise
        account.model = model
        account.model_group = group.name
        await entitlement_check(context)  # the billing entity's wallet (a dict lookup; off without Lago)
        if guardrails.any or context.guardrails or group.policy.guardrails:
            account.guardrails = guardrail_run_for((*context.guardrails, *group.policy.guardrails),
                                                   request_guardrail_names(body))
            metadata = upstream_body.get("metadata")
            if isinstance(metadata, dict) and "guardrails" in metadata:  # the gateway's, not the provider's
                rest = {name: value for name, value in metadata.items() if name != "guardrails"}
                upstream_body = {**upstream_body, "metadata": rest} if rest else {
                    name: value for name, value in upstream_body.items() if name != "metadata"}
            if account.guardrails is not None and account.guardrails.pre:
                upstream_body = account.body = await account.guardrails.before(upstream_body)
        cached = None
        if response_cache.backend is not None:
            account.cache = response_cache.decide(operation=operation, model_group=group.name, body=upstream_body,
                                                  context=context, headers=request.META, stream=stream,
                                                  group_policy=group.policy)
            if account.cache is not None and not settings.GATEWAY_CACHE_HITS_COUNT_RATE_LIMITS:
                cached = await _cache_lookup(account, upstream_body)  # a hit then skips the limits altogether
        scopes = request_scopes(context, model, group.limit_scopes)
        if account.end_user:
            # Checked and counted in the same atomic step as the key's own levels.
            end_user_limits = await end_user_scope(context, account.end_user)
            if end_user_limits is not None:
                scopes = (*scopes, end_user_limits)
        if scopes and cached is None:
            # Reserved at the group's priciest deployment: the router may pick any of them.
            account.limit_headers = await limits_acquire(
                scopes, account.request_id, costliest_deployment(group.deployments), body
            )
            account.limits_acquired = True
            account.scopes = scopes
        if account.cache is not None and settings.GATEWAY_CACHE_HITS_COUNT_RATE_LIMITS:
            cached = await _cache_lookup(account, upstream_body)
        if account.cache_items is not None and cached is None:  # only the items not found go upstream
            upstream_body = {**upstream_body, "input": [account.cache_items.inputs[i] for i in account.cache_items.missing]}
    except GatewayError as error:
        # Refused before routing: still a spend row (status error, no cost) for whoever audits
        # the key; a request without a valid key never gets this far (see README, Spend).
        account.settle_error(error)
        raise account.error_with_headers(error) from None

    if cached is not None:
        with settled_on_failure(account):
            return await cache_hit_response(account, cached, group, operation, client_format)

    route = RouteRequest(
        request_id=account.request_id, operation=operation, body=upstream_body, stream=stream,
        tags=tags, client_fallbacks=client_fallbacks,
    )

    async def call(deployment: Deployment, timeouts: Timeouts) -> HttpResponse:
        if account.span is not None:
            async with attempt_span(account, deployment):
                return await client_format.deployment_call(deployment, timeouts, operation, upstream_body, account)
        return await client_format.deployment_call(deployment, timeouts, operation, upstream_body, account)

    with settled_on_failure(account):
        return await route_request(
            model, group, context=context, routing_policy=routing_policy, route=route, call=call,
            progress=account.route,
        )


class settled_on_failure:  # noqa: N801 (used as a function: `with settled_on_failure(account):`)
    """A request that fails in the block is settled (an error, or a disconnect: cancelled) and a
    GatewayError raised again with the gateway's headers. A class, not @contextmanager: it runs
    on every request, and a generator costs more."""

    __slots__ = ("account",)

    def __init__(self, account: RequestAccount) -> None:
        self.account = account

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None:
            return False
        account = self.account
        if isinstance(error, GatewayError):
            account.settle_error(error)
            account.error_with_headers(error)  # the same error goes on up, with the headers
        elif isinstance(error, asyncio.CancelledError):
            account.settle(status=SpendLog.Status.CANCELLED, error_type="client_disconnected")
        elif isinstance(error, Exception):
            account.settle_error(internal_error())
        return False


async def _deployment_call(
    deployment: Deployment,
    timeouts: Timeouts,
    operation: Operation,
    body: dict,
    account: RequestAccount,
    client_format: ClientFormat,
) -> HttpResponse:
    """One attempt on one deployment: the answer (streams: once their first event is in),
    or a GatewayError the router may retry elsewhere. Only an answer settles the account."""
    account.deployment = deployment
    adapter = deployment.adapter
    stream = account.stream
    operation, body = client_format.upstream_call(deployment, operation, body)
    drop_params = body.get("drop_params") is True or bool(deployment.extra_params.get("drop_params"))
    payload = adapter.prepare_body(operation, body, drop_params=drop_params)
    try:
        upstream_request = await adapter.build_request(operation, deployment, payload, stream=stream)
    except orjson.JSONEncodeError:
        # Parsed, but not encodable again: nested deeper than orjson writes (254 levels).
        raise invalid_request("The request body is nested too deeply to be sent on.",
                              code="invalid_json") from None
    waiting_since = time.perf_counter()
    try:
        if stream:
            return await _stream_open(deployment, timeouts, operation, upstream_request, account, client_format)
        response = await transport.send(
            upstream_request, timeout=timeouts.total, connect_timeout=timeouts.connect,
            provider=deployment.provider, stream=False,
        )
        try:
            raw = await response.read()
        except asyncio.TimeoutError:
            raise upstream_timeout(deployment.provider) from None
        except aiohttp.ClientError:
            raise GatewayError(
                f"The {deployment.provider} upstream closed the connection mid-response.",
                status=502, type="api_error", code="upstream_disconnected",
            ) from None
        finally:
            response.release()
    finally:
        account.upstream_seconds += time.perf_counter() - waiting_since
    if response.status >= 400:
        raise adapter.translate_error(response.status, raw, response.headers)
    translated = adapter.translate_response(operation, deployment, raw)
    if account.guardrails is not None and account.guardrails.post:
        try:
            translated = await _answer_guarded(account, translated)
        except GuardrailRefusal as refusal:  # the answer is not sent; its tokens were used all the same
            account.settle(status=SpendLog.Status.ERROR, usage=client_format.usage_priced(translated.usage, body),
                           http_status=refusal.status, error_type=refusal.code)
            return refusal_response(account, refusal)
    if account.context.store_prompts:
        account.stored_response = stored_answer(translated.body)
    if account.cache_items is not None:
        if account.cache.write:
            for decision, entry in account.cache_items.entries(translated.body, translated.usage, deployment.id):
                spawn(response_cache.put(decision, entry), name="response-cache-put")
        translated = TranslatedResponse(body=account.cache_items.merged(translated.body), usage=translated.usage,
                                        headers=translated.headers, content_type=translated.content_type)
    content = client_format.response_body(translated, account.model)
    if account.cache_items is None and account.cache is not None and account.cache.write \
            and translated.content_type == "application/json":
        formatted = account.operation is Operation.RESPONSES  # kept as the client got it (its response id)
        cache_keep(account, CacheEntry(body=content if formatted else translated.body,
                                       usage=usage_as_dict(translated.usage), created=time.time(),
                                       deployment_id=deployment.id, formatted=formatted))
    account.settle(status=SpendLog.Status.SUCCESS, usage=client_format.usage_priced(translated.usage, body),
                   http_status=200)
    return GatewayResponse(
        content,
        content_type=translated.content_type,
        plain_headers={**account.response_headers(), **translated.headers},
    )


async def upstream_stream_send(deployment: Deployment, timeouts: Timeouts, upstream_request):
    """Send a request whose answer is read as it arrives; an error status is read whole and
    raised as the adapter translates it (so the router may retry it elsewhere)."""
    response = await transport.send(
        upstream_request, timeout=timeouts.total, connect_timeout=timeouts.connect,
        provider=deployment.provider, stream=True,
    )
    if response.status >= 400:
        try:
            raw = await response.read()
        finally:
            response.release()
        raise deployment.adapter.translate_error(response.status, raw, response.headers)
    return response


async def _stream_open(
    deployment: Deployment,
    timeouts: Timeouts,
    operation: Operation,
    upstream_request,
    account: RequestAccount,
    client_format: ClientFormat,
) -> SSEResponse:
    """Send a streamed request and wait for its first event: until then a failure (an
    error status, a cut, no first token in time) is an ordinary error the router may
    retry elsewhere; after it, the stream is the client's."""
    adapter = deployment.adapter
    try:
        async with asyncio.timeout(timeouts.first_token):
            response = await upstream_stream_send(deployment, timeouts, upstream_request)
            options = account.body.get("stream_options") or {}
            writer = client_format.stream_writer(include_usage=bool(options.get("include_usage")), model=account.model)
            events = _relay_stream(response, deployment, adapter.stream_translator(operation, deployment), writer,
                                   account)
            first = await events.__anext__()
    except GuardrailRefusal as refusal:  # refused before anything was sent (settled by the stream)
        return refusal_response(account, refusal)
    except TimeoutError:
        raise GatewayError(
            f"The {deployment.provider} stream sent no first token within {timeouts.first_token:g} s.",
            status=504, type="timeout", code="upstream_timeout",
        ) from None
    except StopAsyncIteration:
        raise GatewayError(
            f"The {deployment.provider} stream ended before any event.",
            status=502, type="api_error", code="empty_upstream_stream",
        ) from None
    account.route.first_token()
    return SSEResponse(_prepend(first, events), headers=account.response_headers())


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()


async def _relay_stream(
    response: aiohttp.ClientResponse, deployment: Deployment, translator: StreamTranslator, writer,
    account: RequestAccount,
) -> AsyncIterator[bytes]:
    """Upstream bytes → events (framing) → OpenAI chunks (translator) → client bytes (writer).

    Before the first yield an upstream error propagates (the router may retry, or the
    caller answers it with its status) and nothing is settled here; after it, the error
    goes into the stream in the client's format and the stream settles the account.
    """
    decoder = decoder_for(deployment.adapter.stream_format, deployment.provider)
    status, error_type, http_status = SpendLog.Status.SUCCESS, "", 200
    read_to_end = False
    sent_any = False
    generated: list[str] = []  # content and tool arguments sent, counted only if usage never comes
    caching = account.cache is not None and account.cache.write
    answer = StreamedAnswer() if account.context.store_prompts or caching else None
    guard = account.guardrails.stream_guard() if account.guardrails is not None else None
    try:
        async for data in response.content.iter_any():
            for event, payload in decoder.feed(data):
                chunks = translator.feed(event, payload)
                if guard is not None:
                    chunks = guard.feed(chunks)
                _count_generated(chunks, generated)
                if answer is not None:
                    answer.add(chunks)
                out = writer.write(chunks)
                if out:
                    sent_any = True
                    yield out
        for event, payload in decoder.close():
            chunks = translator.feed(event, payload)
            if guard is not None:
                chunks = guard.feed(chunks)
            _count_generated(chunks, generated)
            if answer is not None:
                answer.add(chunks)
            out = writer.write(chunks)
            if out:
                sent_any = True
                yield out
        read_to_end = True
        final = translator.finish()
        if guard is not None:
            final = [*guard.feed(final), *guard.finish()]
            guard.done()
        if answer is not None:
            answer.add(final)
        out = writer.write(final) + writer.close()
        sent_any = True
        yield out
    except (asyncio.CancelledError, GeneratorExit):
        status, error_type, http_status = SpendLog.Status.CANCELLED, "client_disconnected", 200
        raise
    except GuardrailRefusal as refusal:  # cut cleanly: the error event, then nothing more
        status, error_type, http_status = SpendLog.Status.ERROR, refusal.code, refusal.status
        if not sent_any:
            sent_any = True  # settled below; _stream_open answers the refusal with its status
            raise
        yield writer.error(refusal) + writer.close()
    except (aiohttp.ClientError, asyncio.TimeoutError, GatewayError) as exc:
        if isinstance(exc, GatewayError):
            error = exc
        else:
            code = "upstream_timeout" if isinstance(exc, asyncio.TimeoutError) else "upstream_disconnected"
            error = GatewayError(
                f"The {deployment.provider} stream was cut off: {type(exc).__name__}.",
                status=502 if code == "upstream_disconnected" else 504, type="api_error", code=code,
            )
        status, error_type, http_status = SpendLog.Status.ERROR, error.code or error.type, error.status
        if not sent_any:
            raise error from None
        # The 200 and earlier events are already sent: report the failure in the stream.
        yield writer.error(error)
    finally:
        if read_to_end:
            response.release()  # the connection goes back to the pool
        else:
            # Closing drops the connection, so the upstream stops generating at once.
            response.close()
        if sent_any:
            if answer is not None and account.context.store_prompts:
                account.stored_response = answer.as_message()
            if caching and read_to_end and status == SpendLog.Status.SUCCESS and translator.usage.reported:
                entry = streamed_entry(answer, translator.usage, account, deployment)
                if entry is not None:  # kept only whole: never a cut or abandoned stream
                    cache_keep(account, entry)
            usage = translator.usage if translator.usage.reported else _estimated_usage(account, generated)
            account.settle(status=status, usage=usage, http_status=http_status, error_type=error_type)


def _count_generated(chunks: list[dict], generated: list[str]) -> None:
    """Keep what was generated (content and tool arguments), to count it if usage never comes."""
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                generated.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                arguments = (call.get("function") or {}).get("arguments")
                if arguments:
                    generated.append(arguments)


def _estimated_usage(account: RequestAccount, generated: list[str]) -> Usage:
    """The provider sent no usage (a cut or abandoned stream): count what was used so far with
    the tokenizer (marked estimated: not the provider's own count)."""
    body = account.body or {}
    model = account.deployment.upstream_model if account.deployment else None
    return Usage(
        prompt_tokens=request_prompt_tokens(body, model=model),
        completion_tokens=estimate_text_tokens("".join(generated), model=model),
        reported=False,
    )


# --- answers from the response cache ----------------------------------------------------------------


async def _cache_lookup(account: RequestAccount, body: dict) -> CacheEntry | None:
    """The request's cached answer, if any: the exact cache's, else the semantic cache's (chat and
    completions). A batched embedding request is looked up item by item (account.cache_items); it
    is a hit when every item is found."""
    decision = account.cache
    item_decisions = response_cache.item_decisions(decision, body)
    if item_decisions is None:
        if not decision.read:
            return None
        entry = await response_cache.get(decision)
        if entry is None and semantic_cache.on and account.operation in SEMANTIC_OPERATIONS:
            found = await semantic_cache.lookup(decision, body)
            if found is not None:
                entry, account.cache_similarity = found
                account.metadata = {**(account.metadata or {}), "cache_similarity": round(found[1], 4)}
        return entry
    found = (await asyncio.gather(*(response_cache.get(d) for d in item_decisions)) if decision.read
             else [None] * len(item_decisions))
    items = account.cache_items = EmbeddingItems(item_decisions, found, body["input"])
    if not items.all_found:
        return None
    first = next(iter(items.cached.values()))
    return CacheEntry(body=items.merged(None), usage=usage_as_dict(items.cached_usage()), created=time.time(),
                      deployment_id=first.deployment_id)


async def _answer_guarded(account: RequestAccount, translated: TranslatedResponse) -> TranslatedResponse:
    """The answer after the request's post_call guardrails (masked), or their GuardrailRefusal."""
    if translated.content_type != "application/json":
        return translated
    answer = orjson.loads(translated.body)
    checked = await account.guardrails.after(answer)
    if checked is answer or checked == answer:
        return translated
    return TranslatedResponse(body=orjson.dumps(checked), usage=translated.usage, headers=translated.headers,
                              content_type=translated.content_type)


def refusal_response(account: RequestAccount, refusal: GuardrailRefusal) -> HttpResponse:
    """A guardrail's refusal as the client gets it (the request is settled already)."""
    return GatewayResponse(orjson.dumps(refusal.body()), status=refusal.status, content_type="application/json",
                           plain_headers=account.response_headers())


def cache_keep(account: RequestAccount, entry: CacheEntry) -> None:
    """Keep an answer, in the background: in the exact cache, and the semantic cache when it is on."""
    spawn(response_cache.put(account.cache, entry), name="response-cache-put")
    if semantic_cache.on and account.operation in SEMANTIC_OPERATIONS and account.cache.body is not None:
        spawn(semantic_cache.store(account.cache, account.cache.body, entry), name="semantic-cache-put")


async def cache_hit_response(account: RequestAccount, entry: CacheEntry, group, operation: Operation,
                             client_format: ClientFormat) -> HttpResponse:
    """A request answered from the response cache, in the client's format: no upstream call; its
    spend row is a hit (charged nothing by default) with what it saved. The request's post_call
    guardrails check it as they would the upstream's answer."""
    account.cache_hit = True
    account.deployment = next((d for d in group.deployments if d.id == entry.deployment_id),
                              group.deployments[0] if group.deployments else None)
    usage = entry.usage_object()
    if account.guardrails is not None and account.guardrails.post and not account.stream:
        try:
            checked = await _answer_guarded(account, TranslatedResponse(body=entry.body, usage=usage))
        except GuardrailRefusal as refusal:
            account.settle(status=SpendLog.Status.ERROR, usage=usage, http_status=refusal.status,
                           error_type=refusal.code)
            return refusal_response(account, refusal)
        entry = CacheEntry(body=checked.body, usage=entry.usage, created=entry.created,
                           deployment_id=entry.deployment_id, content_type=entry.content_type,
                           formatted=entry.formatted)
    if account.context.store_prompts:
        account.stored_response = stored_answer(entry.body)
    if account.stream:
        options = account.body.get("stream_options") or {}
        writer = client_format.stream_writer(include_usage=bool(options.get("include_usage")), model=account.model)
        chunks = replay_chunks(entry, operation)
        guard = account.guardrails.stream_guard() if account.guardrails is not None else None
        if guard is not None:
            try:
                chunks = [*guard.feed(chunks), *guard.finish()]
                guard.done()
            except GuardrailRefusal as refusal:
                account.settle(status=SpendLog.Status.ERROR, usage=usage, http_status=refusal.status,
                               error_type=refusal.code)
                return refusal_response(account, refusal)
        data = writer.write(chunks) + writer.close()
        account.settle(status=SpendLog.Status.SUCCESS, usage=usage, http_status=200)
        return SSEResponse(_single(data), headers=account.response_headers())
    translated = TranslatedResponse(body=entry.body, usage=usage, content_type=entry.content_type)
    account.settle(status=SpendLog.Status.SUCCESS, usage=client_format.usage_priced(usage, account.body or {}),
                   http_status=200)
    content = entry.body if entry.formatted else client_format.response_body(translated, account.model)
    return GatewayResponse(content, content_type=entry.content_type, plain_headers=account.response_headers())


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


def streamed_entry(answer: StreamedAnswer | None, usage: Usage, account: RequestAccount,
                   deployment: Deployment) -> CacheEntry | None:
    """A whole streamed chat answer as the entry a non-streamed one would be (one choice only)."""
    if answer is None or account.operation is not Operation.CHAT or (account.body or {}).get("n") not in (None, 1):
        return None
    body = {"id": f"chatcmpl-{account.request_id}", "object": "chat.completion", "created": int(account.started_wall),
            "model": deployment.upstream_model, **answer.as_message(), "usage": usage.openai()}
    return CacheEntry(body=orjson.dumps(body), usage=usage_as_dict(usage), created=time.time(),
                      deployment_id=deployment.id)
