"""A tour of the whole admin in a real headless Chromium, against the real gateway server, as the
proxy admin (a superuser) and as an organization's admin (staff with an admin membership in it).

The pages are derived from the admin site itself (every registered ModelAdmin's changelist, add,
change, delete-confirmation and history pages and its own named views; the site's own views; each
app's index), so a model registered tomorrow is toured without touching this file. Each page must
answer below 500, as its ModelAdmin's permissions say (a page the role may not see is refused: 403,
404, or Django's redirect for an object it cannot see), with no script error and no failed load;
the organization admin must never see the other organization's names on any page.

Then the tasks an operator does in the browser: create a key and read it once, test a deployment's
connection (a fake upstream on loopback, then a closed port), import a config.yaml.

Failing pages are screenshotted under GATEWAY_TEST_ARTIFACTS (default var/test-artifacts).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.test import Client, RequestFactory
from django.urls import URLPattern, reverse
from django.urls.exceptions import NoReverseMatch

from tests.fakes.server import free_socket
from tests.spend.test_admin_report_browser import (  # one browser set-up for every admin browser test
    chromium_context,
    chromium_path,  # noqa: F401 - a fixture
    watch_for_errors,
)

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

ARTIFACTS = Path(os.environ.get("GATEWAY_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "var" / "test-artifacts"))
MAX_SCREENSHOTS = 8  # per role: enough to see what broke

# Every name seeded for organization B contains this: the organization admin of A must never see it.
THEIRS = "globex"
# A ModelAdmin's own views, toured as changelist/add/change/delete/history; any other name it
# routes is one of its custom views.
STOCK_MODEL_VIEWS = ("changelist", "add", "history", "delete", "change")
# Django's own site views a staff user opens; any other named site view is the gateway's own
# (the health page, the playground, ...).
STOCK_SITE_VIEWS = {"index", "password_change", "password_change_done"}
# The site's views not toured: logging in or out, the JSON autocomplete (fetched per field instead:
# autocomplete_visits), the redirect to a site's object, the app index (toured per app), the JS catalog.
SITE_VIEWS_NOT_TOURED = {"login", "logout", "autocomplete", "view_on_site", "app_list", "jsi18n"}

CONFIG_YAML = b"""
model_list:
  - model_name: tour-imported-model
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:9/v1
      api_key: sk-tour-literal-secret
      rpm: 60
