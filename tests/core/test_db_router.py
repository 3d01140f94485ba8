"""Reads that may go to the PostgreSQL read replica (apps.core.db_router, DATABASE_REPLICA_URL).

The router's decisions are checked on a router instance given a replica alias of its own, with
settings.DATABASES overridden to name it (the test settings have no replica: the router reads
settings.DATABASES at call time). tests/spend/test_replica_reads.py shows, end to end, which
queries land on a real replica alias. The settings tests import gateway_project.settings in a
subprocess with the variables set.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.test import override_settings

from apps.core.db_router import (
    REPLICA_DB_ALIAS,
    PrimaryReplicaRouter,
    in_replica_reads,
    replica_read_alias,
    replica_reads,
)

ROOT = Path(__file__).resolve().parents[2]
REPORTS = "reports"  # the unit tests' replica alias, distinct from the real one's name


def spend_log_model():
    from apps.spend.models import SpendLog

    return SpendLog


def with_replica_alias(alias: str):
    """settings.DATABASES with `alias` beside default (never connected to by these tests)."""
    return override_settings(DATABASES={**settings.DATABASES, alias: copy.deepcopy(settings.DATABASES["default"])})


overriding_databases = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES:UserWarning")


# --- the router's decisions ------------------------------------------------------------------


@overriding_databases
def test_reads_go_to_the_primary_unless_in_the_scope():
    router = PrimaryReplicaRouter(replica_alias=REPORTS)
    with with_replica_alias(REPORTS):
        assert router.db_for_read(spend_log_model()) == DEFAULT_DB_ALIAS
        with replica_reads():
            assert router.db_for_read(spend_log_model()) == REPORTS
        assert router.db_for_read(spend_log_model()) == DEFAULT_DB_ALIAS


@overriding_databases
def test_writes_go_to_the_primary_in_the_scope_too():
    router = PrimaryReplicaRouter(replica_alias=REPORTS)
    with with_replica_alias(REPORTS), replica_reads():
        assert router.db_for_write(spend_log_model()) == DEFAULT_DB_ALIAS
        assert router.db_for_write(spend_log_model(), instance=object()) == DEFAULT_DB_ALIAS


@overriding_databases
def test_without_a_replica_the_scope_reads_the_primary():
    router = PrimaryReplicaRouter(replica_alias=REPORTS)
    with override_settings(DATABASES={DEFAULT_DB_ALIAS: settings.DATABASES[DEFAULT_DB_ALIAS]}), replica_reads():
        assert router.db_for_read(spend_log_model()) == DEFAULT_DB_ALIAS
        assert PrimaryReplicaRouter().db_for_read(spend_log_model()) == DEFAULT_DB_ALIAS
        assert replica_read_alias() == DEFAULT_DB_ALIAS


@overriding_databases
def test_a_transaction_on_the_primary_takes_the_scopes_reads_back_there(transactional_db):
    router = PrimaryReplicaRouter(replica_alias=REPORTS)
    with with_replica_alias(REPORTS), replica_reads():
        assert router.db_for_read(spend_log_model()) == REPORTS
        with transaction.atomic():
            assert router.db_for_read(spend_log_model()) == DEFAULT_DB_ALIAS
            with transaction.atomic():  # a savepoint: still inside
                assert router.db_for_read(spend_log_model()) == DEFAULT_DB_ALIAS
        assert router.db_for_read(spend_log_model()) == REPORTS


@overriding_databases
def test_replica_read_alias_names_the_replica_for_reads_a_transaction_does_not_write(transactional_db):
    with with_replica_alias(REPLICA_DB_ALIAS):
        assert replica_read_alias() == DEFAULT_DB_ALIAS
        with replica_reads(), transaction.atomic():
            assert replica_read_alias() == REPLICA_DB_ALIAS


def test_migrations_run_on_the_primary_only_and_relations_are_allowed():
    router = PrimaryReplicaRouter(replica_alias=REPORTS)
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "spend", "spendlog")
    assert not router.allow_migrate(REPORTS, "spend", "spendlog")
    assert router.allow_relation(object(), object())


def test_settings_register_the_router():
    assert settings.DATABASE_ROUTERS == ["apps.core.db_router.PrimaryReplicaRouter"]


# --- the scope ---------------------------------------------------------------------------------


def test_the_scope_decorates_sync_and_async_functions_and_ends_with_them():
    @replica_reads()
    def sync_inside():
        return in_replica_reads()

    @replica_reads()
    async def async_inside():
        await asyncio.sleep(0)
        return in_replica_reads()

    assert sync_inside() is True
    assert asyncio.run(async_inside()) is True
    assert in_replica_reads() is False
    assert sync_inside.__name__ == "sync_inside" and asyncio.iscoroutinefunction(async_inside)


def test_the_scope_nests_and_survives_an_exception():
    scope = replica_reads()
    with scope:
        with scope:
            assert in_replica_reads()
        assert in_replica_reads()
    assert not in_replica_reads()
    with pytest.raises(RuntimeError), replica_reads():
        raise RuntimeError
    assert not in_replica_reads()


@overriding_databases
def test_the_scope_follows_async_code_into_sync_to_async_but_not_other_threads_or_tasks():
    router = PrimaryReplicaRouter(replica_alias=REPORTS)

    async def scoped():
        with replica_reads():
            return await sync_to_async(router.db_for_read)(spend_log_model())

    async def two_tasks():
        started, finish = asyncio.Event(), asyncio.Event()

        async def inside():
            with replica_reads():
                started.set()
                await finish.wait()
                return in_replica_reads()

        async def outside():
            await started.wait()
            seen = in_replica_reads()
            finish.set()
            return seen

        return await asyncio.gather(inside(), outside())

    with with_replica_alias(REPORTS):
        assert asyncio.run(scoped()) == REPORTS
        assert asyncio.run(two_tasks()) == [True, False]
        seen = []
        with replica_reads():
            thread = threading.Thread(target=lambda: seen.append(router.db_for_read(spend_log_model())))
            thread.start()
            thread.join()
        assert seen == [DEFAULT_DB_ALIAS]  # a plain thread starts from an empty context


# --- settings -----------------------------------------------------------------------------------


def database_settings(**env) -> dict:
    """gateway_project.settings' DATABASES and DATABASE_ROUTERS, imported in a subprocess with `env`."""
    base = {k: v for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "DATABASE_REPLICA_URL", "DATABASE_PGBOUNCER", "DATABASE_POOL_MAX_SIZE",
                         "DJANGO_SETTINGS_MODULE"}}
    program = ("import json, gateway_project.settings as s; "
               "print(json.dumps({'DATABASES': s.DATABASES, 'DATABASE_ROUTERS': s.DATABASE_ROUTERS}, default=str))")
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**base, "GATEWAY_ENV_FILE": os.devnull, "DEBUG": "1", **env},
    )
    if result.returncode:
        return {"error": result.stderr}
    return json.loads(result.stdout)


