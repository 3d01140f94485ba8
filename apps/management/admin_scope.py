"""Admin scoping: staff users attached to organizations see and change only those organizations'
objects; superusers see everything.

A staff user's organizations are its OrganizationMemberships: any role may view,
the admin role may also add, change and delete.
"""

from __future__ import annotations

from contextlib import contextmanager

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.core.exceptions import FieldDoesNotExist
from django.db.models import QuerySet
from rest_framework.exceptions import PermissionDenied

from apps.core.fields import BoundedJSONAdminMixin
from apps.management.permissions import admin_actor, membership_grant_check, team_member_limits_check
from apps.teams.models import Organization, OrganizationMembership


@contextmanager
def permission_errors_as_form_errors(form: forms.BaseForm, field_names: dict[str, str]):
    """Report a refusal of apps.management.permissions (the management API's rules, which the admin
    keeps too) as an error on the form field its `param` names (`field_names`: param → field)."""
    try:
        yield
    except PermissionDenied as exc:
        field = field_names.get(getattr(exc, "param", None) or "")
        form.add_error(field if field in form.fields else None, str(exc.detail))


class AdminRequestFormMixin:
    """Hands the request to the ModelAdmin's form (as `admin_request`), for its permission checks."""

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.admin_request = request  # a fresh class per call: nothing leaks between requests
        return form


class AdminRequestInlineMixin:
    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.admin_request = request
        return formset


# A team membership's own limits in its team (apps.teams.models.TeamMembership).
TEAM_MEMBER_LIMIT_FIELDS = ("max_budget", "rpm_limit", "tpm_limit", "models")


class MembershipForm(forms.ModelForm):
    """A team or organization membership in the admin: the user must be one the staff user may
    give a membership (apps.management.permissions.membership_grant_check)."""

    def clean(self):
        cleaned = super().clean()
        request = getattr(self, "admin_request", None)
        team = cleaned.get("team") or getattr(self.instance, "team", None)
        limits = {name: cleaned.get(name) for name in TEAM_MEMBER_LIMIT_FIELDS if name in self.changed_data}
        if request is not None and team is not None and limits:
            # A member's own limits in the team stay within the team's, as on /team/member_update.
            with permission_errors_as_form_errors(self, {"max_budget_in_team": "max_budget", "rpm_limit": "rpm_limit",
                                                         "tpm_limit": "tpm_limit", "models": "models"}):
                team_member_limits_check(admin_actor(request), team, limits)
        user = cleaned.get("user")
        if request is None or user is None or not (self.instance.pk is None or "user" in self.changed_data):
            return cleaned
        organization = cleaned.get("organization") or getattr(self.instance, "organization", None)
        organization_id = team.organization_id if team is not None else getattr(organization, "pk", None)
        with permission_errors_as_form_errors(self, {"user": "user"}):
            membership_grant_check(admin_actor(request), user=user, organization_id=organization_id, param="user")
        return cleaned


def admin_organization_ids(user, *, writable: bool = False) -> set | None:
    """The organizations a staff user works in (None: every organization)."""
    if user.is_superuser:
        return None
    memberships = OrganizationMembership.objects.filter(user=user)
    if writable:
        memberships = memberships.filter(role=OrganizationMembership.Role.ADMIN)
    cache_name = "_gateway_admin_orgs_rw" if writable else "_gateway_admin_orgs"
    if not hasattr(user, cache_name):
        setattr(user, cache_name, set(memberships.values_list("organization_id", flat=True)))
    return getattr(user, cache_name)


class OrganizationScopedAdmin(BoundedJSONAdminMixin, admin.ModelAdmin):
    """A ModelAdmin whose rows belong to an organization, reached by `organization_path`."""

    organization_path = "organization"
    # Models with rows shared by every organization (organization empty) show those read-only.
    shared_rows_when_empty = False

    def _organization_id(self, obj):
        if obj is None:
            return None
        value = obj
        for part in self.organization_path.split("__"):
            if part == "pk":
                return value.pk
            value = getattr(value, part, None)
            if value is None:
                return None
        return value.pk if hasattr(value, "pk") else value

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        organizations = admin_organization_ids(request.user)
        if organizations is None:
            return queryset
        lookup = "pk__in" if self.organization_path == "pk" else f"{self.organization_path}__in"
        scoped = queryset.filter(**{lookup: organizations})
        if self.shared_rows_when_empty:
            scoped = scoped | queryset.filter(**{f"{self.organization_path}__isnull": True})
        return scoped.distinct() if "__" in self.organization_path else scoped

    def get_list_filter(self, request):
        """A filter on a relation (organization, team, user) lists every row of the related model,
        other organizations' too: for scoped staff it lists only the ones its own rows point to."""
        list_filter = super().get_list_filter(request)
        if admin_organization_ids(request.user) is None:
            return list_filter
        return tuple((self._field_path(entry), admin.RelatedOnlyFieldListFilter) if self._is_relation(entry)
                     else entry for entry in list_filter)

    @staticmethod
    def _field_path(entry) -> str:
        return entry[0] if isinstance(entry, tuple) else entry

    def _is_relation(self, entry) -> bool:
        if isinstance(entry, tuple) and entry[1] is admin.RelatedFieldListFilter:
            entry = entry[0]  # Django's related filter named outright: every row of the related model too
        if not isinstance(entry, str):
            return False  # a filter class of its own: its author chose its choices
        try:
            return get_fields_from_path(self.model, entry)[-1].is_relation
        except (FieldDoesNotExist, NotRelationField):
            return False

    def _in_scope(self, request, obj, *, writable: bool) -> bool:
        organizations = admin_organization_ids(request.user, writable=writable)
        if organizations is None:
            return True
        if not organizations:
            return False
        return obj is None or self._organization_id(obj) in organizations

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff and (
            request.user.is_superuser or bool(admin_organization_ids(request.user))
        )

    def has_view_permission(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return super().has_view_permission(request, obj)
        if obj is not None and self.shared_rows_when_empty and self._organization_id(obj) is None:
            return bool(admin_organization_ids(request.user))
        return request.user.is_staff and self._in_scope(request, obj, writable=False)

    def has_change_permission(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return super().has_change_permission(request, obj)
        if obj is not None and self._organization_id(obj) is None:
            return False  # shared rows are the superusers' to change
        return request.user.is_staff and self._in_scope(request, obj, writable=True)

    def has_add_permission(self, request) -> bool:
        if request.user.is_superuser:
            return super().has_add_permission(request)
        return request.user.is_staff and bool(admin_organization_ids(request.user, writable=True))

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """Offer only in-scope organizations and teams in the forms."""
        organizations = admin_organization_ids(request.user, writable=True)
        if organizations is not None:
            if db_field.related_model is Organization:
                kwargs["queryset"] = Organization.objects.filter(pk__in=organizations)
            elif db_field.related_model.__name__ == "Team":
                kwargs["queryset"] = db_field.related_model.objects.filter(organization__in=organizations)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
