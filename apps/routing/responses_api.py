"""/v1/responses views: thin, the flow is apps.routing.proxy's, the format apps.routing.responses_format's.

Stored responses are read through apps.routing.responses_store (an in-process cache; a
miss costs one database query) and visible only to their owner: the creating key's team,
or the key itself when it has no team. Anyone else gets the same 404 as for an unknown id.
"""

from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse

from apps.core.errors import GatewayError, invalid_request, not_found
from apps.providers.adapters.base import Operation
from apps.routing.batch_store import referenced_files_check
from apps.routing.proxy import proxy_request, refused_before_routing
from apps.routing.responses_format import ResponsesFormat
from apps.routing.responses_store import ResponseRecord, response_store
from apps.routing.validation import json_body


def _json(payload, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")


def _not_found(response_id: str, param: str | None = None) -> Exception:
    code = "previous_response_not_found" if param == "previous_response_id" else "not_found"
    return not_found(f"Response with id '{response_id}' not found.", param=param, code=code)


async def _stored(request: HttpRequest, response_id: str) -> ResponseRecord:
    record = await response_store.get(response_id, request.auth)
    if record is None:
        raise _not_found(response_id)
    return record


async def responses_create(request: HttpRequest) -> HttpResponse:
    body = {}
    try:
        body = json_body(request)
        await referenced_files_check(request.body, body, request.auth)
        previous = None
        previous_id = body.get("previous_response_id")
        if previous_id is not None:
            if not isinstance(previous_id, str) or not previous_id:
                raise invalid_request("'previous_response_id' must be a response id.", param="previous_response_id")
            previous = await response_store.get(previous_id, request.auth)
            if previous is None:
                raise _not_found(previous_id, "previous_response_id")
    except GatewayError as error:
        model = body.get("model") if isinstance(body.get("model"), str) else ""
        raise refused_before_routing(request, Operation.RESPONSES, error, model=model) from None
    client_format = ResponsesFormat(request.auth, body, previous)
    return await proxy_request(request, Operation.RESPONSES, client_format=client_format)


async def responses_retrieve(request: HttpRequest, response_id: str) -> HttpResponse:
    record = await _stored(request, response_id)
    return _json(record.response)


async def responses_delete(request: HttpRequest, response_id: str) -> HttpResponse:
    await _stored(request, response_id)
    await response_store.delete(response_id)
    return _json({"id": response_id, "object": "response", "deleted": True})


async def responses_cancel(request: HttpRequest, response_id: str) -> HttpResponse:
    await _stored(request, response_id)
    # As OpenAI: only background responses can be cancelled, and the gateway runs none.
    raise invalid_request("Only responses created with background=true can be cancelled.", param="response_id")


async def responses_input_items(request: HttpRequest, response_id: str) -> HttpResponse:
    record = await _stored(request, response_id)
    items = list(record.input_items)
    order = request.GET.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_request("'order' must be asc or desc.", param="order")
    if order == "desc":
        items.reverse()
    after = request.GET.get("after")
    if after:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise invalid_request(f"No input item with id '{after}'.", param="after")
        items = items[ids.index(after) + 1:]
    try:
        limit = int(request.GET.get("limit", "20"))
    except ValueError:
        raise invalid_request("'limit' must be an integer from 1 to 100.", param="limit") from None
    if not 1 <= limit <= 100:
        raise invalid_request("'limit' must be an integer from 1 to 100.", param="limit")
    page = items[:limit]
    return _json({
        "object": "list", "data": page, "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None, "has_more": len(items) > limit,
    })
