"""How long the admin's dashboard (/admin/) takes to render with a million spend logs.

Builds a throwaway database (SQLite in a temporary folder, or DATABASE_URL when given: it must
be an empty database of its own), writes --logs spend logs over the last 30 days for 20
organizations, 100 teams, 500 keys and 8 models, builds the rollups as the beat task does, then
renders the dashboard --repeat times as a proxy admin and as an organization's admin and prints
the render times (p50, p99, max) and how many SQL queries a render makes.

    make bench-dashboard                     # 1,000,000 logs on SQLite
    .venv/bin/python bench/dashboard.py --database-url postgresql://.../dashbench [--reuse]
    .venv/bin/python bench/dashboard.py --logs 100000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _setup(database_url: str | None, folder: str) -> None:
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{folder}/dashboard-bench.sqlite3"
    os.environ.setdefault("DEBUG", "1")
    os.environ.pop("REDIS_URL", None)  # the in-process backends: this measures the page, not Redis
    os.environ["DJANGO_SETTINGS_MODULE"] = "gateway_project.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _world(rng: random.Random):
    from django.contrib.auth import get_user_model

    from apps.keys.services import virtual_key_create
    from apps.teams.services import organization_create, organization_member_add, team_create

    organizations = [organization_create(name=f"org-{n}", max_budget=Decimal(1000)) for n in range(20)]
    teams = [team_create(organization=organizations[n % 20], alias=f"team-{n}") for n in range(100)]
    keys = []
    for n in range(500):
        team = teams[n % 100]
        key, _ = virtual_key_create(alias=f"key-{n}", team=team, organization=team.organization,
                                    max_budget=Decimal(rng.choice([5, 50, 500])))
        keys.append(key)
    User = get_user_model()
    admin = User.objects.create_superuser("bench-admin", password="pw")
    org_admin = User.objects.create_user("bench-org-admin", password="pw", is_staff=True)
    organization_member_add(organization=organizations[0], user=org_admin, role="admin")
    return keys, admin, org_admin


def _write_logs(count: int, keys, rng: random.Random) -> None:
    from apps.spend.models import SpendLog

    models = [f"model-{n}" for n in range(8)]
    now = datetime.now(timezone.utc)
    span = 30 * 86400
    batch = []
    started = time.perf_counter()
    for n in range(count):
        key = keys[rng.randrange(len(keys))]
        moment = now - timedelta(seconds=rng.randrange(span))
        error = rng.random() < 0.02
        batch.append(SpendLog(
            request_id=f"bench-{n}", key_id=key.pk, key_hash=key.token_hash, team_id=key.team_id,
            organization_id=key.organization_id, call_type="chat_completion", model=rng.choice(models),
            provider="openai", prompt_tokens=200, completion_tokens=50,
            cost=Decimal("0") if error else Decimal("0.00125"), status="error" if error else "success",
            cost_status="no_usage" if error else "priced", start_time=moment, end_time=moment,
        ))
        if len(batch) == 5000:
            SpendLog.objects.bulk_create(batch)
            batch = []
            if (n + 1) % 100_000 == 0:
                print(f"  {n + 1:,} logs written ({time.perf_counter() - started:.0f} s)", flush=True)
    if batch:
        SpendLog.objects.bulk_create(batch)


def _rollups() -> None:
    from apps.spend.rollups import daily_spend_rebuild, utc_today

    daily_spend_rebuild(since=utc_today() - timedelta(days=31))


def _render(user, repeat: int) -> tuple[list[float], int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    assert client.get("/admin/").status_code == 200  # warm: templates compiled, caches filled
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get("/admin/")
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as queries:
        client.get("/admin/")
    return timings, len(queries.captured_queries)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"),
                        help="an empty database of its own (default: SQLite in a temporary folder)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --database-url: render against the data an earlier run left there")
    options = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as folder:
        _setup(options.database_url, folder)
        from django.db import connection
        from django.test.utils import setup_test_environment

        setup_test_environment()  # the test client's response.context, and ALLOWED_HOSTS for "testserver"
        if options.reuse and options.database_url:
            from django.contrib.auth import get_user_model

            users = get_user_model().objects
            admin, org_admin = users.get(username="bench-admin"), users.get(username="bench-org-admin")
        else:
            print(f"database: {connection.vendor}; writing {options.logs:,} spend logs over 30 days", flush=True)
            keys, admin, org_admin = _world(rng)
            started = time.perf_counter()
            _write_logs(options.logs, keys, rng)
            print(f"logs written in {time.perf_counter() - started:.0f} s", flush=True)
            started = time.perf_counter()
            _rollups()
            print(f"rollups built in {time.perf_counter() - started:.0f} s", flush=True)
        from apps.spend.models import DailySpend, SpendLog

        print(f"spend logs: {SpendLog.objects.count():,}; daily rollup rows: {DailySpend.objects.count():,}")
        for label, user in (("proxy admin", admin), ("org admin", org_admin)):
            timings, queries = _render(user, options.repeat)
            print(f"/admin/ as {label:<12} p50 {statistics.median(timings):6.1f} ms   "
                  f"p99 {_percentile(timings, 0.99):6.1f} ms   max {max(timings):6.1f} ms   {queries} queries")


if __name__ == "__main__":
    main()
