"""Benchmark the gateway's POST /v1/chat/completions against its upstream called directly.

One run starts a fixed-answer upstream (bench/upstream.py) and a throwaway
gateway (one server process, virtual-key auth and spend logging on), checks one
answer through the gateway, then measures both targets with the same load
generator, at high concurrency for throughput and at concurrency 1 for latency.
It prints req/s and p50/p99, the gateway/direct throughput ratio, the latency
the gateway adds, and whether every request got a spend record.

    .venv/bin/python bench/run.py [--duration 10] [--concurrency 32] [--skip-direct] [--json]

See bench/README.md for how to read the result.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from load import REQUEST_BODY, LoadResult
from upstream import FIXED_CONTENT, FIXED_USAGE

PYTHON = sys.executable
CHAT_PATH = "/v1/chat/completions"
UPSTREAM_KEY = "sk-bench"

# Targets on the reference machine (2 cores, one gateway server process).
TARGET_RPS = 3000.0
TARGET_ADDED_P50_MS = 0.5

# Run in the gateway's `manage.py shell`. Any earlier bench deployment is removed
# first, so a reused database (DATABASE_URL) does not route to a dead upstream.
SETUP_SNIPPET = """
from decimal import Decimal
from apps.providers.models import ModelDeployment
from apps.keys.services import virtual_key_create
ModelDeployment.objects.filter(model_name="bench-model").delete()
ModelDeployment.objects.create(
    model_name="bench-model", provider="openai", upstream_model="bench-model",
    api_base="http://127.0.0.1:{port}/v1", api_key="{upstream_key}",
    input_cost_per_token=Decimal("0.000001"), output_cost_per_token=Decimal("0.000002"),
)
# Limits and a budget that never refuse but are checked and counted on every request, as a real key's.
key, raw = virtual_key_create(alias="bench", rpm_limit=100_000_000, tpm_limit=10_000_000_000,
                              max_budget=Decimal("1000000000"))
