"""LiteLLM's other spend routes: GET /global/spend/logs, /global/spend/keys, /global/spend/models
(the last 30 days of the daily rollups), GET /spend/tags and /global/spend/tags (the daily tag
rollup), each caller seeing the spend of its scope; and POST /spend/calculate (the gateway's
prices, never 0 for an unknown one)."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest

from tests.management.conftest import assert_error
from tests.management.test_spend_api import VISIBLE, add_log, at

MESSAGES = [{"role": "user", "content": "hi"}]


def roll_up(*days):
    from apps.spend.rollups import daily_spend_rollup

    for day in days:
        daily_spend_rollup(day=day)


def roll_up_logs(logs):
    roll_up(*sorted({log.start_time.astimezone(UTC).date() for log in logs}))


def ok(response):
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def alice(team):
    from django.contrib.auth import get_user_model

    from apps.teams.services import team_member_add

    user = get_user_model().objects.create_user("alice", email="alice@example.com")
    team_member_add(team=team, user=user, role="member")
    return user


# --- real requests through the gateway, rolled up, then read --------------------------------------


@pytest.fixture
def traffic(api, gateway, openai_client, make_deployment, make_key, team, alice, spend_logs):
    """Requests of two keys to two models, some tagged (a tag on two requests), rolled up."""
    make_deployment("gpt-test", tags=["batch", "nightly"])
    make_deployment("gpt-pricey", input_cost_per_token=Decimal("0.0001"), tags=["batch", "nightly"])
    key_a, raw_a = make_key(team=team, user=alice, alias="alice-key")
    key_b, raw_b = make_key(team=team, alias="robot")
    client_a, client_b = openai_client(raw_a), openai_client(raw_b)
    client_a.chat.completions.create(model="gpt-test", messages=MESSAGES, extra_body={"metadata": {"tags": ["batch"]}})
    client_a.chat.completions.create(model="gpt-pricey", messages=MESSAGES, extra_body={"tags": ["batch", "nightly"]})
    client_b.chat.completions.create(model="gpt-test", messages=MESSAGES)
    logs = spend_logs(3)
    roll_up_logs(logs)
    return {"logs": logs, "keys": {"a": (key_a, raw_a), "b": (key_b, raw_b)}}


def cost_of(logs, wanted=lambda log: True) -> float:
    return float(sum(log.cost for log in logs if wanted(log)))


def test_global_spend_logs_is_the_spend_per_day(api, traffic):
    logs = traffic["logs"]
    [today] = ok(api.get("/global/spend/logs"))
    assert today["date"] == logs[0].start_time.astimezone(UTC).date().isoformat()
    assert today["spend"] == pytest.approx(cost_of(logs)) and today["spend"] > 0
    assert today["unpriced_requests"] == 0 and "api_key" not in today

    key_a, raw_a = traffic["keys"]["a"]
    for ref in (raw_a, key_a.token_hash):
        [day] = ok(api.get("/global/spend/logs", {"api_key": ref}))
        assert day["spend"] == pytest.approx(cost_of(logs, lambda log: log.key_id == key_a.pk))
        assert day["api_key"] == key_a.token_hash


def test_global_spend_keys_ranks_keys_by_spend(api, traffic):
    logs = traffic["logs"]
    (key_a, _), (key_b, _) = traffic["keys"]["a"], traffic["keys"]["b"]
    rows = ok(api.get("/global/spend/keys"))
    assert [row["api_key"] for row in rows] == [key_a.token_hash, key_b.token_hash]
    top = rows[0]
    assert (top["key_alias"], top["key_name"]) == ("alice-key", key_a.key_display)
    assert top["total_spend"] == pytest.approx(cost_of(logs, lambda log: log.key_id == key_a.pk))
    assert [row["api_key"] for row in ok(api.get("/global/spend/keys", {"limit": 1}))] == [key_a.token_hash]


def test_global_spend_models_ranks_models_by_spend(api, traffic):
    logs = traffic["logs"]
    rows = ok(api.get("/global/spend/models"))
    assert [row["model"] for row in rows] == ["gpt-pricey", "gpt-test"]
    assert rows[1]["total_spend"] == pytest.approx(cost_of(logs, lambda log: log.model == "gpt-test"))
    assert rows[1]["total_tokens"] == sum(log.total_tokens for log in logs if log.model == "gpt-test")
    assert [row["model"] for row in ok(api.get("/global/spend/models", {"limit": 1}))] == ["gpt-pricey"]


def test_a_tag_on_two_requests_adds_up_both(api, traffic):
    logs = traffic["logs"]
    tagged = {tag: [log for log in logs if tag in (log.metadata or {}).get("tags", [])] for tag in ("batch", "nightly")}
    assert (len(tagged["batch"]), len(tagged["nightly"])) == (2, 1)

    rows = {row["individual_request_tag"]: row for row in ok(api.get("/spend/tags"))}
    assert set(rows) == {"batch", "nightly"}  # the untagged request is in no tag
    assert rows["batch"]["log_count"] == 2
    assert rows["batch"]["total_spend"] == pytest.approx(cost_of(tagged["batch"]))
    assert rows["nightly"]["total_spend"] == pytest.approx(cost_of(tagged["nightly"]))

    today = logs[0].start_time.astimezone(UTC).date().isoformat()
    body = ok(api.get("/global/spend/tags", {"start_date": today, "end_date": today}))
    assert [row["name"] for row in body["spend_per_tag"]] == ["batch", "nightly"]  # highest spend first
    batch = body["spend_per_tag"][0]
    assert (batch["log_count"], batch["spend"]) == (2, pytest.approx(cost_of(tagged["batch"])))


def test_spend_calculate_prices_a_prompt_and_an_answer_like_the_requests_are(
    api, gateway, openai_client, make_deployment, make_key, team, alice, spend_logs
):
    from apps.spend.tokens import estimate_prompt_tokens

    make_deployment("gpt-test")
    _, raw = make_key(team=team, user=alice)
    answer = openai_client(raw).chat.completions.create(model="gpt-test", messages=MESSAGES)
    [log] = spend_logs(1)

    # Before the call: the prompt's tokens at the deployment's input price.
    body = ok(api.post("/spend/calculate", {"model": "gpt-test", "messages": MESSAGES}, key=raw))
    tokens = estimate_prompt_tokens(MESSAGES, model="gpt-test")
    assert tokens > 0 and body == {"cost": pytest.approx(tokens * 0.000002)}
    # After it: the answer's usage costs what its request was charged.
    body = ok(api.post("/spend/calculate", {"completion_response": answer.model_dump()}, key=raw))
    assert body["cost"] == pytest.approx(float(log.cost)) and body["cost"] > 0


# --- the rollups, not the logs ---------------------------------------------------------------------


def test_the_routes_read_the_rollups_not_the_logs(api, world):
    from apps.spend.rollups import utc_today

    yesterday = utc_today() - timedelta(days=1)
    add_log(world.key("member"), when=at(yesterday), metadata={"tags": ["t"]})
    routes = {
        "/global/spend/logs": {}, "/global/spend/keys": {}, "/global/spend/models": {}, "/spend/tags": {},
    }
    for path, query in routes.items():
        assert ok(api.get(path, query)) == [], path  # not rolled up yet
    roll_up(yesterday)
    for path, query in routes.items():
        assert len(ok(api.get(path, query))) == 1, path


def test_the_global_routes_cover_the_last_30_days_and_today(api, world):
    from apps.spend.rollups import utc_today

    today = utc_today()
    key = world.key("member")
    for days_ago, cost in ((31, "100"), (30, "0.5"), (0, "0.25")):
        add_log(key, when=at(today - timedelta(days=days_ago)), cost=cost, model=f"m{days_ago}")
    roll_up(*(today - timedelta(days=n) for n in (31, 30, 0)))

    days = ok(api.get("/global/spend/logs"))
    assert [(row["date"], row["spend"]) for row in days] == [
        ((today - timedelta(days=30)).isoformat(), 0.5), (today.isoformat(), 0.25)
    ]
    assert ok(api.get("/global/spend/keys"))[0]["total_spend"] == pytest.approx(0.75)
    assert {row["model"] for row in ok(api.get("/global/spend/models"))} == {"m30", "m0"}


def test_tag_routes_take_a_date_range_and_global_tags_a_tag_filter(api, world):
    from datetime import date

    key = world.key("member")
    day_1, day_2 = date(2025, 3, 1), date(2025, 3, 2)
    add_log(key, when=at(day_1), cost="0.1", metadata={"tags": ["a", "b"]})
    add_log(key, when=at(day_2), cost="0.2", metadata={"tags": ["a"]})
    add_log(key, when=at(day_2), cost="0.4", metadata={"tags": ["c"]})
    roll_up(day_1, day_2)

    def spend_tags(**query):
        return {row["individual_request_tag"]: row["total_spend"] for row in ok(api.get("/spend/tags", query))}

    assert spend_tags() == {"a": pytest.approx(0.3), "b": pytest.approx(0.1), "c": pytest.approx(0.4)}
    assert spend_tags(start_date="2025-03-02") == {"a": pytest.approx(0.2), "c": pytest.approx(0.4)}
    assert spend_tags(end_date="2025-03-01") == {"a": pytest.approx(0.1), "b": pytest.approx(0.1)}

    def global_tags(**query):
        query = {"start_date": "2025-03-01", "end_date": "2025-03-02", **query}
        return [(row["name"], row["log_count"]) for row in ok(api.get("/global/spend/tags", query))["spend_per_tag"]]

    assert global_tags() == [("c", 1), ("a", 2), ("b", 1)]
    assert global_tags(tags="a,b") == [("a", 2), ("b", 1)]
    assert global_tags(tags="b, nope") == [("b", 1)]
    assert global_tags(tags="a,all-tags") == global_tags(tags="") == global_tags()  # LiteLLM's UI's "all"
    assert global_tags(start_date="2025-03-02", end_date="2025-03-02", tags="b") == []


def test_unpriced_requests_are_counted_not_priced_at_zero(api, world):
    from apps.spend.rollups import utc_today

    yesterday = utc_today() - timedelta(days=1)
    key = world.key("member")
    add_log(key, when=at(yesterday), cost=None, cost_status="unpriced", metadata={"tags": ["x"]})
    add_log(key, when=at(yesterday, 13), cost="0.5", metadata={"tags": ["x"]})
    roll_up(yesterday)
    [day] = ok(api.get("/global/spend/logs"))
    assert (day["spend"], day["unpriced_requests"]) == (0.5, 1)
    [tag] = ok(api.get("/spend/tags"))
    assert (tag["log_count"], tag["total_spend"], tag["unpriced_requests"]) == (2, 0.5, 1)


def test_a_deleted_keys_spend_is_still_ranked_by_its_hash(api, world):
    from apps.keys.services import virtual_key_create, virtual_key_delete
    from apps.spend.rollups import utc_today

    yesterday = utc_today() - timedelta(days=1)
    gone, _ = virtual_key_create(alias="gone", team=world.research, user=world.users["member"])
    add_log(gone, when=at(yesterday), cost="3")
    token_hash = gone.token_hash
    virtual_key_delete(keys=[gone])
    roll_up(yesterday)
    [row] = ok(api.get("/global/spend/keys"))
    assert (row["api_key"], row["key_alias"], row["key_name"], row["total_spend"]) == (token_hash, None, None, 3.0)
    [day] = ok(api.get("/global/spend/logs", {"api_key": token_hash}))
    assert (day["spend"], day["api_key"]) == (3.0, token_hash)


# --- who sees what --------------------------------------------------------------------------------


@pytest.fixture
def tagged_spend_everywhere(world):
    """One log yesterday per key of the world (and the accountant's personal key), each tagged with
    its key's name and "shared", its model named after it; rolled up."""
    from apps.keys.services import virtual_key_create
    from apps.spend.rollups import utc_today

    world.keys["accountant"] = virtual_key_create(alias="accountant-key", user=world.users["accountant"])
    yesterday = utc_today() - timedelta(days=1)
    for hour, name in enumerate(world.keys):
        add_log(world.key(name), when=at(yesterday, hour), request_id=name, model=f"model-{name}",
                metadata={"tags": [f"tag-{name}", "shared"]})
    roll_up(yesterday)
    world.yesterday = yesterday.isoformat()
    return world


@pytest.mark.parametrize("role", list(VISIBLE))
def test_each_role_sees_the_global_spend_of_its_scope(api, tagged_spend_everywhere, role):
    world = tagged_spend_everywhere
    key, visible = world.credentials[role], VISIBLE[role]

    [day] = ok(api.get("/global/spend/logs", key=key))
    assert day["spend"] == pytest.approx(0.01 * len(visible))
    keys = ok(api.get("/global/spend/keys", key=key))
    assert {row["api_key"] for row in keys} == {world.key(name).token_hash for name in visible}
    models = ok(api.get("/global/spend/models", {"limit": 100}, key=key))
    assert {row["model"] for row in models} == {f"model-{name}" for name in visible}


@pytest.mark.parametrize("role", list(VISIBLE))
def test_each_role_sees_the_tag_spend_of_its_scope(api, tagged_spend_everywhere, role):
    world = tagged_spend_everywhere
    key, visible = world.credentials[role], VISIBLE[role]
    expected = {f"tag-{name}": 1 for name in visible} | {"shared": len(visible)}

    rows = ok(api.get("/spend/tags", key=key))
    assert {row["individual_request_tag"]: row["log_count"] for row in rows} == expected
    query = {"start_date": world.yesterday, "end_date": world.yesterday}
    body = ok(api.get("/global/spend/tags", query, key=key))
    assert {row["name"]: row["log_count"] for row in body["spend_per_tag"]} == expected


def test_global_spend_logs_api_key_outside_the_callers_scope_is_403(api, tagged_spend_everywhere):
    world = tagged_spend_everywhere
    outsider = world.key("outsider").token_hash
    for role in ("org_admin", "team_admin", "member", "plain_key"):
        assert_error(api.get("/global/spend/logs", {"api_key": outsider}, key=world.credentials[role]), 403,
                     param="api_key", code="permission_denied")
    [day] = ok(api.get("/global/spend/logs", {"api_key": world.key("member").token_hash},
                       key=world.credentials["team_admin"]))
    assert day["spend"] == pytest.approx(0.01)
    assert_error(api.get("/global/spend/logs", {"api_key": "sk-never-issued"}), 404, param="api_key")


# --- bad queries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, query, param",
    [
        ("/global/spend/keys", {"limit": "0"}, "limit"),
        ("/global/spend/keys", {"limit": "ten"}, "limit"),
        ("/global/spend/models", {"limit": "-1"}, "limit"),
        ("/global/spend/tags", {"end_date": "2025-03-01"}, "start_date"),
        ("/global/spend/tags", {"start_date": "2025-03-01"}, "end_date"),
        ("/global/spend/tags", {"start_date": "2025-03-02", "end_date": "2025-03-01"}, "end_date"),
        ("/spend/tags", {"start_date": "March"}, "start_date"),
        ("/spend/tags", {"start_date": "2025-03-02", "end_date": "2025-03-01"}, "end_date"),
    ],
)
def test_bad_queries_are_400_naming_the_param(api, world, path, query, param):
    assert_error(api.get(path, query), 400, param=param, code="invalid_request")


