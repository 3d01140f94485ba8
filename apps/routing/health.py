from __future__ import annotations

import asyncio

from django.db import connection

from apps.core.db import db_call
from apps.core.redis import redis_enabled, sync_redis


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def readiness_report() -> dict:
    report = {"status": "connected", "db": "connected", "cache": "in-process"}
    try:
        await asyncio.wait_for(db_call(_database_ping), timeout=5)
    except Exception as exc:  # a readiness probe reports, it does not raise
        report["db"] = f"Not connected: {type(exc).__name__}"
        report["status"] = "unhealthy"
    if redis_enabled():
        try:
            await asyncio.wait_for(asyncio.to_thread(sync_redis().ping), timeout=5)
            report["cache"] = "redis"
        except Exception as exc:
            report["cache"] = f"redis not connected: {type(exc).__name__}"
            report["status"] = "unhealthy"
    return report
