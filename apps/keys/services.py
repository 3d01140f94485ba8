from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.keys.models import VirtualKey
from apps.teams.models import Organization, Team

KEY_PREFIX = "sk-"


def virtual_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def virtual_key_display(raw_key: str) -> str:
    return f"{KEY_PREFIX}…{raw_key[-4:]}"


def _new_raw_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def virtual_key_create(
    *,
    alias: str = "",
    models: list[str] | None = None,
    max_budget: Decimal | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    team: Team | None = None,
    organization: Organization | None = None,
    user: AbstractBaseUser | None = None,
    expires_at: datetime | None = None,
    metadata: dict | None = None,
    **limits,
) -> tuple[VirtualKey, str]:
    """Create a key. Returns the key row and the raw key, which is not stored anywhere."""
    if team is not None:
        if organization is not None and organization.pk != team.organization_id:
            raise ValidationError({"organization": "The team belongs to another organization."})
        organization = team.organization
    key = VirtualKey(
        alias=alias,
        models=list(models or []),
        max_budget=max_budget,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        team=team,
        organization=organization,
        user=user,
        expires_at=expires_at,
        metadata=metadata or {},
        **limits,  # soft_budget, budget_duration, max_parallel_requests, ...
    )
    raw_key = virtual_key_issue(key=key)
    return key, raw_key


@transaction.atomic
def virtual_key_issue(*, key: VirtualKey) -> str:
    """Give a new or existing key a fresh secret and save it. Returns the raw key, stored nowhere.

    For an existing key the old secret stops working on every replica.
    """
    old_hash = key.token_hash if key.pk else None
    raw_key = _new_raw_key()
    key.token_hash = virtual_key_hash(raw_key)
    key.key_display = virtual_key_display(raw_key)
    key.full_clean()
    key.save()
    if old_hash:
        from apps.keys.signals import key_hash_invalidate

        key_hash_invalidate(old_hash)
    return raw_key


@transaction.atomic
def virtual_key_set_blocked(*, key: VirtualKey, blocked: bool) -> VirtualKey:
    key.blocked = blocked
    key.save(update_fields=["blocked", "updated_at"])
    return key


@transaction.atomic
def virtual_key_spend_reset(*, key: VirtualKey) -> VirtualKey:
    """Start the key's budget afresh: its recorded spend and the counters enforcing it."""
    from apps.keys.limits import spend_counters_reset

    key.spend = 0
    key.save(update_fields=["spend", "updated_at"])
    transaction.on_commit(lambda: spend_counters_reset("key", key.pk))
    return key


# --- the management API -------------------------------------------------------------------


@transaction.atomic
def virtual_key_update(*, key: VirtualKey, **fields) -> VirtualKey:
    """Change a key's fields (saved through the ORM, so every replica drops its cached context).

    A key in a team always carries the team's organization."""
    for name, value in fields.items():
        setattr(key, name, value)
    if key.team_id is not None:
        if "organization" in fields and fields["organization"] is not None and (
            fields["organization"].pk != key.team.organization_id
        ):
            raise ValidationError({"organization": "The team belongs to another organization."})
        key.organization_id = key.team.organization_id
    key.full_clean()
    key.save()
    return key


@transaction.atomic
def virtual_key_delete(*, keys: list[VirtualKey]) -> None:
    for key in keys:
        key.delete()


def virtual_key_expiry(duration: str | None) -> datetime | None:
    """When a key made now with LiteLLM's `duration` (30s, 30m, 30h, 30d, 1mo) expires."""
    if not duration:
        return None
    from django.utils import timezone

    from apps.core.durations import current_period

    now = timezone.now()
    return current_period(now, duration, now)[1]