@pytest.mark.parametrize(
    "path", ["/global/spend/logs", "/global/spend/keys", "/global/spend/models", "/spend/tags", "/global/spend/tags"]
)
def test_no_key_is_401(api, world, path):
    assert_error(api.get(path, {"start_date": "2025-03-01", "end_date": "2025-03-01"}, key=None), 401)
    assert_error(api.post("/spend/calculate", {"model": "x", "messages": MESSAGES}, key=None), 401)


# --- /spend/calculate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "model"),
        ({"model": "gpt-priced"}, "messages"),
        ({"model": "gpt-priced", "messages": "hi"}, "messages"),
        ({"model": "gpt-priced", "messages": ["hi"]}, "messages[0]"),
        ({"completion_response": {"usage": {"prompt_tokens": 1}}}, "completion_response.model"),
        ({"completion_response": {"model": "gpt-priced"}}, "completion_response.usage"),
        ({"completion_response": {"model": "gpt-priced", "usage": {"prompt_tokens": "many"}}},
         "completion_response.usage.prompt_tokens"),
        ({"completion_response": {"model": "gpt-priced", "usage": {"completion_tokens": -1}}},
         "completion_response.usage.completion_tokens"),
        ({"completion_response": {"model": "gpt-priced", "usage": {"prompt_tokens_details": {"cached_tokens": 1.5}}}},
         "completion_response.usage.prompt_tokens_details.cached_tokens"),
    ],
)
def test_bad_calculate_bodies_are_400_naming_the_param(api, world, make_deployment_row, body, param):
    make_deployment_row("gpt-priced", input_cost_per_token=Decimal("0.000001"))
    assert_error(api.post("/spend/calculate", body), 400, param=param, code="invalid_request")