"""


# --- the world -------------------------------------------------------------------------------


@dataclass
class Tenant:
    organization: object
    team: object
    user: object
    key: object
    deployment: object


def seed_tenant(name: str, *, label: str, fake_openai, django_user_model) -> Tenant:
    from apps.billing.models import BillingEvent
    from apps.customers.services import budget_create, end_user_create
    from apps.keys.services import virtual_key_create
    from apps.providers.models import ModelDeployment
    from apps.spend.models import SpendCounterDrift, SpendLog
    from apps.teams.models import UserLimits
    from apps.teams.services import organization_create, organization_member_add, team_create, team_member_add

    organization = organization_create(name=f"{label} Tour Org")
    team = team_create(organization=organization, alias=f"{name}-tour-team")
    user = django_user_model.objects.create_user(f"{name}-tour-user", email=f"{name}@example.com")
    organization_member_add(organization=organization, user=user)
    team_member_add(team=team, user=user, role="member")
    UserLimits.objects.create(user=user, max_budget=Decimal("50"))
    key, _ = virtual_key_create(alias=f"{name}-tour-key", team=team, organization=organization, user=user)
    deployment = ModelDeployment.objects.create(
        model_name=f"{name}-tour-model", provider="openai", upstream_model=f"{name}-tour-upstream",
        api_base=fake_openai.base_url, api_key="sk-upstream-secret", organization=organization,
        input_cost_per_token=Decimal("0.000002"), output_cost_per_token=Decimal("0.000008"),
    )
    now = datetime.now(timezone.utc)
    for n, (status, cost) in enumerate([("success", "0.25"), ("success", "1.50"), ("error", "0")]):
        moment = now - timedelta(minutes=10 * n)
        SpendLog.objects.create(
            request_id=f"{name}-tour-request-{n}", key=key, key_hash=key.token_hash, team=team,
            organization=organization, user=user, end_user=f"{name}-tour-enduser", call_type="chat_completion",
            model=f"{name}-tour-model", provider="openai", prompt_tokens=100, completion_tokens=20,
            cost=Decimal(cost), status=status, cost_status="priced", start_time=moment, end_time=moment,
            metadata={"tags": [f"{name}-tour-tag"]},
        )
    budget = budget_create(organization=organization, budget_id=f"{name}-tour-budget", max_budget=Decimal("10"))
    end_user_create(organization=organization, user_id=f"{name}-tour-enduser", budget=budget, alias=f"{name} end user")
    BillingEvent.objects.create(
        transaction_id=f"{name}-tour-txn", external_subscription_id=f"{name}-tour-sub",
        external_customer_id=f"{name}-tour-customer", entity_kind="organization", entity_id=str(organization.pk),
        code="tokens", timestamp=now, status=BillingEvent.Status.DEAD, last_error="422: refused by Lago",
    )
    SpendCounterDrift.objects.create(kind="team", entity_id=str(team.pk), entity_name=team.alias,
                                     counter="spend", expected=Decimal("1.75"), counted=Decimal("2"),
                                     drift=Decimal("0.25"))
    return Tenant(organization, team, user, key, deployment)


def seed(fake_openai, django_user_model, dead_port: int) -> dict:
    from django.contrib.auth.models import Group

    from apps.billing.models import BillingWebhook
    from apps.providers.models import ModelDeployment
    from apps.routing.models import ModelGroupSettings, RouterSettings
    from apps.spend.models import ModelPrice
    from apps.spend.rollups import daily_spend_rollup, utc_today
    from apps.spend.services import spend_reset_all

    spend_reset_all(reset_by="tour-root")  # a SpendReset row, before any spend
    Group.objects.create(name="tour-operators")
    world = {
        "mine": seed_tenant("acme", label="Acme", fake_openai=fake_openai, django_user_model=django_user_model),
        "theirs": seed_tenant(THEIRS, label="Globex", fake_openai=fake_openai, django_user_model=django_user_model),
    }
    world["live"] = ModelDeployment.objects.create(
        model_name="tour-live-model", provider="openai", upstream_model="tour-live-upstream",
        api_base=fake_openai.base_url, api_key="sk-upstream-secret")
    world["dead"] = ModelDeployment.objects.create(
        model_name="tour-dead-model", provider="openai", upstream_model="tour-dead-upstream",
        api_base=f"http://127.0.0.1:{dead_port}/v1", api_key="sk-upstream-secret")
    RouterSettings.objects.create(num_retries=2, routing_strategy_args={}, default_fallbacks=["tour-live-model"])
    ModelGroupSettings.objects.create(model_name="tour-live-model", num_retries=1, fallbacks=[])
    ModelPrice.objects.create(model_key="tour-price-model", litellm_provider="openai", mode="chat",
                              input_cost_per_token=Decimal("0.000001"), output_cost_per_token=Decimal("0.000002"),
                              effective_from=datetime.now(timezone.utc) - timedelta(days=1), source="tour")
    BillingWebhook.objects.create(unique_key="tour-webhook", webhook_type="wallet.depleted_ongoing_balance",
                                  payload={"wallet": {"lago_id": "tour"}})
    daily_spend_rollup(day=utc_today())
    daily_spend_rollup(day=utc_today() - timedelta(days=1))  # the spend logs of the last half hour may cross midnight
    return world


def seed_users(django_user_model, mine: Tenant):
    from apps.teams.models import OrganizationMembership
    from apps.teams.services import organization_member_add

    root = django_user_model.objects.create_superuser("tour-root", email="root@example.com", password="pw")
    org_admin = django_user_model.objects.create_user("acme-tour-orgadmin", password="pw", is_staff=True)
    organization_member_add(organization=mine.organization, user=org_admin, role=OrganizationMembership.Role.ADMIN)
    return root, org_admin


def session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


# --- the pages, derived from the admin site --------------------------------------------------


@dataclass
class Visit:
    url: str
    label: str
    # "ok": must be 200; "refused": 403/404 or Django's redirect away from an object the role
    # cannot see; "any": below 500, whatever the role may do there.
    expect: str
    # A custom view, which may take POST only: its 405 (with Allow: POST) is its answer to a GET.
    custom: bool = False
    # Not a page: JSON a widget fetches (the autocomplete's), fetched as the page's script would.
    json: bool = False


def _request_as(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def _custom_views(model_admin) -> list[URLPattern]:
    opts = model_admin.model._meta
    stock = {f"{opts.app_label}_{opts.model_name}_{view}" for view in STOCK_MODEL_VIEWS}
    return [p for p in model_admin.get_urls() if isinstance(p, URLPattern) and p.name and p.name not in stock]


def _custom_url(pattern: URLPattern, pk) -> str | None:
    """The custom view's URL (with `pk` for an object's view); None when it takes other arguments."""
    converters = set(pattern.pattern.converters)
    try:
        if not converters:
            return reverse(f"admin:{pattern.name}")
        if converters == {"object_id"} and pk is not None:
            return reverse(f"admin:{pattern.name}", args=[quote(pk)])
    except NoReverseMatch:
        return None
    return None


def tour_plan(user, *, theirs: str | None = None) -> list[Visit]:
    """Every admin page for `user`, with what its ModelAdmin's permissions say it should answer.
    With `theirs`, also each model's first row named so (another organization's): refused, whatever
    the admin's own queryset says."""
    request = _request_as(user)
    visits: list[Visit] = []
    site_patterns = [p for p in admin.site.get_urls() if isinstance(p, URLPattern) and p.name]
    for pattern in site_patterns:
        if pattern.name in SITE_VIEWS_NOT_TOURED or pattern.pattern.converters:
            continue
        stock = pattern.name in STOCK_SITE_VIEWS
        visits.append(Visit(reverse(f"admin:{pattern.name}"), f"site:{pattern.name}",
                            "ok" if stock or user.is_superuser else "any", custom=not stock))
    app_labels = sorted({model._meta.app_label for model in admin.site._registry})
    for app_label in app_labels:
        expect = "ok" if admin.site.get_app_list(request, app_label) else "refused"
        visits.append(Visit(reverse("admin:app_list", args=[app_label]), f"app:{app_label}", expect))

    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        name = f"{opts.app_label}.{opts.model_name}"

        def url(view, *args):
            return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)

        can_see_list = model_admin.has_view_or_change_permission(request)
        visits.append(Visit(url("changelist"), f"{name}:changelist", "ok" if can_see_list else "refused"))
        visits.append(Visit(url("add"), f"{name}:add", "ok" if model_admin.has_add_permission(request) else "refused"))

        visible = model_admin.get_queryset(request)
        rows = [("", visible.order_by("pk").first())]
        hidden = model._default_manager.exclude(pk__in=visible.values("pk")).order_by("pk").first()
        if hidden is not None:
            rows.append((" (not theirs)", hidden))
        if theirs:
            named = next((obj for obj in model._default_manager.order_by("pk")[:500] if theirs in str(obj).lower()), None)
            if named is not None and (hidden is None or named.pk != hidden.pk):
                rows.append((f" ({theirs})", named))
        for suffix, obj in rows:
            if obj is None:
                continue
            in_scope = not suffix
            pk = quote(obj.pk)
            viewable = in_scope and model_admin.has_view_or_change_permission(request, obj)
            deletable = in_scope and model_admin.has_delete_permission(request, obj)
            visits.append(Visit(url("change", pk), f"{name}:change{suffix}", "ok" if viewable else "refused"))
            visits.append(Visit(url("delete", pk), f"{name}:delete{suffix}", "ok" if deletable else "refused"))
            visits.append(Visit(url("history", pk), f"{name}:history{suffix}", "ok" if viewable else "refused"))
            for pattern in _custom_views(model_admin):
                if pattern.pattern.converters:
                    custom = _custom_url(pattern, obj.pk)
                    if custom:
                        visits.append(Visit(custom, f"{name}:{pattern.name}{suffix}",
                                            "ok" if viewable else "refused", custom=True))
        for pattern in _custom_views(model_admin):
            if not pattern.pattern.converters:
                visits.append(Visit(_custom_url(pattern, None), f"{name}:{pattern.name}",
                                    "any" if can_see_list else "refused", custom=True))
    visits.extend(autocomplete_visits(expect="ok" if user.is_superuser else "any"))
    return visits