print("BENCH_KEY", key.pk, raw)
"""

COUNT_SNIPPET = """
from apps.spend.models import SpendLog
print("BENCH_SPEND", SpendLog.objects.filter(key_id={key_id}).count(), SpendLog.objects.count())
"""


def log(message: str) -> None:
    """Progress goes to stderr, so that --json leaves stdout machine-readable."""
    print(message, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_request(url: str, *, body: str | None = None, key: str | None = None, timeout: float = 10.0):
    """One request with the standard library; returns (status, parsed JSON or raw text)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        url, data=body.encode() if body is not None else None, headers=headers,
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class Processes:
    """The child processes of this run, each in its own session so that a Ctrl-C
    reaches only run.py, which then stops them in order (gateway first, so its
    spend buffer is flushed while the upstream is still there)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None,
              cwd: Path = REPO_DIR) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "wb") as log_file:  # the child keeps its own copy
            proc = subprocess.Popen(
                args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.running[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, name: str, timeout: float = 60.0) -> int | None:
        """SIGTERM, wait, then SIGKILL. Returns the exit code."""
        proc = self.running.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within {timeout:.0f}s; killing it")
                proc.kill()
                proc.wait()
        return proc.returncode

    def capture(self, args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """Run a short-lived child (a load generator) to the end; kill it if run.py is interrupted."""
        proc = subprocess.Popen(
            args, cwd=REPO_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            out, err = proc.communicate()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, out, err

    def stop_all(self) -> None:
        for name in list(self.running)[::-1]:
            self.stop(name, timeout=30.0)


def wait_http_ok(
    url: str, proc: subprocess.Popen, name: str, procs: Processes, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode}:\n{procs.log_tail(name)}")
        try:
            status, _ = http_request(url, timeout=2.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{name} did not answer 200 on {url} within {timeout:.0f}s:\n{procs.log_tail(name)}")


def manage(args: list[str], env: dict[str, str], what: str, cwd: Path = REPO_DIR) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def marked_line(output: str, marker: str) -> list[str]:
    for line in output.splitlines():
        if line.startswith(marker + " "):
            return line.split()[1:]
    raise BenchError(f"no {marker} line in:\n{output}")


def gateway_env(var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # A config file would overwrite the bench deployment with the caller's own.
    env.pop("GATEWAY_CONFIG", None)
    env.update(DEBUG="0", SECRET_KEY="bench", GATEWAY_ENCRYPTION_KEY="bench", GATEWAY_VAR_DIR=str(var_dir),
               ALLOWED_HOSTS="127.0.0.1,localhost",
               GATEWAY_ENV_FILE=os.devnull)  # a developer's .env (its GATEWAY_CONFIG, DATABASE_URL) stays out
    # DATABASE_URL and REDIS_URL, when the caller set them, pass through as they are.
    return env


# --- load generators -------------------------------------------------------------


class Generator:
    name = ""

    def run(self, url: str, *, concurrency: int, duration: float, key: str | None) -> LoadResult:
        raise NotImplementedError


class WrkGenerator(Generator):
    """wrk with one thread, so that the generator takes at most one of the cores."""

    def __init__(self, path: str, procs: Processes) -> None:
        self.path = path
        self.procs = procs
        version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        match = re.search(r"wrk\s+(\S+)", version.stdout + version.stderr)
        self.name = f"wrk {match.group(1) if match else '?'} (1 thread, bench/post.lua)"

    def run(self, url: str, *, concurrency: int, duration: float, key: str | None) -> LoadResult:
        env = dict(os.environ, BENCH_BODY=REQUEST_BODY, BENCH_API_KEY=key or "")
        # wrk counts whole seconds; a generous timeout keeps slow answers as latency, not errors.
        args = [
            self.path, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s",
            "--timeout", "30s", "-s", str(BENCH_DIR / "post.lua"), url,
        ]
        code, output, errors = self.procs.capture(args, env)
        if code != 0:
            raise BenchError(f"wrk failed ({code}):\n{output}\n{errors}")
        summary = json.loads(" ".join(marked_line(output, "BENCH_RESULT")))
        errors = summary["errors"]
        seconds = summary["duration_us"] / 1e6
        return LoadResult(
            generator="wrk",
            concurrency=concurrency,
            duration_s=round(seconds, 3),
            requests=summary["requests"],
            non_2xx=errors["status"],  # wrk counts answers with status > 399 here
            errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
            rps=summary["requests"] / seconds if seconds else 0.0,
            p50_ms=summary["p50_us"] / 1000,
            p99_ms=summary["p99_us"] / 1000,
        )


class PythonGenerator(Generator):
    """bench/load.py, run in its own process so that it does not share run.py's interpreter."""

    name = "python (bench/load.py, asyncio + uvloop, 1 process)"

    def __init__(self, procs: Processes) -> None:
        self.procs = procs

    def run(self, url: str, *, concurrency: int, duration: float, key: str | None) -> LoadResult:
        args = [PYTHON, str(BENCH_DIR / "load.py"), "--url", url, "-c", str(concurrency),
                "-d", str(duration), "--json"]
        if key:
            args += ["--key", key]
        code, output, errors = self.procs.capture(args)
        if code != 0:
            raise BenchError(f"load.py failed ({code}):\n{output}\n{errors}")
        return LoadResult(**json.loads(output))


# --- the run ----------------------------------------------------------------------


@dataclass
class Measurement:
    target: str  # "direct" or "gateway"
    phase: str  # "warmup" or "measure"
    result: LoadResult
    # CPU the serving process used per answered request (all its threads, user + system), in
    # microseconds. Far steadier than req/s on a small machine where the load generator and
    # the server share the cores: the number to compare two commits by. None off Linux.
    cpu_us_per_request: float | None = None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and all its threads so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_answer(status, payload, where: str) -> None:
    if status != 200:
        raise BenchError(f"{where}: expected 200, got {status}: {payload}")
    try:
        content = payload["choices"][0]["message"]["content"]
        usage = payload["usage"]
    except (TypeError, KeyError, IndexError):
        raise BenchError(f"{where}: not a chat.completion: {payload}") from None
    if content != FIXED_CONTENT:
        raise BenchError(f"{where}: unexpected content {content!r}")
    if {k: usage.get(k) for k in FIXED_USAGE} != FIXED_USAGE:
        raise BenchError(f"{where}: unexpected usage {usage}")


def run(args: argparse.Namespace) -> dict:
    work_dir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    procs = Processes(work_dir)
    try:
        return _run(args, work_dir, procs)
    finally:
        procs.stop_all()
        shutil.rmtree(work_dir, ignore_errors=True)


