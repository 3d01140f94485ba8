from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import fields, replace
from operator import attrgetter
from datetime import timezone
from decimal import Decimal

import orjson
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import F

from apps.billing.services import billing_events_add
from apps.keys.models import VirtualKey
from apps.spend.models import SpendLog
from apps.spend.records import SpendRecord
from apps.teams.models import Organization, Team

# SpendRecord's fields are named as SpendLog's attributes (key_id, start_time, ...).
_RECORD_FIELDS = [f.name for f in fields(SpendRecord)]
_record_values = attrgetter(*_RECORD_FIELDS)
_DATETIME_INDEXES = [_RECORD_FIELDS.index("start_time"), _RECORD_FIELDS.index("end_time")]
_COST_INDEX = _RECORD_FIELDS.index("cost")
_UUID_INDEXES = [_RECORD_FIELDS.index("team_id"), _RECORD_FIELDS.index("organization_id")]
_JSON_INDEXES = [_RECORD_FIELDS.index(name) for name in ("metadata", "messages", "response")]
_METADATA_INDEX = _RECORD_FIELDS.index("metadata")
_JSON_FIELDS = ("metadata", "messages", "response")

logger = logging.getLogger(__name__)


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _record_storable(record: SpendRecord) -> SpendRecord:
    """PostgreSQL refuses NUL characters in text and in JSON strings, and a client's metadata or
    messages may hold one: such a row would fail its whole batch at every retry, and hold every
    other record back with it. NUL characters are dropped (the same on every database)."""
    changes = {}
    for name in _RECORD_FIELDS:
        value = getattr(record, name)
        if isinstance(value, str):
            if "\x00" in value:
                changes[name] = value.replace("\x00", "")
        elif name in _JSON_FIELDS and value is not None and b"\\u0000" in orjson.dumps(value):
            changes[name] = _without_nul(value)
    return replace(record, **changes) if changes else record


def _insert_sql() -> str:
    meta = SpendLog._meta
    column_of = {f.attname: f.column for f in meta.concrete_fields}
    columns = [column_of[name] for name in _RECORD_FIELDS]
    quote = connection.ops.quote_name
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT ({quote('request_id')}) DO NOTHING"
    )


def _row(record: SpendRecord, adapt_datetime, adapt_decimal, adapt_json, uuid_ids: bool) -> list:
    row = list(_record_values(record))
    for index in _DATETIME_INDEXES:
        row[index] = adapt_datetime(row[index])
    if row[_COST_INDEX] is not None:
        row[_COST_INDEX] = adapt_decimal(row[_COST_INDEX], 20, 10)
    if row[_METADATA_INDEX] is None:
        row[_METADATA_INDEX] = {}
    for index in _JSON_INDEXES:
        if row[index] is not None:
            row[index] = adapt_json(row[index], None)
    if not uuid_ids:
        for index in _UUID_INDEXES:
            if row[index] is not None:
                row[index] = row[index].replace("-", "")  # SQLite keeps UUIDs as 32 hex digits
    return row


def spend_logs_write_batch(*, records: list[SpendRecord]) -> int:
    """Write a batch of spend records in one transaction. Idempotent on request_id:
    a record already written (a replay after a failed flush) changes nothing.
    Returns how many rows were new.

    One executemany of a plain INSERT rather than bulk_create: building model
    instances cost ~90 µs of GIL time per row, which stalled the server's event loop
    in the thread next to it (bench/: p99 latency). sqlite3 loops over the rows in C;
    psycopg pipelines them with the statement parsed once.
    """
    if not records:
        return 0
    try:
        return _spend_logs_write(records)
    except (DataError, IntegrityError, ValueError, TypeError):
        # Not an outage: some row cannot be stored. Written one by one, that row alone is
        # kept without its payloads (its tokens and cost still count), so no record holds
        # the others back and the batch does not go back to the buffer forever.
        if len(records) > 1:
            return sum(spend_logs_write_batch(records=[record]) for record in records)
        record = records[0]
        logger.exception("spend record %s could not be stored; written without its metadata and payloads",
                         record.request_id)
        try:
            return _spend_logs_write([replace(record, metadata=None, messages=None, response=None)])
        except (DataError, IntegrityError, ValueError, TypeError):
            logger.exception("spend record %s could not be stored at all (cost %s); dropped",
                             record.request_id, record.cost)
            return 0