def autocomplete_visits(*, expect: str) -> list[Visit]:
    """The JSON behind each autocomplete field (the admins' and their inlines'): what a staff user's
    select box offers, scoped by the related model's admin."""
    visits = []
    for model, model_admin in admin.site._registry.items():
        sources = [(model, model_admin.autocomplete_fields)]
        sources += [(inline.model, inline.autocomplete_fields) for inline in model_admin.inlines]
        for source, fields in sources:
            for field_name in fields:
                query = urlencode({"app_label": source._meta.app_label, "model_name": source._meta.model_name,
                                   "field_name": field_name, "term": ""})
                visits.append(Visit(f"{reverse('admin:autocomplete')}?{query}",
                                    f"autocomplete:{source._meta.label_lower}.{field_name}", expect, json=True))
    return list({visit.url: visit for visit in visits}.values())


# --- the browser ------------------------------------------------------------------------------


@dataclass
class Tour:
    role: str
    page: object
    console_errors: list
    failed_responses: list
    failures: list = field(default_factory=list)
    screenshots: int = 0
    visited: int = 0
    timings: list = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures.append(f"[{self.role}] {message}")
        if self.screenshots < MAX_SCREENSHOTS:
            self.screenshots += 1
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            slug = re.sub(r"[^a-z0-9]+", "-", message.lower())[:60].strip("-")
            try:
                self.page.screenshot(path=str(ARTIFACTS / f"admin-tour-{self.role}-{self.screenshots}-{slug}.png"),
                                     full_page=True)
            except Exception:  # noqa: BLE001 - a screenshot is a help, not the test
                pass


