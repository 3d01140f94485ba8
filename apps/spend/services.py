from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import fields, replace
from datetime import timezone
from decimal import Decimal
from operator import attrgetter

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import F, Q

from apps.billing.services import billing_events_add
from apps.core.db import delete_in_chunks
from apps.core.durations import current_period
from apps.core.fields import json_holds_nul, json_without_nul
from apps.customers.models import Budget, EndUser
from apps.keys.models import VirtualKey
from apps.spend.models import SpendLog, SpendReset, SpendRollupDay
from apps.spend.records import SpendRecord
from apps.spend.rollups import utc_today
from apps.teams.models import Organization, Team, TeamMembership, UserLimits

# SpendRecord's fields are named as SpendLog's attributes (key_id, start_time, ...).
_RECORD_FIELDS = [f.name for f in fields(SpendRecord)]
_record_values = attrgetter(*_RECORD_FIELDS)
_DATETIME_INDEXES = [_RECORD_FIELDS.index("start_time"), _RECORD_FIELDS.index("end_time")]
_COST_INDEX = _RECORD_FIELDS.index("cost")
_SAVED_COST_INDEX = _RECORD_FIELDS.index("saved_cost")
_UUID_INDEXES = [_RECORD_FIELDS.index("team_id"), _RECORD_FIELDS.index("organization_id")]
_JSON_INDEXES = [_RECORD_FIELDS.index(name) for name in ("metadata", "messages", "response")]
_METADATA_INDEX = _RECORD_FIELDS.index("metadata")
_JSON_FIELDS = ("metadata", "messages", "response")

logger = logging.getLogger(__name__)


def _record_storable(record: SpendRecord) -> SpendRecord:
    """PostgreSQL refuses NUL characters in text and in JSON strings, and a client's metadata or
    messages may hold one: such a row would fail its whole batch at every retry, and hold every
    other record back with it. NUL characters are dropped (the same on every database)."""
    changes = None
    for name, value in zip(_RECORD_FIELDS, _record_values(record)):
        if value.__class__ is str:
            if "\x00" in value:
                changes = changes or {}
                changes[name] = value.replace("\x00", "")
        elif value is not None and name in _JSON_FIELDS and _json_holds_nul(value):
            changes = changes or {}
            changes[name] = json_without_nul(value)
    return replace(record, **changes) if changes else record


def _json_holds_nul(value) -> bool:
    try:
        # orjson writes a NUL as \u0000, and walks the value in C (the spend writer runs on the
        # GIL the event loop needs).
        return b"\\u0000" in orjson.dumps(value)
    except TypeError:  # not plain JSON: the slow walk
        return json_holds_nul(value)


def _insert_sql() -> str:
    meta = SpendLog._meta
    column_of = {f.attname: f.column for f in meta.concrete_fields}
    columns = [column_of[name] for name in _RECORD_FIELDS]
    quote = connection.ops.quote_name
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT ({quote('request_id')}) DO NOTHING"
    )


