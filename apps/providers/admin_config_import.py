"""The admin's config.yaml import: upload a LiteLLM config file, see what it would change, apply it.

Step 1 (upload) parses and validates the file as `manage.py load_config` does, and shows the plan
(apps.routing.selectors.gateway_config_plan): deployments to add, to change (which fields, old and
new), to deactivate, router and model group settings. Secrets are never shown: an
`os.environ/NAME` reference is, a literal key is "••••".

Step 2 (apply) applies the file previewed, not a new upload: the preview page carries it in a token
encrypted with GATEWAY_ENCRYPTION_KEY (the file may hold keys: not readable in the page, and
nothing kept on the server), bound to the user and valid for an hour, with the plan's fingerprint.
routing.services.gateway_config_apply applies only if the plan, made again with its rows locked,
is the one previewed; otherwise nothing is applied and the new plan is shown for review.

Superusers only: a config file is proxy-wide (its deployments are shared by every organization, its
router settings are the router's), as on the management API.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from apps.core import crypto
from apps.providers.config import ConfigError, GatewayConfig, config_error_line, config_parse
from apps.providers.registry import ENV_REFERENCE_PREFIX
from apps.routing.selectors import GatewayConfigPlan, gateway_config_plan
from apps.routing.services import ConfigPlanChanged, gateway_config_apply

MAX_CONFIG_BYTES = 512 * 1024  # the preview carries the file back, within the control plane's body limit
PREVIEW_MAX_AGE = 3600  # seconds a preview can be applied
MASK = "••••"
_SECRET_NAME = re.compile(r"key|secret|token|password|credential|private", re.IGNORECASE)
# Read by each server process from GATEWAY_CONFIG at its start, not by load_config.
_READ_AT_START = {
    "general_settings": ("master_key", "store_prompts_in_spend_logs"),
    "litellm_settings": ("callbacks", "success_callback", "failure_callback", "s3_callback_params",
                         "default_team_settings", "cache", "cache_params"),
}


class ConfigUploadForm(forms.Form):
    file = forms.FileField(label="config.yaml", help_text="A LiteLLM-style config file. Nothing changes "
                           "before you review what it would change and apply it.")

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_CONFIG_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_CONFIG_BYTES // 1024} KiB.")
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text.") from None


# --- what the preview shows: values, secrets masked -------------------------------------------


def _secret(value) -> str:
    return value if isinstance(value, str) and value.startswith(ENV_REFERENCE_PREFIX) else MASK


def _masked_params(value):
    """Provider parameters with the values of secret-looking names masked (at any depth)."""
    if isinstance(value, dict):
        return {name: _secret(item) if _SECRET_NAME.search(str(name)) and not isinstance(item, (dict, list))
                else _masked_params(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_masked_params(item) for item in value]
    return value


def _masked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=f"{parts.username}:{MASK}@{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""))
    if parts.query:
        query = "&".join(f"{name}={MASK}" if _SECRET_NAME.search(name) else f"{name}={value}"
                         for name, _, value in (item.partition("=") for item in parts.query.split("&")))
        parts = parts._replace(query=query)
    return urlunsplit(parts)


def shown_value(name: str, value) -> str:
    """A deployment's or a setting's value as the preview shows it: never a secret."""
    if value is None or value == "" or value == {} or value == []:
        return "—"
    if name == "api_key":
        return _secret(value)
    if name == "secret_params":
        return ", ".join(f"{key}: {_secret(item)}" for key, item in sorted(value.items()))
    if name == "extra_params":
        value = _masked_params(value)
    if name == "api_base" and isinstance(value, str):
        return _masked_url(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return str(value)


def _shown_changes(changes) -> list[dict]:
    rows = []
    for change in changes:
        old, new = shown_value(change.name, change.old), shown_value(change.name, change.new)
        if old == new:  # two literal keys, both masked: say that it changes
            new = f"{new} (a different value)"
        rows.append({"name": change.name, "old": old, "new": new})
    return rows


def _without_env_values(message: str, text: str) -> str:
    """A validation message may quote a value read from an os.environ/NAME the file names (a number
    expected, a secret's variable given): the server's environment is not shown."""
    for name in set(re.findall(re.escape(ENV_REFERENCE_PREFIX) + r"([A-Za-z_][A-Za-z0-9_]*)", text)):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            message = message.replace(value, MASK)
    return message


def _not_applied(config: GatewayConfig) -> list[str]:
    notes = [f"{section}.{name}" for section, names in _READ_AT_START.items() for name in names
             if name in getattr(config, section)]
    if config.guardrails:
        notes.append("guardrails")
    return notes


def preview_context(plan: GatewayConfigPlan, config: GatewayConfig) -> dict:
    def entries(items, action):
        return [{"label": item.label, "changes": _shown_changes(item.changes)}
                for item in items if item.action == action]

    return {
        "create": entries(plan.deployments, "create"),
        "update": entries(plan.deployments, "update"),
        "deactivate": entries(plan.deployments, "deactivate"),
        "unchanged": entries(plan.deployments, "unchanged"),
        "router": (None if plan.router is None
                   else {"action": plan.router.action, "changes": _shown_changes(plan.router.changes)}),
        "groups": [{"name": group.name, "action": group.action, "changes": _shown_changes(group.changes)}
                   for group in plan.groups if group.action != "unchanged"],
        "groups_unchanged": sum(1 for group in plan.groups if group.action == "unchanged"),
        "has_changes": plan.has_changes,
        "ignored": config.ignored,
        "not_applied": _not_applied(config),
    }


# --- the token the preview page carries to the apply step -------------------------------------


def _preview_token(*, user, text: str, filename: str, fingerprint: str) -> str:
    payload = {"user": user.pk, "text": text, "filename": filename, "fingerprint": fingerprint}
    return crypto.encrypt(json.dumps(payload))


def _preview_read(token: str, *, user) -> dict:
    """The previewed file; ValueError when the token is expired, altered, or another user's."""
    payload = json.loads(crypto.decrypt_recent(token, max_age=PREVIEW_MAX_AGE))
    if payload.get("user") != user.pk:
        raise ValueError("another user's preview")
    return payload


class ConfigImportAdminMixin:
    """Adds `import-config/` and an "Import config.yaml" link on the changelist
    (templates/admin/providers/modeldeployment/change_list.html)."""

    def get_urls(self):
        opts = self.model._meta
        page = path("import-config/", self.admin_site.admin_view(self.import_config_view),
                    name=f"{opts.app_label}_{opts.model_name}_import_config")
        return [page, *super().get_urls()]

    def has_import_config_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}),
                         "can_import_config": self.has_import_config_permission(request)}
        return super().changelist_view(request, extra_context)

    def import_config_view(self, request):
        if not self.has_import_config_permission(request):
            raise PermissionDenied
        if request.method == "POST" and "token" in request.POST:
            return self._import_config_apply(request)
        form = ConfigUploadForm(request.POST, request.FILES) if request.method == "POST" else None
        if form is not None and form.is_valid():
            return self._import_config_preview(request, text=form.cleaned_data["file"],
                                               filename=os.path.basename(request.FILES["file"].name))
        return self._import_config_page(request, form=form)

    def _import_config_page(self, request, **context):
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "title": "Import config.yaml",
            "form": context.pop("form", None) or ConfigUploadForm(),
            "max_age_minutes": PREVIEW_MAX_AGE // 60,
            **context,
        }
        template = f"admin/{opts.app_label}/{opts.model_name}/import_config.html"
        return TemplateResponse(request, template, context)

    def _parse_or_error_page(self, request, *, text: str, filename: str):
        try:
            return config_parse(text, apply_environment=False), None
        except ConfigError as error:
            message = _without_env_values(str(error), text)
            # A YAML syntax error names its line itself.
            line = None if "(line " in message else config_error_line(text, str(error))
            return None, self._import_config_page(request, filename=filename, error=message, error_line=line)

    def _import_config_preview(self, request, *, text: str, filename: str, notice: str = ""):
        config, error_page = self._parse_or_error_page(request, text=text, filename=filename)
        if error_page is not None:
            return error_page
        plan = gateway_config_plan(config=config)
        token = _preview_token(user=request.user, text=text, filename=filename,
                               fingerprint=plan.fingerprint())
        return self._import_config_page(request, filename=filename, notice=notice, token=token,
                                        preview=preview_context(plan, config))

    def _import_config_apply(self, request):
        try:
            payload = _preview_read(request.POST["token"], user=request.user)
        except ValueError:
            return self._import_config_page(
                request, error="This preview has expired or is not valid: upload the file again")
        text, filename = payload["text"], payload["filename"]
        config, error_page = self._parse_or_error_page(request, text=text, filename=filename)
        if error_page is not None:  # valid at the preview; an os.environ variable it names is unset now, say
            return error_page
        try:
            report = gateway_config_apply(config=config, expected_fingerprint=payload["fingerprint"])
        except ConfigPlanChanged:
            return self._import_config_preview(
                request, text=text, filename=filename,
                notice="What this file changes is no longer what was previewed (the deployments or "
                "settings changed since, or this preview was applied already). Nothing was applied: review "
                "the changes below.")
        except ValidationError as error:  # a value the parser let through and a model refuses
            return self._import_config_page(request, filename=filename, error="; ".join(error.messages))
        messages.success(request, f"Imported {filename}: {report.summary()}.")
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist",
                                            current_app=self.admin_site.name))
