"""The admin site: a dashboard at the door (apps.management.dashboard) and a sidebar grouped by
what operators do rather than by Django app."""

from __future__ import annotations

import logging

import orjson
import redis
from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import GatewayError, invalid_request, not_found, permission_denied
from apps.management.dashboard import deployment_health_get, dashboard_get
from apps.management.framework import Forbidden
from apps.management.permissions import admin_actor
from apps.management.playground import (
    PlaygroundNotFound,
    expiry_iso,
    playground_credential_mint,
    playground_key_label,
    playground_keys,
    playground_models,
    playground_organizations,
    playground_result,
)

logger = logging.getLogger(__name__)

# (section, help) → the models in it, as app_label.ModelName, in the order shown.
SECTIONS: list[tuple[str, str, list[str]]] = [
    ("Access", "Who may call which models: organizations, teams, users and their keys.", [
        "teams.Organization", "teams.Team", "auth.User", "keys.VirtualKey", "teams.TeamMembership",
        "teams.UserLimits", "customers.EndUser", "customers.Budget", "auth.Group",
    ]),
    ("Models", "Where requests go: deployments, how the router picks among them, and prices.", [
        "providers.ModelDeployment", "routing.RouterSettings", "routing.ModelGroupSettings", "spend.ModelPrice",
        "playground",
    ]),
    ("Usage", "What was spent: request logs, daily rollups and what went to Lago.", [
        "spend.SpendLog", "spend.DailySpend", "spend.DailyTagSpend", "billing.BillingEvent",
        "billing.BillingWebhook", "spend.SpendCounterDrift", "spend.SpendReset",
    ]),
    ("System", "What changed, who changed it, and how the upstreams are doing.", ["core.AuditLog", "health"]),
]
MODEL_HELP = {
    "providers.ModelDeployment": "An upstream model behind a public model name; several share a name to balance.",
    "keys.VirtualKey": "The keys clients send; each has its own models, budget and limits.",
    "spend.DailySpend": "Spend per day, key, team and model: what reports and the dashboard read.",
    "billing.BillingEvent": "Usage events for Lago; dead letters are the ones Lago refused.",
    "health": "Each deployment's last health check, cooldown and load right now.",
    "playground": "Send a chat to a model group, as yourself or as a key you manage, through the real /v1 path.",
}


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")


class GatewayAdminSite(admin.AdminSite):
    site_header = "LLM gateway"
    site_title = "LLM gateway admin"
    index_title = "Dashboard"
    index_template = "admin/gateway/dashboard.html"

    def index(self, request, extra_context=None):
        context = {**(extra_context or {}), "dashboard": dashboard_get(user=request.user)}
        return super().index(request, extra_context=context)

    def get_urls(self):
        return [
            path("health/", self.admin_view(self.health_view), name="gateway_health"),
            path("playground/", self.admin_view(self.playground_view), name="gateway_playground"),
            path("playground/token/", self.admin_view(playground_token_view), name="gateway_playground_token"),
            path("playground/keys/", self.admin_view(playground_keys_view), name="gateway_playground_keys"),
            path("playground/result/", self.admin_view(playground_result_view),
                 name="gateway_playground_result"),
            *super().get_urls(),
        ]

    def health_view(self, request):
        """Every deployment in the staff user's scope: last health check, cooldown, load right now."""
        rows, total = deployment_health_get(user=request.user, limit=None)
        context = {**self.each_context(request), "title": "Deployment health", "deployments": rows, "total": total}
        return TemplateResponse(request, "admin/gateway/health.html", context)

    def playground_view(self, request):
        """A chat with a model group through the real /v1 path (static/management/playground.js)."""
        actor = admin_actor(request)
        keys, more_keys = playground_keys(actor=actor)
        context = {
            **self.each_context(request), "title": "Playground", "models": playground_models(actor=actor),
            "keys": [{"id": key.pk, "label": playground_key_label(key)} for key in keys], "more_keys": more_keys,
            "organizations": playground_organizations(actor=actor),
            "credential_minutes": round(settings.GATEWAY_PLAYGROUND_CREDENTIAL_TTL / 60),
        }
        return TemplateResponse(request, "admin/gateway/playground.html", context)

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return app_list  # an app's own index page stays as Django lays it out
        health = {"name": "Deployment health", "object_name": "Health", "admin_url": reverse("admin:gateway_health"),
                  "add_url": None, "view_only": True}
        playground = {"name": "Playground", "object_name": "Playground",
                      "admin_url": reverse("admin:gateway_playground"), "add_url": None, "view_only": True}
        return sidebar_sections(app_list, extra={"health": health, "playground": playground} if app_list else {})


