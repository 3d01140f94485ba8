"""The spend API: GET /spend/logs (LiteLLM's rows, filters, dates, pages) and GET /spend/report
(the daily rollups added up per group), each caller seeing the spend of its scope; and the
spend /key/info, /team/info, /user/info and /organization/info show, after real requests."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from tests.management.conftest import assert_error

MESSAGES = [{"role": "user", "content": "hi"}]
DAY_1, DAY_2 = date(2025, 3, 1), date(2025, 3, 2)
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
_request_ids = itertools.count()


def at(day: date, hour: int = 12, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, microsecond, tzinfo=UTC)


def add_log(key=None, *, when: datetime, cost: str | None = "0.01", **fields):
    """A spend log as the batch writer would write it for a request made with `key`."""
    from apps.spend.models import SpendLog

    values = {
        "request_id": f"req-{next(_request_ids)}",
        "call_type": "chat_completion",
        "model": "gpt-a",
        "provider": "openai",
        "upstream_model": "gpt-a-upstream",
        "status": "success",
        "http_status": 200,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost": None if cost is None else Decimal(cost),
        "start_time": when,
        "end_time": when + timedelta(milliseconds=250),
        "latency_ms": 250,
    }
    if key is not None:
        values.update(
            key_id=key.pk,
            key_hash=key.token_hash,
            team_id=key.team_id,
            organization_id=key.organization_id,
            user_id=key.user_id,
        )
    values.update(fields)
    return SpendLog.objects.create(**values)


def request_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["request_id"] for row in response.json()]


# --- real requests through the gateway ------------------------------------------------------


@pytest.fixture
def alice(team):
    """A member of the team, with a key on it."""
    from django.contrib.auth import get_user_model

    from apps.teams.services import team_member_add

    user = get_user_model().objects.create_user("alice", email="alice@example.com")
    team_member_add(team=team, user=user, role="member")
    return user


def test_spend_logs_of_real_requests_have_litellms_fields(
    api, gateway, openai_client, make_deployment, make_key, team, alice, spend_logs
):
    deployment = make_deployment("gpt-test", upstream_model="upstream-gpt")
    key, raw_key = make_key(team=team, user=alice, alias="alice-key")
    client = openai_client(raw_key)
    client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    list(
        client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    logs = spend_logs(2)

    response = api.get("/spend/logs", {"api_key": raw_key})
    assert request_ids(response) == [log.request_id for log in reversed(logs)]  # newest first
    assert raw_key not in response.content.decode()  # the key's hash, never the key
    streamed, plain = response.json()
    log = logs[0]
    assert {
        "request_id",
        "call_type",
        "api_key",
        "model",
        "spend",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "startTime",
        "endTime",
        "metadata",
        "team_id",
        "user",
        "organization_id",
        "cache_hit",
    } <= set(plain)
    assert "messages" not in plain and "response" not in plain  # stored only for opted-in keys
    assert plain["call_type"] == "chat_completion"
    assert (plain["api_key"], plain["model"]) == (key.token_hash, "gpt-test")
    assert plain["spend"] == pytest.approx(float(log.cost)) and plain["spend"] > 0
    assert (plain["prompt_tokens"], plain["completion_tokens"], plain["total_tokens"]) == (11, 7, 18)
    assert datetime.fromisoformat(plain["startTime"]) == log.start_time
    assert datetime.fromisoformat(plain["endTime"]) == log.end_time
    assert (plain["team_id"], plain["organization_id"]) == (str(team.pk), str(team.organization_id))
    assert (plain["user"], plain["cache_hit"]) == ("alice", False)
    metadata = plain["metadata"]
    assert metadata["user_api_key_team_id"] == str(team.pk)
    assert metadata["user_api_key_org_id"] == str(team.organization_id)
    assert metadata["user_api_key_user_id"] == "alice"
    assert metadata["user_api_key_alias"] == "alice-key"
    assert (metadata["status"], metadata["http_status"], metadata["error_type"]) == ("success", 200, None)
    assert (metadata["provider"], metadata["upstream_model"]) == ("openai", "upstream-gpt")
    assert (metadata["deployment_id"], metadata["cost_status"]) == (deployment.pk, "priced")
    assert metadata["cached_tokens"] == 3 and metadata["reasoning_tokens"] == 0
    assert metadata["usage_reported"] is True and metadata["latency_ms"] >= 0
    assert (plain["metadata"]["is_stream"], streamed["metadata"]["is_stream"]) == (False, True)
    assert streamed["spend"] == pytest.approx(plain["spend"])

    # By hash: the same rows.
    assert request_ids(api.get("/spend/logs", {"api_key": key.token_hash})) == request_ids(response)


def test_key_team_user_and_organization_info_spend_is_the_sum_of_the_spend_logs(
    api, gateway, openai_client, make_deployment, make_key, team, alice, spend_logs
):
    from apps.spend.rollups import daily_spend_rollup

    make_deployment("gpt-test")
    make_deployment("gpt-other", input_cost_per_token=Decimal("0.00001"))
    _, raw_key = make_key(team=team, user=alice)
    client = openai_client(raw_key)
    for model in ("gpt-test", "gpt-other", "gpt-test"):
        client.chat.completions.create(model=model, messages=MESSAGES)
    client.embeddings.create(model="gpt-test", input=["a", "b"])
    logs = spend_logs(4)
    total = float(sum(log.cost for log in logs))
    assert total > 0

    key_info = api.get("/key/info", {"key": raw_key}).json()["info"]
    team_info = api.get("/team/info", {"team_id": str(team.pk)}).json()["team_info"]
    user_info = api.get("/user/info", {"user_id": "alice"}).json()["user_info"]
    organization = api.get("/organization/info", {"organization_id": str(team.organization_id)}).json()
    for spend in (key_info["spend"], team_info["spend"], user_info["spend"], organization["spend"]):
        assert spend == pytest.approx(total)
    # The user sees the same through its own key.
    assert api.get("/user/info", key=raw_key).json()["user_info"]["spend"] == pytest.approx(total)

    rows = api.get("/spend/logs", {"user_id": "alice"}, key=raw_key).json()
    assert sum(row["spend"] for row in rows) == pytest.approx(total)
    days = sorted({log.start_time.astimezone(UTC).date() for log in logs})
    for day in days:
        daily_spend_rollup(day=day)
    query = {"start_date": days[0].isoformat(), "end_date": days[-1].isoformat(), "group_by": "model"}
    report = api.get("/spend/report", query, key=raw_key).json()
    assert report["totals"]["spend"] == pytest.approx(total)
    assert report["totals"]["requests"] == 4


def test_an_unpriced_request_has_null_spend_never_zero(
    api, gateway, openai_client, make_deployment, make_key, team, alice, spend_logs
):
    make_deployment("unpriced", input_cost_per_token=None, output_cost_per_token=None)
    _, raw_key = make_key(team=team, user=alice)
    openai_client(raw_key).chat.completions.create(model="unpriced", messages=MESSAGES)
    spend_logs(1)
    [row] = api.get("/spend/logs", {"model": "unpriced"}).json()
    assert row["spend"] is None
    assert row["metadata"]["cost_status"] == "unpriced"
    assert row["prompt_tokens"] == 11


# --- /spend/logs over inserted logs --------------------------------------------------------


def test_api_key_by_raw_key_and_by_hash_give_the_same_rows(api, world):
    mine = [add_log(world.key("member"), when=at(DAY_1, hour)) for hour in (9, 10)]
    add_log(world.key("viewer"), when=at(DAY_1, 11))
    expected = [log.request_id for log in reversed(mine)]
    assert request_ids(api.get("/spend/logs", {"api_key": world.raw("member")})) == expected
    assert request_ids(api.get("/spend/logs", {"api_key": world.key("member").token_hash})) == expected


def test_a_deleted_keys_hash_still_filters_its_logs_within_the_callers_scope(api, world):
    from apps.keys.services import virtual_key_create, virtual_key_delete

    gone, raw = virtual_key_create(alias="gone", team=world.research, user=world.users["member"])
    log = add_log(gone, when=at(DAY_1))
    token_hash = gone.token_hash
    virtual_key_delete(keys=[gone])

    assert request_ids(api.get("/spend/logs", {"api_key": token_hash})) == [log.request_id]
    assert request_ids(api.get("/spend/logs", {"api_key": raw})) == [log.request_id]
    member, outsider = world.credentials["member"], world.credentials["outsider"]
    assert request_ids(api.get("/spend/logs", {"api_key": token_hash}, key=member)) == [log.request_id]
    assert request_ids(api.get("/spend/logs", {"api_key": token_hash}, key=outsider)) == []
    # A hash that no key and no log ever had names nothing.
    assert_error(api.get("/spend/logs", {"api_key": "0" * 64}), 404, param="api_key")
    assert_error(api.get("/spend/logs", {"api_key": "sk-never-issued"}), 404, param="api_key")


def test_each_filter_narrows_the_logs(api, world, make_deployment_row):
    member, viewer, outsider = world.key("member"), world.key("viewer"), world.key("outsider")
    a = add_log(member, when=at(DAY_1, 1), model="gpt-a", provider="openai")
    b = add_log(viewer, when=at(DAY_1, 2), model="gpt-b", provider="anthropic")
    c = add_log(outsider, when=at(DAY_1, 3), model="gpt-a", provider="anthropic")

    def ids(**query):
        return set(request_ids(api.get("/spend/logs", query)))

    assert ids() == {a.request_id, b.request_id, c.request_id}
    assert ids(request_id=b.request_id) == {b.request_id}
    assert ids(user_id="member") == {a.request_id}
    assert ids(team_id=str(world.research.pk)) == {a.request_id, b.request_id}
    assert ids(organization_id=str(world.globex.pk)) == {c.request_id}
    assert ids(model="gpt-a") == {a.request_id, c.request_id}
    assert ids(provider="anthropic") == {b.request_id, c.request_id}
    assert ids(model="gpt-a", provider="anthropic") == {c.request_id}
    assert ids(team_id=str(world.research.pk), model="gpt-a", user_id="member") == {a.request_id}
    assert ids(model="") == ids()  # an empty filter is no filter
    assert ids(request_id="nope") == set()


def test_date_ranges_include_the_whole_end_day_and_take_datetimes(api, world):
    key = world.key("member")
    before = add_log(key, when=at(DAY_1, 0) - timedelta(microseconds=1))
    first = add_log(key, when=at(DAY_1, 0))
    last = add_log(key, when=at(DAY_1, 23, 59, 59, 999999))
    next_day = add_log(key, when=at(DAY_2, 0))

    def ids(**query):
        return set(request_ids(api.get("/spend/logs", query)))

    assert ids(start_date="2025-03-01", end_date="2025-03-01") == {first.request_id, last.request_id}
    assert ids(start_date="2025-03-01") == {first.request_id, last.request_id, next_day.request_id}
    assert ids(end_date="2025-03-01") == {before.request_id, first.request_id, last.request_id}
    # A datetime end is included itself, and no more.
    assert ids(start_date="2025-03-01T12:00:00Z", end_date="2025-03-02T00:00:00Z") == {
        last.request_id,
        next_day.request_id,
    }
    assert ids(start_date="2025-03-01", end_date="2025-03-01T23:59:59") == {first.request_id}
    # Naive datetimes are UTC; offsets count.
    assert ids(start_date="2025-03-01T01:00:00+01:00", end_date="2025-03-01T00:00:00") == {first.request_id}
    assert ids(start_date="2025-03-02", end_date="2025-03-02") == {next_day.request_id}


@pytest.mark.parametrize(
    "query, param",
    [
        ({"start_date": "2025-13-01"}, "start_date"),
        ({"start_date": "2025-02-30"}, "start_date"),
        ({"end_date": "yesterday"}, "end_date"),
        ({"start_date": "2025-03-02", "end_date": "2025-03-01"}, "end_date"),
        ({"start_date": "2025-03-01T12:00:00Z", "end_date": "2025-03-01T11:59:59Z"}, "end_date"),
        ({"page": "0"}, "page"),
        ({"page_size": "1001"}, "page_size"),
    ],
)
def test_bad_dates_and_pages_are_400_naming_the_param(api, world, query, param):
    assert_error(api.get("/spend/logs", query), 400, param=param, code="invalid_request")


def test_logs_are_paged_with_the_total_in_headers(api, world):
    logs = [add_log(world.key("member"), when=at(DAY_1, hour)) for hour in range(5)]
    newest_first = [log.request_id for log in reversed(logs)]

    pages = []
    for page in (1, 2, 3):
        response = api.get("/spend/logs", {"page": page, "page_size": 2})
        assert (response["x-total-count"], response["x-total-pages"]) == ("5", "3")
        pages.append(request_ids(response))
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
    assert request_ids(api.get("/spend/logs", {"page": 4, "page_size": 2})) == []
    response = api.get("/spend/logs")
    assert (response["x-total-count"], response["x-total-pages"]) == ("5", "1")
    assert request_ids(response) == newest_first
    assert api.get("/spend/logs", {"page_size": 1000}).status_code == 200


def test_past_the_count_bound_the_total_is_the_bound_or_the_planners_estimate(api, world, monkeypatch):
    """Counting ten million logs for x-total-count took a second a page: past apps.core.db's bound
    the total is an estimate (no filter, PostgreSQL) or the bound; the pages are whole either way."""
    from django.db import connection

    monkeypatch.setattr("apps.core.db.COUNT_BOUND", 4)
    key = world.key("member")
    logs = [add_log(key, when=at(DAY_1, hour)) for hour in range(9)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE spend_spendlog")
    response = api.get("/spend/logs", {"page_size": 2})
    expected = "9" if connection.vendor == "postgresql" else "4"  # the planner's estimate: the rows ANALYZE saw
    assert response["x-total-count"] == expected
    assert request_ids(response) == [logs[8].request_id, logs[7].request_id]
    filtered = api.get("/spend/logs", {"page_size": 2, "api_key": key.token_hash})
    assert filtered["x-total-count"] == "4"  # a filtered list: the bound
    assert request_ids(api.get("/spend/logs", {"page": 5, "page_size": 2})) == [logs[0].request_id]
    monkeypatch.setattr("apps.core.db.COUNT_BOUND", 100)
    assert api.get("/spend/logs", {"page_size": 2})["x-total-count"] == "9"  # within the bound: exact


def test_unpriced_logs_show_null_spend_and_free_ones_zero(api, world):
    key = world.key("member")
    add_log(key, when=at(DAY_1, 1), cost=None, cost_status="unpriced", request_id="unpriced")
    add_log(key, when=at(DAY_1, 2), cost="0", cost_status="unpriced", request_id="unpriced-zero")
    add_log(key, when=at(DAY_1, 3), cost="0", cost_status="no_usage", request_id="nothing-used")
    add_log(key, when=at(DAY_1, 4), cost=None, status="error", http_status=503, request_id="failed")
    add_log(key, when=at(DAY_1, 5), cost="0.0125", request_id="priced")
    spend = {row["request_id"]: row["spend"] for row in api.get("/spend/logs").json()}
    assert spend == {
        "unpriced": None,
        "unpriced-zero": None,
        "nothing-used": 0,
        "failed": None,
        "priced": pytest.approx(0.0125),
    }


def test_metadata_is_the_clients_with_the_gateways_on_top_and_prompts_only_when_stored(api, world):
    key = world.key("member")
    client_metadata = {"tags": ["batch"], "project": "x", "user_api_key_team_id": "spoofed"}
    add_log(
        key,
        when=at(DAY_1, 1),
        request_id="stored",
        metadata=client_metadata,
        messages=MESSAGES,
        response={"choices": [{"message": {"role": "assistant", "content": "hello"}}]},
    )
    add_log(key, when=at(DAY_1, 2), request_id="plain")
    rows = {row["request_id"]: row for row in api.get("/spend/logs").json()}
    stored, plain = rows["stored"], rows["plain"]
    assert stored["metadata"]["project"] == "x" and stored["metadata"]["tags"] == ["batch"]
    assert stored["metadata"]["user_api_key_team_id"] == str(world.research.pk)  # the gateway's
    assert stored["request_tags"] == ["batch"]
    assert stored["messages"] == MESSAGES
    assert stored["response"]["choices"][0]["message"]["content"] == "hello"
    assert "messages" not in plain and "response" not in plain and plain["request_tags"] == []


def test_logs_of_a_key_without_team_or_user(api, world):
    from apps.keys.services import virtual_key_create

    lone, _ = virtual_key_create(alias="")
    add_log(lone, when=at(DAY_1), request_id="lone")
    [row] = api.get("/spend/logs", {"api_key": lone.token_hash}).json()
    assert (row["team_id"], row["organization_id"], row["user"]) == (None, None, None)
    assert row["metadata"]["user_api_key_alias"] is None


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/spend/logs", "/spend/report"])
def test_no_key_is_401(api, world, path):
    assert_error(api.get(path, {"start_date": "2025-03-01", "end_date": "2025-03-01"}, key=None), 401)
    assert_error(api.get(path, key="sk-unknown"), 401, code="invalid_api_key")


@pytest.mark.parametrize("path", ["/spend/logs", "/spend/report"])
@pytest.mark.parametrize(
    "query, param",
    [
        ({"team_id": ZERO_UUID}, "team_id"),
        ({"team_id": "not-a-uuid"}, "team_id"),
        ({"organization_id": ZERO_UUID}, "organization_id"),
        ({"user_id": "nobody"}, "user_id"),
        ({"api_key": "sk-never-issued"}, "api_key"),
    ],
)
def test_a_filter_naming_nothing_is_404(api, world, path, query, param):
    query = {"start_date": "2025-03-01", "end_date": "2025-03-01", **query}
    for role in ("proxy_admin", "member"):
        assert_error(api.get(path, query, key=world.credentials[role]), 404, param=param, code="not_found")


@pytest.mark.parametrize("path", ["/spend/logs", "/spend/report"])
def test_a_filter_outside_the_callers_scope_is_403(api, world, path):
    dates = {"start_date": "2025-03-01", "end_date": "2025-03-01"}

    def denied(role, param, **query):
        response = api.get(path, {**dates, **query}, key=world.credentials[role])
        assert_error(response, 403, param=param, code="permission_denied")

    sales, globex = str(world.sales.pk), str(world.globex.pk)
    denied("member", "team_id", team_id=sales)
    denied("member", "api_key", api_key=world.key("teamadmin").token_hash)
    denied("member", "user_id", user_id="viewer")
    denied("member", "organization_id", organization_id=globex)
    denied("team_admin", "user_id", user_id="outsider")
    denied("team_admin", "api_key", api_key=world.raw("orgadmin"))
    denied("org_admin", "organization_id", organization_id=globex)
    denied("org_admin", "team_id", team_id=sales)
    denied("plain_key", "user_id", user_id="member")
    denied("plain_key", "api_key", api_key=world.key("member").token_hash)
    denied("plain_key", "team_id", team_id=sales)
    # What one's own spend lies in may be named.
    member = world.credentials["member"]
    for query in ({"team_id": str(world.research.pk)}, {"organization_id": str(world.acme.pk)}):
        assert api.get(path, {**dates, **query}, key=member).status_code == 200
    assert api.get(path, {**dates, "user_id": "member"}, key=world.credentials["team_admin"]).status_code == 200


# --- who sees what ------------------------------------------------------------------------


@pytest.fixture
def spend_everywhere(world):
    """One log per key of the world, plus the accountant's personal key (a user only Acme
    holds): request_id = the key's name."""
    from apps.keys.services import virtual_key_create

    world.keys["accountant"] = virtual_key_create(alias="accountant-key", user=world.users["accountant"])
    for hour, name in enumerate(world.keys):
        add_log(world.key(name), when=at(DAY_1, hour), request_id=name, model=f"model-{name}")
    return world


