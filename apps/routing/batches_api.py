"""/v1/files and /v1/batches: OpenAI's Batch API on the gateway's OpenAI and Azure deployments.

A file and a batch belong to the key's team (or to the key, without a team): another team's
key gets the 404 an unknown id gets. Ownership is read through apps.routing.batch_store (the
request path's cache); only the two list routes read the database.

Upload (purpose "batch"): the JSONL is checked (apps.routing.batch_input), its one model
resolved as a request's is (aliases, model access: 403), one deployment of that group with a
Batch API picked for the whole batch, each line's model rewritten to that deployment's, and
the file stored there. Batch create: the input file must be the key's; the most the batch can
cost at batch prices is reserved against the key's, team's and organization's budgets for two
days (an exhausted budget is a 429 insufficient_quota), then the batch is created on the
file's deployment. apps.routing.batch_settlement follows it until it ends, then logs its cost.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import datetime, timezone
from typing import AsyncIterator

import aiohttp
import orjson
from django.http import HttpRequest, HttpResponse

from apps.billing.entitlement import entitlement_check
from apps.core.db import db_call
from apps.core.edge import REQUEST_ID_SCOPE_KEY
from apps.core.errors import GatewayError, invalid_request, not_found
from apps.keys.context import KeyContext
from apps.providers.adapters.base import Operation, UploadedPart, multipart_chunks
from apps.providers.registry import Deployment, deployment_registry
from apps.routing.batch_input import batch_input_for, batch_input_parse, batch_max_cost_nanos
from apps.routing.batch_store import BatchRecord, FileRecord, batch_store, file_store
from apps.routing.batch_upstream import upstream_json, upstream_send
from apps.routing.limits import limits_reserve, limits_settle, request_scopes
from apps.routing.multipart import multipart_form
from apps.routing.passthrough import PassThroughStream
from apps.routing.proxy import RequestAccount
from apps.routing.router import model_group_resolve
from apps.routing.selection.policy import routing_policy_cache
from apps.routing.selectors import managed_batches_list, managed_files_list
from apps.routing.validation import enforced_params_check, json_body

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
COMPLETION_WINDOWS = ("24h",)
# A batch's reservation lives this long unless settled first: its 24 hours, the time the
# provider takes to finish it, and the poller's (apps.routing.tasks.batches_poll) delay.
BATCH_HOLD_MS = 48 * 3600 * 1000
_CREATE_FIELDS = {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}
# LiteLLM's routing fields in a batch body (its docs pass them in extra_body): the file's model
# already decides, so they are accepted and not sent on.
_LITELLM_ROUTING_FIELDS = ("custom_llm_provider", "target_model_names", "model")


def _json(payload, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")


def _not_found(kind: str, object_id: str, param: str = "id") -> GatewayError:
    return not_found(f"No such {kind} object: {object_id}", param=param)


def _query_limit(request: HttpRequest, default: int = 20) -> int:
    raw = request.GET.get("limit", str(default))
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise invalid_request("'limit' must be an integer from 1 to 10000.", param="limit")
    return int(raw)


async def _stored_deployment(record_kind: str, deployment_id: int | None) -> Deployment:
    deployment = await deployment_registry.deployment(deployment_id)
    if deployment is None:
        raise GatewayError(f"The deployment that holds this {record_kind} was removed from the gateway.",
                           status=410, type="invalid_request_error", code="deployment_removed")
    return deployment


# --- files ----------------------------------------------------------------------------------


async def _batch_deployments(context: KeyContext, model: str) -> tuple[str, list[Deployment], tuple]:
    """The model (after the key's and team's aliases), its deployments with a Batch API in a
    random order, and the limit scopes a request of it counts against. 404/403 as for a request."""
    model = context.model_aliases.get(model, model)
    routing_policy = await routing_policy_cache.get()
    model = context.team_model_aliases.get(model, model)
    group = await model_group_resolve(model, context, routing_policy)
    candidates = [d for d in group.deployments if d.adapter.batches and not d.is_wildcard]
    if not candidates:
        raise invalid_request(
            f"The model '{model}' has no deployment with a Batch API (OpenAI or Azure OpenAI).",
            param="model", code="batches_not_supported",
        )
    random.shuffle(candidates)
    return model, candidates, request_scopes(context, model, group.limit_scopes)


async def _default_model(context: KeyContext) -> str:
    """For a file that is not a batch's and names no model (LiteLLM's default of its OpenAI
    account): the first model group, by name, this key may use that has a Batch API deployment."""
    routing_policy = await routing_policy_cache.get()
    for name in sorted(await deployment_registry.groups()):
        try:
            group = await model_group_resolve(name, context, routing_policy)
        except GatewayError:
            continue
        if any(d.adapter.batches and not d.is_wildcard for d in group.deployments):
            return name
    raise invalid_request("Name the model the file is for ('model' or LiteLLM's 'target_model_names'): this key "
                          "may use no OpenAI or Azure OpenAI deployment.", param="model", code="model_not_found")


async def _counted(context: KeyContext, scopes: tuple, request_id: str) -> None:
    """A files call counts as a request (rate limits; an exhausted budget refuses it) and costs nothing."""
    if scopes:
        no_parallel = tuple(dataclasses.replace(s, parallel=None) if s.parallel else s for s in scopes)
        await limits_reserve(no_parallel, request_id, 0)
        await limits_settle(no_parallel, request_id, 0, None)


async def file_create(request: HttpRequest) -> HttpResponse:
    context: KeyContext = request.auth
    form = multipart_form(request)
    purpose = form.get("purpose")
    if not isinstance(purpose, str) or purpose not in PURPOSES:
        raise invalid_request(f"'purpose' must be one of {', '.join(PURPOSES)}.", param="purpose")
    upload = form.get("file")
    if not isinstance(upload, UploadedPart):
        raise invalid_request("Missing required parameter: 'file' (a file part of the form).", param="file")
    parsed = None
    if purpose == "batch":
        if not upload.filename.endswith(".jsonl"):
            raise invalid_request("A batch file must be a .jsonl file.", param="file", code="invalid_batch_file")
        parsed = batch_input_parse(bytes(upload.content))
        if context.enforced_params:  # every line is a request of the key's: no way around them
            for line in parsed.lines:
                enforced_params_check(line["body"], context.enforced_params)
        model = parsed.model
    else:
        named = form.get("model") or form.get("target_model_names")
        if isinstance(named, list):
            named = named[0] if named else None
        if named is not None and (not isinstance(named, str) or not named.strip()):
            raise invalid_request("'model' must name a model.", param="model")
        model = named.split(",")[0].strip() if named else await _default_model(context)
    model, candidates, scopes = await _batch_deployments(context, model)
    await entitlement_check(context)
    await _counted(context, scopes, request.scope.get(REQUEST_ID_SCOPE_KEY) or uuid.uuid4().hex)
    error: GatewayError | None = None
    for deployment in candidates:
        content = batch_input_for(parsed, deployment) if parsed else upload.content
        part = UploadedPart(filename=upload.filename, content_type=upload.content_type, content=content)
        chunks, content_type, length = multipart_chunks({"purpose": purpose, "file": part})
        try:
            file_object = await upstream_json(deployment, method="POST", path="/files", body=chunks,
                                              headers={"Content-Type": content_type, "Content-Length": str(length)})
        except GatewayError as failed:
            if failed.status < 500 and failed.status != 429:
                raise
            error = failed  # another deployment of the group may take it
            continue
        if not isinstance(file_object.get("id"), str):
            raise GatewayError("The upstream's file has no id.", status=502, type="api_error",
                               code="bad_upstream_response")
        file_store.add(FileRecord(
            id=file_object["id"], key_hash=context.token_hash, key_id=context.key_id, team_id=context.team_id,
            organization_id=context.organization_id, created_at=datetime.now(timezone.utc),
            deployment_id=deployment.id, purpose=purpose, filename=upload.filename, bytes=len(upload.content),
            file=file_object, model=model if parsed else "", endpoint=parsed.endpoint if parsed else "",
            request_count=len(parsed.lines) if parsed else 0,
            max_cost_nanos=batch_max_cost_nanos(parsed, deployment) if parsed else 0,
        ))
        return _json(file_object)
    raise error


async def _owned_file(request: HttpRequest, file_id: str) -> FileRecord:
    record = await file_store.get(file_id, request.auth)
    if record is None:
        raise _not_found("File", file_id)
    return record


async def file_retrieve(request: HttpRequest, file_id: str) -> HttpResponse:
    record = await _owned_file(request, file_id)
    deployment = await _stored_deployment("file", record.deployment_id)
    return _json(await upstream_json(deployment, method="GET", path=f"/files/{file_id}"))


async def file_content(request: HttpRequest, file_id: str) -> HttpResponse:
    """The file's bytes as the upstream sends them (an output file can be large: never buffered)."""
    record = await _owned_file(request, file_id)
    deployment = await _stored_deployment("file", record.deployment_id)
    response = await upstream_send(deployment, method="GET", path=f"/files/{file_id}/content", stream=True)
    return PassThroughStream(_relay(response), status=200,
                             content_type=response.headers.get("Content-Type", "application/octet-stream"),
                             headers={})


