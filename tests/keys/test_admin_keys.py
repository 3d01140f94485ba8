"""The keys' list in the admin as a place to work: a new key shown once with a Copy button, Block /
Unblock / Regenerate on each row and the budget edited in the list, each through the services
and the management API's rule (apps.management.permissions), as a hostile tenant finds it."""

from __future__ import annotations

import hashlib
import logging
import re
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from apps.core.models import AuditLog
from apps.keys.models import VirtualKey
from apps.teams.models import OrganizationMembership
from apps.teams.services import organization_create, organization_member_add, team_create

pytestmark = pytest.mark.django_db

KEYS = "/admin/keys/virtualkey/"


@pytest.fixture
def tenants(make_key, django_user_model):
    """Two organizations, each with a team key, an admin and a viewer; and `mixed`, staff who
    administers acme but only views globex."""
    world = {}
    for name in ("acme", "globex"):
        organization = organization_create(name=name)
        team = team_create(organization=organization, alias=f"{name}-team")
        key, raw_key = make_key(team=team, alias=f"{name}-key", max_budget=Decimal("10"))
        staff = django_user_model.objects.create_user(f"{name}-admin", password="pw", is_staff=True)
        organization_member_add(organization=organization, user=staff, role=OrganizationMembership.Role.ADMIN)
        viewer = django_user_model.objects.create_user(f"{name}-viewer", password="pw", is_staff=True)
        organization_member_add(organization=organization, user=viewer, role=OrganizationMembership.Role.VIEWER)
        world[name] = {"organization": organization, "team": team, "key": key, "raw_key": raw_key,
                       "staff": staff, "viewer": viewer}
    mixed = django_user_model.objects.create_user("mixed", password="pw", is_staff=True)
    organization_member_add(organization=world["acme"]["organization"], user=mixed,
                            role=OrganizationMembership.Role.ADMIN)
    organization_member_add(organization=world["globex"]["organization"], user=mixed,
                            role=OrganizationMembership.Role.VIEWER)
    world["mixed"] = mixed
    return world