def _status_of(response) -> int:
    """The first answer's status: a redirect followed shows as the redirect."""
    if response is None:
        return 0
    first = response.request
    while first.redirected_from is not None:
        first = first.redirected_from
    if first is not response.request:
        return 302
    return response.status


def visit(tour: Tour, base_url: str, item: Visit, *, leak_marker: str | None) -> None:
    page = tour.page
    where = f"{item.label} {item.url}"
    if item.json:
        answer = page.request.get(base_url + item.url, max_redirects=0, fail_on_status_code=False)
        tour.visited += 1
        if answer.status >= 500 or (item.expect == "ok" and answer.status != 200):
            tour.fail(f"{where}: HTTP {answer.status}")
        elif leak_marker and leak_marker in answer.text().lower():
            tour.fail(f"{where}: offers another organization's rows: {answer.text()[:300]}")
        return
    if item.custom:
        # A custom view may take POST only (its empty 405 is no page to load).
        probe = page.request.get(base_url + item.url, max_redirects=0, fail_on_status_code=False)
        if probe.status == 405:
            tour.visited += 1
            if "POST" not in (probe.headers.get("allow") or ""):
                tour.fail(f"{where}: HTTP 405 without Allow: POST")
            return
        if probe.status == 302 and item.expect == "ok":
            # A view with nothing to show on a bare GET sends elsewhere in the admin (the key-once
            # page, its secret already shown): that page is visited on its own.
            tour.visited += 1
            if not (probe.headers.get("location") or "").startswith("/admin/"):
                tour.fail(f"{where}: redirects out of the admin: {probe.headers.get('location')}")
            return
    errors_before, failed_before = len(tour.console_errors), len(tour.failed_responses)
    clock = time.monotonic()
    response = page.goto(base_url + item.url, wait_until="load")
    tour.visited += 1
    tour.timings.append((time.monotonic() - clock, item.label))
    status = _status_of(response)
    target = base_url + item.url
    # The page's own refusal shows as a failed load and Chromium's console line about it: expected.
    own = (lambda text: target in text) if item.expect != "ok" else (lambda text: False)
    console_errors = [e for e in tour.console_errors[errors_before:]
                      if not (own(e) and "Failed to load resource" in e)]
    failed = [f for f in tour.failed_responses[failed_before:] if not own(f)]

    if status >= 500 or status == 0:
        tour.fail(f"{where}: HTTP {status}")
    elif item.expect == "ok" and status != 200:
        tour.fail(f"{where}: HTTP {status}, expected 200")
    elif item.expect == "refused" and status not in (302, 403, 404, 405):
        tour.fail(f"{where}: HTTP {status}, expected a refusal (302/403/404)")
    if console_errors:
        tour.fail(f"{where}: console errors {console_errors}")
    if failed:
        tour.fail(f"{where}: failed loads {failed}")
    if leak_marker and leak_marker in page.content().lower():
        found = sorted(set(re.findall(rf"[\w-]*{leak_marker}[\w -]*", page.inner_text("body"), flags=re.I)))
        tour.fail(f"{where}: shows another organization's rows: {found[:5] or 'in the HTML'}")


