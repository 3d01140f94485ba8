"""Which database a query goes to: the primary, or the PostgreSQL read replica (DATABASE_REPLICA_URL).

Every write goes to the primary ("default"), and so does every read, unless the code reading says
that data a moment old will do: reads inside a `replica_reads()` scope go to the "replica" alias
when one is configured (else to the primary). The scope is for heavy reads whose answer is only
shown: the spend reports and log lists of the management API and of the admin, and the rollup
rebuild's reading of the logs. Never the /v1 request path, budget and limit checks, who may see
what, or a read whose answer is written back.

Inside the scope, a transaction open on the primary (`transaction.atomic()`) takes the reads back to
the primary: what the transaction wrote, or locked, is read where it is. Code that reads, inside
such a transaction, rows the transaction never writes names the alias itself: replica_read_alias().

The scope is a ContextVar: it follows the code across `await` and into sync_to_async (which runs
the function in a copy of the context), and never leaks into another request, task or thread.
"""

from __future__ import annotations

import functools
import inspect
from contextvars import ContextVar, Token
from typing import Self

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA_DB_ALIAS = "replica"

_replica_reads: ContextVar[bool] = ContextVar("gateway_replica_reads", default=False)


class replica_reads:  # lower case: used like contextlib's context managers
    """Reads inside go to the read replica when one is configured:

        with replica_reads():
            rows = list(SpendLog.objects.filter(...))

        @replica_reads()
        def report(...): ...          # async def too

    Writes inside still go to the primary, and so do the reads of a transaction open on it.
    """

    def __init__(self) -> None:
        self._tokens: list[Token] = []

    def __enter__(self) -> Self:
        self._tokens.append(_replica_reads.set(True))
        return self

    def __exit__(self, *exc_info) -> None:
        _replica_reads.reset(self._tokens.pop())

    def __call__(self, func):
        # A fresh scope per call: one decorated function may run in many threads or tasks at once.
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                with replica_reads():
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with replica_reads():
                return func(*args, **kwargs)

        return wrapper


def in_replica_reads() -> bool:
    """Is the caller inside a replica_reads() scope?"""
    return _replica_reads.get()


def replica_configured(alias: str = REPLICA_DB_ALIAS) -> bool:
    """Is there a replica alias (DATABASE_REPLICA_URL)? Read at call time, from settings.DATABASES."""
    return alias in settings.DATABASES


def replica_read_alias() -> str:
    """The alias for an explicit `.using()` by code that reads, inside a transaction on the primary,
    rows that transaction does not write (the rollup rebuild reading a day's logs under its lock):
    the replica inside a replica_reads() scope when one is configured, else the primary. The
    router alone would keep those reads on the primary, as it does every read of a transaction."""
    return REPLICA_DB_ALIAS if in_replica_reads() and replica_configured() else DEFAULT_DB_ALIAS


class PrimaryReplicaRouter:
    """DATABASE_ROUTERS' only router: the primary for everything, the replica for the reads made
    inside replica_reads() outside a transaction on the primary. Migrations run on the primary only
    (the replica follows it by replication)."""

    def __init__(self, replica_alias: str = REPLICA_DB_ALIAS) -> None:
        self.replica_alias = replica_alias

    def db_for_read(self, model, **hints) -> str:
        if (
            _replica_reads.get()
            and replica_configured(self.replica_alias)
            and not connections[DEFAULT_DB_ALIAS].in_atomic_block
        ):
            return self.replica_alias
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the replica holds the primary's rows: an object read there relates to one read here

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS
