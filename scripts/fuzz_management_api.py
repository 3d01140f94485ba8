"""Fuzz the management API from its own OpenAPI schema with schemathesis: no request may get a 5xx.

    .venv/bin/python scripts/fuzz_management_api.py [--max-examples N] [--phases P] [--database-url URL]

A throwaway gateway (its own SQLite under a temporary directory unless --database-url is given,
production settings: DEBUG off) gets two tenants, a team admin and keys; `manage.py serve` runs
it, and schemathesis calls every operation of /management/openapi.json twice over: as the proxy
admin (the master key) and as a team admin (its team key). Exit status 0: no server error.
tests/core/test_management_fuzz.py runs it with a few examples per operation.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MASTER_KEY = "sk-fuzz-master"
SEED = """
from apps.keys.services import virtual_key_create
from apps.teams.services import organization_create, organization_member_add, team_create, team_member_add
from django.contrib.auth import get_user_model
User = get_user_model()
acme, globex = organization_create(name="Acme"), organization_create(name="Globex")
research, sales = team_create(organization=acme, alias="research"), team_create(organization=globex, alias="sales")
admin, member, outsider = (User.objects.create_user(n) for n in ("team-admin", "member", "outsider"))
team_member_add(team=research, user=admin, role="admin")
team_member_add(team=research, user=member, role="member")
team_member_add(team=sales, user=outsider, role="member")
virtual_key_create(user=member, team=research)
virtual_key_create(user=outsider, team=sales)
_, raw = virtual_key_create(user=admin, team=research)
print("TEAM_ADMIN_KEY", raw)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the gateway exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/health/liveliness", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the gateway did not start")


def fuzz(*, max_examples: int, phases: str = "examples,coverage,fuzzing", database_url: str | None = None,
         quiet: bool = False) -> int:
    """Returns the number of schemathesis runs that found a server error (0: none)."""
    var_dir = Path(tempfile.mkdtemp(prefix="gateway-fuzz-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "GATEWAY_CONFIG", "DEBUG"}}
    env.update(SECRET_KEY="fuzz", GATEWAY_ENCRYPTION_KEY="fuzz", GATEWAY_MASTER_KEY=MASTER_KEY,
               ALLOWED_HOSTS="127.0.0.1,localhost", GATEWAY_VAR_DIR=str(var_dir), LOG_LEVEL="ERROR",
               GATEWAY_ENV_FILE=os.devnull)  # a developer's .env would bring DEBUG and GATEWAY_CONFIG back
    env.pop("REDIS_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        env.pop("DATABASE_URL", None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    failures = 0
    server = None
    try:
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run([*manage, "shell", "-c", SEED], cwd=ROOT, env=env, check=True,
                                capture_output=True, text=True).stdout
        team_admin_key = next(line.split()[1] for line in seeded.splitlines() if line.startswith("TEAM_ADMIN_KEY"))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        # The server's output goes to a file: a pipe nobody reads would fill and stall the server.
        server_log = open(var_dir / "serve.log", "w")
        server = subprocess.Popen([*manage, "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                                  env=env, stdout=server_log, stderr=subprocess.STDOUT, text=True)
        _wait(url, server, var_dir / "serve.log")
        schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
        for who, key in (("team admin", team_admin_key), ("proxy admin", MASTER_KEY)):
            result = subprocess.run(
                [schemathesis, "run", f"{url}/management/openapi.json", "--url", url,
                 "--checks", "not_a_server_error", "--header", f"Authorization: Bearer {key}",
                 "--max-examples", str(max_examples), "--phases", phases,
                 "--workers", "1", "--no-color", "--suppress-health-check", "all"],
                cwd=ROOT, env=env, capture_output=quiet, text=True,
            )
            if result.returncode != 0:
                failures += 1
                if quiet:
                    print(result.stdout[-20000:], result.stderr[-5000:])
                print("the server's log ends with:\n" + (var_dir / "serve.log").read_text()[-5000:])
            print(f"schemathesis as the {who}: {'no server error' if result.returncode == 0 else 'FAILED'}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(var_dir, ignore_errors=True)
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100, help="examples per operation and phase")
    parser.add_argument("--phases", default="examples,coverage,fuzzing", help="schemathesis phases")
    parser.add_argument("--database-url", help="run on this database instead of a temporary SQLite file")
    args = parser.parse_args()
    failed = fuzz(max_examples=args.max_examples, phases=args.phases, database_url=args.database_url)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
