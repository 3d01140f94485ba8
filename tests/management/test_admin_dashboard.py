"""The admin's index is a dashboard: spend and traffic from the rollups, budgets, top spenders,
deployments' health and cooldowns, alerts with links, in the staff user's scope; the sidebar is
grouped by what operators do."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.billing.models import BillingEvent
from apps.keys.services import virtual_key_create
from apps.providers.models import ModelDeployment
from apps.providers.registry import deployment_state_key
from apps.routing.selection.deployment_state import deployment_state
from apps.spend.models import SpendLog
from apps.spend.rollups import daily_spend_rollup, utc_today
from apps.teams.services import organization_create, organization_member_add, team_create

pytestmark = pytest.mark.django_db(transaction=True)


def _log(n, *, key, team, organization, cost, moment, status="success", model="gpt-4o"):
    SpendLog.objects.create(
        request_id=f"dash-{n}", key=key, key_hash=key.token_hash, team=team, organization=organization,
        call_type="chat_completion", model=model, provider="openai", prompt_tokens=10, completion_tokens=5,
        cost=Decimal(cost), status=status, cost_status="priced", start_time=moment, end_time=moment,
    )


@pytest.fixture
def tenants(django_user_model):
    acme, globex = organization_create(name="Acme"), organization_create(name="Globex")
    research, sales = team_create(organization=acme, alias="research"), team_create(organization=globex, alias="sales")
    acme_key, _ = virtual_key_create(alias="acme-bot", team=research, organization=acme, max_budget=Decimal("10"))
    globex_key, _ = virtual_key_create(alias="globex-bot", team=sales, organization=globex)
    now = datetime.now(timezone.utc)
    midnight = datetime.combine(utc_today(), time(0), tzinfo=timezone.utc)
    # Yesterday's log at its first minute: outside the last 24 hours at any time of today (at 12:00
    # it was inside them before noon, and the test failed every morning).
    yesterday = datetime.combine(utc_today() - timedelta(days=1), time(0, 0, 30), tzinfo=timezone.utc)
    for n in range(3):
        moment = max(now - timedelta(minutes=n), midnight)  # today's, even just after midnight
        _log(n, key=acme_key, team=research, organization=acme, cost="1.25", moment=moment)
    _log(3, key=acme_key, team=research, organization=acme, cost="0", moment=now, status="error")
    _log(4, key=globex_key, team=sales, organization=globex, cost="7.50", moment=now, model="claude-x")
    _log(5, key=globex_key, team=sales, organization=globex, cost="2.00", moment=yesterday, model="claude-x")
    for day in (utc_today() - timedelta(days=1), utc_today()):
        daily_spend_rollup(day=day)
    acme_key.spend = Decimal("9.10")  # what the spend flush keeps: 91% of the budget
    acme_key.save(update_fields=["spend"])
    orgadmin = django_user_model.objects.create_user("orgadmin", password="pw", is_staff=True)
    organization_member_add(organization=acme, user=orgadmin, role="admin")
    return {"acme": acme, "globex": globex, "research": research, "orgadmin": orgadmin, "acme_key": acme_key}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_proxy_admin_sees_the_whole_gateway(admin_client, tenants):
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    dashboard = response.context["dashboard"]
    assert dashboard.today["cost"] == Decimal("11.25")  # 3 × 1.25 + 7.50
    assert dashboard.today["requests"] == 5 and dashboard.today["errors"] == 1
    assert dashboard.last_30d["cost"] == Decimal("13.25")
    assert dashboard.last_24h["requests"] == 5  # hour by hour, from the hourly rollup
    assert [row["label"] for row in dashboard.top_models] == ["claude-x", "gpt-4o"]
    assert dashboard.top_keys[0]["label"] == "globex-bot"
    assert len(dashboard.daily_series) == 30 and len(dashboard.hourly_series) == 24
    assert "$11.25" in html and "acme-bot" in html and "globex-bot" in html
    # The near-full budget is an alert linking to the key.
    alert = next(a for a in dashboard.alerts if "acme-bot" in a.text)
    assert "91%" in alert.text and alert.url == f"/admin/keys/virtualkey/{tenants['acme_key'].pk}/change/"


def test_organization_staff_see_only_their_organization(tenants):
    response = _client(tenants["orgadmin"]).get("/admin/")
    assert response.status_code == 200
    dashboard = response.context["dashboard"]
    assert dashboard.scope_label == "Acme"
    assert dashboard.today["cost"] == Decimal("3.75")
    assert dashboard.last_30d["requests"] == 4
    html = response.content.decode()
    assert "globex-bot" not in html and "claude-x" not in html and "sales" not in html
    assert [b["name"] for b in dashboard.budgets] == ["acme-bot"]


def test_the_dashboard_never_reads_the_spend_logs(admin_client, tenants):
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get("/admin/").status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if "spend_spendlog" in q["sql"]]
    # And a hundred more logs cost no more queries: only the rollups are read.
    before = len(queries.captured_queries)
    for n in range(100):
        _log(100 + n, key=tenants["acme_key"], team=tenants["research"], organization=tenants["acme"], cost="0.01",
             moment=datetime.now(timezone.utc))
    daily_spend_rollup(day=utc_today())
    with CaptureQueriesContext(connection) as again:
        admin_client.get("/admin/")
    assert len(again.captured_queries) == before


def test_alerts_link_to_dead_letters_and_deployments_show_cooldowns(admin_client, tenants):
    BillingEvent.objects.create(transaction_id="t-1", external_subscription_id="sub", entity_kind="organization",
                                entity_id=str(tenants["globex"].pk), code="llm", timestamp=datetime.now(timezone.utc),
                                status=BillingEvent.Status.DEAD)
    deployment = ModelDeployment.objects.create(model_name="gpt-4o", provider="openai", upstream_model="gpt-4o",
                                                api_base="http://127.0.0.1:9/v1")
    key = deployment_state_key(deployment.pk, deployment.created_at)
    async_to_sync(deployment_state().failure)(key, allowed_fails=0, cooldown_seconds=60, immediate=True)

    dashboard = admin_client.get("/admin/").context["dashboard"]
    dead = next(a for a in dashboard.alerts if "dead letter" in a.text)
    assert dead.url == "/admin/billing/billingevent/?status__exact=dead"
    assert admin_client.get(dead.url).status_code == 200
    row = next(d for d in dashboard.deployments if d["model_name"] == "gpt-4o")
    assert 50 <= row["cooldown_seconds"] <= 60
    assert any("cooling down" in a.text for a in dashboard.alerts)

    # Globex's dead letter is not Acme's business.
    acme_alerts = _client(tenants["orgadmin"]).get("/admin/").context["dashboard"].alerts
    assert not [a for a in acme_alerts if "dead letter" in a.text]


def test_an_empty_gateway_says_what_to_do_first(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "No deployments yet" in html
    assert 'href="/admin/providers/modeldeployment/add/"' in html


def test_the_sidebar_is_grouped_by_what_operators_do(admin_client, tenants):
    html = admin_client.get("/admin/keys/virtualkey/").content.decode()
    sidebar = html[html.index('id="nav-sidebar"'):]
    captions = re.findall(r'<span class="section" title="[^"]*">([^<]+)</span>', sidebar)
    assert captions[:4] == ["Access", "Models", "Usage", "System"]
    access = sidebar[sidebar.index(">Access<"):sidebar.index(">Models<")]
    assert "/admin/keys/virtualkey/" in access and "/admin/teams/team/" in access
    assert "/admin/providers/modeldeployment/" in sidebar[sidebar.index(">Models<"):sidebar.index(">Usage<")]
    # An org admin's sidebar has only what it may see.
    scoped = _client(tenants["orgadmin"]).get("/admin/keys/virtualkey/").content.decode()
    assert ">Access<" in scoped and "/admin/auth/group/" not in scoped


def test_the_health_page_lists_every_deployment_in_scope(admin_client, tenants):
    shared = ModelDeployment.objects.create(model_name="shared-model", provider="openai", upstream_model="m",
                                            health_status=ModelDeployment.Health.UNHEALTHY, health_error="401 from upstream")
    ModelDeployment.objects.create(model_name="globex-private", provider="openai", upstream_model="m",
                                   organization=tenants["globex"])
    html = admin_client.get("/admin/health/").content.decode()
    assert "shared-model" in html and "globex-private" in html and "401 from upstream" in html
    scoped = _client(tenants["orgadmin"]).get("/admin/health/")
    assert scoped.status_code == 200
    assert "shared-model" in scoped.content.decode() and "globex-private" not in scoped.content.decode()
    assert shared.pk  # the unhealthy one also raises an alert on the dashboard
    assert any("failed their last health check" in a.text for a in admin_client.get("/admin/").context["dashboard"].alerts)
    # Not staff: the admin's login page, as for every admin page.
    assert Client().get("/admin/health/").status_code == 302
