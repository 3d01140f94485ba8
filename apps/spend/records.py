from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(slots=True)
class SpendRecord:
    """What the request path hands to the spend buffer; written later, in a batch."""

    request_id: str
    key_id: int | None
    key_hash: str
    team_id: str | None
    organization_id: str | None
    user_id: int | None
    call_type: str
    model: str
    deployment_id: int | None
    provider: str
    upstream_model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    usage_reported: bool
    cost: Decimal | None
    status: str
    http_status: int | None
    error_type: str
    is_stream: bool
    latency_ms: int
    start_time: datetime
    end_time: datetime
    cost_status: str = "priced"  # SpendLog.CostStatus
    price_version: str = ""  # apps.spend.pricing: which prices priced it
    metadata: dict | None = None  # the client's metadata and tags, bounded (apps.routing.proxy)
    messages: list | dict | None = None  # stored only when the key or team opted in
    response: dict | None = None
    end_user: str = ""  # the request's `user` (apps.customers), when it named one
    cache_hit: bool = False  # answered by the response cache (apps.routing.response_cache)
    saved_cost: Decimal | None = None  # a hit: what the upstream call would have cost


def record_to_json(record: SpendRecord) -> bytes:
    import orjson

    values = {name: getattr(record, name) for name in record.__slots__}
    values["cost"] = None if record.cost is None else str(record.cost)
    values["saved_cost"] = None if record.saved_cost is None else str(record.saved_cost)
    values["start_time"] = record.start_time.isoformat()
    values["end_time"] = record.end_time.isoformat()
    return orjson.dumps(values)


def record_from_json(data: bytes) -> SpendRecord:
    import orjson

    values = orjson.loads(data)
    values["cost"] = None if values["cost"] is None else Decimal(values["cost"])
    if values.get("saved_cost") is not None:
        values["saved_cost"] = Decimal(values["saved_cost"])
    values["start_time"] = datetime.fromisoformat(values["start_time"])
    values["end_time"] = datetime.fromisoformat(values["end_time"])
    known = set(SpendRecord.__slots__)
    return SpendRecord(**{k: v for k, v in values.items() if k in known})