def _json_text(value, encoder=None) -> str:
    """A JSON column's value for COPY (text format): orjson's text (C) rather than json.dumps."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, cls=DjangoJSONEncoder)


def _copy_sql() -> str:
    meta = SpendLog._meta
    column_of = {f.attname: f.column for f in meta.concrete_fields}
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column_of[name]) for name in _RECORD_FIELDS)
    return f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"


def _row(record: SpendRecord, adapt_datetime, adapt_decimal, adapt_json, uuid_ids: bool) -> list:
    row = list(_record_values(record))
    for index in _DATETIME_INDEXES:
        row[index] = adapt_datetime(row[index])
    if row[_COST_INDEX] is not None:
        row[_COST_INDEX] = adapt_decimal(row[_COST_INDEX], 20, 10)
    if row[_SAVED_COST_INDEX] is not None:
        row[_SAVED_COST_INDEX] = adapt_decimal(row[_SAVED_COST_INDEX], 20, 10)
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
            copying = connection.vendor == "postgresql"
            adapt_json = _json_text if copying else ops.adapt_json_value
            rows = [_row(r, ops.adapt_datetimefield_value, ops.adapt_decimalfield_value, adapt_json, uuid_ids)
                    for r in new]
            with connection.cursor() as cursor:
                if copying:
                    # COPY: psycopg adapts each row in C, where executemany's client-side binding
                    # spends ~4x the time in Python, holding the GIL the event loop needs. Safe
                    # without ON CONFLICT: the batch's ids were just checked in this transaction,
                    # and a racing writer's duplicate fails the batch, which is retried.
                    with cursor.cursor.copy(_copy_sql()) as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    cursor.executemany(_insert_sql(), rows)
        _spend_totals_add(new)
        _rollup_days_mark_stale(new)
        # The billing outbox row commits with its spend log, or neither does.
        billing_events_add(records=new)
    return len(new)


def _spend_totals_add(records: list[SpendRecord]) -> None:
    """Add the batch's cost to each key, user, team and organization: one UPDATE per entity.
    A user gets its UserLimits row on its first spend, so /user/info has its spend too."""
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
    _end_user_spend_add(records)


def _team_member_spend_add(records: list[SpendRecord]) -> None:
    """Each member's spend within its team (team_member_budget), per (team, user) pair."""
    totals: dict = defaultdict(Decimal)
    for record in records:
        if record.team_id is not None and record.user_id is not None and record.cost:
            totals[(record.team_id, record.user_id)] += record.cost
    for (team_id, user_id), amount in totals.items():
        TeamMembership.objects.filter(team_id=team_id, user_id=user_id).update(spend=F("spend") + amount)


def _end_user_spend_add(records: list[SpendRecord]) -> None:
    """Each end user's spend (apps.customers), per (organization, end user): its row is made the
    first time a request names it (as LiteLLM does). A batch costs one SELECT, one INSERT of the new
    ones (and a SELECT of their ids) and one executemany UPDATE, however many end users it names."""
    totals: dict = defaultdict(Decimal)
    for record in records:
        if record.end_user and (record.cost or record.status == SpendLog.Status.SUCCESS):
            totals[(record.organization_id, record.end_user)] += record.cost or Decimal(0)
    if not totals:
        return
    # Foreign keys are checked at commit: an organization deleted meanwhile is skipped (its logs
    # keep the spend), never allowed to fail the batch.
    organization_ids = {organization_id for organization_id, _ in totals if organization_id is not None}
    if organization_ids:
        existing = {str(pk) for pk in Organization.objects.filter(pk__in=organization_ids).values_list("pk", flat=True)}
        totals = {pair: amount for pair, amount in totals.items() if pair[0] is None or pair[0] in existing}
    pks = _end_user_pks(totals)
    missing = [pair for pair in totals if pair not in pks]
    if missing:
        # No post_save: a row without limits changes no process's cache. ignore_conflicts: another
        # replica's writer may make the same row at the same moment.
        EndUser.objects.bulk_create(
            [EndUser(organization_id=organization_id, user_id=user_id) for organization_id, user_id in missing],
            ignore_conflicts=True,
        )
        pks.update(_end_user_pks(dict.fromkeys(missing)))
    changes = sorted((pks[pair], amount) for pair, amount in totals.items() if amount and pair in pks)
    if changes:
        # In primary-key order, so two replicas' writers never wait on each other's rows in a cycle.
        table = connection.ops.quote_name(EndUser._meta.db_table)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET spend = spend + %s WHERE {connection.ops.quote_name(EndUser._meta.pk.column)} = %s",
                [(connection.ops.adapt_decimalfield_value(amount, 20, 10), pk) for pk, amount in changes],
            )


def _end_user_pks(pairs) -> dict:
    """{(organization id, end user id): primary key} of the end users that exist among `pairs`."""
    by_organization: dict = defaultdict(list)
    for organization_id, user_id in pairs:
        by_organization[organization_id].append(user_id)
    match = Q(pk__in=[])
    for organization_id, user_ids in by_organization.items():
        if organization_id is None:
            match |= Q(organization__isnull=True, user_id__in=user_ids)
        else:
            match |= Q(organization_id=organization_id, user_id__in=user_ids)
    return {
        (None if organization_id is None else str(organization_id), user_id): pk
        for pk, organization_id, user_id in EndUser.objects.filter(match).values_list("pk", "organization_id", "user_id")
    }


