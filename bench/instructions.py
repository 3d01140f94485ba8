"""Instructions the gateway executes per chat request, counted by valgrind's callgrind.

Requests per second on a small shared machine move by 5-8% between two runs of the same
commit; instruction counts repeat to about 0.3%. This is the number to compare two commits
by (a worktree of the other commit as --repo), not a replacement for `make bench`: it
counts work, not time, and it runs the server about 50 times slower than normal.

One run: the fixed-answer upstream (bench/upstream.py, not counted), a throwaway gateway
under `valgrind --tool=callgrind` (SQLite in a temp dir, one server process), a warm-up,
then the counters zeroed, N chat requests over 4 keep-alive connections, a pause so the
spend flusher writes their records (counted too: it is work the requests cause), and the
counters dumped.

    .venv/bin/python bench/instructions.py [--requests 2000] [--repo PATH] [--redis URL] [--json]

Needs valgrind (apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from load import REQUEST_BODY  # noqa: E402
from run import (  # noqa: E402
    CHAT_PATH,
    PYTHON,
    SETUP_SNIPPET,
    UPSTREAM_KEY,
    BenchError,
    Processes,
    free_port,
    gateway_env,
    manage,
    marked_line,
    wait_http_ok,
)

CONNECTIONS = 4
WARMUP_REQUESTS = 400


def send_requests(port: int, key: str, count: int) -> None:
    failures: list[str] = []

    def connection(requests: int) -> None:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        try:
            for _ in range(requests):
                client.request("POST", CHAT_PATH, body=REQUEST_BODY, headers=headers)
                answer = client.getresponse()
                answer.read()
                if answer.status != 200:
                    failures.append(f"status {answer.status}")
                    return
        except OSError as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=connection, args=(count // CONNECTIONS,)) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise BenchError(f"requests failed: {failures[:3]}")


def callgrind_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise BenchError(f"no totals in {path}")


def measure(repo: Path, requests: int, work_dir: Path, procs: Processes, config: Path | None = None,
            redis_url: str | None = None) -> dict:
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise BenchError("valgrind is not on PATH (apt-get install valgrind)")
    upstream_port = free_port()
    upstream = procs.start("upstream", [PYTHON, str(BENCH_DIR / "upstream.py"), "--port", str(upstream_port)])
    wait_http_ok(f"http://127.0.0.1:{upstream_port}/health", upstream, "upstream", procs, timeout=15)

    var_dir = work_dir / "var"
    var_dir.mkdir()
    env = gateway_env(var_dir)
    env.pop("DATABASE_URL", None)  # the embedded default: the same work on every machine
    env.pop("REDIS_URL", None)
    if redis_url:  # the limits, journal and caches on Redis, as in production (Redis's own work not counted)
        env["REDIS_URL"] = redis_url
    env["PYTHONHASHSEED"] = "0"  # set iteration order, and so the work, the same every run
    if config:  # a config file's settings (its guardrails, say) on top of the bench's
        env["GATEWAY_CONFIG"] = str(config.resolve())
    manage(["migrate", "--noinput"], env, "migrate", cwd=repo)
    setup = SETUP_SNIPPET.format(port=upstream_port, upstream_key=UPSTREAM_KEY)
    _, raw_key = marked_line(manage(["shell", "-c", setup], env, "deployment/key setup", cwd=repo), "BENCH_KEY")

    port = free_port()
    out_file = work_dir / "callgrind.out"
    gateway = procs.start(
        "gateway",
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", PYTHON, "manage.py", "serve",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, cwd=repo,
    )
    wait_http_ok(f"http://127.0.0.1:{port}/health/liveliness", gateway, "gateway", procs, timeout=600)
    send_requests(port, raw_key, WARMUP_REQUESTS)
    time.sleep(2)
    subprocess.run(["callgrind_control", "--zero", str(gateway.pid)], check=True, capture_output=True)
    started = time.monotonic()
    send_requests(port, raw_key, requests)
    seconds = time.monotonic() - started
    time.sleep(3)  # the spend flusher writes these requests' records within a second or two
    subprocess.run(["callgrind_control", "--dump", str(gateway.pid)], check=True, capture_output=True)
    dumps = [path for path in work_dir.glob("callgrind.out.*")]
    if len(dumps) != 1:
        raise BenchError(f"expected one callgrind dump, found {len(dumps)}")
    total = callgrind_total(dumps[0])
    return {
        "repo": str(repo),
        "requests": requests,
        "instructions_per_request": round(total / requests),
        "seconds_under_valgrind": round(seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="Counted requests (default 2000)")
    parser.add_argument("--repo", type=Path, default=BENCH_DIR.parent,
                        help="The checkout whose gateway is measured (default: this one)")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON")
    parser.add_argument("--config", type=Path, help="A config.yaml for the gateway (GATEWAY_CONFIG): to count "
                        "what its guardrails or cache settings cost")
    parser.add_argument("--redis", metavar="URL", help="Run the gateway on this Redis (REDIS_URL) instead of in "
                        "process memory: what the Redis path costs. Batching on the shared connection varies with "
                        "timing, so counts repeat to about 1%% here, not 0.3%%")
    args = parser.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="gateway-instructions-"))
    procs = Processes(work_dir)
    try:
        result = measure(args.repo.resolve(), args.requests, work_dir, procs, config=args.config,
                         redis_url=args.redis)
    except BenchError as exc:
        print(f"instructions: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(work_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['instructions_per_request']:,} instructions per chat request "
              f"({result['requests']} requests, {result['repo']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