VISIBLE = {
    "proxy_admin": {"orgadmin", "teamadmin", "member", "viewer", "plain", "outsider", "accountant"},
    "org_admin": {"orgadmin", "teamadmin", "member", "viewer", "plain", "accountant"},
    "team_admin": {"teamadmin", "member", "viewer", "plain"},
    "member": {"member"},
    "viewer": {"viewer"},
    "plain_key": {"plain"},
    "outsider": {"outsider"},
}


@pytest.mark.parametrize("role", list(VISIBLE))
def test_each_role_sees_the_logs_of_its_scope(api, spend_everywhere, role):
    world = spend_everywhere
    response = api.get("/spend/logs", key=world.credentials[role])
    assert set(request_ids(response)) == VISIBLE[role]
    assert response["x-total-count"] == str(len(VISIBLE[role]))


@pytest.mark.parametrize("role", list(VISIBLE))
def test_each_role_sees_the_report_of_its_scope(api, spend_everywhere, role):
    from apps.spend.rollups import daily_spend_rollup

    world = spend_everywhere
    daily_spend_rollup(day=DAY_1)
    query = {"start_date": "2025-03-01", "end_date": "2025-03-01", "group_by": "model"}
    report = api.get("/spend/report", query, key=world.credentials[role]).json()
    assert {row["model"] for row in report["rows"]} == {f"model-{name}" for name in VISIBLE[role]}
    assert report["totals"]["requests"] == len(VISIBLE[role])
    assert report["totals"]["spend"] == pytest.approx(0.01 * len(VISIBLE[role]))