def _rollup_days_mark_stale(records: list[SpendRecord]) -> None:
    """Records of a day before yesterday (replayed after a long outage) arrive after the beat
    task stopped rebuilding that day: mark it, so the next run rebuilds it."""
    from datetime import timedelta

    yesterday = utc_today() - timedelta(days=1)
    old_days = {day for record in records if (day := record.start_time.astimezone(timezone.utc).date()) < yesterday}
    if old_days:
        SpendRollupDay.objects.filter(day__in=old_days).update(stale=True)


def _user_limits_spend_start(user_id: int, amount: Decimal) -> None:
    """A user's first spend: its UserLimits row, made here. A user deleted meanwhile is
    skipped (its logs keep the spend), never allowed to fail the batch."""
    from django.contrib.auth import get_user_model

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
    return rolled + _team_member_periods_roll(now) + _end_user_periods_roll(now)


def _team_member_periods_roll(now) -> int:
    """The same for each member of a team with a member budget duration."""
    from django.db.models import Sum

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


def _end_user_periods_roll(now) -> int:
    """The same for each end user whose budget has a duration (periods follow the budget's anchor)."""
    from django.db.models import Sum

    rolled = 0
    for budget in Budget.objects.exclude(budget_duration="").only("pk", "budget_duration", "budget_anchor"):
        start, _ = current_period(budget.budget_anchor, budget.budget_duration, now)
        for end_user in EndUser.objects.filter(budget=budget).exclude(budget_period_start=start).only(
                "pk", "organization_id", "user_id"):
            with transaction.atomic():
                EndUser.objects.select_for_update().filter(pk=end_user.pk).first()
                total = SpendLog.objects.filter(organization_id=end_user.organization_id, end_user=end_user.user_id,
                                                start_time__gte=start).aggregate(total=Sum("cost"))["total"]
                EndUser.objects.filter(pk=end_user.pk).update(spend=total or Decimal(0), budget_period_start=start)
            rolled += 1
    return rolled


def spend_logs_purge(*, older_than, dry_run: bool = False) -> int:
    """Delete spend logs that started before `older_than` (a datetime): on PostgreSQL the whole
    months before it go as tables (apps.spend.partitions), the rest in short chunks. Returns how
    many were (or, with dry_run, would be) deleted. Budget spend totals are not touched, and the
    daily rollups keep the purged days' spend."""
    from apps.spend.partitions import spend_log_partitions_drop_before

    _, dropped = spend_log_partitions_drop_before(cutoff=older_than, dry_run=dry_run)
    old = SpendLog.objects.filter(start_time__lt=older_than)
    if dry_run:
        # The month tables counted are still there: count what lies outside them only once.
        return old.count()
    return dropped + delete_in_chunks(old)


@transaction.atomic
def spend_reset_all(*, reset_by: str) -> SpendReset:
    """LiteLLM's POST /global/spend/reset: every budget's spend starts again from zero (keys,
    users, teams, team members, organizations, end users). The spend logs and rollups are kept:
    they are the record of what was spent; reconciliation counts from the reset on. After the
    commit every process drops its cached key contexts (which seed the limiter's counters) and
    then the limiter's spend counters go, so /v1 enforces budgets from zero at once."""
    from apps.core import invalidation
    from apps.keys.limits import spend_counters_reset_all

    for model in (VirtualKey, UserLimits, Team, TeamMembership, Organization, EndUser):
        model.objects.exclude(spend=0).update(spend=0)
    reset = SpendReset.objects.create(reset_by=reset_by[:255])

    def after_commit() -> None:
        invalidation.publish({"kind": invalidation.KIND_ALL_KEYS})
        spend_counters_reset_all()

    transaction.on_commit(after_commit)
    return reset