async def _relay(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    read_to_end = False
    try:
        async for chunk in response.content.iter_any():
            yield chunk
        read_to_end = True
    finally:
        if read_to_end:
            response.release()
        else:
            response.close()


async def file_delete(request: HttpRequest, file_id: str) -> HttpResponse:
    record = await _owned_file(request, file_id)
    deployment = await _stored_deployment("file", record.deployment_id)
    try:
        answer = await upstream_json(deployment, method="DELETE", path=f"/files/{file_id}")
    except GatewayError as error:
        if error.status != 404:
            raise
        answer = {"id": file_id, "object": "file", "deleted": True}  # gone upstream already
    await file_store.delete(file_id)
    return _json(answer)


async def file_list(request: HttpRequest) -> HttpResponse:
    purpose = request.GET.get("purpose") or None
    order = request.GET.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_request("'order' must be asc or desc.", param="order")
    page = await db_call(managed_files_list, context=request.auth, purpose=purpose, limit=_query_limit(request),
                         after=request.GET.get("after") or None, order=order)
    return _json(page)


# --- batches --------------------------------------------------------------------------------


def _create_body(request: HttpRequest) -> dict:
    body = {k: v for k, v in json_body(request).items() if k not in _LITELLM_ROUTING_FIELDS}
    unknown = sorted(set(body) - _CREATE_FIELDS)
    if unknown:
        raise invalid_request(f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0],
                              code="unknown_parameter")
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise invalid_request(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    if body["completion_window"] not in COMPLETION_WINDOWS:
        raise invalid_request("'completion_window' must be 24h.", param="completion_window", code="invalid_value")
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or len(metadata) > 16
        or not all(isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
                   for k, v in metadata.items())
    ):
        raise invalid_request("'metadata' is at most 16 string pairs (keys up to 64 characters, values up to 512).",
                              param="metadata", code="invalid_value")
    return body


