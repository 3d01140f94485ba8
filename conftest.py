"""Shared fixtures: fake upstreams, a real gateway server, and factories for tenants and keys."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.fakes.openai_upstream import FakeOpenAIUpstream

MASTER_KEY = "sk-master-test"


@pytest.fixture(scope="session", autouse=True)
def _quick_flush():
    """Between transactional tests Django empties every table, then re-runs post_migrate. Most tests
    here are transactional (a real server reads what they commit), so two shortcuts, ~0.15 s a test:

    - the content types and permissions are kept: they follow from the models alone, and
      post_migrate would otherwise make them again, row by row, after every test;
    - on PostgreSQL the tables are emptied with DELETE, not one TRUNCATE (a new file per table and
      partition: ~0.5 s). Django's foreign keys are DEFERRABLE INITIALLY DEFERRED, so the order of
      the DELETEs in one transaction does not matter; sequences are not reset either way."""
    # Through the backends' base modules: each imports its operations module (the other way round
    # is a circular import).
    from django.db.backends.postgresql.base import DatabaseOperations as PostgreSQLOperations
    from django.db.backends.sqlite3.base import DatabaseOperations as SQLiteOperations

    kept = {"django_content_type", "auth_permission"}
    originals = {ops: ops.sql_flush for ops in (PostgreSQLOperations, SQLiteOperations)}

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        tables = [table for table in tables if table not in kept]
        if self.connection.vendor == "postgresql" and not (reset_sequences or allow_cascade):
            return ["SET CONSTRAINTS ALL DEFERRED;"] + [f"DELETE FROM {self.quote_name(table)};" for table in tables]
        return originals[type(self)](self, style, tables, reset_sequences=reset_sequences,
                                     allow_cascade=allow_cascade)

    for ops in originals:
        ops.sql_flush = sql_flush
    yield
    for ops, original in originals.items():
        ops.sql_flush = original


@pytest.fixture(scope="session")
def fake_openai():
    upstream = FakeOpenAIUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def provider_fakes():
    """Starts a provider's fake upstream (tests/fakes/*_upstream.py) on first use, once per session."""
    from tests.fakes.providers import load_all

    started = {}
    yield lambda name: started.get(name) or started.setdefault(name, load_all()[name]().start())
    for fake in started.values():
        fake.stop()


@pytest.fixture(scope="session")
def redis_cluster():
    """A real 3-master Redis Cluster on loopback (tests/fakes/redis_topologies.py), once per session."""
    from tests.fakes.redis_topologies import AVAILABLE, RedisCluster

    if not AVAILABLE:
        pytest.skip("redis-server is not installed")
    cluster = RedisCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel():
    """A master, a replica and three Sentinels on loopback, once per session (a test that fails
    the master over starts its own)."""
    from tests.fakes.redis_topologies import AVAILABLE, RedisSentinel

    if not AVAILABLE:
        pytest.skip("redis-server is not installed")
    topology = RedisSentinel().start()
    yield topology
    topology.stop()


def redis_topology_env(request, topology: str) -> dict:
    """A replica's environment for one Redis topology: `redis` (REDIS_URL, as the test process),
    `cluster` or `sentinel` (started on loopback; keys under a prefix of their own)."""
    import uuid

    if topology == "redis":
        return {}
    prefix = f"gw-{uuid.uuid4().hex[:8]}:"
    if topology == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        return {"REDIS_URL": "", "REDIS_CLUSTER_NODES": cluster.nodes, "GATEWAY_REDIS_PREFIX": prefix}
    sentinel = request.getfixturevalue("redis_sentinel")
    return {"REDIS_URL": "", "REDIS_SENTINELS": sentinel.sentinels, "REDIS_SENTINEL_MASTER": sentinel.master_name,
            "GATEWAY_REDIS_PREFIX": prefix}


@pytest.fixture
def gateway(transactional_db, fake_openai):
    """The gateway app served by uvicorn on a free port, with a clean process state."""
    from apps.core import invalidation
    from tests.fakes.gateway import GatewayServer

    invalidation.apply_everything()
    fake_openai.requests.clear()
    server = GatewayServer().start()
    yield server
    server.stop()  # lifespan shutdown flushes the spend buffer while the database is still there


@pytest.fixture
def organization(transactional_db):
    from apps.teams.services import organization_create

    return organization_create(name="Acme")


@pytest.fixture
def team(organization):
    from apps.teams.services import team_create

    return team_create(organization=organization, alias="research")


@pytest.fixture
def make_deployment(fake_openai):
    from apps.providers.models import ModelDeployment

    def make(model_name: str = "gpt-test", upstream_model: str | None = None, **fields) -> ModelDeployment:
        values = {
            "provider": "openai",
            "upstream_model": upstream_model or model_name,
            "api_base": fake_openai.base_url,
            "api_key": "sk-upstream-secret",
            "input_cost_per_token": Decimal("0.000002"),
            "output_cost_per_token": Decimal("0.000008"),
            "cache_read_input_token_cost": Decimal("0.0000005"),
        }
        values.update(fields)
        return ModelDeployment.objects.create(model_name=model_name, **values)

    return make


@pytest.fixture
def make_key(transactional_db):
    from apps.keys.services import virtual_key_create

    def make(**fields) -> tuple:
        return virtual_key_create(**fields)

    return make


@pytest.fixture
def openai_client(gateway):
    import openai

    def make(api_key: str = MASTER_KEY, **kwargs):
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, **kwargs)

    return make


@pytest.fixture
def clock(monkeypatch):
    """time.time() as the test sets it: `clock[0] = ...`. It starts 5 s into a minute, so a test
    knows where the next minute begins (the limits' windows rebuild their sums once a minute)."""
    now = [float((int(time.time()) // 60 + 1) * 60 + 5)]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def spend_logs():
    """Wait until at least `count` spend logs are written, then return them all."""
    from apps.spend.models import SpendLog

    def get(count: int = 1, timeout: float = 5.0) -> list:
        wait_for(lambda: SpendLog.objects.count() >= count, timeout=timeout)
        return list(SpendLog.objects.order_by("start_time", "id"))

    return get
