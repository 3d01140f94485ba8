"""`make bench-redis` (bench/redis_scripts.py) runs against the tests' Redis and reports its three rows.
Not a timed assertion: only that the benchmark still runs on this checkout's limiter."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(settings.REDIS_MODE != "standalone", reason="needs one Redis server (REDIS_URL)")
def test_the_redis_scripts_benchmark_runs():
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL}
    result = subprocess.run([sys.executable, "bench/redis_scripts.py", "--requests", "20", "--rounds", "1"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["0", "32", "1000"]
    assert all(float(row[1]) > 0 and float(row[2]) == 2.0 for row in rows)
