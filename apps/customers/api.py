"""The management API's /customer and /budget routes (LiteLLM's shapes): a tenant's own customers,
the end users its clients name in the `user` field of requests, and the budgets they are held to.

Each organization has its own namespace of end users and budgets; a request names it with
`organization_id`, else means the caller's own (apps.management.permissions). Views validate,
check the caller's rights, call a service and shape the answer.
"""

from __future__ import annotations

from rest_framework.response import Response

from apps.core.durations import period_start_for_end
from apps.customers import selectors, services
from apps.customers import serializers as s
from apps.management.framework import ManagementAPIView, NotFoundError, model_errors_as_fields
from apps.management.lookups import organization_or_404
from apps.management.pagination import page_of
from apps.management.permissions import (
    customer_default_organization_id,
    customer_manager_check,
    customer_namespace_check,
    customer_scope,
    request_actor,
)
from apps.teams.models import Organization

CUSTOMER_FIELDS = {"user_id": "user_id", "alias": "alias", "budget": "budget_id"}
BUDGET_FIELDS = {"budget_anchor": "budget_reset_at"}


def _namespace(request, data: dict) -> Organization | None:
    """The organization whose end users and budgets the request means (None: the proxy admin's
    namespace, of keys outside every organization), after checking the caller may manage them."""
    actor = request_actor(request)
    customer_manager_check(actor)
    if data.get("organization_id"):
        organization = organization_or_404(data["organization_id"])
    else:
        organization_id = customer_default_organization_id(actor)
        organization = None if organization_id is None else organization_or_404(organization_id)
    customer_namespace_check(actor, organization)
    return organization


def _organization_id(organization: Organization | None):
    return organization.pk if organization else None


def _actor_name(request) -> str:
    user = request_actor(request).user
    return user.get_username() if user is not None and user.is_authenticated else "proxy_admin"


def _budget_values(data: dict, *, current_duration: str = "") -> dict:
    """The budget's fields in the request; LiteLLM's budget_reset_at (when the first period ends)
    becomes the anchor its periods follow from."""
    values = s.budget_limit_values(data)
    duration = values.get("budget_duration", current_duration)
    if "budget_anchor" in values and duration:
        values["budget_anchor"] = period_start_for_end(values["budget_anchor"], duration)
    return values


def _budget_or_404(organization, budget_id: str, *, param: str = "budget_id"):
    budget = selectors.budget_get(organization_id=_organization_id(organization), budget_id=budget_id)
    if budget is None:
        raise NotFoundError(f"No budget with id {budget_id!r}.", param=param)
    return budget


def _end_user_or_404(organization, user_id: str, *, param: str = "user_id"):
    end_user = selectors.end_user_get(organization_id=_organization_id(organization), user_id=user_id)
    if end_user is None:
        raise NotFoundError(f"End User Id={user_id} does not exist in db", param=param)
    return end_user


def _end_users_or_404(organization, user_ids: list[str]) -> list:
    found = selectors.end_users_get(organization_id=_organization_id(organization), user_ids=user_ids)
    missing = sorted(set(user_ids) - {e.user_id for e in found})
    if missing:
        raise NotFoundError(f"End User Id(s)={', '.join(missing)} do not exist in db", param="user_ids")
    return found


# --- end users ----------------------------------------------------------------------------


class CustomerNewApi(ManagementAPIView):
    """A new end user; inline limits (max_budget, rpm_limit, ...) give it a budget of its own."""

    input_serializer = s.CustomerNewInput

    def post(self, request):
        data = self.validated(request)
        organization = _namespace(request, data)
        budget = _budget_or_404(organization, data["budget_id"]) if data.get("budget_id") else None
        fields = {name: data[name] for name in ("alias", "blocked", "metadata", "spend") if data.get(name) is not None}
        with model_errors_as_fields({**CUSTOMER_FIELDS, **BUDGET_FIELDS}):
            end_user = services.end_user_create(
                organization=organization, user_id=data["user_id"], budget=budget, limits=_budget_values(data),
                created_by=_actor_name(request), **fields,
            )
        return Response(s.customer_data(end_user))


class CustomerUpdateApi(ManagementAPIView):
    """Change an end user; only the fields given change. Limits change its own budget (a shared
    budget is copied first, so the other end users of that tier keep theirs)."""

    input_serializer = s.CustomerUpdateInput

    def post(self, request):
        data = self.validated(request)
        organization = _namespace(request, data)
        end_user = _end_user_or_404(organization, data["user_id"])
        changes = {}
        if "budget_id" in data:
            changes["budget"] = _budget_or_404(organization, data["budget_id"]) if data["budget_id"] else None
        fields = {name: data[name] for name in ("alias", "blocked", "metadata") if data.get(name) is not None}
        limits = _budget_values(data, current_duration=getattr(end_user.budget, "budget_duration", ""))
        with model_errors_as_fields({**CUSTOMER_FIELDS, **BUDGET_FIELDS}):
            end_user = services.end_user_update(end_user=end_user, limits=limits, updated_by=_actor_name(request),
                                                **changes, **fields)
        return Response(s.customer_data(end_user))


