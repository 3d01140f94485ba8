"""Provider pass-through: /openai/*, /azure/*, /anthropic/*, /gemini/*, /vertex_ai/* and /bedrock/* forward the
provider's own API, so native SDKs and tools (Claude Code, also on Bedrock; the google-genai
SDK; an AzureOpenAI client) use the gateway as they would the provider.

What the gateway adds is what it adds to /v1: the virtual key's auth and model access, its
limits and budgets (reserved before, settled after), a deployment's credentials in place of
the key, the deployment's model in place of the name the client used, and a spend log with
the usage read from the native answer (streams included). What it does not add: retries
and fallbacks (a native call goes to one deployment, as LiteLLM's pass-through does), and
translation (bodies and errors are the provider's own, both ways).
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator
from urllib.parse import unquote_plus

import aiohttp
import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from apps.billing.entitlement import entitlement_check
from apps.core.edge import REQUEST_ID_SCOPE_KEY, PlainHeadersMixin
from apps.core.errors import GatewayError, invalid_request, not_found, permission_denied
from apps.keys.context import KeyContext
from apps.providers.adapters import adapter_for
from apps.providers.adapters.base import Operation, Usage
from apps.providers.registry import Deployment, deployment_registry
from apps.providers.streaming import decoder_for
from apps.providers.transport import transport
from apps.routing.batch_store import referenced_files_check
from apps.routing.limits import limits_acquire, request_scopes
from apps.routing.proxy import GatewayResponse, RequestAccount, settled_on_failure
from apps.routing.router import may_use_group, model_group_resolve, timeouts_for, usable_deployments
from apps.routing.selection.policy import routing_policy_cache
from apps.routing.validation import enforced_params_check
from apps.spend.models import SpendLog

CALL_TYPE = "pass_through_endpoint"  # LiteLLM's name for these calls in its spend logs

# Client headers sent on. Nothing else: above all no credential (the client's is our virtual key).
_FORWARDED_HEADERS = ("content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta")
# Upstream headers sent back besides the body's type: request ids and rate-limit hints.
# (Not x-request-id: the gateway's own goes on every answer; Anthropic's id is request-id.)
_RETURNED_HEADER_PREFIXES = ("request-id", "retry-after", "anthropic-ratelimit-",
                             "x-amzn-requestid", "x-amzn-bedrock-",
                             "x-ratelimit-", "openai-processing-ms", "apim-request-id")
_STREAM_TYPES = ("text/event-stream", "application/vnd.amazon.eventstream", "application/x-ndjson")
_KEY_QUERY_PARAMS = ("key", "api-key", "api_key")  # a key in the query is ours, never sent on


class PassThroughStream(PlainHeadersMixin, StreamingHttpResponse):
    """The upstream's stream as it comes; the data plane drives `events` itself, so a client
    that goes away closes the generator, and with it the upstream response."""

    def __init__(self, events: AsyncIterator[bytes], *, status: int, content_type: str,
                 headers: dict[str, str]) -> None:
        super().__init__(events, status=status, content_type=content_type,
                         plain_headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.events = events


async def passthrough_request(request: HttpRequest, provider: str, path: str) -> HttpResponse:
    context: KeyContext = request.auth
    adapter = adapter_for(provider)
    if adapter is None or not adapter.passthrough:
        raise not_found(f"Unknown route: {request.method} {request.path}", code="unknown_route")
    path = "/" + path
    account = RequestAccount(context, Operation.CHAT, request.scope.get(REQUEST_ID_SCOPE_KEY))
    account.call_type = CALL_TYPE
    uses_tokens = request.method == "POST" and adapter.passthrough_operation(path) is not None
    with settled_on_failure(account):
        if not adapter.passthrough_paths.fullmatch(path):
            raise permission_denied(
                f"/{provider}{path} is not forwarded: the pass-through serves model calls and the model "
                f"list. The provider account's files, batches and other stores are shared by every "
                f"tenant of it; use the gateway's own routes for those.",
                code="passthrough_path_not_allowed",
            )
        json_body = _json_object(request)
        if context.enforced_params and request.method != "GET":
            enforced_params_check(json_body or {}, context.enforced_params)  # as on /v1: no way around it
        if json_body:
            await referenced_files_check(request.body, json_body, context)
        model = adapter.passthrough_model(path, json_body)
        if model is not None:  # the key's and its team's aliases, as on /v1
            model = context.model_aliases.get(model, model)
            model = context.team_model_aliases.get(model, model)
        if model is None and request.method != "GET":
            # Which model it uses is the body's to say (JSON `model`, or the path for Gemini and
            # Azure); one the gateway cannot read could be any model of the account.
            raise invalid_request(
                f"A {request.method} to /{provider}{path} must name its model in a JSON body's 'model' "
                "(or in the path, where the provider's API puts it there).",
                param="model", code="model_required",
            )
        deployment, group_name, limit_scopes = await _deployment_for(provider, model, context)
        account.model = model or group_name
        account.model_group = group_name
        account.deployment = deployment
        account.stream = _asks_for_stream(json_body, path)
        account.body = json_body if uses_tokens else None
        await entitlement_check(context)
        scopes = request_scopes(context, model or group_name, limit_scopes)
        if scopes:
            account.limit_headers = await limits_acquire(scopes, account.request_id, deployment, json_body or {})
            account.limits_acquired = True
            account.scopes = scopes
        # The deployment's own adapter: under one provider, Claude on Vertex is not Gemini.
        upstream_request = await deployment.adapter.passthrough_request(
            deployment, method=request.method, path=path, query=_query_without_keys(request),
            headers=_forwarded_headers(request), body=request.body, json_body=json_body,
        )
        policy = (await routing_policy_cache.get()).for_group(group_name)
        timeouts = timeouts_for(deployment, policy)
        response = await transport.send(
            upstream_request, timeout=timeouts.total, connect_timeout=timeouts.connect,
            provider=provider, stream=True,
        )

    content_type = response.headers.get("Content-Type", "application/json")
    returned = {name.lower(): value for name, value in response.headers.items()
                if name.lower().startswith(_RETURNED_HEADER_PREFIXES)}
    streamed_json = account.stream and content_type.startswith("application/json")
    if response.status < 400 and (content_type.startswith(_STREAM_TYPES) or streamed_json):
        # A stream sent as one JSON document (Gemini's streamGenerateContent without alt=sse) is
        # relayed as it comes too, and its usage read once it is whole.
        reader = _WholeAnswerReader(deployment, path) if streamed_json else _UsageReader(deployment, path)
        events = _relay(response, deployment, reader, account)
        try:
            first = await events.__anext__()  # started, so that closing it settles the account
        except StopAsyncIteration:
            first = b""
        return PassThroughStream(_chain(first, events), status=response.status, content_type=content_type,
                                 headers={**returned, **account.response_headers()})
    try:
        try:
            raw = await response.read()
        finally:
            response.release()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        error = GatewayError(f"The {provider} upstream closed the connection mid-answer.", status=502,
                             type="api_error", code="upstream_disconnected")
        account.settle_error(error)
        raise account.error_with_headers(error) from None
    except asyncio.CancelledError:
        account.settle(status=SpendLog.Status.CANCELLED, error_type="client_disconnected")
        raise
    if response.status >= 400:
        account.settle(status=SpendLog.Status.ERROR, http_status=response.status, error_type="upstream_error")
    else:
        account.settle(status=SpendLog.Status.SUCCESS, usage=_answer_usage(deployment, path, raw),
                       http_status=response.status)
    return GatewayResponse(raw, status=response.status, content_type=content_type,
                           plain_headers={**returned, **account.response_headers()})


# --- the deployment -----------------------------------------------------------------------------


async def _deployment_for(provider: str, model: str | None,
                          context: KeyContext) -> tuple[Deployment, str, tuple]:
    """The deployment of `provider` a native call goes to, its group's name and the group's
    limit scopes. By the model the call names: a group name, an alias, a wildcard group
    (`anthropic/*`), or the provider's own name of a deployment's model. A call that names
    no model (a model list) goes to the first deployment of the provider the key may use."""
    if model is None:
        return await _any_deployment(provider, context)
    routing_policy = await routing_policy_cache.get()
    group = None
    for name in (model, f"{provider}/{model}"):
        try:
            group = await model_group_resolve(name, context, routing_policy)
            break
        except GatewayError as error:
            if error.code != "model_not_found":
                raise
    if group is None:
        name = await _group_of_upstream_model(provider, model)
        if name is None:
            raise not_found(f"The model '{model}' does not exist on this gateway.", param="model",
                            code="model_not_found")
        group = await model_group_resolve(name, context, routing_policy)
    deployments = [d for d in group.deployments if d.provider == provider and d.adapter.passthrough]
    if not deployments:
        raise invalid_request(
            f"The model '{model}' has no {provider} deployment: /{provider}/* forwards {provider}'s own API.",
            param="model", code="no_deployment_for_provider",
        )
    return deployments[0], group.name, group.limit_scopes


async def _group_of_upstream_model(provider: str, model: str) -> str | None:
    groups = await deployment_registry.groups()
    for name, deployments in groups.items():
        if any(d.provider == provider and d.upstream_model.removeprefix("models/") == model for d in deployments):
            return name
    return None


async def _any_deployment(provider: str, context: KeyContext) -> tuple[Deployment, str, tuple]:
    groups = await deployment_registry.groups()
    for name in sorted(groups):
        if "*" in name:
            continue
        deployments = [d for d in usable_deployments(groups[name], context)
                       if d.provider == provider and d.adapter.passthrough]
        if deployments and may_use_group(context, name, deployments):
            return deployments[0], name, ()
    raise permission_denied(f"This key may use no {provider} deployment.", code="model_not_allowed")


# --- the request --------------------------------------------------------------------------------


def _json_object(request: HttpRequest) -> dict | None:
    if request.method not in ("POST", "PUT", "PATCH") or not request.body:
        return None
    if "json" not in request.META.get("CONTENT_TYPE", ""):
        return None
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise invalid_request("The request body is not valid JSON.", code="invalid_json") from None
    return body if isinstance(body, dict) else None


def _asks_for_stream(json_body: dict | None, path: str) -> bool:
    return bool(json_body and json_body.get("stream") is True) or "stream" in path.rsplit("/", 1)[-1].lower()


def _forwarded_headers(request: HttpRequest) -> dict[str, str]:
    headers = {}
    for name in _FORWARDED_HEADERS:
        value = request.META.get("CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_"))
        if value:
            headers[name] = value
    return headers


def _query_without_keys(request: HttpRequest) -> str:
    query = request.META.get("QUERY_STRING", "")
    if not query:
        return ""
    # Names compared decoded: Google reads %6Bey as key, and the virtual key must not go on.
    kept = [part for part in query.split("&")
            if unquote_plus(part.split("=", 1)[0]).strip().lower() not in _KEY_QUERY_PARAMS]
    return "&".join(kept)


# --- the answer's usage -------------------------------------------------------------------------


def _answer_usage(deployment: Deployment, path: str, raw: bytes) -> Usage:
    """The usage in a native answer, read by the adapter's own translation; none (no cost) for
    calls that use no tokens, or an answer the translation does not recognise."""
    try:
        return deployment.adapter.passthrough_usage(path, deployment, raw)
    except (GatewayError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return Usage()


async def _relay(response: aiohttp.ClientResponse, deployment: Deployment, reader: "_UsageReader",
                 account: RequestAccount) -> AsyncIterator[bytes]:
    """The upstream's bytes to the client unchanged, read on the way for the usage; the account
    settles when the stream ends, fails or is left."""
    status, error_type, http_status = SpendLog.Status.SUCCESS, "", response.status
    try:
        async for data in response.content.iter_any():
            reader.feed(data)
            yield data
        reader.close()
    except (asyncio.CancelledError, GeneratorExit):
        status, error_type = SpendLog.Status.CANCELLED, "client_disconnected"
        raise
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        # The status line is sent: an error event in the provider's own form ends the stream,
        # so the client's SDK raises rather than take what came for the whole answer.
        status, error_type, http_status = SpendLog.Status.ERROR, "upstream_disconnected", 502
        yield deployment.adapter.passthrough_stream_error(
            f"The {deployment.provider} stream was cut off: {type(exc).__name__}.")
    finally:
        response.release()
        if status == SpendLog.Status.SUCCESS and reader.error is not None:
            # An error event the provider sent in the stream (relayed as it came).
            error = reader.error
            status, error_type, http_status = SpendLog.Status.ERROR, error.code or error.type, error.status
        account.settle(status=status, usage=reader.usage, http_status=http_status, error_type=error_type)


async def _chain(first: bytes, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in events:
            yield chunk
    finally:
        await events.aclose()


class _UsageReader:
    """Reads a native stream's usage as its bytes pass, and never raises: an error event ends
    the reading (kept in `error`), and so does an event the translation does not know, keeping
    the usage read so far. The bytes go to the client either way."""

    def __init__(self, deployment: Deployment, path: str) -> None:
        self.error: GatewayError | None = None
        self._usage = Usage()
        try:
            self._translator = deployment.adapter.passthrough_stream_translator(path, deployment)
            self._decoder = decoder_for(deployment.adapter.stream_format, deployment.provider)
        except (GatewayError, NotImplementedError):
            self._translator = None

    @property
    def usage(self) -> Usage:
        return self._translator.usage if self._translator is not None else self._usage

    def feed(self, data: bytes) -> None:
        if self._translator is not None:
            self._read(lambda: self._decoder.feed(data))

    def close(self) -> None:
        if self._translator is not None:
            self._read(self._decoder.close)

    def _read(self, decode) -> None:
        try:
            for event, payload in decode():
                self._translator.feed(event, payload)
        except GatewayError as error:
            self.error = error
            self._stop()
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            self._stop()

    def _stop(self) -> None:
        self._usage, self._translator = self._translator.usage, None


class _WholeAnswerReader(_UsageReader):
    """A stream sent as one JSON document: kept as it passes (up to a bound) and read whole at the
    end by the adapter's translation."""

    LIMIT = 32 * 1024 * 1024

    def __init__(self, deployment: Deployment, path: str) -> None:
        self.error = None
        self._translator = None
        self._usage = Usage()
        self._deployment, self._path = deployment, path
        self._parts: list[bytes] | None = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        if self._parts is not None:
            self._size += len(data)
            if self._size > self.LIMIT:
                self._parts = None  # too big to keep: its usage stays unread
            else:
                self._parts.append(data)

    def close(self) -> None:
        if self._parts is not None:
            self._usage = _answer_usage(self._deployment, self._path, b"".join(self._parts))