def client_for(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def row_action(client, key, action, **data):
    response = client.post(f"{KEYS}{key.pk}/{action}/", {"_next": f"{KEYS}?q=x", **data})
    if response.status_code == 302 and response["Location"].endswith("/created/"):
        return client.get(response["Location"])  # a regenerated key is shown by a GET
    return response


def budget_edit(client, key, value, **extra):
    """The list's own form, as the browser posts it when the budget column is edited and saved."""
    return client.post(KEYS, {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-MIN_NUM_FORMS": "0",
                              "form-MAX_NUM_FORMS": "1000", "form-0-id": str(key.pk),
                              "form-0-max_budget": value, "_save": "Save", **extra})


def raw_key_of(response) -> str:
    return re.search(r'value="(sk-[^"]+)"', response.content.decode()).group(1)


# --- the key shown once -------------------------------------------------------------------


def test_a_new_key_is_shown_once_with_a_copy_button_and_never_again(admin_client, team, caplog):
    caplog.set_level(logging.DEBUG)
    response = admin_client.post(f"{KEYS}add/", {"alias": "ci-bot", "team": team.pk, "metadata": "{}"}, follow=True)

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw_key = raw_key_of(response)
    assert 'id="copy-key"' in html and 'id="copy-status"' in html
    assert "keys/key_created.js" in html
    assert "onclick" not in html and "<script>" not in html  # the script is a static file
    key = VirtualKey.objects.get(alias="ci-bot")
    assert key.token_hash == hashlib.sha256(raw_key.encode()).hexdigest()

    # Never again: no later page, message, admin log entry, audit entry or log record holds it.
    later = [admin_client.get(KEYS), admin_client.get(f"{KEYS}{key.pk}/change/"), admin_client.get("/admin/"),
             admin_client.get(f"/admin/teams/team/{team.pk}/change/")]
    for page in later:
        assert page.status_code == 200
        assert raw_key not in page.content.decode()
    assert raw_key not in repr(list(LogEntry.objects.values())) + repr(list(AuditLog.objects.values()))
    assert raw_key not in caplog.text


def test_regenerating_from_a_row_shows_the_new_key_once(admin_client, tenants):
    key = tenants["acme"]["key"]
    response = row_action(admin_client, key, "regenerate")

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert 'id="copy-key"' in response.content.decode()
    new_raw = raw_key_of(response)
    key.refresh_from_db()
    assert key.token_hash == hashlib.sha256(new_raw.encode()).hexdigest() != \
        hashlib.sha256(tenants["acme"]["raw_key"].encode()).hexdigest()
    assert new_raw not in admin_client.get(KEYS).content.decode()


# --- row actions ----------------------------------------------------------------------------


def test_each_row_has_block_and_regenerate_buttons_posting_the_lists_form(admin_client, tenants):
    key = tenants["acme"]["key"]
    html = admin_client.get(KEYS).content.decode()

    for action in ("block", "regenerate"):
        button = re.search(rf'<button[^>]*formaction="{KEYS}{key.pk}/{action}/"[^>]*>', html)
        assert button, action
        assert 'formmethod="post"' in button.group(0) and 'type="submit"' in button.group(0)
    assert f"{KEYS}{key.pk}/unblock/" not in html  # not blocked: nothing to unblock
    assert "csrfmiddlewaretoken" in html  # the list's form carries the token the buttons post
    assert 'data-confirm="' in html and "keys/row_actions.js" in html


def test_block_and_unblock_from_a_row(admin_client, tenants):
    key = tenants["acme"]["key"]

    response = row_action(admin_client, key, "block")
    assert response.status_code == 302 and response["Location"] == f"{KEYS}?q=x"
    key.refresh_from_db()
    assert key.blocked
    assert f"{KEYS}{key.pk}/unblock/" in admin_client.get(KEYS).content.decode()

    row_action(admin_client, key, "unblock")
    key.refresh_from_db()
    assert not key.blocked


def test_row_actions_refuse_get_and_a_missing_csrf_token(tenants, django_user_model):
    key = tenants["acme"]["key"]
    superuser = django_user_model.objects.create_superuser("root", password="pw")
    assert client_for(superuser).get(f"{KEYS}{key.pk}/block/").status_code == 405
    assert row_action(client_for(superuser, enforce_csrf_checks=True), key, "block").status_code == 403
    key.refresh_from_db()
    assert not key.blocked


def test_a_foreign_next_url_is_not_followed(admin_client, tenants):
    response = row_action(admin_client, tenants["acme"]["key"], "block", _next="https://evil.example/")
    assert response["Location"] == KEYS


def test_an_org_admin_acts_on_its_own_organizations_keys(tenants):
    client = client_for(tenants["acme"]["staff"])
    mine, theirs = tenants["acme"]["key"], tenants["globex"]["key"]

    assert f"{KEYS}{mine.pk}/block/" in client.get(KEYS).content.decode()
    assert row_action(client, mine, "block").status_code == 302
    response = row_action(client, mine, "regenerate")
    assert response.status_code == 200 and raw_key_of(response).startswith("sk-")

    # Another organization's key: as if it did not exist, and untouched.
    before = theirs.token_hash
    for action in ("block", "regenerate"):
        assert row_action(client, theirs, action).status_code == 404
    theirs.refresh_from_db()
    assert not theirs.blocked and theirs.token_hash == before


def test_viewers_see_no_buttons_and_are_refused(tenants):
    client = client_for(tenants["acme"]["viewer"])
    key = tenants["acme"]["key"]
    html = client.get(KEYS).content.decode()

    assert "acme-key" in html
    assert "key-row-action" not in html and "/block/" not in html
    assert 'name="form-0-max_budget"' not in html  # the budget is shown, not editable
    for action in ("block", "unblock", "regenerate"):
        assert row_action(client, key, action).status_code == 403
    assert budget_edit(client, key, "999").status_code == 403
    for action in ("block_keys", "reset_spend", "regenerate_key"):  # the bulk actions too
        client.post(KEYS, {"action": action, "_selected_action": [key.pk], "index": "0"})
    key.refresh_from_db()
    assert not key.blocked and key.max_budget == Decimal("10") and key.token_hash == tenants["acme"]["key"].token_hash


def test_staff_who_only_views_an_organization_cannot_act_on_its_keys(tenants):
    """Admin of acme, viewer of globex: globex's keys are listed, but not its to change."""
    client = client_for(tenants["mixed"])
    theirs = tenants["globex"]["key"]
    html = client.get(KEYS).content.decode()

    assert "globex-key" in html
    assert f"{KEYS}{theirs.pk}/" not in re.sub(rf'href="{KEYS}{theirs.pk}/change/[^"]*"', "", html)
    for action in ("block", "regenerate"):
        assert row_action(client, theirs, action).status_code == 403
    client.post(KEYS, {"action": "block_keys", "_selected_action": [theirs.pk], "index": "0"})
    client.post(KEYS, {"action": "reset_spend", "_selected_action": [theirs.pk], "index": "0"})
    VirtualKey.objects.filter(pk=theirs.pk).update(spend=Decimal("2"))
    client.post(KEYS, {"action": "reset_spend", "_selected_action": [theirs.pk], "index": "0"})
    theirs.refresh_from_db()
    assert not theirs.blocked and theirs.spend == Decimal("2")


# --- the budget, edited in the list ---------------------------------------------------------


def test_the_proxy_admin_and_an_org_admin_change_a_budget_in_the_list(admin_client, tenants):
    key = tenants["acme"]["key"]
    assert 'name="form-0-max_budget"' in admin_client.get(KEYS).content.decode()

    assert budget_edit(admin_client, key, "25.5").status_code == 302
    key.refresh_from_db()
    assert key.max_budget == Decimal("25.5")

    assert budget_edit(client_for(tenants["acme"]["staff"]), key, "7").status_code == 302
    key.refresh_from_db()
    assert key.max_budget == Decimal("7")


def test_a_budget_beyond_the_staff_users_rights_is_not_changed(tenants):
    theirs = tenants["globex"]["key"]
    # Admin of acme, viewer of globex: globex's budget is shown disabled, and a post is ignored.
    client = client_for(tenants["mixed"])
    html = client.get(KEYS).content.decode()
    inputs = re.findall(r'<input[^>]*name="form-\d+-max_budget"[^>]*>', html)
    assert len(inputs) == 2 and sum("disabled" in tag for tag in inputs) == 1
    budget_edit(client, theirs, "1000000")
    # Another organization's admin: the key is not in its list at all.
    response = budget_edit(client_for(tenants["acme"]["staff"]), theirs, "1000000")
    assert response.status_code in (200, 400)
    theirs.refresh_from_db()
    assert theirs.max_budget == Decimal("10")


@pytest.mark.parametrize("value, error", [
    ("lots", "Enter a number."), ("-5", "greater than or equal to 0"), ("NaN", "Enter a number."),
    ("1e30", "no more than"),
])
def test_a_budget_that_is_not_a_number_is_a_form_error_not_a_500(admin_client, tenants, value, error):
    key = tenants["acme"]["key"]
    response = budget_edit(admin_client, key, value)
    assert response.status_code == 200
    assert error in response.content.decode()
    key.refresh_from_db()
    assert key.max_budget == Decimal("10")


# --- a hostile tenant -----------------------------------------------------------------------


def test_an_org_admin_cannot_take_a_staff_users_key_by_regenerating_it(tenants, make_key):
    """A new secret hands the key to whoever regenerates it: not a key of the admin site's staff."""
    acme = tenants["acme"]
    staff_key, _ = make_key(team=acme["team"], user=acme["viewer"], alias="viewer-own")
    client = client_for(acme["staff"])

    response = row_action(client, staff_key, "regenerate")

    assert response.status_code == 302  # back to the list, with the reason
    messages = [str(m) for m in client.get(response["Location"]).context["messages"]]
    assert any("staff" in m for m in messages), messages
    before = staff_key.token_hash
    staff_key.refresh_from_db()
    assert staff_key.token_hash == before


@pytest.mark.parametrize("object_id", ["not-a-number", "999999", "1%2F..%2F2"])
def test_a_row_action_on_a_key_that_is_not_there_is_a_404(admin_client, tenants, object_id):
    assert admin_client.post(f"{KEYS}{object_id}/block/").status_code == 404


def test_a_list_edit_changes_only_the_budget(admin_client, tenants):
    key = tenants["acme"]["key"]
    budget_edit(admin_client, key, "3", **{"form-0-blocked": "on", "form-0-team": str(tenants["globex"]["team"].pk),
                                           "form-0-spend": "0"})
    key.refresh_from_db()
    assert key.max_budget == Decimal("3")
    assert not key.blocked and key.team_id == tenants["acme"]["team"].pk