def test_a_team_admin_filtering_by_a_member_sees_only_that_members_spend_in_its_team(api, spend_everywhere):
    from apps.keys.services import virtual_key_create

    world = spend_everywhere
    personal, personal_raw = virtual_key_create(alias="member-personal", user=world.users["member"])
    add_log(personal, when=at(DAY_1, 20), request_id="member-personal")
    team_admin, member = world.credentials["team_admin"], world.credentials["member"]
    assert request_ids(api.get("/spend/logs", {"user_id": "member"}, key=team_admin)) == ["member"]
    # Through its team key the member sees its spend in that team; through a key outside every
    # team, all of its own.
    assert request_ids(api.get("/spend/logs", {"user_id": "member"}, key=member)) == ["member"]
    assert set(request_ids(api.get("/spend/logs", {"user_id": "member"}, key=personal_raw))) == {
        "member",
        "member-personal",
    }


# --- /spend/report ------------------------------------------------------------------------


@pytest.fixture
def two_days(world):
    """Logs over two days, several keys, models and providers; rolled up. Returns the logs."""
    from apps.spend.rollups import daily_spend_rollup

    logs = []
    plan = [
        ("member", DAY_1, "gpt-a", "openai", "0.010"),
        ("member", DAY_1, "gpt-b", "anthropic", "0.020"),
        ("viewer", DAY_1, "gpt-a", "openai", "0.004"),
        ("outsider", DAY_1, "gpt-a", "openai", "0.100"),
        ("member", DAY_2, "gpt-a", "openai", "0.001"),
        ("teamadmin", DAY_2, "gpt-b", "anthropic", "0.300"),
        ("outsider", DAY_2, "gpt-c", "mistral", None),
    ]
    for hour, (name, day, model, provider, cost) in enumerate(plan):
        status = "unpriced" if cost is None else "priced"
        logs.append(add_log(world.key(name), when=at(day, hour), model=model, provider=provider,
                            cost=cost, cost_status=status))
    add_log(world.key("member"), when=at(DAY_2, 23), model="gpt-a", provider="openai",
            status="error", http_status=500, cost=None, cost_status="no_usage")
    # A day outside the reports below.
    add_log(world.key("member"), when=at(date(2025, 3, 3), 1), cost="9")
    for day in (DAY_1, DAY_2, date(2025, 3, 3)):
        daily_spend_rollup(day=day)
    from apps.spend.models import SpendLog

    return list(SpendLog.objects.filter(start_time__lt=at(date(2025, 3, 3), 0)))