def watcher_self_check(tour: Tour, base_url: str) -> None:
    """The watcher catches a script error and a failed sub-resource load (else the tour proves nothing)."""
    page = tour.page
    page.goto(base_url + "/admin/password_change/")
    page.evaluate("""() => {
        console.error("tour self-check");
        const script = document.createElement("script");
        script.src = "/static/tour-self-check-missing.js";
        document.head.appendChild(script);
    }""")
    for _ in range(100):  # the script's 404 comes back when it comes back
        if any("tour-self-check-missing.js" in f for f in tour.failed_responses):
            break
        page.wait_for_timeout(50)
    assert any("tour self-check" in e for e in tour.console_errors), tour.console_errors
    assert any("tour-self-check-missing.js" in f for f in tour.failed_responses), tour.failed_responses
    tour.console_errors.clear()
    tour.failed_responses.clear()


def run_tour(chromium_path, base_url, *, role, session_key, plan, leak_marker, tasks=None) -> Tour:
    with chromium_context(chromium_path, session_key=session_key, server_url=base_url) as browser:
        page = browser.new_page()
        console_errors, failed_responses = watch_for_errors(page)
        tour = Tour(role, page, console_errors, failed_responses)
        watcher_self_check(tour, base_url)
        for item in plan:
            visit(tour, base_url, item, leak_marker=leak_marker)
        if tasks is not None:
            errors_before, failed_before = len(console_errors), len(failed_responses)
            try:
                tasks(tour)
            except Exception:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"admin-tour-{role}-task-failed.png"), full_page=True)
                raise
            if console_errors[errors_before:] or failed_responses[failed_before:]:
                tour.fail(f"the tasks: console errors {console_errors[errors_before:]}, "
                          f"failed loads {failed_responses[failed_before:]}")
    return tour


# --- the tasks ----------------------------------------------------------------------------------


def settled_content(page) -> str:
    """The page's HTML once it stops navigating (going back may land on a page that moves on)."""
    for _ in range(20):
        try:
            return page.content()
        except Exception:  # noqa: BLE001 - "the page is navigating"
            page.wait_for_timeout(100)
    return page.content()


def task_create_a_key_and_read_it_once(tour: Tour, base_url: str) -> dict:
    page = tour.page
    page.goto(f"{base_url}/admin/keys/virtualkey/add/")
    page.fill("input[name=alias]", "tour-browser-key")
    page.click("input[name=_save]")
    raw_key = page.locator("#raw-key").input_value()
    assert raw_key.startswith("sk-"), raw_key
    display = page.locator("code").first.inner_text()

    page.goto(f"{base_url}/admin/keys/virtualkey/")  # the list: its display form, never the key
    listed = page.content()
    assert display and display in listed, display
    assert raw_key not in listed
    try:  # back to the answer of the POST: not kept (Cache-Control: no-store), never shown again
        page.go_back(wait_until="load")
    except Exception:  # noqa: BLE001 - Chromium may refuse to show it at all
        pass
    page.wait_for_load_state("load")
    assert raw_key not in settled_content(page)
    page.goto(f"{base_url}/admin/keys/virtualkey/?q=tour-browser-key")
    page.click("#result_list tbody a >> nth=0")  # the key's own page: its display form only
    assert raw_key not in page.content()
    assert display in page.content()
    return {"raw_key": raw_key, "display": display}