def test_a_model_without_a_known_price_is_a_404_never_a_cost_of_0(api, world, make_deployment_row):
    make_deployment_row("gpt-unpriced", upstream_model="no-such-upstream-model")
    for body, param in (
        ({"model": "gpt-unpriced", "messages": MESSAGES}, "model"),
        ({"model": "made-up-model", "messages": MESSAGES}, "model"),
        ({"completion_response": {"model": "made-up-model", "usage": {"prompt_tokens": 5}}},
         "completion_response.model"),
    ):
        error = assert_error(api.post("/spend/calculate", body), 404, param=param, code="not_found")
        assert error["message"].startswith("This model isn't mapped yet.")
        assert "unknown, not 0" in error["message"]


def test_calculate_uses_the_deployments_prices_over_the_catalogs_and_the_catalog_for_other_names(
    api, world, make_deployment_row
):
    from apps.spend.models import ModelPrice
    from apps.spend.pricing import price_catalog

    ModelPrice.objects.create(model_key="gpt-catalogued", input_cost_per_token=Decimal("0.000003"),
                              output_cost_per_token=Decimal("0.00001"))
    price_catalog.invalidate()
    make_deployment_row("gpt-own", upstream_model="gpt-catalogued", input_cost_per_token=Decimal("0.001"),
                        output_cost_per_token=Decimal("0.002"))
    usage = {"prompt_tokens": 100, "completion_tokens": 10}

    def cost(model):
        return ok(api.post("/spend/calculate", {"completion_response": {"model": model, "usage": usage}}))["cost"]

    assert cost("gpt-own") == pytest.approx(100 * 0.001 + 10 * 0.002)  # the deployment's own prices
    assert cost("gpt-catalogued") == pytest.approx(100 * 0.000003 + 10 * 0.00001)  # a catalog key
    assert cost("openai/gpt-catalogued") == cost("gpt-catalogued")  # a provider prefix
    # Cached and reasoning tokens at the catalog's rates (cache reads at the input price without one).
    detailed = {**usage, "prompt_tokens_details": {"cached_tokens": 40}, "completion_tokens_details": {}}
    body = {"completion_response": {"model": "gpt-catalogued", "usage": detailed}}
    assert ok(api.post("/spend/calculate", body))["cost"] == pytest.approx(cost("gpt-catalogued"))


