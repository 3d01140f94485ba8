"""Writes of end users and budgets. Every write goes through .save()/.delete(): their signals are
what drops the changed namespace from every process's cache (apps.customers.cache)."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.customers import selectors
from apps.customers.models import Budget, EndUser

# The fields of a budget a request may set (LiteLLM's BudgetNewRequest, as far as implemented).
BUDGET_FIELDS = ("max_budget", "soft_budget", "budget_duration", "budget_anchor", "rpm_limit", "tpm_limit",
                 "max_parallel_requests")


def _limits_given(limits: dict | None) -> dict:
    """The limits a request sets (nulls and empty durations set nothing on a new budget); none
    when it sets only when periods start."""
    given = {name: value for name, value in (limits or {}).items() if value not in (None, "")}
    return given if set(given) - {"budget_anchor"} else {}


def _apply(entity, fields: dict) -> None:
    for name, value in fields.items():
        setattr(entity, name, value)
    entity.full_clean()
    entity.save()


@transaction.atomic
def budget_create(*, organization, budget_id: str | None = None, created_by: str = "", **limits) -> Budget:
    """A budget in an organization's namespace (None: the proxy admin's); its id is made up when
    none is given, as LiteLLM does."""
    budget_id = budget_id or str(uuid.uuid4())
    if selectors.budget_get(organization_id=organization.pk if organization else None, budget_id=budget_id):
        raise ValidationError({"budget_id": [f"Budget with id {budget_id!r} already exists."]})
    budget = Budget(organization=organization, budget_id=budget_id, created_by=created_by, updated_by=created_by)
    _apply(budget, limits)
    return budget


@transaction.atomic
def budget_update(*, budget: Budget, updated_by: str = "", **limits) -> Budget:
    _apply(budget, {**limits, "updated_by": updated_by})
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget) -> None:
    """The budget's end users keep their spend and lose its limits (ON DELETE SET NULL, as LiteLLM's;
    the budget's own post_delete drops its namespace from every cache)."""
    budget.delete()


@transaction.atomic
def end_user_create(*, organization, user_id: str, budget: Budget | None = None, limits: dict | None = None,
                    created_by: str = "", **fields) -> EndUser:
    """An end user of an organization's namespace. `limits` (LiteLLM's inline max_budget, rpm_limit,
    ...) make it a budget of its own, as LiteLLM's /customer/new does."""
    organization_id = organization.pk if organization else None
    if selectors.end_user_get(organization_id=organization_id, user_id=user_id) is not None:
        raise ValidationError(
            {"user_id": [f"Customer already exists, passed user_id={user_id}. Please pass a new user_id."]}
        )
    if _limits_given(limits):
        budget = budget_create(organization=organization, created_by=created_by, **_limits_given(limits))
    end_user = EndUser(organization=organization, user_id=user_id, budget=budget)
    try:
        with transaction.atomic():
            _apply(end_user, fields)
    except IntegrityError:  # the spend writer made it meanwhile, on its first request
        raise ValidationError({"user_id": [f"Customer already exists, passed user_id={user_id}."]}) from None
    return end_user


@transaction.atomic
def end_user_update(*, end_user: EndUser, budget=..., limits: dict | None = None, updated_by: str = "",
                    **fields) -> EndUser:
    """Change an end user; `budget` (a Budget, or None to drop it) moves it to another budget,
    `limits` change its own: its budget is changed in place if no other end user has it, else
    (a shared tier) it gets a copy of that budget with the changes, so the tier's other end users
    keep theirs."""
    if budget is not ...:
        fields["budget"] = budget
    current = end_user.budget if budget is ... else budget
    if current is None:
        if _limits_given(limits):
            fields["budget"] = budget_create(organization=end_user.organization, created_by=updated_by,
                                             **_limits_given(limits))
    elif limits:
        if selectors.budget_is_shared(budget=current, end_user=end_user):
            inherited = {name: getattr(current, name) for name in BUDGET_FIELDS}
            fields["budget"] = budget_create(organization=end_user.organization, created_by=updated_by,
                                             **{**inherited, **limits})
        else:
            budget_update(budget=current, updated_by=updated_by, **limits)
    _apply(end_user, fields)
    return end_user


@transaction.atomic
def end_users_delete(*, end_users: list[EndUser]) -> int:
    for end_user in end_users:
        end_user.delete()
    return len(end_users)


@transaction.atomic
def end_users_block(*, organization, user_ids: list[str], blocked: bool = True) -> list[EndUser]:
    """Block (or unblock) end users by id; blocking one not seen yet makes its row (LiteLLM's upsert)."""
    organization_id = organization.pk if organization else None
    found = {e.user_id: e for e in selectors.end_users_get(organization_id=organization_id, user_ids=user_ids)}
    changed = []
    for user_id in dict.fromkeys(user_ids):
        end_user = found.get(user_id) or EndUser(organization=organization, user_id=user_id)
        try:
            with transaction.atomic():
                _apply(end_user, {"blocked": blocked})
        except (IntegrityError, ValidationError):
            # The spend writer made it meanwhile (seen by the unique check, or by the insert): block that row.
            existing = selectors.end_user_get(organization_id=organization_id, user_id=user_id)
            if end_user.pk is not None or existing is None:
                raise
            end_user = existing
            _apply(end_user, {"blocked": blocked})
        changed.append(end_user)
    return changed