def task_test_connections(tour: Tour, base_url: str, live, dead) -> dict:
    page = tour.page
    answers = {}
    for name, deployment in (("live", live), ("dead", dead)):
        page.goto(f"{base_url}/admin/providers/modeldeployment/{deployment.pk}/change/")
        page.click("form.test-connection button")
        page.wait_for_selector("ul.messagelist li")
        answers[name] = page.locator("ul.messagelist li").first.inner_text()
        answers[f"{name}_class"] = page.locator("ul.messagelist li").first.get_attribute("class")
    # The dead upstream's refusal is the page's message, not a failed load or a script error.
    return answers


def task_import_config(tour: Tour, base_url: str) -> dict:
    page = tour.page
    page.goto(f"{base_url}/admin/providers/modeldeployment/")
    page.click("a.import-config-link")
    page.set_input_files("input[type=file]", files=[
        {"name": "config.yaml", "mimeType": "application/yaml", "buffer": CONFIG_YAML}])
    page.click("input[type=submit][value='Preview the changes']")
    page.wait_for_selector("input[name=apply]")
    preview = page.inner_text("body")
    page.click("input[name=apply]")
    page.wait_for_selector("ul.messagelist li")
    return {"preview": preview, "message": page.locator("ul.messagelist li").first.inner_text(),
            "url": page.url, "list": page.inner_text("#result_list")}


# --- the test -------------------------------------------------------------------------------------


