"""Limits, budgets and blocks hold across two real gateway processes sharing Redis and the database."""

import concurrent.futures
import re
from decimal import Decimal

import httpx
import pytest
from django.conf import settings

from conftest import redis_topology_env, wait_for
from tests.fakes.replica import Replica

pytestmark = [
    # The replicas share the test database; the PostgreSQL run (with REDIS_URL) is the one that runs them.
    pytest.mark.skipif(not settings.REDIS_URL, reason="replicas share their counters through Redis"),
    pytest.mark.django_db(transaction=True),
]
MESSAGES = [{"role": "user", "content": "hi"}]


# Each test runs on one Redis server, on a 3-master Redis Cluster (a key's, its team's and its
# organization's counters in different slots) and on a master found through Sentinel.
@pytest.fixture(params=["redis", "cluster", "sentinel"])
def replicas(request, make_deployment):
    make_deployment("gpt-test")
    # The admin is driven over plain HTTP here: its cookies may not be HTTPS-only (the production default).
    plain_http = {"SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0"}
    env = {**plain_http, **redis_topology_env(request, request.param)}
    started = [Replica(**env), Replica(**env)]
    try:
        yield [r.wait_ready() for r in started]
    finally:
        for replica in started:
            replica.stop()


def chat(replica: Replica, key: str, **extra) -> int:
    response = httpx.post(replica.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "gpt-test", "messages": MESSAGES, **extra}, timeout=30)
    return response.status_code


def test_rpm_limit_holds_across_both_replicas(replicas, make_key):
    _, raw_key = make_key(rpm_limit=60)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: chat(replicas[i % 2], raw_key), range(100)))
    assert statuses.count(200) == 60
    assert statuses.count(429) == 40


def test_a_team_rpm_limit_holds_in_total_across_its_keys_and_both_replicas(replicas, make_key, organization):
    from apps.teams.services import team_create

    # On a cluster the team's counters and each key's live in different slots: each is checked
    # on its own and a refusal takes back what the others counted.
    team = team_create(organization=organization, alias="shared", rpm_limit=60)
    raw_keys = [make_key(organization=organization, team=team, rpm_limit=1000)[1] for _ in range(2)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: chat(replicas[i % 2], raw_keys[(i // 2) % 2]), range(100)))
    assert statuses.count(200) == 60
    assert statuses.count(429) == 40


def test_budget_holds_under_concurrent_requests_on_both_replicas(replicas, make_deployment, make_key):
    from apps.spend.models import SpendLog

    # 11 prompt tokens × $0.001 + 7 completion tokens × $0.005 = $0.046 a request;
    # each reserves its estimated prompt and max_tokens=10 of output, about $0.055.
    make_deployment("priced", upstream_model="gpt-test", input_cost_per_token=Decimal("0.001"),
                    output_cost_per_token=Decimal("0.005"), cache_read_input_token_cost=Decimal("0.001"))
    key, raw_key = make_key(max_budget=Decimal("1"))

    def call(i: int) -> int:
        response = httpx.post(replicas[i % 2].url + "/v1/chat/completions",
                              headers={"Authorization": f"Bearer {raw_key}"},
                              json={"model": "priced", "messages": MESSAGES, "max_tokens": 10}, timeout=30)
        return response.status_code

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(call, range(50)))
    assert statuses.count(200) + statuses.count(429) == 50
    assert 0 < statuses.count(200) < 50
    # Then one request after another until the budget refuses: what is left gets used up.
    for i in range(50):
        if call(i) == 429:
            break
    for replica in replicas:
        replica.stop()  # flushes every spend record
    # The refused requests are logged too, without a cost.
    spent = sum(log.cost for log in SpendLog.objects.filter(key_id=key.pk, cost__isnull=False))
    one_reservation = Decimal("0.055")
    assert spent <= Decimal("1") + one_reservation
    assert spent >= Decimal("1") - one_reservation - Decimal("0.046")


def test_a_key_blocked_through_one_replica_is_refused_by_the_other_within_a_second(
    replicas, make_key, django_user_model, settings
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # what the replicas check
    first, second = replicas
    key, raw_key = make_key(alias="to-block")
    assert chat(second, raw_key) == 200  # the second replica has it cached now

    django_user_model.objects.create_superuser("root", "root@example.com", "a-long-password")
    with httpx.Client(base_url=first.url) as admin:
        login_page = admin.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
        admin.post("/admin/login/", data={"username": "root", "password": "a-long-password",
                                          "csrfmiddlewaretoken": token, "next": "/admin/"})
        changelist = admin.get("/admin/keys/virtualkey/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', changelist.text).group(1)
        response = admin.post("/admin/keys/virtualkey/", data={
            "action": "block_keys", "_selected_action": [key.pk], "csrfmiddlewaretoken": token})
        assert response.status_code == 302
    key.refresh_from_db()
    assert key.blocked
    assert wait_for(lambda: chat(second, raw_key) == 401, timeout=1.0, interval=0.05)


def test_an_end_user_rpm_limit_holds_in_total_across_both_replicas(replicas, make_key):
    from apps.teams.services import organization_create

    organization = organization_create(name="Acme")
    _, raw_key = make_key(organization=organization)  # no limits of its own
    created = httpx.post(replicas[0].url + "/customer/new", timeout=10,
                         headers={"Authorization": f"Bearer {settings.GATEWAY_MASTER_KEY}"},
                         json={"user_id": "alice", "rpm_limit": 60, "organization_id": str(organization.pk)})
    assert created.status_code == 200, created.text
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: chat(replicas[i % 2], raw_key, user="alice"), range(100)))
    assert statuses.count(200) == 60
    assert statuses.count(429) == 40
    assert chat(replicas[1], raw_key, user="bob") == 200


def test_an_end_user_blocked_through_one_replica_is_refused_by_the_other_within_a_second(replicas, make_key):
    first, second = replicas
    _, raw_key = make_key()
    assert chat(second, raw_key, user="mallory") == 200  # the second replica has the namespace loaded
    blocked = httpx.post(first.url + "/customer/block", json={"user_ids": ["mallory"]}, timeout=10,
                         headers={"Authorization": f"Bearer {settings.GATEWAY_MASTER_KEY}"})
    assert blocked.status_code == 200, blocked.text
    assert wait_for(lambda: chat(second, raw_key, user="mallory") == 403, timeout=1.0, interval=0.05)
    assert chat(second, raw_key, user="someone-else") == 200