PRIMARY = "postgresql://gw:pw@primary.internal:5432/gateway"
REPLICA = "postgresql://gw:pw@replica.internal:5432/gateway"


def test_database_replica_url_adds_a_replica_built_like_the_primary():
    databases = database_settings(DATABASE_URL=PRIMARY, DATABASE_REPLICA_URL=REPLICA,
                                  DATABASE_POOL_MAX_SIZE="7")["DATABASES"]
    primary, replica = databases["default"], databases["replica"]
    assert (primary["HOST"], replica["HOST"]) == ("primary.internal", "replica.internal")
    assert replica["ENGINE"] == primary["ENGINE"] == "django.db.backends.postgresql"
    assert replica["OPTIONS"] == primary["OPTIONS"] == {"pool": {"min_size": 1, "max_size": 7}}
    assert replica["CONN_MAX_AGE"] == primary["CONN_MAX_AGE"] == 0
    assert replica["TEST"] == {"MIRROR": "default"}
    assert not primary.get("DISABLE_SERVER_SIDE_CURSORS")


def test_without_database_replica_url_there_is_no_replica_alias():
    values = database_settings(DATABASE_URL=PRIMARY)
    assert set(values["DATABASES"]) == {"default"}
    assert values["DATABASE_ROUTERS"] == ["apps.core.db_router.PrimaryReplicaRouter"]


def test_database_pgbouncer_turns_off_server_side_cursors_and_djangos_pool():
    databases = database_settings(DATABASE_URL=PRIMARY, DATABASE_REPLICA_URL=REPLICA,
                                  DATABASE_PGBOUNCER="1")["DATABASES"]
    for alias in ("default", "replica"):
        assert databases[alias]["DISABLE_SERVER_SIDE_CURSORS"] is True
        assert "pool" not in databases[alias].get("OPTIONS", {})
        assert databases[alias]["CONN_MAX_AGE"] == 0


def test_database_settings_that_cannot_work_are_refused():
    assert "not a PostgreSQL URL" in database_settings(DATABASE_URL="sqlite:////tmp/x.sqlite3",
                                                       DATABASE_PGBOUNCER="1")["error"]
    assert "same kind" in database_settings(DATABASE_URL=PRIMARY,
                                            DATABASE_REPLICA_URL="sqlite:////tmp/x.sqlite3")["error"]