def _spend_logs_write(records: list[SpendRecord]) -> int:
    records = [_record_storable(r) for r in records]
    by_id = {r.request_id: r for r in records}
    ops = connection.ops
    uuid_ids = connection.features.has_native_uuid_field
    with transaction.atomic():
        existing = set(
            SpendLog.objects.filter(request_id__in=list(by_id)).values_list("request_id", flat=True)
        )
        new = [r for rid, r in by_id.items() if rid not in existing]
        if new:
            rows = [_row(r, ops.adapt_datetimefield_value, ops.adapt_decimalfield_value, ops.adapt_json_value,
                         uuid_ids) for r in new]
            with connection.cursor() as cursor:
                cursor.executemany(_insert_sql(), rows)
        _spend_totals_add(new)
        _rollup_days_mark_stale(new)
        # The billing outbox row commits with its spend log, or neither does.
        billing_events_add(records=new)
    return len(new)


def _spend_totals_add(records: list[SpendRecord]) -> None:
    """Add the batch's cost to each key, user, team and organization: one UPDATE per entity.
    A user gets its UserLimits row on its first spend, so /user/info has its spend too."""
    from apps.teams.models import UserLimits

    for model, attribute in ((VirtualKey, "key_id"), (UserLimits, "user_id"), (Team, "team_id"),
                             (Organization, "organization_id")):
        totals: dict = defaultdict(Decimal)
        for record in records:
            entity_id = getattr(record, attribute)
            if entity_id is not None and record.cost:
                totals[entity_id] += record.cost
        for entity_id, amount in totals.items():
            if model is UserLimits:
                if not UserLimits.objects.filter(user_id=entity_id).update(spend=F("spend") + amount):
                    _user_limits_spend_start(entity_id, amount)
            else:
                model.objects.filter(pk=entity_id).update(spend=F("spend") + amount)
    _team_member_spend_add(records)


def _team_member_spend_add(records: list[SpendRecord]) -> None:
    """Each member's spend within its team (team_member_budget), per (team, user) pair."""
    from apps.teams.models import TeamMembership

    totals: dict = defaultdict(Decimal)
    for record in records:
        if record.team_id is not None and record.user_id is not None and record.cost:
            totals[(record.team_id, record.user_id)] += record.cost
    for (team_id, user_id), amount in totals.items():
        TeamMembership.objects.filter(team_id=team_id, user_id=user_id).update(spend=F("spend") + amount)


def _rollup_days_mark_stale(records: list[SpendRecord]) -> None:
    """Records of a day before yesterday (replayed after a long outage) arrive after the beat
    task stopped rebuilding that day: mark it, so the next run rebuilds it."""
    from datetime import timedelta

    from apps.spend.models import SpendRollupDay
    from apps.spend.rollups import utc_today

    yesterday = utc_today() - timedelta(days=1)
    old_days = {day for record in records if (day := record.start_time.astimezone(timezone.utc).date()) < yesterday}
    if old_days:
        SpendRollupDay.objects.filter(day__in=old_days).update(stale=True)


def _user_limits_spend_start(user_id: int, amount: Decimal) -> None:
    """A user's first spend: its UserLimits row, made here. A user deleted meanwhile is
    skipped (its logs keep the spend), never allowed to fail the batch."""
    from django.contrib.auth import get_user_model

    from apps.teams.models import UserLimits

    # Foreign keys are checked at commit (deferred): look first, or the whole batch would fail.
    if not get_user_model().objects.filter(pk=user_id).exists():
        return
    # bulk_create: no post_save, so no replica drops its key contexts for a row with no limits;
    # ignore_conflicts: a concurrent first spend made it already.
    UserLimits.objects.bulk_create([UserLimits(user_id=user_id)], ignore_conflicts=True)
    UserLimits.objects.filter(user_id=user_id).update(spend=F("spend") + amount)