async def batch_create(request: HttpRequest) -> HttpResponse:
    context: KeyContext = request.auth
    account = RequestAccount(context, Operation.CHAT, request.scope.get(REQUEST_ID_SCOPE_KEY))
    account.call_type = "batch"
    try:
        body = _create_body(request)
        input_file = await file_store.get(body["input_file_id"], context)
        if input_file is None:
            raise _not_found("File", body["input_file_id"], "input_file_id")
        if input_file.purpose != "batch" or not input_file.model:
            raise invalid_request(f"The file {input_file.id} was not uploaded with purpose 'batch'.",
                                  param="input_file_id", code="invalid_value")
        if body["endpoint"] != input_file.endpoint:
            raise invalid_request(f"'endpoint' must be the url the file's requests name ({input_file.endpoint}).",
                                  param="endpoint", code="invalid_value")
        account.model = input_file.model
        # Model access again: the key (or the model) may have changed since the upload.
        _, candidates, scopes = await _batch_deployments(context, input_file.model)
        deployment = next((d for d in candidates if d.id == input_file.deployment_id), None)
        if deployment is None:
            deployment = await _stored_deployment("file", input_file.deployment_id)
        account.deployment = deployment
        await entitlement_check(context)
        # A batch is not a connection held open: it counts against rate limits and budgets,
        # not against parallel requests, and holds its reservation for days.
        scopes = tuple(dataclasses.replace(s, parallel=None) if s.parallel else s for s in scopes)
        if scopes:
            account.limit_headers = await limits_reserve(scopes, account.request_id, input_file.max_cost_nanos,
                                                         BATCH_HOLD_MS)
        upstream_body = {**body, "endpoint": deployment.adapter.batch_endpoint(body["endpoint"])}
        try:
            batch = await upstream_json(deployment, method="POST", path="/batches", body=orjson.dumps(upstream_body),
                                        headers={"Content-Type": "application/json"})
            if not isinstance(batch.get("id"), str):
                raise GatewayError("The upstream's batch has no id.", status=502, type="api_error",
                                   code="bad_upstream_response")
        except BaseException:
            if scopes:
                await limits_settle(scopes, account.request_id, 0, None)  # nothing runs: release it
            raise
    except GatewayError as error:
        account.settle_error(error)
        raise account.error_with_headers(error) from None
    batch_store.add(BatchRecord(
        id=batch["id"], key_hash=context.token_hash, key_id=context.key_id, team_id=context.team_id,
        organization_id=context.organization_id, user_id=context.user_id, created_at=datetime.now(timezone.utc),
        deployment_id=deployment.id, model=input_file.model, input_file_id=input_file.id, endpoint=input_file.endpoint,
        reservation_id=account.request_id, limit_scopes=[dataclasses.asdict(s) for s in scopes],
        reserved_nanos=input_file.max_cost_nanos if scopes else 0, batch=batch,
    ))
    return HttpResponse(orjson.dumps(_as_openai(batch, input_file.endpoint)), content_type="application/json",
                        headers=account.limit_headers)