def _json(payload: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")


def _json_error(error: GatewayError) -> HttpResponse:
    return _json(error.body(), status=error.status)


def _json_object(request) -> dict:
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        raise invalid_request("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise invalid_request("The body must be a JSON object.", code="invalid_json")
    return body


def _is_id(value) -> bool:
    """A row id as JSON sends it: a positive integer the database can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _is_usage(usage) -> bool:
    """An OpenAI usage object: token counts (non-negative integers), details nested one level."""
    if not isinstance(usage, dict):
        return False
    for value in usage.values():
        values = value.values() if isinstance(value, dict) else [value]
        if not all(v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63)
                   for v in values):
            return False
    return True


def sidebar_sections(app_list: list[dict], extra: dict | None = None) -> list[dict]:
    """Django's app list regrouped into SECTIONS; models no section names go to "Other". Each
    section keeps Django's shape (name, app_label, models) so the stock templates draw it."""
    models = {f"{app['app_label']}.{model['object_name']}": model for app in app_list for model in app["models"]}
    models.update(extra or {})
    sections, placed = [], set()
    for name, help_text, members in SECTIONS:
        entries = []
        for member in members:
            if member in models:
                entries.append({**models[member], "help": MODEL_HELP.get(member, "")})
                placed.add(member)
        if entries:
            sections.append({"name": name, "app_label": _slug(name), "app_url": "", "help": help_text,
                             "has_module_perms": True, "models": entries})
    rest = [model for label, model in models.items() if label not in placed]
    if rest:
        sections.append({"name": "Other", "app_label": "other", "app_url": "", "help": "", "has_module_perms": True,
                         "models": rest})
    return sections


@require_POST
def playground_token_view(request):
    """A short-lived credential acting as the chosen key (or the user's own playground key),
    for the page to call /v1 with. Never logged, never cached."""
    try:
        body = _json_object(request)
        key_id = body.get("key_id")
        if key_id is not None and not _is_id(key_id):
            raise invalid_request("key_id must be a key's id (an integer) or null.", param="key_id")
        organization_id = body.get("organization_id")
        if organization_id is not None and not isinstance(organization_id, str):
            raise invalid_request("organization_id must be a string or null.", param="organization_id")
        minted = playground_credential_mint(actor=admin_actor(request), key_id=key_id,
                                           organization_id=organization_id)
    except GatewayError as error:
        return _json_error(error)
    except PlaygroundNotFound as error:
        return _json_error(not_found(str(error), param="key_id"))
    except Forbidden as error:
        return _json_error(permission_denied(str(error.detail), param=error.param, code="forbidden"))
    except redis.RedisError:
        logger.warning("playground credential not stored: Redis is unreachable", exc_info=True)
        return _json_error(GatewayError(
            "The playground cannot mint a credential: Redis is unreachable. Try again when it is back.",
            status=503, type="server_error", code="playground_unavailable"))
    key = minted.key
    response = _json({"credential": minted.credential, "expires_at": expiry_iso(minted.expires_at),
                      "key": {"id": key.pk, "alias": key.alias, "key_display": key.key_display}})
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def playground_keys_view(request):
    """The keys matching ?q= that the staff user may try (the page's key search)."""
    keys, more = playground_keys(actor=admin_actor(request), search=request.GET.get("q", "")[:200].strip())
    return _json({"keys": [{"id": key.pk, "label": playground_key_label(key)} for key in keys], "more": more})


@require_POST
def playground_result_view(request):
    """The deployment that served a streamed answer and what its usage cost (the stream's
    headers name the deployment, but its cost is known only after its last chunk)."""
    try:
        body = _json_object(request)
        deployment_id = body.get("deployment_id")
        if not _is_id(deployment_id):
            raise invalid_request("deployment_id must be a deployment's id.", param="deployment_id")
        usage = body.get("usage")
        if usage is not None and not _is_usage(usage):
            raise invalid_request("usage must be an OpenAI usage object (token counts).", param="usage")
        started_at = body.get("started_at")
        if started_at is not None and (isinstance(started_at, bool) or not isinstance(started_at, (int, float))):
            raise invalid_request("started_at must be a unix time in seconds.", param="started_at")
        result = playground_result(actor=admin_actor(request), deployment_id=deployment_id, usage=usage,
                                   started_at=started_at)
    except GatewayError as error:
        return _json_error(error)
    except PlaygroundNotFound as error:
        return _json_error(not_found(str(error), param="deployment_id"))
    return _json(result)