def _run(args: argparse.Namespace, work_dir: Path, procs: Processes) -> dict:
    wrk = shutil.which("wrk")
    if args.generator == "wrk" and not wrk:
        raise BenchError("--generator wrk, but wrk is not on PATH")
    generator = (
        WrkGenerator(wrk, procs) if wrk and args.generator != "python" else PythonGenerator(procs)
    )
    log(f"load generator: {generator.name}")

    # Upstream.
    upstream_port = free_port()
    upstream = procs.start("upstream", [PYTHON, str(BENCH_DIR / "upstream.py"), "--port", str(upstream_port)])
    wait_http_ok(f"http://127.0.0.1:{upstream_port}/health", upstream, "upstream", procs, timeout=15)
    direct_url = f"http://127.0.0.1:{upstream_port}{CHAT_PATH}"
    check_answer(*http_request(direct_url, body=REQUEST_BODY, key=UPSTREAM_KEY), "direct upstream")

    # Throwaway gateway: migrate, one deployment, one virtual key.
    var_dir = work_dir / "var"
    var_dir.mkdir()
    env = gateway_env(var_dir)
    # Only the part after "@", so that no password reaches the output.
    database = (
        "DATABASE_URL=…@" + env["DATABASE_URL"].split("@")[-1]
        if env.get("DATABASE_URL") else "SQLite in a temp dir"
    )
    log(f"gateway database: {database}; redis: {'REDIS_URL set' if env.get('REDIS_URL') else 'none'}")
    log("migrating ...")
    manage(["migrate", "--noinput"], env, "migrate")
    setup = SETUP_SNIPPET.format(port=upstream_port, upstream_key=UPSTREAM_KEY)
    key_id, raw_key = marked_line(manage(["shell", "-c", setup], env, "deployment/key setup"), "BENCH_KEY")

    gateway_port = free_port()
    gateway = procs.start(
        "gateway",
        [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(gateway_port), "--workers", "1"],
        env=env,
    )
    wait_http_ok(f"http://127.0.0.1:{gateway_port}/health/liveliness", gateway, "gateway", procs)
    gateway_url = f"http://127.0.0.1:{gateway_port}{CHAT_PATH}"
    log(f"upstream on :{upstream_port}, gateway on :{gateway_port}")
    servers = {"gateway": gateway, "direct": upstream}
    # The same gateway with its request metrics off (GATEWAY_REQUEST_METRICS=0), to show what
    # the metrics cost: measured against the first one at the high concurrency, turn by turn.
    metrics_off_url = None
    if args.compare_metrics:
        metrics_off_port = free_port()
        servers["metrics-off"] = procs.start(
            "metrics-off",
            [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(metrics_off_port), "--workers", "1"],
            env=dict(env, GATEWAY_REQUEST_METRICS="0"),
        )
        wait_http_ok(f"http://127.0.0.1:{metrics_off_port}/health/liveliness", servers["metrics-off"],
                     "metrics-off", procs)
        metrics_off_url = f"http://127.0.0.1:{metrics_off_port}{CHAT_PATH}"
    # The same gateway with default guardrails on (secrets and personal data, masked before the call).
    guarded_url = None
    if args.guardrails_run:
        guarded_port = free_port()
        config = work_dir / "guardrails.yaml"
        config.write_text(json.dumps({"guardrails": [
            {"guardrail_name": "secrets", "litellm_params": {"guardrail": "hide-secrets", "mode": "pre_call",
                                                             "default_on": True}},
            {"guardrail_name": "pii", "litellm_params": {"guardrail": "presidio", "mode": "pre_call",
                                                         "default_on": True}},
        ]}))
        servers["guardrails-on"] = procs.start(
            "guardrails-on",
            [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(guarded_port), "--workers", "1"],
            env=dict(env, GATEWAY_CONFIG=str(config)),
        )
        wait_http_ok(f"http://127.0.0.1:{guarded_port}/health/liveliness", servers["guardrails-on"],
                     "guardrails-on", procs)
        guarded_url = f"http://127.0.0.1:{guarded_port}{CHAT_PATH}"
    # The same gateway with the response cache on: every request after the first is a hit.
    cached_url = None
    if args.cached_run:
        cached_port = free_port()
        servers["cached"] = procs.start(
            "cached",
            [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(cached_port), "--workers", "1"],
            env=dict(env, GATEWAY_CACHE="local"),
        )
        wait_http_ok(f"http://127.0.0.1:{cached_port}/health/liveliness", servers["cached"], "cached", procs)
        cached_url = f"http://127.0.0.1:{cached_port}{CHAT_PATH}"

    check_answer(*http_request(gateway_url, body=REQUEST_BODY, key=raw_key), "gateway")
    gateway_requests = 1  # the check above
    log("gateway answers 200 with the fixed answer")

    targets = [("gateway", gateway_url, raw_key)]
    if not args.skip_direct:
        targets.insert(0, ("direct", direct_url, UPSTREAM_KEY))

    measurements: list[Measurement] = []

    def measure(target: str, url: str, key: str, concurrency: int, duration: float, phase: str) -> None:
        nonlocal gateway_requests
        log(f"{phase:7} {target:7} c={concurrency:<3} {duration:g}s ...")
        server = servers["gateway" if target in ("metrics-on", "guardrails-off") else target]
        if server.poll() is not None:
            raise BenchError(f"{target} exited with {server.returncode}:\n{procs.log_tail(target)}")
        pid = server.pid
        cpu_before = process_cpu_seconds(pid)
        result = generator.run(url, concurrency=concurrency, duration=duration, key=key)
        cpu_after = process_cpu_seconds(pid)
        cpu_per_request = (
            (cpu_after - cpu_before) * 1e6 / result.requests
            if cpu_before is not None and cpu_after is not None and result.requests else None
        )
        if target != "direct":
            gateway_requests += result.requests
        measurements.append(Measurement(target, phase, result, cpu_per_request))
        cpu_text = f"  cpu {cpu_per_request:.0f} us/req" if cpu_per_request is not None else ""
        log(f"        {result.rps:9.0f} req/s  p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms"
            f"  non-2xx {result.non_2xx}  errors {result.errors}{cpu_text}")

    for target, url, key in targets:
        measure(target, url, key, args.concurrency, args.warmup, "warmup")
    # Direct and gateway back to back at each concurrency, so both see the same machine state.
    for concurrency in dict.fromkeys([args.concurrency, 1]):
        for target, url, key in targets:
            measure(target, url, key, concurrency, args.duration, "measure")
    if metrics_off_url:
        # Metrics on and off in turns (on, off, on, off, ...), so both see the same machine.
        measure("metrics-off", metrics_off_url, raw_key, args.concurrency, args.warmup, "warmup")
        for _ in range(args.metrics_rounds):
            measure("metrics-on", gateway_url, raw_key, args.concurrency, args.duration / 2, "metrics")
            measure("metrics-off", metrics_off_url, raw_key, args.concurrency, args.duration / 2, "metrics")

    if guarded_url:
        # Guardrails on and off in turns, as for the metrics.
        measure("guardrails-on", guarded_url, raw_key, args.concurrency, args.warmup, "warmup")
        for _ in range(args.metrics_rounds):
            measure("guardrails-off", gateway_url, raw_key, args.concurrency, args.duration / 2, "guardrails")
            measure("guardrails-on", guarded_url, raw_key, args.concurrency, args.duration / 2, "guardrails")
    if cached_url:
        measure("cached", cached_url, raw_key, args.concurrency, args.warmup, "warmup")
        for concurrency in dict.fromkeys([args.concurrency, 1]):
            measure("cached", cached_url, raw_key, concurrency, args.duration, "cached")

    # SIGTERM makes the gateway flush its spend buffer before it exits.
    log("stopping the gateway (SIGTERM flushes its spend buffer) ...")
    code = procs.stop("gateway")
    if code not in (0, -signal.SIGTERM):
        log(f"warning: gateway exited with {code}:\n{procs.log_tail('gateway')}")
    gateway_log = procs.log_tail("gateway", lines=200)
    for extra, url in (("metrics-off", metrics_off_url), ("cached", cached_url), ("guardrails-on", guarded_url)):
        if url:
            code = procs.stop(extra)
            if code not in (0, -signal.SIGTERM):
                log(f"warning: the {extra} gateway exited with {code}:\n{procs.log_tail(extra)}")
            gateway_log += "\n" + procs.log_tail(extra, lines=200)
    spend_key, spend_all = (int(n) for n in marked_line(
        manage(["shell", "-c", COUNT_SNIPPET.format(key_id=key_id)], env, "spend-log count"), "BENCH_SPEND"))

    return report(args, generator.name, measurements, gateway_requests, spend_key,
                  spend_all, gateway_log)