def _as_openai(batch: dict, endpoint: str) -> dict:
    """The batch as OpenAI names it (Azure spells its endpoint without /v1)."""
    return {**batch, "endpoint": endpoint} if batch.get("endpoint") and endpoint else batch


async def _owned_batch(request: HttpRequest, batch_id: str) -> BatchRecord:
    record = await batch_store.get(batch_id, request.auth)
    if record is None:
        raise _not_found("Batch", batch_id, "batch_id")
    return record


def _files_of(record: BatchRecord, batch: dict) -> None:
    """A batch's output and error files belong to the batch's owner (the upstream made them)."""
    for name in ("output_file_id", "error_file_id"):
        file_id = batch.get(name)
        if isinstance(file_id, str) and file_id:
            file_store.add_once(FileRecord(
                id=file_id, key_hash=record.key_hash, key_id=record.key_id, team_id=record.team_id,
                organization_id=record.organization_id, created_at=datetime.now(timezone.utc),
                deployment_id=record.deployment_id, purpose="batch_output", batch_id=record.id,
            ))


async def batch_retrieve(request: HttpRequest, batch_id: str) -> HttpResponse:
    record = await _owned_batch(request, batch_id)
    deployment = await _stored_deployment("batch", record.deployment_id)
    batch = await upstream_json(deployment, method="GET", path=f"/batches/{batch_id}")
    _files_of(record, batch)
    return _json(_as_openai(batch, record.endpoint))


async def batch_cancel(request: HttpRequest, batch_id: str) -> HttpResponse:
    record = await _owned_batch(request, batch_id)
    deployment = await _stored_deployment("batch", record.deployment_id)
    batch = await upstream_json(deployment, method="POST", path=f"/batches/{batch_id}/cancel")
    return _json(_as_openai(batch, record.endpoint))


async def batch_list(request: HttpRequest) -> HttpResponse:
    page = await db_call(managed_batches_list, context=request.auth, limit=_query_limit(request),
                         after=request.GET.get("after") or None)
    return _json(page)