class CustomerDeleteApi(ManagementAPIView):
    """Delete end users (their spend logs stay)."""

    input_serializer = s.CustomerIdsInput

    def post(self, request):
        data = self.validated(request)
        organization = _namespace(request, data)
        end_users = _end_users_or_404(organization, data["user_ids"])
        deleted = services.end_users_delete(end_users=end_users)
        return Response({
            "deleted_customers": deleted,
            "message": f"Successfully deleted customers with ids: {data['user_ids']}",
        })


class CustomerInfoApi(ManagementAPIView):
    """An end user with its budget and its spend in the current budget period."""

    query_serializer = s.CustomerQuery

    def get(self, request):
        data = self.validated(request)
        organization = _namespace(request, data)
        param = "end_user_id" if data.get("end_user_id") else "user_id"
        return Response(s.customer_data(_end_user_or_404(organization, data[param], param=param)))


class CustomerListApi(ManagementAPIView):
    """The end users the caller manages (of one organization with organization_id), as LiteLLM's
    list; paged by page and page_size, the total in the x-total-count and x-total-pages headers."""

    query_serializer = s.CustomerListQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        customer_manager_check(actor)
        namespace = {}
        if data.get("organization_id"):
            organization = organization_or_404(data["organization_id"])
            customer_namespace_check(actor, organization)
            namespace["organization_id"] = organization.pk
        end_users = selectors.end_user_list(scope=customer_scope(actor), **namespace)
        page, total, pages = page_of(end_users, page=data["page"], size=data["page_size"])
        return Response([s.customer_data(e) for e in page],
                        headers={"x-total-count": str(total), "x-total-pages": str(pages)})


class CustomerBlockApi(ManagementAPIView):
    """Refuse every request naming these end users (403); ids not seen yet are made, blocked."""

    input_serializer = s.CustomerIdsInput
    blocked = True

    def post(self, request):
        data = self.validated(request)
        organization = _namespace(request, data)
        if not self.blocked:
            _end_users_or_404(organization, data["user_ids"])
        with model_errors_as_fields(CUSTOMER_FIELDS, other="user_ids"):
            changed = services.end_users_block(organization=organization, user_ids=data["user_ids"],
                                               blocked=self.blocked)
        users = [s.customer_data(e) for e in changed]
        if self.blocked:
            return Response({"blocked_users": users})
        # LiteLLM's unblock answers under "blocked_users" too; "unblocked_users" says what it is.
        return Response({"unblocked_users": users, "blocked_users": users})


class CustomerUnblockApi(CustomerBlockApi):
    """Serve these end users again."""

    blocked = False


# --- budgets ------------------------------------------------------------------------------


class BudgetNewApi(ManagementAPIView):
    """A new budget (a tier of limits end users are given); its id is made up when none is given."""

    input_serializer = s.BudgetNewInput

    def post(self, request):
        data = self.validated(request)
        organization = _namespace(request, data)
        with model_errors_as_fields(BUDGET_FIELDS):
            budget = services.budget_create(organization=organization, budget_id=data.get("budget_id") or None,
                                            created_by=_actor_name(request), **_budget_values(data))
        return Response(s.budget_data(budget))


class BudgetUpdateApi(ManagementAPIView):
    """Change a budget; only the fields given change (null removes a limit). Every end user given
    it is held to the new limits at once, on every replica."""

    input_serializer = s.BudgetUpdateInput

    def post(self, request):
        data = self.validated(request)
        organization = _namespace(request, data)
        budget = _budget_or_404(organization, data["budget_id"])
        with model_errors_as_fields(BUDGET_FIELDS):
            budget = services.budget_update(
                budget=budget, updated_by=_actor_name(request),
                **_budget_values(data, current_duration=budget.budget_duration),
            )
        return Response(s.budget_data(budget))


class BudgetInfoApi(ManagementAPIView):
    """The budgets with these ids (those that exist), as LiteLLM's POST /budget/info."""

    input_serializer = s.BudgetInfoInput

    def post(self, request):
        data = self.validated(request)
        organization = _namespace(request, data)
        budgets = selectors.budgets_get(organization_id=_organization_id(organization), budget_ids=data["budgets"])
        return Response([s.budget_data(b) for b in budgets])


class BudgetDeleteApi(ManagementAPIView):
    """Delete a budget; its end users keep their spend and lose its limits."""

    input_serializer = s.BudgetDeleteInput

    def post(self, request):
        data = self.validated(request)
        organization = _namespace(request, data)
        budget = _budget_or_404(organization, data["id"], param="id")
        answer = s.budget_data(budget)
        services.budget_delete(budget=budget)
        return Response(answer)


class BudgetListApi(ManagementAPIView):
    """The budgets the caller manages (of one organization with organization_id)."""

    query_serializer = s.BudgetListQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        customer_manager_check(actor)
        namespace = {}
        if data.get("organization_id"):
            organization = organization_or_404(data["organization_id"])
            customer_namespace_check(actor, organization)
            namespace["organization_id"] = organization.pk
        budgets = selectors.budget_list(scope=customer_scope(actor), **namespace)
        return Response([s.budget_data(b) for b in budgets])


class BudgetSettingsApi(ManagementAPIView):
    """A budget's configurable fields with their values and descriptions (LiteLLM's UI reads it)."""

    query_serializer = s.BudgetQuery

    def get(self, request):
        data = self.validated(request)
        organization = _namespace(request, data)
        return Response(s.budget_settings_data(_budget_or_404(organization, data["budget_id"])))