def report(args, generator_name, measurements, gateway_requests, spend_logs, spend_all, gateway_log) -> dict:
    measured = {(m.target, m.result.concurrency): m.result for m in measurements if m.phase == "measure"}

    def compare(concurrency: int) -> dict | None:
        direct, gw = measured.get(("direct", concurrency)), measured.get(("gateway", concurrency))
        if not direct or not gw:
            return None
        return {
            "concurrency": concurrency,
            "throughput_ratio": gw.rps / direct.rps if direct.rps else None,
            "added_p50_ms": gw.p50_ms - direct.p50_ms,
            "added_p99_ms": gw.p99_ms - direct.p99_ms,
        }

    comparisons = [c for c in (compare(args.concurrency), compare(1)) if c]
    gateway_runs = [m.result for m in measurements if m.target != "direct"]
    failed = sum(r.non_2xx + r.errors for r in gateway_runs)
    # Every answered request must have its record. wrk counts only the answers it got
    # before its deadline, but the gateway still finishes (and logs) the requests in
    # flight then, up to one per connection: that many extra records are allowed.
    slack = sum(r.concurrency for r in gateway_runs) if generator_name.startswith("wrk") else 0
    expected = gateway_requests - failed
    spend_ok = expected <= spend_logs <= expected + slack

    gateway_high = measured.get(("gateway", args.concurrency))
    low = next((c for c in comparisons if c["concurrency"] == 1), None)
    targets = {
        f"gateway_rps_c{args.concurrency}_ge_{TARGET_RPS:.0f}": (
            gateway_high.rps >= TARGET_RPS if gateway_high and args.concurrency == 32 else None
        ),
        f"added_p50_c1_le_{TARGET_ADDED_P50_MS:g}ms": (
            low["added_p50_ms"] <= TARGET_ADDED_P50_MS if low else None
        ),
    }
    warnings = [line for line in gateway_log.splitlines() if re.search(r"ERROR|Traceback|CRITICAL", line)]
    return {
        "generator": generator_name,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "runs": [{"target": m.target, "phase": m.phase, **asdict(m.result),
                  "cpu_us_per_request": m.cpu_us_per_request} for m in measurements],
        "comparisons": comparisons,
        "targets": targets,
        "spend": {
            "gateway_requests": gateway_requests,
            "gateway_failed": failed,
            "spend_logs_for_key": spend_logs,
            "spend_logs_in_database": spend_all,
            "allowed_extra": slack,
            "ok": spend_ok,
        },
        "gateway_log_errors": warnings[:20],
        "metrics_cost": metrics_cost(measurements),
        "guardrails_cost": metrics_cost(measurements, "guardrails", "guardrails-on", "guardrails-off"),
        "cached": cached_run(measurements, measured),
    }