def expected_groups(logs, group_of) -> dict:
    """Spend and requests per group, added up from the logs themselves."""
    sums = defaultdict(lambda: [Decimal(0), 0])
    for log in logs:
        sums[group_of(log)][0] += log.cost or 0
        sums[group_of(log)][1] += 1
    return {group: (float(spend), requests) for group, (spend, requests) in sums.items()}


def report(api, group_by=None, key=None, **query):
    query = {"start_date": "2025-03-01", "end_date": "2025-03-02", **query}
    if group_by is not None:
        query["group_by"] = group_by
    kwargs = {"key": key} if key else {}
    response = api.get("/spend/report", query, **kwargs)
    assert response.status_code == 200, response.content
    return response.json()


def report_groups(body, *names) -> dict:
    groups = {}
    for row in body["rows"]:
        group = tuple(row[name] for name in names)
        groups[group if len(names) > 1 else group[0]] = (row["spend"], row["requests"])
    return groups


def assert_same_groups(actual: dict, expected: dict):
    assert set(actual) == set(expected)
    for group, (spend, requests) in expected.items():
        assert actual[group][0] == pytest.approx(spend), group
        assert actual[group][1] == requests, group


def test_the_report_by_day_is_the_default_and_adds_up_the_logs(api, world, two_days):
    body = report(api)
    assert (body["start_date"], body["end_date"], body["group_by"]) == ("2025-03-01", "2025-03-02", ["day"])
    assert_same_groups(
        report_groups(body, "day"), expected_groups(two_days, lambda log: log.start_time.date().isoformat())
    )
    assert [row["day"] for row in body["rows"]] == ["2025-03-01", "2025-03-02"]
    totals = body["totals"]
    assert totals["spend"] == pytest.approx(float(sum(log.cost or 0 for log in two_days)))
    assert totals["requests"] == len(two_days) == 8
    assert (totals["errors"], totals["unpriced_requests"]) == (1, 1)
    assert totals["prompt_tokens"] == 80 and totals["total_tokens"] == 120
    assert "day" not in totals
    assert all(isinstance(row["spend"], float) for row in [*body["rows"], totals])