def budget_periods_roll(*, now=None) -> int:
    """Start each entity's new budget period in the database: `spend` becomes what its spend
    logs add up to since the period began. Idempotent (a re-run computes the same), and safe
    beside the spend flusher (the row is locked while it is recomputed). Returns rows rolled.

    Enforcement does not wait for this: the limiter derives periods itself.
    """
    from django.db.models import Sum
    from django.utils import timezone

    from apps.core.durations import current_period
    from apps.teams.models import UserLimits

    now = now or timezone.now()
    rolled = 0
    for model, log_field in ((VirtualKey, "key_id"), (Team, "team_id"), (Organization, "organization_id"),
                             (UserLimits, "user_id")):
        for entity in model.objects.exclude(budget_duration="").only("pk", "budget_duration", "budget_anchor",
                                                                      "budget_period_start"):
            start, _ = current_period(entity.budget_anchor, entity.budget_duration, now)
            if entity.budget_period_start == start:
                continue
            owner = entity.user_id if model is UserLimits else entity.pk
            with transaction.atomic():
                model.objects.select_for_update().filter(pk=entity.pk).first()
                total = SpendLog.objects.filter(**{log_field: owner, "start_time__gte": start}).aggregate(
                    total=Sum("cost"))["total"] or Decimal(0)
                model.objects.filter(pk=entity.pk).update(spend=total, budget_period_start=start)
            rolled += 1
    return rolled + _team_member_periods_roll(now)


def _team_member_periods_roll(now) -> int:
    """The same for each member of a team with a member budget duration."""
    from django.db.models import Sum

    from apps.core.durations import current_period
    from apps.teams.models import TeamMembership

    rolled = 0
    for team in Team.objects.exclude(team_member_budget_duration="").only("pk", "team_member_budget_duration",
                                                                          "budget_anchor"):
        start, _ = current_period(team.budget_anchor, team.team_member_budget_duration, now)
        for membership in TeamMembership.objects.filter(team=team).exclude(budget_period_start=start):
            with transaction.atomic():
                TeamMembership.objects.select_for_update().filter(pk=membership.pk).first()
                total = SpendLog.objects.filter(team_id=team.pk, user_id=membership.user_id,
                                                start_time__gte=start).aggregate(total=Sum("cost"))["total"]
                TeamMembership.objects.filter(pk=membership.pk).update(spend=total or Decimal(0),
                                                                       budget_period_start=start)
            rolled += 1
    return rolled


# --- the price catalog ---------------------------------------------------------------------------

from dataclasses import dataclass  # noqa: E402
from dataclasses import field as dataclass_field  # noqa: E402
from datetime import datetime  # noqa: E402

DEFAULT_PRICES_SOURCE = "default catalog"  # the source of versions load_default_prices makes


