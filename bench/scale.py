"""The control plane on a large spend-log table: rollup rebuild, /spend/logs paging and the admin's
spend-log list, with --logs (default 10,000,000) synthetic logs (manage.py generate_spend_logs).

Makes a throwaway PostgreSQL database of its own next to DATABASE_URL's server (dropped at the end
unless --keep), migrates it, generates the logs, then times each operation --repeat times and prints
p50 and max. Not a test: figures for the README's table.

    .venv/bin/python bench/scale.py [--logs 10000000] [--server postgresql://postgres@127.0.0.1:5432] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _timed(repeat: int, action) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=int, default=10_000_000)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="Keep the database (its name is printed)")
    args = parser.parse_args()

    name = f"gw_scale_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", f"{args.server}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    print(f"database {name}", flush=True)
    os.environ.update(DATABASE_URL=f"{args.server}/{name}", DJANGO_SETTINGS_MODULE="gateway_project.settings",
                      DEBUG="1", GATEWAY_MASTER_KEY="sk-scale-bench")
    os.environ.pop("REDIS_URL", None)
    try:
        _run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            subprocess.run(["psql", f"{args.server}/postgres", "-qc", f"DROP DATABASE {name} WITH (FORCE)"])


def _run(args) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from apps.spend.models import SpendLog
    from apps.spend.rollups import utc_today

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    call_command("generate_spend_logs", count=args.logs, days=30)
    generated = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        # A partitioned table's own size is 0: its months' tables hold the rows.
        cursor.execute("SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) FROM pg_partition_tree(%s)",
                       [SpendLog._meta.db_table])
        size = cursor.fetchone()[0]
    rows = [("generate", f"{args.logs:,} logs", generated * 1000, generated * 1000)]

    since = (utc_today() - timedelta(days=31)).isoformat()
    started = time.perf_counter()
    call_command("rebuild_rollups", since=since, force=True)
    rebuilt = (time.perf_counter() - started) * 1000
    rows.append(("rollup rebuild, 31 days", "rebuild_rollups --force", rebuilt, rebuilt))
    yesterday = (utc_today() - timedelta(days=1)).isoformat()
    one = _timed(1, lambda: call_command("rebuild_rollups", since=yesterday, until=yesterday, force=True))
    rows.append(("rollup rebuild, one day", "what the beat task does", *one))

    api = Client(headers={"Authorization": "Bearer sk-scale-bench"})
    key = SpendLog.objects.order_by("-id").values_list("key_hash", flat=True).first()

    def get(path: str, **params):
        def call():
            response = api.get(path, params)
            assert response.status_code == 200, response.content[:300]
        return call

    for label, params in [
        ("/spend/logs page 1 (100 rows)", {}),
        ("/spend/logs page 1000", {"page": 1000}),
        ("/spend/logs one key, page 1", {"api_key": key}),
        ("/spend/logs one day, page 1", {"start_date": yesterday, "end_date": yesterday}),
    ]:
        rows.append((label, "management API, proxy admin", *_timed(args.repeat, get("/spend/logs", **params))))

    admin = get_user_model().objects.create_superuser("scale-admin", password="pw")
    browser = Client()
    browser.force_login(admin)
    for label, params in [("admin spend logs, page 1", {}), ("admin spend logs, page 500", {"p": 499})]:
        def render(params=params):
            response = browser.get("/admin/spend/spendlog/", params)
            assert response.status_code == 200, response.status_code
        rows.append((label, "as the proxy admin", *_timed(args.repeat, render)))

    print(f"\n{args.logs:,} spend logs, table with indexes {size}\n")
    print(f"{'operation':38} {'how':30} {'p50 ms':>10} {'max ms':>10}")
    for label, how, p50, worst in rows:
        print(f"{label:38} {how:30} {p50:10.0f} {worst:10.0f}")


if __name__ == "__main__":
    main()