@pytest.mark.parametrize(
    "group_by, fields, group_of",
    [
        ("team", ("team_id",), lambda w, log: str(log.team_id)),
        ("key", ("api_key",), lambda w, log: log.key_hash),
        ("model", ("model",), lambda w, log: log.model),
        ("provider", ("provider",), lambda w, log: log.provider),
        ("organization", ("organization_id",), lambda w, log: str(log.organization_id)),
        ("user", ("user_id",), lambda w, log: log.user.username),
        ("day,model", ("day", "model"), lambda w, log: (log.start_time.date().isoformat(), log.model)),
        (["day", "model"], ("day", "model"), lambda w, log: (log.start_time.date().isoformat(), log.model)),
        ("team,provider", ("team_id", "provider"), lambda w, log: (str(log.team_id), log.provider)),
    ],
)
def test_report_groups_add_up_the_logs(api, world, two_days, group_by, fields, group_of):
    body = report(api, group_by)
    expected_names = group_by.split(",") if isinstance(group_by, str) else group_by
    assert body["group_by"] == expected_names
    assert_same_groups(report_groups(body, *fields), expected_groups(two_days, lambda log: group_of(world, log)))
    total = sum(row["spend"] for row in body["rows"])
    assert total == pytest.approx(body["totals"]["spend"])


