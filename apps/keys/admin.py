from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied as AdminPermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from rest_framework.exceptions import PermissionDenied

from apps.core import crypto
from apps.keys.models import VirtualKey
from apps.keys.services import (
    virtual_key_issue,
    virtual_key_set_blocked,
    virtual_key_spend_reset,
    virtual_key_update,
)
from apps.management.admin_hints import EmptyStateHintMixin
from apps.management.admin_scope import (
    AdminRequestFormMixin,
    OrganizationScopedAdmin,
    permission_errors_as_form_errors,
)
from apps.management.framework import FieldRefused, Forbidden
from apps.management.inputs import key_logging_values
from apps.management.permissions import (
    admin_actor,
    key_check,
    key_placement_check,
    key_regenerate_check,
    key_update_check,
)

PLACEMENT_FIELDS = ("user", "team", "organization")
KEY_ONCE_SESSION = "gateway_key_once"  # a new secret between the POST that made it and the page showing it
KEY_ONCE_MAX_AGE = 300  # seconds that page may take to be drawn


class ModelListField(forms.CharField):
    """A list of model names edited as comma-separated text."""

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return ", ".join(value)
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class VirtualKeyForm(forms.ModelForm):
    models = ModelListField(required=False, help_text="Comma-separated model names; empty allows all.")

    class Meta:
        model = VirtualKey
        fields = [
            "alias",
            "organization",
            "team",
            "user",
            "models",
            "max_budget",
            "soft_budget",
            "budget_duration",
            "rpm_limit",
            "tpm_limit",
            "max_parallel_requests",
            "model_max_budget",
            "model_rpm_limit",
            "model_tpm_limit",
            "expires_at",
            "blocked",
            "store_prompts",
            "guardrails",
            "metadata",
        ]
        # What operators asked about: where a key belongs decides whose limits hold it.
        help_texts = {
            "alias": "A name to recognise the key by (LiteLLM's key_alias); not secret.",
            "organization": "The organization whose limits, models and budgets hold the key. Taken from the team "
                            "when a team is chosen.",
            "team": "A key in a team acts only inside it: the team's limits and models hold it, its spend counts "
                    "there.",
            "user": "Who the key belongs to; its own limits hold the key too. Empty: a team or organization key.",
            "max_parallel_requests": "Requests of the key running at once; more are refused. Empty: no limit.",
            "expires_at": "After this the key is refused. Empty: never.",
            "blocked": "A blocked key is refused at once, on every replica; unblocking lets it in again.",
            "metadata": 'Free JSON kept with the key; "logging" sets its own logging callbacks, as through the API.',
        }

    def clean(self):
        """A key made or moved here follows the management API's rule (key_placement_check); its
        metadata.logging becomes its own logging callbacks, as through the API."""
        cleaned = super().clean()
        request = getattr(self, "admin_request", None)
        if request is not None and "metadata" in self.changed_data and not self.errors:
            values = {"metadata": cleaned.get("metadata") or {}}
            try:
                key_logging_values(admin_actor(request), values, stored=self.instance.logging_callbacks or [])
            except (Forbidden, FieldRefused) as exc:
                self.add_error("metadata", f"{exc.param}: {exc.detail}")
                return cleaned
            cleaned["metadata"] = values["metadata"]
            if "logging_callbacks" in values:
                self.instance.logging_callbacks = values["logging_callbacks"]
        placed = self.instance.pk is None or set(PLACEMENT_FIELDS) & set(self.changed_data)
        if request is None or not placed or self.errors:
            return cleaned
        team = cleaned.get("team")
        organization = cleaned.get("organization") or (team.organization if team is not None else None)
        with permission_errors_as_form_errors(
            self, {"user_id": "user", "team_id": "team", "organization_id": "organization"}
        ):
            key_placement_check(admin_actor(request), user=cleaned.get("user"), team=team,
                                organization=organization)
        return cleaned


def _refusal(actor, check, *args) -> str | None:
    """The reason apps.management.permissions refuses `check(actor, *args)`, None when it allows it."""
    try:
        check(actor, *args)
    except PermissionDenied as exc:
        return str(exc.detail)
    return None


