"""Files and batches made through /v1/files and /v1/batches: owned records
(apps.routing.owned_store), so a key reads only its team's (another team's is a 404), and the
request path finds them in process memory or Redis, the database on a miss only."""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.routing.owned_store import OwnedRecord, OwnedRecordStore

KIND_FILE_DELETED = "file_deleted"  # an invalidation message: drop this file


@dataclass(slots=True, kw_only=True)
class FileRecord(OwnedRecord):
    deployment_id: int | None
    purpose: str
    filename: str = ""
    bytes: int = 0
    file: dict = field(default_factory=dict)  # the file object as the upstream answered it
    # A batch input file: the one model group its lines name, their endpoint (OpenAI's
    # spelling), how many there are, and the most they can cost at batch prices.
    model: str = ""
    endpoint: str = ""
    request_count: int = 0
    max_cost_nanos: int = 0
    batch_id: str = ""  # a batch's output or error file: the batch


@dataclass(slots=True, kw_only=True)
class BatchRecord(OwnedRecord):
    user_id: int | None
    deployment_id: int
    model: str
    input_file_id: str
    endpoint: str
    reservation_id: str  # the limiter's id of the budget reservation the batch holds
    limit_scopes: list = field(default_factory=list)  # LimitScope fields, to settle it later
    reserved_nanos: int = 0
    batch: dict = field(default_factory=dict)  # the batch object as the upstream first answered it


file_store: OwnedRecordStore[FileRecord] = OwnedRecordStore(
    name="files", record_type=FileRecord,
    write="apps.routing.services.managed_files_write",
    get="apps.routing.selectors.managed_file_get",
    delete="apps.routing.services.managed_file_delete",
    deleted_kind=KIND_FILE_DELETED,
)

batch_store: OwnedRecordStore[BatchRecord] = OwnedRecordStore(
    name="batches", record_type=BatchRecord,
    write="apps.routing.services.managed_batches_write",
    get="apps.routing.selectors.managed_batch_get",  # batches are never deleted (OpenAI's are not)
)


def _part_file_id(part) -> str | None:
    """The uploaded file a content part names: OpenAI chat's `file` part, the Responses API's
    `input_file` and `input_image`, Anthropic's document or image with a `file` source."""
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind == "file" and isinstance(part.get("file"), dict):
        file_id = part["file"].get("file_id")
    elif kind in ("input_file", "input_image"):
        file_id = part.get("file_id")
    elif isinstance(part.get("source"), dict) and part["source"].get("type") == "file":
        file_id = part["source"].get("file_id")
    else:
        return None
    return file_id if isinstance(file_id, str) else None


def _file_ids(body: dict) -> list[str]:
    found = []
    for name in ("messages", "input"):
        items = body.get(name)
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            parts = item.get("content")
            for part in (parts if isinstance(parts, list) else []) + [item]:
                file_id = _part_file_id(part)
                if file_id is not None:
                    found.append(file_id)
    return found


async def referenced_files_check(raw_body: bytes, body: dict, context) -> None:
    """A request may name only files its key's team owns (a `file_id` in a message part, an
    input_file, an image): the provider account behind a deployment is every tenant's, so an id
    of another's file would read it. An unknown or another team's id is the 404 /v1/files gives.
    The byte search keeps the walk off requests that name no file."""
    if b"file_id" not in raw_body:
        return
    for file_id in dict.fromkeys(_file_ids(body)):
        if await file_store.get(file_id, context) is None:
            from apps.core.errors import not_found

            raise not_found(f"No such File object: {file_id}", param="file_id")