def test_every_admin_page_as_the_proxy_admin_and_an_org_admin(chromium_path, gateway, fake_openai,  # noqa: F811
                                                             django_user_model):
    from apps.keys.models import VirtualKey
    from apps.providers.models import ModelDeployment

    started = time.monotonic()
    for old in ARTIFACTS.glob("admin-tour-*.png"):  # what is left is this run's
        old.unlink(missing_ok=True)
    dead_socket = free_socket()  # bound, never listening: a connection to it is refused
    try:
        world = seed(fake_openai, django_user_model, dead_socket.getsockname()[1])
        root, org_admin = seed_users(django_user_model, world["mine"])
        plans = {"proxy_admin": tour_plan(root), "org_admin": tour_plan(org_admin, theirs=THEIRS)}
        sessions = {"proxy_admin": session_of(root), "org_admin": session_of(org_admin)}
        live, dead = world["live"], world["dead"]
        keys_before = VirtualKey.objects.count()
        # Names both tours look for: the superuser sees both organizations, the org admin only its own.
        mine_names = [world["mine"].organization.name, world["mine"].team.alias, world["mine"].key.alias]
        theirs_names = [world["theirs"].organization.name, world["theirs"].team.alias, world["theirs"].key.alias]
        results = {}

        def root_tasks(tour):
            tour.page.goto(f"{gateway.url}/admin/keys/virtualkey/")
            results["root_keys_page"] = tour.page.inner_text("body")
            results["key"] = task_create_a_key_and_read_it_once(tour, gateway.url)
            results["connections"] = task_test_connections(tour, gateway.url, live, dead)
            results["import"] = task_import_config(tour, gateway.url)

        def org_admin_tasks(tour):
            for page in ("organization", "team", "virtualkey"):
                tour.page.goto(f"{gateway.url}/admin/{'keys' if page == 'virtualkey' else 'teams'}/{page}/")
                results[f"org_admin_{page}"] = tour.page.inner_text("body")

        tours = {
            "proxy_admin": run_tour(chromium_path, gateway.url, role="proxy_admin", session_key=sessions["proxy_admin"],
                                    plan=plans["proxy_admin"], leak_marker=None, tasks=root_tasks),
            "org_admin": run_tour(chromium_path, gateway.url, role="org_admin", session_key=sessions["org_admin"],
                                  plan=plans["org_admin"], leak_marker=THEIRS, tasks=org_admin_tasks),
        }
    finally:
        dead_socket.close()
    elapsed = time.monotonic() - started
    timings = tours["proxy_admin"].timings + tours["org_admin"].timings
    slowest = ", ".join(f"{label} {seconds:.2f} s" for seconds, label in sorted(timings, reverse=True)[:3])
    print(f"\nadmin tour: proxy_admin {tours['proxy_admin'].visited} pages, org_admin {tours['org_admin'].visited} "
          f"pages, {elapsed:.1f} s in all ({sum(t for t, _ in timings):.1f} s loading pages); slowest: {slowest}")

    failures = tours["proxy_admin"].failures + tours["org_admin"].failures
    assert not failures, "\n".join(failures)

    # The tour reached what it means to: each model's pages, both roles, refusals for the org admin.
    labels = {role: {visit.label for visit in plan} for role, plan in plans.items()}
    for model in admin.site._registry:
        assert f"{model._meta.app_label}.{model._meta.model_name}:change" in labels["proxy_admin"], model
    assert {"site:index", "site:gateway_health", "site:password_change"} <= labels["proxy_admin"]
    assert "providers.modeldeployment:providers_modeldeployment_import_config" in labels["proxy_admin"]
    assert any(visit.expect == "refused" and "(not theirs)" in visit.label for visit in plans["org_admin"])
    assert any(visit.expect == "ok" for visit in plans["org_admin"] if visit.label.startswith("keys."))
    # Scoped content: the proxy admin's key list shows both organizations, the org admin's only its own.
    for name in mine_names[2:] + theirs_names[2:]:
        assert name in results["root_keys_page"], name
    for page, name in zip(("organization", "team", "virtualkey"), mine_names):
        assert name in results[f"org_admin_{page}"], (page, name)
        assert not any(theirs in results[f"org_admin_{page}"] for theirs in theirs_names), page

    # A key made in the browser: shown once, then only its display form.
    key = results["key"]
    assert VirtualKey.objects.count() == keys_before + 1
    created = VirtualKey.objects.get(alias="tour-browser-key")
    assert created.key_display == key["display"] and key["raw_key"] not in created.key_display

    # Test connection: the fake upstream's answer; then the closed port's error.
    connections = results["connections"]
    assert "Test connection: OK in" in connections["live"], connections
    assert "Hello from the fake upstream." in connections["live"], connections
    assert "success" in connections["live_class"], connections
    assert "Test connection failed" in connections["dead"], connections
    assert "error" in connections["dead_class"], connections
    assert "sk-upstream-secret" not in connections["dead"] + connections["live"]

    # Import config.yaml: previewed (the literal key masked), applied, listed.
    imported = results["import"]
    assert "tour-imported-model" in imported["preview"], imported["preview"]
    assert "sk-tour-literal-secret" not in imported["preview"]
    assert imported["message"].startswith("Imported config.yaml"), imported["message"]
    assert imported["url"].endswith("/admin/providers/modeldeployment/"), imported["url"]
    assert "tour-imported-model" in imported["list"]
    deployment = ModelDeployment.objects.get(model_name="tour-imported-model")
    assert deployment.managed_by_config and deployment.rpm == 60


def test_reloading_the_key_created_page_makes_no_second_key(chromium_path, gateway, django_user_model):  # noqa: F811
    from apps.keys.models import VirtualKey

    root = django_user_model.objects.create_superuser("reload-root", password="pw")
    with chromium_context(chromium_path, session_key=session_of(root), server_url=gateway.url) as browser:
        page = browser.new_page()
        page.goto(f"{gateway.url}/admin/keys/virtualkey/add/")
        page.fill("input[name=alias]", "reloaded-key")
        page.click("input[name=_save]")
        raw_key = page.locator("#raw-key").input_value()
        page.reload(wait_until="load")
        shown_again = raw_key in settled_content(page)

    assert not shown_again
    assert VirtualKey.objects.filter(alias="reloaded-key").count() == 1