def test_report_rows_name_what_they_group(api, world, two_days):
    teams = {row["team_id"]: row["team_alias"] for row in report(api, "team")["rows"]}
    assert teams == {str(world.research.pk): "research", str(world.sales.pk): "sales"}
    keys = {row["api_key"]: row["key_alias"] for row in report(api, "key")["rows"]}
    assert keys[world.key("member").token_hash] == "member-key"
    organizations = {row["organization_name"] for row in report(api, "organization")["rows"]}
    assert organizations == {"Acme", "Globex"}


def test_report_filters(api, world, two_days):
    def spend_of(logs):
        return pytest.approx(float(sum(log.cost or 0 for log in logs)))

    member = world.key("member")
    cases = [
        ({"api_key": world.raw("member")}, lambda log: log.key_id == member.pk),
        ({"api_key": member.token_hash}, lambda log: log.key_id == member.pk),
        ({"team_id": str(world.research.pk)}, lambda log: log.team_id == world.research.pk),
        ({"organization_id": str(world.globex.pk)}, lambda log: log.organization_id == world.globex.pk),
        ({"user_id": "member"}, lambda log: log.user_id == world.users["member"].pk),
        ({"model": "gpt-a"}, lambda log: log.model == "gpt-a"),
        ({"provider": "anthropic"}, lambda log: log.provider == "anthropic"),
        ({"model": "gpt-a", "provider": "openai", "user_id": "member"},
         lambda log: log.model == "gpt-a" and log.user_id == world.users["member"].pk),
    ]
    for query, wanted in cases:
        logs = [log for log in two_days if wanted(log)]
        totals = report(api, **query)["totals"]
        assert (totals["requests"], totals["spend"]) == (len(logs), spend_of(logs)), query