class PriceImportError(Exception):
    """The price map is invalid: nothing was changed."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} error(s) in the price map; nothing was changed")
        self.errors = errors


@dataclass
class PriceChange:
    model_key: str
    differences: list[tuple[str, str, str]]  # (LiteLLM field, old, new)


@dataclass
class PriceImportReport:
    effective_from: "datetime"
    dry_run: bool
    created: list[str] = dataclass_field(default_factory=list)  # model keys with a first version
    changed: list[PriceChange] = dataclass_field(default_factory=list)  # a new version
    unchanged: int = 0
    kept: list[str] = dataclass_field(default_factory=list)  # changed locally: left alone
    warnings: list[str] = dataclass_field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.created or self.changed)

    def lines(self, *, limit: int = 200) -> list[str]:
        when = self.effective_from.isoformat()
        verb = "would be" if self.dry_run else "were"
        lines = [
            f"{len(self.created)} new model(s), {len(self.changed)} changed, {self.unchanged} unchanged"
            + (f", {len(self.kept)} kept as changed locally" if self.kept else "")
            + (f"; new versions {verb} effective from {when}." if self.has_changes else ".")
        ]
        lines += [f"  new      {key}" for key in self.created[:limit]]
        for change in self.changed[:limit]:
            lines.append(f"  changed  {change.model_key}")
            lines += [f"             {name}: {old} -> {new}" for name, old, new in change.differences]
        lines += [f"  kept     {key} (changed in the admin or by an import; not overwritten)"
                  for key in self.kept[:limit]]
        hidden = sum(max(len(items) - limit, 0) for items in (self.created, self.changed, self.kept))
        if hidden:
            lines.append(f"  ... and {hidden} more")
        lines += [f"  warning  {warning}" for warning in self.warnings]
        return lines


def _price_differences(latest, values: dict) -> list[tuple[str, str, str]]:
    from apps.spend.price_format import VERSIONED_FIELDS, format_value, litellm_field_name

    differences = []
    for name in VERSIONED_FIELDS:
        old = getattr(latest, name)
        new = values.get(name)
        if name in ("litellm_provider", "mode"):
            old, new = old or "", new or ""
        if old != new:  # Decimal("0.0000025000") == Decimal("0.0000025")
            label = litellm_field_name(name, values.get("tier_threshold_tokens") or latest.tier_threshold_tokens)
            differences.append((label, format_value(old), format_value(new)))
    return differences


def model_prices_import(
    *,
    document,
    source: str,
    effective_from: "datetime | None" = None,
    dry_run: bool = False,
    keep_local_changes: bool = False,
) -> PriceImportReport:
    """Add price versions from a LiteLLM price map (model_prices_and_context_window.json format).

    A model seen for the first time gets a first version; one whose prices or context window
    differ from its newest version gets a new version, effective from `effective_from` (now by
    default; never in the past nor before the version it follows: spend already logged keeps
    its prices). Models the map leaves out are left alone. With keep_local_changes, models whose
    newest version is not from the shipped catalog (changed in the admin or by import_prices)
    are left alone too. All or nothing: an invalid map raises PriceImportError.
    """
    from django.utils import timezone

    from apps.core import invalidation
    from apps.spend.models import ModelPrice
    from apps.spend.price_format import document_parse
    from apps.spend.pricing import KIND_PRICES
    from apps.spend.selectors import model_price_latest_by_key

    parsed = document_parse(document)
    if parsed.errors:
        raise PriceImportError(parsed.errors)
    now = timezone.now()
    effective_from = effective_from or now
    report = PriceImportReport(effective_from=effective_from, dry_run=dry_run, warnings=parsed.warnings)
    with transaction.atomic():
        latest_by_key = model_price_latest_by_key()
        errors: list[str] = []
        new_rows = []
        for entry in parsed.entries:
            latest = latest_by_key.get(entry.model_key)
            if latest is None:
                report.created.append(entry.model_key)
            else:
                differences = _price_differences(latest, entry.values)
                if not differences:
                    report.unchanged += 1
                    continue
                if keep_local_changes and not latest.source.startswith(DEFAULT_PRICES_SOURCE):
                    report.kept.append(entry.model_key)
                    continue
                if effective_from <= latest.effective_from:
                    errors.append(
                        f"{entry.model_key}: its newest version takes effect {latest.effective_from.isoformat()}; "
                        f"a change must take effect after it, not {effective_from.isoformat()}"
                    )
                    continue
                if effective_from < now:
                    errors.append(f"{entry.model_key}: a price change cannot take effect in the past "
                                  f"({effective_from.isoformat()}): spend already logged keeps its prices")
                    continue
                report.changed.append(PriceChange(entry.model_key, differences))
            new_rows.append(ModelPrice(model_key=entry.model_key, effective_from=effective_from,
                                       extra=entry.extra, source=source[:300], **entry.values))
        if errors:
            raise PriceImportError(errors)
        if dry_run or not new_rows:
            return report
        ModelPrice.objects.bulk_create(new_rows, batch_size=500)
        invalidation.publish_on_commit({"kind": KIND_PRICES})
    return report


def default_prices_document() -> dict:
    """The price catalog shipped with the gateway (apps/spend/data/prices.json)."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent / "data" / "prices.json"
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def default_prices_source(document: dict) -> str:
    compiled = (document.get("_catalog") or {}).get("compiled_on", "")
    return f"{DEFAULT_PRICES_SOURCE} ({compiled})" if compiled else DEFAULT_PRICES_SOURCE


def default_prices_load(*, dry_run: bool = False, effective_from=None) -> PriceImportReport:
    """Bring the shipped catalog in: new models and changed prices, except where an operator
    changed a model's prices (in the admin or by import_prices), which stay theirs."""
    document = default_prices_document()
    return model_prices_import(document=document, source=default_prices_source(document), dry_run=dry_run,
                               effective_from=effective_from, keep_local_changes=True)


def model_price_changed(*, price) -> None:
    """The admin saved or deleted a price version: every process reloads its catalog."""
    from apps.core import invalidation
    from apps.spend.pricing import KIND_PRICES

    invalidation.publish_on_commit({"kind": KIND_PRICES})


def spend_logs_purge(*, older_than, dry_run: bool = False) -> int:
    """Delete spend logs that started before `older_than` (a datetime), in short chunks. Returns
    how many were (or, with dry_run, would be) deleted. Budget spend totals are not touched, and
    the daily rollups keep the purged days' spend."""
    from apps.core.db import delete_in_chunks

    old = SpendLog.objects.filter(start_time__lt=older_than)
    return old.count() if dry_run else delete_in_chunks(old)
