from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from apps.customers.models import Budget, EndUser
from apps.keys.limits import LimitScope, usd_to_nanos

END_USER_KIND = "end_user"  # the limiter's kind (apps.keys.limits.LimitScope)


@dataclass(frozen=True, slots=True)
class EndUserLimits:
    """What the data plane needs of an end user that has limits or is blocked."""

    blocked: bool
    scope: LimitScope | None  # None: blocked, without limits


def _in_namespace(queryset: QuerySet, organization_id) -> QuerySet:
    """Rows of one organization's namespace (None: the proxy admin's, outside every organization)."""
    if organization_id is None:
        return queryset.filter(organization__isnull=True)
    return queryset.filter(organization_id=organization_id)


def end_user_scope(end_user: EndUser) -> LimitScope | None:
    """The end user's limits (its budget's), counted for it alone; None without any."""
    budget = end_user.budget
    if budget is None or not budget.has_limits:
        return None
    if budget.budget_duration:
        # The database's spend seeds a lost counter only within the period it belongs to.
        start = end_user.budget_period_start
        db_period = str(int(start.timestamp())) if start else "none"
    else:
        db_period = "all"
    return LimitScope(
        kind=END_USER_KIND,
        id=str(end_user.pk),
        rpm=budget.rpm_limit,
        tpm=budget.tpm_limit,
        parallel=budget.max_parallel_requests,
        budget_nanos=usd_to_nanos(budget.max_budget),
        soft_budget_nanos=usd_to_nanos(budget.soft_budget),
        budget_duration=budget.budget_duration,
        budget_anchor=budget.budget_anchor.timestamp(),
        db_spend_nanos=usd_to_nanos(end_user.spend) or 0,
        db_period=db_period,
        name=end_user.user_id,
    )


def end_users_with_limits(*, organization_id: str | None) -> dict[str, EndUserLimits]:
    """The end users of one namespace that are blocked or have limits, by the id clients send
    (the data plane's cache miss: one query, whatever else the namespace holds)."""
    end_users = _in_namespace(EndUser.objects, organization_id).filter(Q(blocked=True) | Q(budget__isnull=False))
    limited = {}
    for end_user in end_users.select_related("budget").iterator(chunk_size=2000):
        scope = end_user_scope(end_user)
        if scope is not None or end_user.blocked:
            limited[end_user.user_id] = EndUserLimits(blocked=end_user.blocked, scope=scope)
    return limited


# --- the management API -------------------------------------------------------------------


def end_user_get(*, organization_id, user_id: str) -> EndUser | None:
    return _in_namespace(EndUser.objects, organization_id).select_related("budget").filter(user_id=user_id).first()


def end_users_get(*, organization_id, user_ids: list[str]) -> list[EndUser]:
    return list(_in_namespace(EndUser.objects, organization_id).select_related("budget").filter(user_id__in=user_ids))


def end_user_list(*, scope: Q, organization_id=...) -> QuerySet:
    """End users within a caller's scope (a Q), optionally of one namespace."""
    end_users = EndUser.objects.filter(scope).select_related("budget")
    if organization_id is not ...:
        end_users = _in_namespace(end_users, organization_id)
    return end_users.order_by("organization_id", "user_id", "pk")


def budget_get(*, organization_id, budget_id: str) -> Budget | None:
    return _in_namespace(Budget.objects, organization_id).filter(budget_id=budget_id).first()


def budgets_get(*, organization_id, budget_ids: list[str]) -> list[Budget]:
    return list(_in_namespace(Budget.objects, organization_id).filter(budget_id__in=budget_ids))


def budget_list(*, scope: Q, organization_id=...) -> QuerySet:
    budgets = Budget.objects.filter(scope)
    if organization_id is not ...:
        budgets = _in_namespace(budgets, organization_id)
    return budgets.order_by("organization_id", "budget_id", "pk")


def budget_is_shared(*, budget: Budget, end_user: EndUser) -> bool:
    """Does another end user than this one use the budget?"""
    return budget.end_users.exclude(pk=end_user.pk).exists()
