"""LiteLLM's documented management calls work unchanged: each request body from LiteLLM's own
documentation (tests/management/litellm_examples.py, one test per example) gets a 2xx from the
gateway, with the response fields the documentation shows.

The examples name things that must exist (a team "core-infra", a key "sk-1234", a model id):
the test makes each of them first, as the example's `setup` says, and puts the real id where
the placeholder was, in the path, the query, the body and the headers. User ids, budget ids and
customer ids are chosen by the caller in LiteLLM, so those are made with the example's own value.
Calls are made with the master key, unless the example acts on the calling key (`as_key`).
Where the gateway deliberately answers otherwise, docs/litellm-compat.md says so and why.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.keys.services import virtual_key_create
from apps.providers.models import ModelDeployment
from apps.spend.models import SpendLog
from apps.teams.serializers import ORGANIZATION_ROLES, TEAM_ROLES
from apps.teams.services import organization_create, organization_member_add, team_create, team_member_add
from conftest import MASTER_KEY
from tests.management.litellm_examples import EXAMPLES

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("example", [pytest.param(e, id=e["id"]) for e in EXAMPLES])
def test_documented_litellm_call(example, api, monkeypatch):
    replacements = _make(example["setup"], api, monkeypatch)
    path = _in_path(example["path"], replacements)
    query = _substituted(example["query"], replacements)
    body = _substituted(example["body"], replacements)
    headers = _substituted(example["headers"], replacements)
    key = replacements[example["as_key"]] if example["as_key"] else MASTER_KEY

    response = api(example["method"], path, query if example["method"] == "GET" else body, key=key, **headers)

    if example["differs"]:
        status, param, phrase = example["differs"]
        assert (response.status_code, _error_param(response)) == (status, param), _failure(response)
        assert phrase in COMPAT_DOC, f"docs/litellm-compat.md has no row saying {phrase!r}"
        return
    assert 200 <= response.status_code < 300, _failure(response)
    answer = response.json()
    if example["expect_list"]:
        assert isinstance(answer, list), f"a list was documented; got {type(answer).__name__}: {answer!r:.300}"
        missing = sorted({f for item in answer for f in example["expect_item_fields"] if not _has(item, f)})
    else:
        assert isinstance(answer, dict), f"an object was documented; got {type(answer).__name__}"
        missing = [f for f in example["expect_fields"] if not _has(answer, f)]
    assert not missing, f"documented response fields missing: {', '.join(missing)}"


# --- setup: what an example needs first, and the real ids for its placeholders ------------------


def _make(setup: dict, api, monkeypatch) -> dict[str, str]:
    User = get_user_model()
    replacements: dict[str, str] = {}
    for name, value in setup.get("env", {}).items():
        monkeypatch.setenv(name, value)

    organizations = {}
    home = None
    for placeholder in setup.get("organizations", []):
        organizations[placeholder] = organization_create(name=f"org {placeholder}")
        replacements[placeholder] = str(organizations[placeholder].pk)
    teams = {}
    for placeholder, fields in setup.get("teams", {}).items():
        home = home or organization_create(name="Acme")
        teams[placeholder] = team_create(organization=home, alias=placeholder, **fields)
        replacements[placeholder] = str(teams[placeholder].pk)
    users = {}
    for user_id in setup.get("users", []):
        users[user_id] = User.objects.create_user(user_id)
    for email, user_id in setup.get("user_emails", {}).items():
        users[user_id] = User.objects.create_user(user_id, email=email)
    for user_id, team, role in setup.get("members", []):
        team_member_add(team=teams[team], user=users[user_id], role=TEAM_ROLES[role])
    for user_id, organization, role in setup.get("org_members", []):
        organization_member_add(
            organization=organizations[organization], user=users[user_id], role=ORGANIZATION_ROLES[role]
        )
    keys = {}
    for placeholder, owner in setup.get("keys", {}).items():
        keys[placeholder], replacements[placeholder] = virtual_key_create(
            alias=f"key {placeholder}"[:200],
            team=teams.get(owner.get("team")),
            user=users.get(owner.get("user")),
        )
    for placeholder, model_name in setup.get("model_ids", {}).items():
        replacements[placeholder] = _model_id(_deployment(model_name))
    for model_name in setup.get("model_names", []):
        _deployment(model_name)
    for request_id, fields in setup.get("spend_logs", {}).items():
        _spend_log(request_id, key=keys.get(fields.get("key")), tags=fields.get("tags", []))
    for budget_id, fields in setup.get("budgets", {}).items():
        _setup_call(api, "/budget/new", {"budget_id": budget_id, **fields})
    for user_id, fields in setup.get("customers", {}).items():
        _setup_call(api, "/customer/new", {"user_id": user_id, **fields})
    return replacements


def _deployment(model_name: str):
    return ModelDeployment.objects.create(
        model_name=model_name, provider="openai", upstream_model=model_name, api_key="sk-upstream-secret"
    )


def _model_id(deployment) -> str:
    return deployment.config_id or str(deployment.pk)


def _spend_log(request_id: str, *, key, tags: list[str]):
    now = timezone.now()
    return SpendLog.objects.create(
        request_id=request_id,
        key=key,
        key_hash=key.token_hash if key else "",
        team_id=key.team_id if key else None,
        organization_id=key.organization_id if key else None,
        user_id=key.user_id if key else None,
        call_type="acompletion",
        model="gpt-4",
        provider="openai",
        upstream_model="gpt-4",
        prompt_tokens=20,
        completion_tokens=80,
        cost=Decimal("0.000672"),
        status=SpendLog.Status.SUCCESS,
        start_time=now,
        end_time=now,
        metadata={"tags": tags} if tags else {},
    )


def _setup_call(api, path: str, body: dict) -> None:
    """Budgets and customers are made through LiteLLM's own routes, as its documentation does."""
    response = api.post(path, body)
    if not 200 <= response.status_code < 300:
        pytest.fail(f"setup: POST {path} {body} answered {_failure(response)}")


# --- placeholders, answers -----------------------------------------------------------------------


def _substituted(value, replacements: dict[str, str]):
    if isinstance(value, str):
        return replacements.get(value, value)
    if isinstance(value, dict):
        return {name: _substituted(item, replacements) for name, item in value.items()}
    if isinstance(value, list):
        return [_substituted(item, replacements) for item in value]
    return value


def _in_path(path: str, replacements: dict[str, str]) -> str:
    for placeholder in sorted(replacements, key=len, reverse=True):
        path = path.replace(placeholder, replacements[placeholder])
    return path


def _has(answer, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(answer, dict) or part not in answer:
            return False
        answer = answer[part]
    return True


COMPAT_DOC = (Path(__file__).resolve().parents[2] / "docs" / "litellm-compat.md").read_text()


def _error_param(response):
    try:
        return response.json()["error"]["param"]
    except (ValueError, KeyError, TypeError):
        return None


def _failure(response) -> str:
    """The status and the error's message and param, as the report of a failed example."""
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return f"{response.status_code} {response.content[:200]!r}"
    if not isinstance(error, dict):
        return f"{response.status_code} {str(error)[:200]}"
    return f"{response.status_code} {error.get('message')!s:.200} (param={error.get('param')})"
