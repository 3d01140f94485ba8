"""The audit log: every change through the management API, the admin and manage.py commands, in
the change's own transaction, with who, what (a diff, secrets redacted), when and from where;
read in the admin and at GET /audit/logs within the caller's scope; append-only."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.management.conftest import assert_error


def entries(**filters):
    from apps.core.models import AuditLog

    return list(AuditLog.objects.filter(**filters).order_by("id"))


def test_a_keys_life_through_the_api_is_logged_with_who_what_and_where(world, api):
    from apps.keys.models import VirtualKey

    created = api.post("/key/generate", {"key_alias": "etl", "team_id": str(world.research.pk)},
                       HTTP_USER_AGENT="ops-script/1.0", HTTP_X_REQUEST_ID="req-audit-1")
    assert created.status_code == 200, created.content
    raw_key = created.json()["key"]
    key = VirtualKey.objects.get(alias="etl")
    [made] = entries(object_type="keys.virtualkey", object_id=str(key.pk))
    assert (made.actor, made.via, made.action, made.organization_id) == (
        "master_key", "management_api", "create", str(world.acme.pk))
    assert (made.ip, made.user_agent, made.request_id) == ("127.0.0.1", "ops-script/1.0", "req-audit-1")
    assert made.changes["alias"] == [None, "etl"]
    assert made.changes["token_hash"] == [None, key.token_hash[:8] + "…"]  # a prefix, never the hash

    assert api.post("/key/update", {"key": raw_key, "max_budget": 12.5}).status_code == 200
    assert api.post("/key/block", {"key": raw_key}).status_code == 200
    assert api.post("/key/delete", {"keys": [raw_key]}).status_code == 200
    updated, blocked, deleted = entries(object_type="keys.virtualkey", object_id=str(key.pk))[1:]
    assert updated.changes == {"max_budget": [None, "12.500000"]}
    assert blocked.changes == {"blocked": [False, True]}
    assert deleted.action == "delete" and deleted.changes["alias"] == ["etl", None]
    logged = json.dumps([e.changes for e in entries()])
    assert raw_key not in logged and key.token_hash not in logged


def test_secrets_are_redacted_and_a_keys_own_changes_name_its_hash_prefix(world, api):
    response = api.post("/model/new", {"model_name": "gpt-audit", "litellm_params": {
        "model": "openai/gpt-4o", "api_key": "sk-upstream-very-secret", "api_base": "https://example.com/v1"}})
    assert response.status_code == 200, response.content
    [made] = entries(object_type="providers.modeldeployment")
    assert made.changes["api_key"] == [None, "[redacted]"]
    assert "sk-upstream-very-secret" not in json.dumps(made.changes)

    orgadmin_key = world.key("orgadmin")
    assert api.post("/team/update", {"team_id": str(world.research.pk), "max_budget": 50},
                    key=world.raw("orgadmin")).status_code == 200
    [changed] = entries(object_type="teams.team", action="update")
    assert changed.actor == f"key:{orgadmin_key.token_hash[:8]} (user:orgadmin)"


def test_a_change_that_rolls_back_leaves_no_entry_and_spend_counters_are_not_changes(world):
    from django.db import transaction

    from apps.teams.services import team_create

    before = len(entries())
    with pytest.raises(RuntimeError), transaction.atomic():
        team_create(organization=world.acme, alias="doomed")
        raise RuntimeError("roll back")
    assert len(entries()) == before
    world.research.spend = 3
    world.research.save()  # what only the gateway's counters move is not an operator's change
    assert len(entries()) == before


def test_admin_changes_are_the_admin_users(world, client, django_user_model):
    from apps.teams.models import TeamMembership

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-audit-123")
    client.force_login(admin)
    membership = TeamMembership.objects.get(team=world.research, user=world.users["viewer"])
    response = client.post(f"/admin/teams/teammembership/{membership.pk}/delete/", {"post": "yes"},
                           HTTP_USER_AGENT="Mozilla/5.0 (audit test)")
    assert response.status_code == 302, response.content[:300]
    [deleted] = entries(object_type="teams.teammembership", action="delete")
    assert (deleted.actor, deleted.via, deleted.user_agent) == ("admin:root", "admin", "Mozilla/5.0 (audit test)")
    assert deleted.organization_id == str(world.acme.pk)


def test_a_command_names_itself():
    root = Path(__file__).resolve().parents[2]
    output = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from apps.core.audit import _current; a = _current.get(); print(a.actor, a.via)"],
        cwd=root, env={"PATH": "/usr/bin:/bin", "DEBUG": "1", "HOME": "/tmp"}, capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout
    assert output.strip().splitlines()[-1] == "command:shell command"


def test_the_api_shows_each_caller_its_scope(world, api):
    from apps.teams.services import team_create

    team_create(organization=world.acme, alias="acme-new")
    team_create(organization=world.globex, alias="globex-new")
    everything = api.get("/audit/logs", {"object_type": "teams.team"})
    assert everything.status_code == 200
    assert {e["object_repr"].split(" (")[0] for e in everything.json()["data"]} >= {"acme-new", "globex-new"}
    mine = api.get("/audit/logs", {"object_type": "teams.team"}, key=world.raw("orgadmin"))
    assert mine.status_code == 200
    assert {e["organization_id"] for e in mine.json()["data"]} == {str(world.acme.pk)}
    assert_error(api.get("/audit/logs", key=world.raw("member")), 403)
    assert_error(api.get("/audit/logs", {"action": "explode"}), 400, param="action")


def test_entries_are_append_only_and_the_purge_keeps_the_recent_ones(world, settings):
    from django.utils import timezone

    from apps.core.models import AuditLog
    from apps.core.tasks import audit_logs_purge_task

    entry = entries()[0]
    entry.actor = "someone else"
    with pytest.raises(ValueError):
        entry.save()
    AuditLog.objects.filter(pk=entry.pk).update(created_at=timezone.now() - timedelta(days=500))
    settings.GATEWAY_AUDIT_RETENTION = 400 * 86400
    count = AuditLog.objects.count()
    assert audit_logs_purge_task() == 1
    assert AuditLog.objects.count() == count - 1


def test_a_price_import_logs_each_new_version(world):
    from apps.core.audit import AuditActor, audit_actor
    from apps.spend.price_imports import model_prices_import

    with audit_actor(AuditActor(actor="command:import_prices", via="command")):
        model_prices_import(document={"my-model": {"litellm_provider": "openai", "input_cost_per_token": 1e-06,
                                                   "output_cost_per_token": 2e-06}}, source="test")
    [made] = entries(object_type="spend.modelprice", actor="command:import_prices")
    assert made.changes["model_key"] == [None, "my-model"] and made.changes["input_cost_per_token"][1]