def test_calculate_prices_a_group_at_its_priciest_deployment(api, world, make_deployment_row):
    make_deployment_row("gpt-group", input_cost_per_token=Decimal("0.001"))
    make_deployment_row("gpt-group", input_cost_per_token=Decimal("0.003"))
    make_deployment_row("gpt-group", upstream_model="no-price-anywhere")
    body = {"completion_response": {"model": "gpt-group", "usage": {"prompt_tokens": 10}}}
    assert ok(api.post("/spend/calculate", body))["cost"] == pytest.approx(0.03)


def test_calculate_prices_only_the_deployments_a_caller_may_see(api, world, make_deployment_row):
    """Another organization's deployment, or one a plain key may not call, is priced as if it were
    not there: by the catalog, which knows nothing of it here."""
    body = {"completion_response": {"model": "gpt-secret", "usage": {"prompt_tokens": 10}}}
    make_deployment_row("gpt-secret", upstream_model="private-upstream", organization=world.globex,
                        input_cost_per_token=Decimal("0.5"))
    assert ok(api.post("/spend/calculate", body))["cost"] == pytest.approx(5)
    assert ok(api.post("/spend/calculate", body, key=world.raw("outsider")))["cost"] == pytest.approx(5)
    for role in ("org_admin", "member", "plain_key"):
        assert_error(api.post("/spend/calculate", body, key=world.credentials[role]), 404, param="completion_response.model")

    world.research.models = ["gpt-shared"]
    world.research.save()
    make_deployment_row("gpt-other", input_cost_per_token=Decimal("0.5"))
    make_deployment_row("gpt-shared", input_cost_per_token=Decimal("0.5"))
    for role in ("member", "plain_key"):
        for model, status in (("gpt-shared", 200), ("gpt-other", 404)):
            body = {"completion_response": {"model": model, "usage": {"prompt_tokens": 10}}}
            response = api.post("/spend/calculate", body, key=world.credentials[role])
            assert response.status_code == status, (role, model, response.content)


