"""A synthetic data set of spend logs, for capacity tests (`manage.py generate_spend_logs`).

Tenants, teams and keys are made through the ordinary services; the logs are written straight into
the table (COPY on PostgreSQL, bulk inserts elsewhere) because ten million of them through the spend
path would take hours. Key, team and organization spend totals are not touched: only the logs (and,
by a rollup rebuild, the rollups) describe the generated traffic.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable

from django.db import connection, transaction

from apps.spend.models import SpendLog

MAX_LOGS = 50_000_000  # bounded: a typo must not fill the disk
_BATCH = 20_000
_PREFIX = "synthetic-"


@dataclass(frozen=True)
class SyntheticKey:
    id: int
    token_hash: str
    team_id: str | None
    organization_id: str | None


def synthetic_world_create(*, organizations: int, teams_per_organization: int, keys_per_team: int,
                           seed: int) -> list[SyntheticKey]:
    from apps.keys.services import virtual_key_create
    from apps.teams.services import organization_create, team_create

    keys = []
    tag = f"{seed:x}-{uuid.uuid4().hex[:6]}"
    for o in range(organizations):
        organization = organization_create(name=f"synthetic-{tag}-org-{o}")
        for t in range(teams_per_organization):
            team = team_create(organization=organization, alias=f"synthetic-{tag}-team-{o}-{t}")
            for k in range(keys_per_team):
                key, _ = virtual_key_create(alias=f"synthetic-{tag}-key-{o}-{t}-{k}", team=team,
                                            organization=organization)
                keys.append(SyntheticKey(key.pk, key.token_hash, str(team.pk), str(organization.pk)))
    return keys


def spend_logs_generate(*, count: int, days: int, keys: list[SyntheticKey], seed: int = 1,
                        progress: Callable[[int, float], None] | None = None) -> int:
    """Write `count` spend logs spread over the last `days` days across `keys` (8 models, 2% errors,
    a few end users and tags). Returns how many were written."""
    if not 0 < count <= MAX_LOGS:
        raise ValueError(f"count must be between 1 and {MAX_LOGS:,}")
    if not keys:
        raise ValueError("no keys to attribute the logs to")
    rng = random.Random(seed)
    models = [f"synthetic-model-{n}" for n in range(8)]
    end_users = ["", "", "", "alice", "bob", "carol"]
    now = datetime.now(timezone.utc)
    span = max(days, 1) * 86400
    run = uuid.uuid4().hex[:8]
    started, written = time.perf_counter(), 0
    while written < count:
        size = min(_BATCH, count - written)
        rows = []
        for n in range(written, written + size):
            key = keys[rng.randrange(len(keys))]
            moment = now - timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(1_000_000))
            error = rng.random() < 0.02
            prompt, completion = rng.randrange(20, 2000), (0 if error else rng.randrange(5, 800))
            cost = Decimal(0) if error else (Decimal(prompt) * Decimal("0.0000025") + Decimal(completion) * Decimal("0.00001"))
            rows.append((
                f"{_PREFIX}{run}-{n}", key.id, key.token_hash, key.team_id, key.organization_id,
                "chat_completion", rng.choice(models), "openai", prompt, completion,
                cost, "error" if error else "success", 500 if error else 200, "no_usage" if error else "priced",
                moment, moment + timedelta(milliseconds=rng.randrange(50, 4000)), rng.choice(end_users),
                "", 0, 0, True, "upstream_error" if error else "", False, rng.randrange(50, 4000), "", False,
                {"tags": [rng.choice(["prod", "staging", "batch"])]},
            ))
        _rows_write(rows)
        written += size
        if progress:
            progress(written, time.perf_counter() - started)
    return written


_COLUMNS = ("request_id", "key_id", "key_hash", "team_id", "organization_id", "call_type", "model", "provider",
            "prompt_tokens", "completion_tokens", "cost", "status", "http_status", "cost_status", "start_time",
            "end_time", "end_user", "upstream_model", "cached_tokens", "reasoning_tokens", "usage_reported",
            "error_type", "is_stream", "latency_ms", "price_version", "cache_hit", "metadata")


def _rows_write(rows: list[tuple]) -> None:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            import orjson

            meta = SpendLog._meta
            column_of = {f.attname: f.column for f in meta.concrete_fields}
            quote = connection.ops.quote_name
            columns = ", ".join(quote(column_of[name]) for name in _COLUMNS)
            with connection.cursor() as cursor, cursor.cursor.copy(
                f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row((*row[:-1], orjson.dumps(row[-1]).decode()))
        else:
            SpendLog.objects.bulk_create([SpendLog(**dict(zip(_COLUMNS, row))) for row in rows], batch_size=2000)