def cached_run(measurements: list[Measurement], measured: dict) -> list[dict]:
    """The response cache at a 100% hit ratio against the uncached gateway, per concurrency."""
    rows = []
    for m in measurements:
        if m.phase != "cached":
            continue
        uncached = measured.get(("gateway", m.result.concurrency))
        rows.append({
            "concurrency": m.result.concurrency, "rps": m.result.rps, "p50_ms": m.result.p50_ms,
            "p99_ms": m.result.p99_ms, "cpu_us_per_request": m.cpu_us_per_request,
            "throughput_ratio_vs_uncached": m.result.rps / uncached.rps if uncached and uncached.rps else None,
            "p50_ms_uncached": uncached.p50_ms if uncached else None,
        })
    return rows


def metrics_cost(measurements: list[Measurement], phase: str = "metrics", on: str = "metrics-on",
                 off: str = "metrics-off") -> dict | None:
    """A feature on vs off, measured in turns: the sum of each side's turns (req/s and CPU per request)."""
    sides = {}
    for target in (on, off):
        runs = [m for m in measurements if m.phase == phase and m.target == target]
        if not runs:
            return None
        requests = sum(m.result.requests for m in runs)
        seconds = sum(m.result.duration_s for m in runs)
        cpu = [m.cpu_us_per_request * m.result.requests for m in runs if m.cpu_us_per_request is not None]
        sides[target] = {
            "rps": requests / seconds if seconds else 0.0,
            "rps_by_turn": [round(m.result.rps) for m in runs],
            "cpu_us_per_request": sum(cpu) / requests if len(cpu) == len(runs) and requests else None,
        }
    return {"on": sides[on], "off": sides[off],
            "throughput_ratio": sides[on]["rps"] / sides[off]["rps"] if sides[off]["rps"] else None}


