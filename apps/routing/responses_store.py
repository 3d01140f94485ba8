"""Stored /v1/responses: an owned record (apps.routing.owned_store) written through a buffer,
read through an in-process cache, deleted as a tombstone every replica hears of."""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.routing.owned_store import OwnedRecord, OwnedRecordStore

KIND_RESPONSE_DELETED = "response_deleted"  # an invalidation message: drop this response


@dataclass(slots=True, kw_only=True)
class ResponseRecord(OwnedRecord):
    model: str
    deployment_id: int | None
    native: bool
    previous_response_id: str
    input_items: list = field(default_factory=list)
    output_items: list = field(default_factory=list)
    response: dict = field(default_factory=dict)


response_store: OwnedRecordStore[ResponseRecord] = OwnedRecordStore(
    name="responses", record_type=ResponseRecord,
    write="apps.routing.services.stored_responses_write",
    get="apps.routing.selectors.stored_response_get",
    delete="apps.routing.services.stored_response_delete",
    deleted_kind=KIND_RESPONSE_DELETED,
)