def test_report_date_range_includes_both_ends(api, world, two_days):
    day_1 = [log for log in two_days if log.start_time.date() == DAY_1]
    assert report(api, start_date="2025-03-01", end_date="2025-03-01")["totals"]["requests"] == len(day_1)
    assert report(api, start_date="2025-03-03", end_date="2025-03-03")["totals"]["spend"] == pytest.approx(9)
    empty = report(api, start_date="2024-01-01", end_date="2024-01-31")
    assert empty["rows"] == [] and (empty["totals"]["requests"], empty["totals"]["spend"]) == (0, 0)


def _litellm_report(api, key=None, **query):
    query = {"start_date": "2025-03-01", "end_date": "2025-03-02", **query}
    response = api.get("/global/spend/report", query, **({"key": key} if key else {}))
    assert response.status_code == 200, response.content
    return response.json()


def test_global_spend_report_per_day_and_team_in_litellms_shape(api, world, two_days):
    answer = _litellm_report(api)
    assert [day["group_by_day"] for day in answer] == ["2025-03-01T00:00:00+00:00", "2025-03-02T00:00:00+00:00"]
    got = {(day["group_by_day"][:10], team["team_name"]): team["total_spend"] for day in answer for team in day["teams"]}
    expected = expected_groups(two_days, lambda log: (log.start_time.date().isoformat(),
                                                      "research" if log.team_id == world.research.pk else "sales"))
    assert got == pytest.approx({group: spend for group, (spend, _) in expected.items()})
    research = next(team for team in answer[0]["teams"] if team["team_name"] == "research")
    assert {item["model"]: item["total_tokens"] for item in research["metadata"]} == {"gpt-a": 30, "gpt-b": 15}

    # A member sees its own spend only.
    [day_1, day_2] = _litellm_report(api, key=world.credentials["member"])
    assert [(team["team_name"], team["total_spend"]) for team in day_1["teams"]] == [("research", pytest.approx(0.03))]