# --- /global/spend, /global/spend/teams, /global/spend/reset ----------------------------------------


def test_global_spend_is_the_last_30_days_total(api, traffic, team):
    logs = traffic["logs"]
    assert ok(api.get("/global/spend")) == {"spend": pytest.approx(cost_of(logs)), "max_budget": None}
    key_b, raw_b = traffic["keys"]["b"]
    assert ok(api.get("/global/spend", key=raw_b))["spend"] == pytest.approx(
        cost_of(logs, lambda log: log.key_id == key_b.pk))  # a key without a user: its own spend


def test_global_spend_teams_is_the_spend_per_day_and_team(api, traffic, team):
    logs = traffic["logs"]
    body = ok(api.get("/global/spend/teams"))
    today = logs[0].start_time.astimezone(UTC).date().isoformat()
    assert body["teams"] == [team.alias]
    assert body["daily_spend"] == [{"date": today, team.alias: pytest.approx(cost_of(logs))}]
    assert body["total_spend_per_team"] == [{"team_id": team.alias, "total_spend": pytest.approx(cost_of(logs))}]


def test_global_spend_reset_starts_every_budget_again_at_once_on_v1(
    api, gateway, openai_client, make_deployment, make_key, team, spend_logs
):
    import openai

    from apps.keys.models import VirtualKey
    from apps.spend.models import SpendLog, SpendReset
    from apps.spend.reconciliation import spend_counters_reconcile
    from apps.teams.models import Team

    make_deployment("gpt-test", input_cost_per_token=Decimal("0.000001"))
    key, raw = make_key(team=team, max_budget=Decimal("1"))
    client = openai_client(raw)
    client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    [log] = spend_logs(1)
    # Spent beyond the budget (as if by many requests): the key's and the team's spend, and the
    # limiter's counter seeded from them once the cached context is reloaded.
    VirtualKey.objects.filter(pk=key.pk).update(spend=Decimal("5"))
    Team.objects.filter(pk=team.pk).update(spend=Decimal("5"))
    from apps.core import invalidation
    from apps.keys.limits import spend_counters_reset

    spend_counters_reset("key", key.pk)
    invalidation.publish({"kind": invalidation.KIND_ALL_KEYS})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert_error(api.post("/global/spend/reset", key=raw), 403)
    assert ok(api.post("/global/spend/reset")) == {
        "message": "Spend for all API Keys and Teams reset successfully", "status": "success"}
    assert client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices  # at once
    assert VirtualKey.objects.get(pk=key.pk).spend < Decimal("1")
    assert Team.objects.get(pk=team.pk).spend < Decimal("1")
    assert SpendLog.objects.filter(pk=log.pk).exists()  # the record of what was spent stays
    assert SpendReset.objects.get().reset_by == "master key"

    from conftest import wait_for

    reset_at = SpendReset.objects.get().reset_at
    wait_for(lambda: SpendLog.objects.filter(start_time__gte=reset_at, cost__isnull=False).exists())
    # Reconciliation counts from the reset on: the logs before it are not drift.
    assert [d for d in spend_counters_reconcile().drifts if d.kind == "key" and d.entity_id == str(key.pk)] == []
    assert_error(api.post("/global/spend/reset", {"everything": True}), 400, param="everything")