class KeyBudgetForm(forms.ModelForm):
    """A key's max_budget edited in the keys' list: checked as /key/update checks it, and shown
    read-only on the rows the staff user may not change (an organization it only views)."""

    max_budget = forms.DecimalField(
        required=False, min_value=0, max_digits=18, decimal_places=6,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0", "class": "key-budget-input"}),
    )

    class Meta:
        model = VirtualKey
        fields = ["max_budget"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self._refused():
            self.fields["max_budget"].disabled = True  # disabled fields ignore what is posted

    def _refused(self) -> str | None:
        request = getattr(self, "admin_request", None)
        if request is None:
            return "No request to check the change against."
        return _refusal(admin_actor(request), key_update_check, self.instance, ["max_budget"])

    def clean_max_budget(self):
        value = self.cleaned_data.get("max_budget")
        if "max_budget" in self.changed_data:
            refused = self._refused()
            if refused:
                raise forms.ValidationError(refused)
        return value


# The buttons on each row of the keys' list: name → (label, the key_check action shown for).
ROW_ACTIONS = {
    "block": ("Block", "block"),
    "unblock": ("Unblock", "block"),
    "regenerate": ("Regenerate", "write"),
}
REGENERATE_CONFIRM = "The key's current secret stops working at once. Regenerate?"


@admin.register(VirtualKey)
class VirtualKeyAdmin(EmptyStateHintMixin, AdminRequestFormMixin, OrganizationScopedAdmin):
    form = VirtualKeyForm
    empty_hint = "No keys yet"
    empty_hint_help = "A client sends a key with every request; each key has its own models, budget and limits."
    list_editable = ("max_budget",)
    list_display = (
        "key_display",
        "alias",
        "organization",
        "team",
        "user",
        "spend",
        "max_budget",
        "rpm_limit",
        "tpm_limit",
        "expires_at",
        "blocked",
        "created_at",
    )
    list_filter = ("blocked", "organization", "team")
    search_fields = ("alias", "key_display", "token_hash", "user__username", "team__alias")
    list_select_related = ("organization", "team", "user")
    autocomplete_fields = ("organization", "team", "user")
    readonly_fields = ("key_display", "spend", "created_at", "updated_at")
    actions = ["block_keys", "unblock_keys", "regenerate_key", "reset_spend"]

    class Media:
        css = {"all": ["management/admin_pages.css"]}
        js = ["keys/row_actions.js"]

    def empty_hint_links(self, request):
        if not self.has_add_permission(request):
            return []
        return [("create one", reverse("admin:keys_virtualkey_add"))]

    def get_list_display(self, request):
        display = list(super().get_list_display(request))
        if not self.has_change_permission(request):
            return display  # viewers: no buttons at all
        # A closure, as list_display calls get only the row: the buttons depend on who looks.
        def row_actions(obj):
            return self._row_actions_html(request, obj)

        row_actions.short_description = "Actions"
        # Next to the key's name, not past the list's right edge on a narrow screen.
        at = display.index("alias") + 1 if "alias" in display else len(display)
        return [*display[:at], row_actions, *display[at:]]

    def _row_actions_html(self, request, key):
        if not self.has_change_permission(request, key):
            return ""
        actor = admin_actor(request)
        buttons = []
        for name, (label, action) in ROW_ACTIONS.items():
            if (name == "block" and key.blocked) or (name == "unblock" and not key.blocked):
                continue
            if _refusal(actor, key_check, key, action) is not None:
                continue
            confirm = format_html(' data-confirm="{}"', REGENERATE_CONFIRM) if name == "regenerate" else ""
            # A button of the list's own form (which carries the CSRF token) posted to the row's
            # URL: forms may not nest, and a GET link must never change a key.
            buttons.append(format_html(
                '<button type="submit" class="button key-row-action key-row-{}" formmethod="post" formaction="{}" '
                'formnovalidate name="_next" value="{}"{}>{}</button>',
                name, reverse(f"admin:keys_virtualkey_{name}", args=[quote(key.pk)]), request.get_full_path(),
                confirm, label,
            ))
        return format_html_join(" ", "{}", ((button,) for button in buttons))

    def get_urls(self):
        row = [
            path(f"<path:object_id>/{name}/", self.admin_site.admin_view(self.row_action_view),
                 {"action": name}, name=f"keys_virtualkey_{name}")
            for name in ROW_ACTIONS
        ]
        once = path("<path:object_id>/created/", self.admin_site.admin_view(self.key_once_view),
                    name="keys_virtualkey_created")
        return [*row, once, *super().get_urls()]

    def row_action_view(self, request, object_id: str, action: str):
        """Block, unblock or regenerate one key from its row in the list (POST only)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        key = self.get_object(request, unquote(object_id))
        if key is None:  # not there, or outside the user's organizations: the scoped queryset hides it
            raise Http404("No such key.")
        if not self.has_change_permission(request, key):
            raise AdminPermissionDenied
        actor = admin_actor(request)
        if action == "regenerate":
            refused = _refusal(actor, key_regenerate_check, key)
        else:
            refused = _refusal(actor, key_check, key, "block")
        back = self._back_to_list(request)
        if refused:
            self.message_user(request, refused, messages.ERROR)
            return HttpResponseRedirect(back)
        if action == "regenerate":
            raw_key = virtual_key_issue(key=key, by_proxy_admin=request.user.is_superuser)
            return self._show_key_once(request, key, raw_key, "Key regenerated")
        virtual_key_set_blocked(key=key, blocked=action == "block")
        self.message_user(request, f"{'Blocked' if action == 'block' else 'Unblocked'} {key}.", messages.SUCCESS)
        return HttpResponseRedirect(back)

    def _back_to_list(self, request) -> str:
        target = request.POST.get("_next", "")
        if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
            return target
        return reverse("admin:keys_virtualkey_changelist")

    def get_changelist_form(self, request, **kwargs):
        form = super().get_changelist_form(request, form=KeyBudgetForm, **kwargs)
        form.admin_request = request  # a fresh class per call: nothing leaks between requests
        return form

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is None:  # nothing to show before the key exists
            return [f for f in fields if f not in self.readonly_fields]
        return fields

    def save_model(self, request, obj, form, change):
        if isinstance(form, KeyBudgetForm):  # the list's budget column, checked by the form
            virtual_key_update(key=obj, max_budget=form.cleaned_data["max_budget"])
            return
        if obj.team_id:
            obj.organization_id = obj.team.organization_id
        if change:
            if set(PLACEMENT_FIELDS) & set(form.changed_data):
                obj.issued_by_proxy_admin = request.user.is_superuser
            super().save_model(request, obj, form, change)
            return
        obj._raw_key = virtual_key_issue(key=obj, by_proxy_admin=request.user.is_superuser)

    def _show_key_once(self, request, key, raw_key: str, heading: str):
        """Redirect to the key-once page (post/redirect/get: reloading it must not post the form
        again and make a second key). The secret waits in the session, encrypted, until that page
        is drawn once or KEY_ONCE_MAX_AGE passes."""
        request.session[KEY_ONCE_SESSION] = {"key": key.pk, "heading": heading, "secret": crypto.encrypt(raw_key)}
        return HttpResponseRedirect(reverse("admin:keys_virtualkey_created", args=[quote(key.pk)]))

    def key_once_view(self, request, object_id: str):
        key = self.get_object(request, unquote(object_id))
        if key is None:
            raise Http404("No such key.")
        pending = request.session.get(KEY_ONCE_SESSION)
        raw_key = None
        if pending and str(pending.get("key")) == str(key.pk):
            del request.session[KEY_ONCE_SESSION]  # shown once: a reload finds nothing
            try:
                raw_key = crypto.decrypt_recent(pending["secret"], max_age=KEY_ONCE_MAX_AGE)
            except ValueError:
                raw_key = None
        if raw_key is None:
            self.message_user(request, "This key's secret was shown once already and cannot be shown again; "
                              "regenerate the key for a new one.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:keys_virtualkey_change", args=[quote(key.pk)]))
        response = TemplateResponse(
            request,
            "admin/keys/virtualkey/key_created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "key": key,
                "raw_key": raw_key,
                "heading": pending.get("heading") or "Key created",
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    def response_add(self, request, obj, post_url_continue=None):
        raw_key = getattr(obj, "_raw_key", None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        return self._show_key_once(request, obj, raw_key, "Key created")

    def _allowed(self, request, queryset, action: str) -> list[VirtualKey]:
        """The selected keys the staff user may `action` (key_check); the others are named in a
        message. A staff user may view an organization it does not administer."""
        actor = admin_actor(request)
        allowed, refused = [], []
        for key in queryset:
            if self.has_change_permission(request, key) and _refusal(actor, key_check, key, action) is None:
                allowed.append(key)
            else:
                refused.append(key)
        if refused:
            self.message_user(request, f"Left alone {len(refused)} key(s) you may not change: "
                              + ", ".join(str(key) for key in refused[:10]), messages.ERROR)
        return allowed

    @admin.action(description="Regenerate the selected key (the old secret stops working)",
                  permissions=["change"])
    def regenerate_key(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one key to regenerate.", messages.ERROR)
            return None
        key = queryset.get()
        if not self.has_change_permission(request, key):
            self.message_user(request, "You may not change this key.", messages.ERROR)
            return None
        try:
            key_regenerate_check(admin_actor(request), key)
        except PermissionDenied as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
            return None
        raw_key = virtual_key_issue(key=key, by_proxy_admin=request.user.is_superuser)
        return self._show_key_once(request, key, raw_key, "Key regenerated")

    @admin.action(description="Reset the spend of the selected keys", permissions=["change"])
    def reset_spend(self, request, queryset):
        keys = self._allowed(request, queryset, "write")
        for key in keys:
            virtual_key_spend_reset(key=key)
        if keys:
            self.message_user(request, f"Reset the spend of {len(keys)} key(s).", messages.SUCCESS)

    @admin.action(description="Block the selected keys", permissions=["change"])
    def block_keys(self, request, queryset):
        keys = self._allowed(request, queryset, "block")
        for key in keys:
            virtual_key_set_blocked(key=key, blocked=True)
        if keys:
            self.message_user(request, f"Blocked {len(keys)} key(s).", messages.SUCCESS)

    @admin.action(description="Unblock the selected keys", permissions=["change"])
    def unblock_keys(self, request, queryset):
        keys = self._allowed(request, queryset, "block")
        for key in keys:
            virtual_key_set_blocked(key=key, blocked=False)
        if keys:
            self.message_user(request, f"Unblocked {len(keys)} key(s).", messages.SUCCESS)