def print_report(data: dict) -> None:
    print(f"load generator: {data['generator']}")
    print(f"{data['duration_s']:g}s per measured run, "
          f"{data['warmup_s']:g}s warmup per target (not in the table)")
    print()
    header = (f"{'target':8} {'conc':>4} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} "
              f"{'requests':>9} {'non-2xx':>8} {'errors':>7} {'cpu us/req':>10}")
    print(header)
    print("-" * len(header))
    for run in data["runs"]:
        if run["phase"] != "measure":
            continue
        print(f"{run['target']:8} {run['concurrency']:>4} {run['rps']:>10.0f} {run['p50_ms']:>9.3f} "
              f"{run['p99_ms']:>9.3f} {run['requests']:>9} {run['non_2xx']:>8} {run['errors']:>7} "
              f"{'n/a' if run['cpu_us_per_request'] is None else format(run['cpu_us_per_request'], '.0f'):>10}")
    print()
    for c in data["comparisons"]:
        print(f"c={c['concurrency']:<3} gateway/direct throughput {c['throughput_ratio']:.3f}  "
              f"added latency p50 {c['added_p50_ms']:+.3f} ms  p99 {c['added_p99_ms']:+.3f} ms")
    if not data["comparisons"]:
        print("(--skip-direct: no comparison with the upstream)")
    print()
    for name, ok in data["targets"].items():
        print(f"target {name}: {'n/a' if ok is None else 'met' if ok else 'NOT met'}")
    spend = data["spend"]
    print(
        f"spend logs: {spend['spend_logs_for_key']} written for {spend['gateway_requests']} gateway requests "
        f"(incl. warmup and the check; {spend['gateway_failed']} failed; up to "
        f"{spend['allowed_extra']} extra allowed): {'OK' if spend['ok'] else 'MISMATCH'}"
    )
    for label, cost in (("request metrics", data.get("metrics_cost")),
                        ("default guardrails (hide-secrets, pii)", data.get("guardrails_cost"))):
        if not cost:
            continue
        on, off = cost["on"], cost["off"]
        cpu = (f"; cpu {on['cpu_us_per_request']:.0f} vs {off['cpu_us_per_request']:.0f} us/req"
               if on["cpu_us_per_request"] and off["cpu_us_per_request"] else "")
        print(f"{label} on vs off (turn by turn): {on['rps']:.0f} vs {off['rps']:.0f} req/s, "
              f"ratio {cost['throughput_ratio']:.3f}{cpu} (turns: on {on['rps_by_turn']}, off {off['rps_by_turn']})")
    for row in data.get("cached") or ():
        ratio = row["throughput_ratio_vs_uncached"]
        print(f"response cache, every request a hit, c={row['concurrency']:<3} {row['rps']:.0f} req/s"
              f" ({'n/a' if ratio is None else format(ratio, '.2f')}x uncached)  p50 {row['p50_ms']:.3f} ms"
              f" (uncached {row['p50_ms_uncached'] or float('nan'):.3f})  p99 {row['p99_ms']:.3f} ms")
    if data["gateway_log_errors"]:
        print("gateway log errors:")
        for line in data["gateway_log_errors"]:
            print("  " + line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per measured run (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="Seconds of warmup per target (default 2)")
    parser.add_argument("--concurrency", type=int, default=32,
                        help="Connections for the throughput runs (default 32)")
    parser.add_argument("--skip-direct", action="store_true", help="Measure only the gateway")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                        help="auto: wrk if it is on PATH, else bench/load.py")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON on stdout")
    parser.add_argument("--no-compare-metrics", dest="compare_metrics", action="store_false",
                        help="Leave out the run of a second gateway with its request metrics off")
    parser.add_argument("--no-guardrails-run", dest="guardrails_run", action="store_false",
                        help="Leave out the run of a gateway with default guardrails on")
    parser.add_argument("--no-cached-run", dest="cached_run", action="store_false",
                        help="Leave out the run of a gateway with the response cache on (every request a hit)")
    parser.add_argument("--metrics-rounds", type=int, default=3,
                        help="Turns each of metrics on and off, duration/2 seconds each (default 3)")
    args = parser.parse_args()

    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the children and remove the temp dir.
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)

    try:
        data = run(args)
    except BenchError as exc:
        log(f"benchmark failed: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