def test_global_spend_report_per_key_for_a_key_a_user_or_every_key(api, world, two_days):
    member = world.key("member")
    [item] = _litellm_report(api, api_key=member.token_hash)
    assert (item["api_key"], item["total_cost"], item["total_input_tokens"], item["total_output_tokens"]) == (
        member.token_hash, pytest.approx(0.031), 40, 20)
    assert {m["model"]: m["total_cost"] for m in item["model_details"]} == pytest.approx({"gpt-a": 0.011, "gpt-b": 0.02})
    assert _litellm_report(api, internal_user_id="member") == [item]
    every_key = _litellm_report(api, group_by="api_key")
    assert [key["api_key"] for key in every_key][0] == world.key("teamadmin").token_hash  # the costliest first
    assert len(every_key) == 4

    assert_error(api.get("/global/spend/report", {"start_date": "2025-03-01", "end_date": "2025-03-02",
                                                   "internal_user_id": "outsider"}, key=world.credentials["member"]),
                 403, param="internal_user_id")
    assert_error(api.get("/global/spend/report", {"start_date": "2025-03-01", "end_date": "2025-03-02",
                                                   "internal_user_id": "nobody"}), 404, param="internal_user_id")
    assert_error(api.get("/global/spend/report", {"start_date": "2025-03-01", "end_date": "2025-03-02",
                                                   "group_by": "week"}), 400, param="group_by")


def test_global_spend_report_per_day_and_customer(api, world, two_days):
    from apps.spend.rollups import daily_spend_rollup

    add_log(world.key("member"), when=at(DAY_1, 20), cost="0.5", end_user="customer-1")
    add_log(world.key("viewer"), when=at(DAY_1, 21), cost="0.25", end_user="customer-1")
    add_log(world.key("member"), when=at(DAY_1, 22), cost="0.125", end_user="customer-2")
    daily_spend_rollup(day=DAY_1)
    [day] = _litellm_report(api, group_by="customer")
    assert day["group_by_day"].startswith("2025-03-01")
    assert {c["customer"]: c["total_spend"] for c in day["customers"]} == {"customer-1": 0.75, "customer-2": 0.125}
    customer_1 = next(c for c in day["customers"] if c["customer"] == "customer-1")
    assert {m["api_key"] for m in customer_1["metadata"]} == {world.key("member").token_hash,
                                                             world.key("viewer").token_hash}
    [only] = _litellm_report(api, group_by="customer", customer_id="customer-2")
    assert [c["customer"] for c in only["customers"]] == ["customer-2"]


@pytest.mark.parametrize(
    "query, param",
    [
        ({"end_date": "2025-03-01"}, "start_date"),
        ({"start_date": "2025-03-01"}, "end_date"),
        ({"start_date": "2025-03-01T00:00:00Z", "end_date": "2025-03-02"}, "start_date"),
        ({"start_date": "2025-03-02", "end_date": "2025-03-01"}, "end_date"),
        ({"start_date": "2025-01-01", "end_date": "2026-01-02"}, "end_date"),  # 367 days
        ({"start_date": "2025-03-01", "end_date": "2025-03-01", "group_by": "day,week"}, "group_by"),
    ],
)
def test_bad_report_queries_are_400_naming_the_param(api, world, query, param):
    assert_error(api.get("/spend/report", query), 400, param=param, code="invalid_request")


def test_a_report_may_span_366_days(api, world):
    assert report(api, start_date="2024-01-01", end_date="2024-12-31")["rows"] == []  # a leap year
