"""The admin site: a dashboard at the door (apps.management.dashboard) and a sidebar grouped by
what operators do rather than by Django app."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path, reverse

from apps.management.dashboard import deployment_health_get, dashboard_get

# (section, help) → the models in it, as app_label.ModelName, in the order shown.
SECTIONS: list[tuple[str, str, list[str]]] = [
    ("Access", "Who may call which models: organizations, teams, users and their keys.", [
        "teams.Organization", "teams.Team", "auth.User", "keys.VirtualKey", "teams.TeamMembership",
        "teams.UserLimits", "customers.EndUser", "customers.Budget", "auth.Group",
    ]),
    ("Models", "Where requests go: deployments, how the router picks among them, and prices.", [
        "providers.ModelDeployment", "routing.RouterSettings", "routing.ModelGroupSettings", "spend.ModelPrice",
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
        return [path("health/", self.admin_view(self.health_view), name="gateway_health"), *super().get_urls()]

    def health_view(self, request):
        """Every deployment in the staff user's scope: last health check, cooldown, load right now."""
        rows, total = deployment_health_get(user=request.user, limit=None)
        context = {**self.each_context(request), "title": "Deployment health", "deployments": rows, "total": total}
        return TemplateResponse(request, "admin/gateway/health.html", context)

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return app_list  # an app's own index page stays as Django lays it out
        health = {"name": "Deployment health", "object_name": "Health", "admin_url": reverse("admin:gateway_health"),
                  "add_url": None, "view_only": True}
        return sidebar_sections(app_list, extra={"health": health} if app_list else {})


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
