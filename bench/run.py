"""Benchmark the gateway's POST /v1/chat/completions against its upstream called directly.

One run starts a fixed-answer upstream (bench/upstream.py) and a throwaway
gateway (one server process, virtual-key auth and spend logging on), checks one
answer through the gateway, then measures both targets with the same load
generator, at high concurrency for throughput and at concurrency 1 for latency.
It prints req/s and p50/p99, the gateway/direct throughput ratio, the latency
the gateway adds, and whether every request got a spend record. Then streamed
requests (bench/stream_load.py): time to first chunk and chunks/s, direct and
through the gateway, at concurrency 1 and --stream-concurrency.

    .venv/bin/python bench/run.py [--duration 10] [--concurrency 32] [--workers 1] [--skip-direct] [--json]
    .venv/bin/python bench/run.py --scaling      # 1 worker, then 2, at --concurrency: req/s and the ratio
    .venv/bin/python bench/run.py --soak 600     # steady load for 600 s, the workers' RSS every 30 s

See bench/README.md for how to read the result.
"""

from __future__ import annotations

import argparse
import json
import math
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
from stream_load import STREAM_REQUEST_BODY, StreamResult
from upstream import FIXED_CONTENT, FIXED_USAGE, STREAM_CHUNKS, STREAM_CONTENT, STREAM_USAGE

PYTHON = sys.executable
CHAT_PATH = "/v1/chat/completions"
UPSTREAM_KEY = "sk-bench"

# Targets on the reference machine (2 cores, one gateway server process).
TARGET_RPS = 3000.0
TARGET_ADDED_P50_MS = 0.5
# Streaming: time to first chunk added at concurrency 1 (p50), and the chunk rate kept.
TARGET_STREAM_ADDED_TTFC_MS = 1.0
TARGET_STREAM_RATE_RATIO = 0.9
# Soak: the last RSS sample within this fraction of the one at the end of the first minute.
SOAK_WARMUP_S = 60.0
SOAK_FLAT_TOLERANCE = 0.10

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
key, raw = virtual_key_create(alias="bench", rpm_limit=1_000_000_000, tpm_limit=2_000_000_000,
                              max_budget=Decimal("1000000000"))
print("BENCH_KEY", key.pk, raw)
"""

# The key's rows, all rows, the key's streamed rows, and those of them with the upstream's
# streamed usage (reported, not estimated) and a success status.
COUNT_SNIPPET = """
from apps.spend.models import SpendLog
logs = SpendLog.objects.filter(key_id={key_id})
streamed = logs.filter(is_stream=True)
with_usage = streamed.filter(prompt_tokens={prompt_tokens}, completion_tokens={completion_tokens},
                             usage_reported=True, status=SpendLog.Status.SUCCESS)
print("BENCH_SPEND", logs.count(), SpendLog.objects.count(), streamed.count(), with_usage.count())
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

    def background(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a load generator that runs while run.py does something else (the soak's RSS
        samples); its output is read with communicate(). The caller kills it if interrupted."""
        return subprocess.Popen(
            args, cwd=REPO_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )

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
    procs: Processes

    def command(self, url: str, *, concurrency: int, duration: float,
                key: str | None) -> tuple[list[str], dict[str, str] | None]:
        """The generator's command line and environment."""
        raise NotImplementedError

    def parse(self, code: int, output: str, errors: str, concurrency: int) -> LoadResult:
        raise NotImplementedError

    def run(self, url: str, *, concurrency: int, duration: float, key: str | None) -> LoadResult:
        args, env = self.command(url, concurrency=concurrency, duration=duration, key=key)
        return self.parse(*self.procs.capture(args, env), concurrency)


class WrkGenerator(Generator):
    """wrk with one thread, so that the generator takes at most one of the cores."""

    def __init__(self, path: str, procs: Processes) -> None:
        self.path = path
        self.procs = procs
        version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        match = re.search(r"wrk\s+(\S+)", version.stdout + version.stderr)
        self.name = f"wrk {match.group(1) if match else '?'} (1 thread, bench/post.lua)"

    def command(self, url: str, *, concurrency: int, duration: float, key: str | None):
        env = dict(os.environ, BENCH_BODY=REQUEST_BODY, BENCH_API_KEY=key or "")
        # wrk counts whole seconds; a generous timeout keeps slow answers as latency, not errors.
        args = [
            self.path, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s",
            "--timeout", "30s", "-s", str(BENCH_DIR / "post.lua"), url,
        ]
        return args, env

    def parse(self, code: int, output: str, errors: str, concurrency: int) -> LoadResult:
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

    def command(self, url: str, *, concurrency: int, duration: float, key: str | None):
        args = [PYTHON, str(BENCH_DIR / "load.py"), "--url", url, "-c", str(concurrency),
                "-d", str(duration), "--json"]
        if key:
            args += ["--key", key]
        return args, None

    def parse(self, code: int, output: str, errors: str, concurrency: int) -> LoadResult:
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


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3, state, is index 0)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and all its threads so far (Linux /proc)."""
    fields = _proc_stat(pid)
    if fields is None:
        return None
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pids(pid: int) -> list[int]:
    """The processes that serve requests for `manage.py serve` running as `pid`: the process
    itself with one worker; its children (uvicorn's spawned workers, not multiprocessing's
    resource tracker) with several."""
    children = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [pid]
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _proc_stat(int(entry))
        if fields is None or int(fields[1]) != pid:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if b"resource_tracker" in cmdline.read():
                    continue
        except OSError:
            continue
        children.append(int(entry))
    return sorted(children) or [pid]


def server_cpu_seconds(pid: int) -> float | None:
    """CPU time of a serve process and its workers (children), so far."""
    pids = dict.fromkeys([pid, *worker_pids(pid)])
    times = [process_cpu_seconds(p) for p in pids]
    return sum(t for t in times if t is not None) if times[0] is not None else None


def process_rss_kib(pid: int) -> int | None:
    """VmRSS of a process, in KiB (Linux /proc/<pid>/status)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


@dataclass
class StreamMeasurement:
    target: str  # "direct" or "gateway"
    phase: str  # "warmup" or "stream"
    result: StreamResult
    cpu_us_per_chunk: float | None = None  # the serving process(es), per content chunk received


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


def check_stream_answer(url: str, key: str, where: str) -> None:
    """One streamed request, read whole: 200, STREAM_CHUNKS content chunks with the fixed text,
    the usage chunk and [DONE] last."""
    status, payload = http_request(url, body=STREAM_REQUEST_BODY, key=key)
    if status != 200 or not isinstance(payload, str):
        raise BenchError(f"{where}: expected a 200 event stream, got {status}: {str(payload)[:500]}")
    events = [event[len("data:"):].strip() for event in payload.split("\n\n") if event.startswith("data:")]
    if not events or events[-1] != "[DONE]":
        raise BenchError(f"{where}: the stream does not end with data: [DONE]: {payload[-300:]!r}")
    pieces, usage = [], None
    for event in events[:-1]:
        chunk = json.loads(event)
        for choice in chunk.get("choices") or ():
            if (choice.get("delta") or {}).get("content"):
                pieces.append(choice["delta"]["content"])
        usage = chunk.get("usage") or usage
    if len(pieces) != STREAM_CHUNKS or "".join(pieces) != STREAM_CONTENT:
        raise BenchError(f"{where}: {len(pieces)} content chunks (expected {STREAM_CHUNKS}) or other text")
    if not usage or {k: usage.get(k) for k in STREAM_USAGE} != STREAM_USAGE:
        raise BenchError(f"{where}: unexpected streamed usage {usage}")


def run(args: argparse.Namespace) -> dict:
    work_dir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    procs = Processes(work_dir)
    try:
        bench = _setup(args, work_dir, procs)
        if args.scaling:
            return _run_scaling(args, bench)
        if args.soak:
            return _run_soak(args, bench)
        return _run(args, bench)
    finally:
        procs.stop_all()
        shutil.rmtree(work_dir, ignore_errors=True)


@dataclass
class Bench:
    """What every mode shares: the generator, the upstream, the database with its key."""

    args: argparse.Namespace
    work_dir: Path
    procs: Processes
    generator: Generator
    upstream: subprocess.Popen
    direct_url: str
    env: dict[str, str]
    key_id: str
    raw_key: str

    def start_gateway(self, name: str, workers: int, wait: bool = True,
                      **extra_env: str) -> tuple[subprocess.Popen, str]:
        """`manage.py serve --workers N` on a free port, waited for unless `wait` is false (then
        wait_gateway); returns it and its chat URL."""
        port = free_port()
        proc = self.procs.start(
            name,
            [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=dict(self.env, **extra_env),
        )
        url = f"http://127.0.0.1:{port}{CHAT_PATH}"
        if wait:
            self.wait_gateway(name, proc, url)
        return proc, url

    def wait_gateway(self, name: str, proc: subprocess.Popen, url: str) -> None:
        # Generous: several gateways may be starting at once on two cores.
        wait_http_ok(url.replace(CHAT_PATH, "/health/liveliness"), proc, name, self.procs, timeout=120)

    def stop_gateway(self, name: str) -> str:
        """SIGTERM (which flushes the spend buffer); returns the tail of its log."""
        code = self.procs.stop(name)
        if code not in (0, -signal.SIGTERM):
            log(f"warning: {name} exited with {code}:\n{self.procs.log_tail(name)}")
        return self.procs.log_tail(name, lines=200)

    def count_spend(self) -> tuple[int, int, int, int]:
        """The key's spend logs, all spend logs, the key's streamed ones, and those of them with
        the streamed usage and a success status."""
        snippet = COUNT_SNIPPET.format(key_id=self.key_id, prompt_tokens=STREAM_USAGE["prompt_tokens"],
                                       completion_tokens=STREAM_USAGE["completion_tokens"])
        output = manage(["shell", "-c", snippet], self.env, "spend-log count")
        key_logs, all_logs, streamed, streamed_ok = (int(n) for n in marked_line(output, "BENCH_SPEND"))
        return key_logs, all_logs, streamed, streamed_ok


def _setup(args: argparse.Namespace, work_dir: Path, procs: Processes) -> Bench:
    wrk = shutil.which("wrk")
    if args.generator == "wrk" and not wrk:
        raise BenchError("--generator wrk, but wrk is not on PATH")
    generator = (
        WrkGenerator(wrk, procs) if wrk and args.generator != "python" else PythonGenerator(procs)
    )
    log(f"load generator: {generator.name}")

    # Upstream.
    upstream_port = free_port()
    upstream = procs.start("upstream", [PYTHON, str(BENCH_DIR / "upstream.py"), "--port", str(upstream_port),
                                        "--stream-interval-ms", str(args.stream_interval_ms)])
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
    return Bench(args, work_dir, procs, generator, upstream, direct_url, env, key_id, raw_key)


def _measure_cpu(server: subprocess.Popen, run_load):
    """Run run_load() and return its result with the CPU seconds the server (all its workers) used."""
    before = server_cpu_seconds(server.pid)
    result = run_load()
    after = server_cpu_seconds(server.pid)
    return result, (after - before if before is not None and after is not None else None)


def _run(args: argparse.Namespace, bench: Bench) -> dict:
    procs, generator, raw_key = bench.procs, bench.generator, bench.raw_key
    workers = args.workers
    # All the gateways start at once (each is waited for below): their start-up overlaps.
    gateway, gateway_url = bench.start_gateway("gateway", workers, wait=False)
    servers = {"gateway": gateway, "direct": bench.upstream}
    urls = {"gateway": gateway_url}
    # The same gateway with its request metrics off (GATEWAY_REQUEST_METRICS=0), to show what
    # the metrics cost: measured against the first one at the high concurrency, turn by turn.
    metrics_off_url = None
    if args.compare_metrics:
        servers["metrics-off"], metrics_off_url = bench.start_gateway("metrics-off", workers, wait=False,
                                                                      GATEWAY_REQUEST_METRICS="0")
        urls["metrics-off"] = metrics_off_url
    # The same gateway with default guardrails on (secrets and personal data, masked before the call).
    guarded_url = None
    if args.guardrails_run:
        config = bench.work_dir / "guardrails.yaml"
        config.write_text(json.dumps({"guardrails": [
            {"guardrail_name": "secrets", "litellm_params": {"guardrail": "hide-secrets", "mode": "pre_call",
                                                             "default_on": True}},
            {"guardrail_name": "pii", "litellm_params": {"guardrail": "presidio", "mode": "pre_call",
                                                         "default_on": True}},
        ]}))
        servers["guardrails-on"], guarded_url = bench.start_gateway("guardrails-on", workers, wait=False,
                                                                    GATEWAY_CONFIG=str(config))
        urls["guardrails-on"] = guarded_url
    # The same gateway with the response cache on: every request after the first is a hit.
    cached_url = None
    if args.cached_run:
        servers["cached"], cached_url = bench.start_gateway("cached", workers, wait=False, GATEWAY_CACHE="local")
        urls["cached"] = cached_url
    for name, url in urls.items():
        bench.wait_gateway(name, servers[name], url)
    log(f"upstream on {bench.direct_url}, gateway on {gateway_url} ({workers} worker{'s' * (workers > 1)})")

    check_answer(*http_request(gateway_url, body=REQUEST_BODY, key=raw_key), "gateway")
    gateway_requests = 1  # the check above
    log("gateway answers 200 with the fixed answer")
    gateway_streams = 0
    if args.stream_run:
        check_stream_answer(bench.direct_url, UPSTREAM_KEY, "direct upstream, streamed")
        check_stream_answer(gateway_url, raw_key, "gateway, streamed")
        gateway_streams = 1
        log(f"gateway streams {STREAM_CHUNKS} chunks, the usage and [DONE]")

    targets = [("gateway", gateway_url, raw_key)]
    if not args.skip_direct:
        targets.insert(0, ("direct", bench.direct_url, UPSTREAM_KEY))

    measurements: list[Measurement] = []
    stream_measurements: list[StreamMeasurement] = []

    def server_for(target: str) -> subprocess.Popen:
        server = servers["gateway" if target in ("metrics-on", "guardrails-off") else target]
        if server.poll() is not None:
            raise BenchError(f"{target} exited with {server.returncode}:\n{procs.log_tail(target)}")
        return server

    def measure(target: str, url: str, key: str, concurrency: int, duration: float, phase: str) -> None:
        nonlocal gateway_requests
        log(f"{phase:7} {target:7} c={concurrency:<3} {duration:g}s ...")
        result, cpu = _measure_cpu(server_for(target), lambda: generator.run(
            url, concurrency=concurrency, duration=duration, key=key))
        cpu_per_request = cpu * 1e6 / result.requests if cpu is not None and result.requests else None
        if target != "direct":
            gateway_requests += result.requests
        measurements.append(Measurement(target, phase, result, cpu_per_request))
        cpu_text = f"  cpu {cpu_per_request:.0f} us/req" if cpu_per_request is not None else ""
        log(f"        {result.rps:9.0f} req/s  p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms"
            f"  non-2xx {result.non_2xx}  errors {result.errors}{cpu_text}")

    def measure_streams(target: str, url: str, key: str, concurrency: int, duration: float, phase: str) -> None:
        nonlocal gateway_streams
        log(f"{phase:7} {target:7} c={concurrency:<3} {duration:g}s streamed ...")
        command = [PYTHON, str(BENCH_DIR / "stream_load.py"), "--url", url, "--key", key,
                   "-c", str(concurrency), "-d", str(duration), "--json"]

        def run_streams() -> StreamResult:
            code, output, errors = procs.capture(command)
            if code != 0:
                raise BenchError(f"stream_load.py failed ({code}):\n{output}\n{errors}")
            return StreamResult(**json.loads(output))

        result, cpu = _measure_cpu(server_for(target), run_streams)
        cpu_per_chunk = cpu * 1e6 / result.chunks if cpu is not None and result.chunks else None
        if target != "direct":
            gateway_streams += result.streams
        stream_measurements.append(StreamMeasurement(target, phase, result, cpu_per_chunk))
        cpu_text = f"  cpu {cpu_per_chunk:.1f} us/chunk" if cpu_per_chunk is not None else ""
        log(f"        first chunk p50 {result.ttfc_p50_ms:.3f} ms p99 {result.ttfc_p99_ms:.3f} ms"
            f"  {result.chunks_per_s:.0f} chunks/s ({result.stream_chunks_per_s_p50:.0f} per stream)"
            f"  {result.complete}/{result.streams} complete  non-2xx {result.non_2xx}  errors {result.errors}"
            f"{cpu_text}")
        if result.first_failure:
            log(f"        first failure: {result.first_failure}")

    for target, url, key in targets:
        measure(target, url, key, args.concurrency, args.warmup, "warmup")
    # Direct and gateway back to back at each concurrency, so both see the same machine state.
    for concurrency in dict.fromkeys([args.concurrency, 1]):
        for target, url, key in targets:
            measure(target, url, key, concurrency, args.duration, "measure")
    if args.stream_run:
        # Streamed: the gateway warmed up on streams first (the direct upstream needs none).
        measure_streams("gateway", gateway_url, raw_key, args.stream_concurrency,
                        min(args.warmup, 1.0), "warmup")
        for concurrency in dict.fromkeys([1, args.stream_concurrency]):
            for target, url, key in targets:
                measure_streams(target, url, key, concurrency, args.stream_duration, "stream")
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
    gateway_log = bench.stop_gateway("gateway")
    for extra, url in (("metrics-off", metrics_off_url), ("cached", cached_url), ("guardrails-on", guarded_url)):
        if url:
            gateway_log += "\n" + bench.stop_gateway(extra)
    spend_key, spend_all, spend_streamed, spend_streamed_ok = bench.count_spend()

    data = report(args, generator.name, measurements, gateway_requests, spend_key,
                  spend_all, gateway_log)
    if args.stream_run:
        add_stream_report(args, data, stream_measurements, gateway_streams, spend_key, spend_streamed,
                          spend_streamed_ok)
    return data


def _run_scaling(args: argparse.Namespace, bench: Bench) -> dict:
    """One worker, then two, each alone on the machine, at --concurrency: req/s and the ratio."""
    rows: list[dict] = []
    all_runs: list[LoadResult] = []
    gateway_requests = 0
    gateway_log = ""
    for workers in (1, 2):
        name = f"gateway-{workers}w"
        gateway, url = bench.start_gateway(name, workers)
        log(f"{name} on {url}: {len(worker_pids(gateway.pid)) if workers > 1 else 1} worker process(es)")
        check_answer(*http_request(url, body=REQUEST_BODY, key=bench.raw_key), name)
        gateway_requests += 1
        runs = {}
        for phase, duration in (("warmup", args.warmup), ("measure", args.duration)):
            log(f"{phase:7} {name} c={args.concurrency:<3} {duration:g}s ...")
            result, cpu = _measure_cpu(gateway, lambda url=url, duration=duration: bench.generator.run(
                url, concurrency=args.concurrency, duration=duration, key=bench.raw_key))
            gateway_requests += result.requests
            cpu_per_request = cpu * 1e6 / result.requests if cpu is not None and result.requests else None
            log(f"        {result.rps:9.0f} req/s  p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms"
                f"  non-2xx {result.non_2xx}  errors {result.errors}"
                + (f"  cpu {cpu_per_request:.0f} us/req" if cpu_per_request is not None else ""))
            runs[phase] = (result, cpu_per_request)
        result, cpu_per_request = runs["measure"]
        rows.append({"workers": workers, **asdict(result), "cpu_us_per_request": cpu_per_request})
        all_runs += [runs["warmup"][0], result]
        log(f"stopping {name} ...")
        gateway_log += "\n" + bench.stop_gateway(name)
    spend_key, spend_all, _, _ = bench.count_spend()
    return {
        "mode": "scaling",
        "generator": bench.generator.name,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "concurrency": args.concurrency,
        "scaling": rows,
        "ratio_2_vs_1": rows[1]["rps"] / rows[0]["rps"] if rows[0]["rps"] else None,
        "spend": spend_check(bench.generator.name, all_runs, gateway_requests, spend_key, spend_all),
        "gateway_log_errors": log_errors(gateway_log),
    }


def _run_soak(args: argparse.Namespace, bench: Bench) -> dict:
    """Steady load for --soak seconds; every --soak-interval seconds the RSS of each worker."""
    workers = args.workers
    gateway, url = bench.start_gateway("gateway", workers)
    check_answer(*http_request(url, body=REQUEST_BODY, key=bench.raw_key), "gateway")
    gateway_requests = 1

    def sample(elapsed: float) -> dict:
        pids = worker_pids(gateway.pid) if workers > 1 else [gateway.pid]
        rss = {str(pid): process_rss_kib(pid) for pid in pids}
        cpu = server_cpu_seconds(gateway.pid)
        row = {"t_s": round(elapsed, 1), "rss_kib": rss, "cpu_s": cpu}
        text = "  ".join(f"pid {pid} {'?' if kib is None else f'{kib / 1024:.1f}'} MiB" for pid, kib in rss.items())
        log(f"soak t={elapsed:6.0f}s  RSS {text}  (server cpu {cpu if cpu is None else round(cpu, 1)} s)")
        return row

    log(f"soak: c={args.concurrency} for {args.soak:g}s on {url} ({workers} worker{'s' * (workers > 1)}), "
        f"RSS every {args.soak_interval:g}s")
    samples = [sample(0.0)]
    command, env = bench.generator.command(url, concurrency=args.concurrency, duration=args.soak,
                                           key=bench.raw_key)
    load = bench.procs.background(command, env)
    try:
        started = time.monotonic()
        next_sample = args.soak_interval
        while load.poll() is None:
            time.sleep(0.2)
            elapsed = time.monotonic() - started
            if gateway.poll() is not None:
                raise BenchError(f"the gateway exited with {gateway.returncode} during the soak:\n"
                                 f"{bench.procs.log_tail('gateway')}")
            if elapsed >= next_sample:
                samples.append(sample(elapsed))
                next_sample += args.soak_interval
        output, errors = load.communicate()
        elapsed = time.monotonic() - started
        if elapsed - samples[-1]["t_s"] > 1.0:
            samples.append(sample(elapsed))  # the end of the load
        result = bench.generator.parse(load.returncode, output, errors, args.concurrency)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    gateway_requests += result.requests
    log(f"        {result.rps:9.0f} req/s  p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms"
        f"  non-2xx {result.non_2xx}  errors {result.errors}")
    log("stopping the gateway (SIGTERM flushes its spend buffer) ...")
    gateway_log = bench.stop_gateway("gateway")
    spend_key, spend_all, _, _ = bench.count_spend()
    return {
        "mode": "soak",
        "generator": bench.generator.name,
        "soak_s": args.soak,
        "concurrency": args.concurrency,
        "workers": workers,
        "load": asdict(result),
        "samples": samples,
        "flat": soak_verdict(samples),
        "spend": spend_check(bench.generator.name, [result], gateway_requests, spend_key, spend_all),
        "gateway_log_errors": log_errors(gateway_log),
    }


def soak_verdict(samples: list[dict]) -> dict:
    """Per worker (the n-th pid of each sample): the RSS at the end of the first minute against
    the last one. With fewer than one sample after the first minute there is nothing to judge."""
    reference = next((s for s in samples if s["t_s"] >= SOAK_WARMUP_S - 1.0), None)
    last = samples[-1]
    if reference is None or reference is last:
        return {"ok": None, "reference_t_s": reference and reference["t_s"], "last_t_s": last["t_s"],
                "workers": [], "note": f"the soak ended within its first {SOAK_WARMUP_S:.0f} s (the warm-up): "
                                       "no later sample to compare"}
    rows = []
    for (pid_ref, ref_kib), (pid_last, last_kib) in zip(reference["rss_kib"].items(), last["rss_kib"].items()):
        change = (last_kib - ref_kib) / ref_kib if ref_kib and last_kib is not None else None
        rows.append({"pid_reference": pid_ref, "pid_last": pid_last, "reference_kib": ref_kib,
                     "last_kib": last_kib, "change": change,
                     "ok": change is not None and abs(change) <= SOAK_FLAT_TOLERANCE and pid_ref == pid_last})
    return {"ok": bool(rows) and all(r["ok"] for r in rows), "reference_t_s": reference["t_s"],
            "last_t_s": last["t_s"], "workers": rows,
            "note": "" if len(reference["rss_kib"]) == len(last["rss_kib"]) else "the number of workers changed"}


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
    return {
        "mode": "default",
        "generator": generator_name,
        "workers": args.workers,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "runs": [{"target": m.target, "phase": m.phase, **asdict(m.result),
                  "cpu_us_per_request": m.cpu_us_per_request} for m in measurements],
        "comparisons": comparisons,
        "targets": targets,
        "spend": spend_check(generator_name, gateway_runs, gateway_requests, spend_logs, spend_all),
        "gateway_log_errors": log_errors(gateway_log),
        "metrics_cost": metrics_cost(measurements),
        "guardrails_cost": metrics_cost(measurements, "guardrails", "guardrails-on", "guardrails-off"),
        "cached": cached_run(measurements, measured),
    }


def spend_check(generator_name: str, gateway_runs: list[LoadResult], gateway_requests: int,
                spend_logs: int, spend_all: int) -> dict:
    """Every answered request must have its record. wrk counts only the answers it got
    before its deadline, but the gateway still finishes (and logs) the requests in
    flight then, up to one per connection: that many extra records are allowed."""
    failed = sum(r.non_2xx + r.errors for r in gateway_runs)
    slack = sum(r.concurrency for r in gateway_runs) if generator_name.startswith("wrk") else 0
    expected = gateway_requests - failed
    return {
        "gateway_requests": gateway_requests,
        "gateway_failed": failed,
        "spend_logs_for_key": spend_logs,
        "spend_logs_in_database": spend_all,
        "allowed_extra": slack,
        "ok": expected <= spend_logs <= expected + slack,
    }


def log_errors(gateway_log: str) -> list[str]:
    return [line for line in gateway_log.splitlines() if re.search(r"ERROR|Traceback|CRITICAL", line)][:20]


def add_stream_report(args, data: dict, stream_measurements: list[StreamMeasurement], gateway_streams: int,
                      spend_key: int, spend_streamed: int, spend_streamed_ok: int) -> None:
    """The streamed runs, their comparison with the upstream, their targets and spend check."""
    measured = {(m.target, m.result.concurrency): m.result for m in stream_measurements if m.phase == "stream"}
    comparisons = []
    for concurrency in dict.fromkeys([1, args.stream_concurrency]):
        direct, gw = measured.get(("direct", concurrency)), measured.get(("gateway", concurrency))
        if not direct or not gw:
            continue
        comparisons.append({
            "concurrency": concurrency,
            "added_ttfc_p50_ms": gw.ttfc_p50_ms - direct.ttfc_p50_ms,
            "added_ttfc_p99_ms": gw.ttfc_p99_ms - direct.ttfc_p99_ms,
            "chunk_rate_ratio": gw.chunks_per_s / direct.chunks_per_s if direct.chunks_per_s else None,
            "stream_chunk_rate_ratio": (gw.stream_chunks_per_s_p50 / direct.stream_chunks_per_s_p50
                                        if direct.stream_chunks_per_s_p50 else None),
        })
    low = next((c for c in comparisons if c["concurrency"] == 1), None)
    ratios = [c["chunk_rate_ratio"] for c in comparisons if c["chunk_rate_ratio"] is not None]
    data["targets"][f"stream_added_ttfc_p50_c1_le_{TARGET_STREAM_ADDED_TTFC_MS:g}ms"] = (
        low["added_ttfc_p50_ms"] <= TARGET_STREAM_ADDED_TTFC_MS if low else None)
    data["targets"][f"stream_chunk_rate_ge_{TARGET_STREAM_RATE_RATIO:.0%}_of_upstream"] = (
        min(ratios) >= TARGET_STREAM_RATE_RATIO if ratios else None)

    # Streams: every one answered with 200 must have its streamed record, and every complete one
    # carries the upstream's usage. bench/stream_load.py finishes the stream it has in flight at
    # its deadline, so these are exact; a stream cut by an error may or may not have left one.
    gateway_runs = [m.result for m in stream_measurements if m.target == "gateway"]
    answered = gateway_streams - sum(r.non_2xx for r in gateway_runs)
    complete = gateway_streams - sum(r.non_2xx + r.incomplete for r in gateway_runs)
    cut = sum(r.errors for r in gateway_runs)
    spend = data["spend"]
    spend.update(
        gateway_streams=gateway_streams,
        gateway_streams_complete=complete,
        streamed_spend_logs=spend_streamed,
        streamed_spend_logs_with_usage=spend_streamed_ok,
        streamed_ok=answered <= spend_streamed <= answered + cut and spend_streamed_ok >= complete,
    )
    # The key's records also count the streams: the request check widens by them.
    failed = sum(r.non_2xx + r.errors for r in gateway_runs)
    spend["gateway_requests"] += gateway_streams
    spend["gateway_failed"] += failed
    expected = spend["gateway_requests"] - spend["gateway_failed"]
    spend["allowed_extra"] += cut
    spend["ok"] = expected <= spend_key <= expected + spend["allowed_extra"]
    data["stream"] = {
        "chunks_per_stream": STREAM_CHUNKS,
        "upstream_interval_ms": args.stream_interval_ms,
        "duration_s": args.stream_duration,
        "runs": [{"target": m.target, "phase": m.phase, **asdict(m.result), "cpu_us_per_chunk": m.cpu_us_per_chunk}
                 for m in stream_measurements],
        "comparisons": comparisons,
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


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"  # NaN: no sample


def print_stream_report(stream: dict) -> None:
    print(f"streamed: {stream['chunks_per_stream']} content chunks a stream, the upstream sending one every "
          f"{stream['upstream_interval_ms']:g} ms, stream_options.include_usage; {stream['duration_s']:g}s per run")
    header = (f"{'target':8} {'conc':>4} {'streams':>7} {'complete':>8} {'ttfc p50':>9} {'ttfc p99':>9} "
              f"{'chunks/s':>9} {'per stream':>10} {'non-2xx':>7} {'errors':>6} {'cpu us/chunk':>12}")
    print(header)
    print("-" * len(header))
    for run in stream["runs"]:
        if run["phase"] != "stream":
            continue
        cpu = run["cpu_us_per_chunk"]
        print(f"{run['target']:8} {run['concurrency']:>4} {run['streams']:>7} {run['complete']:>8} "
              f"{_ms(run['ttfc_p50_ms']):>9} {_ms(run['ttfc_p99_ms']):>9} {run['chunks_per_s']:>9.0f} "
              f"{run['stream_chunks_per_s_p50']:>10.0f} {run['non_2xx']:>7} {run['errors']:>6} "
              f"{'n/a' if cpu is None else format(cpu, '.1f'):>12}")
        if run["first_failure"]:
            print(f"  first failure: {run['first_failure']}")
    print("(ttfc: ms from sending the request to the first content chunk; per stream: p50 of the "
          "chunk rate after the first chunk)")
    print()
    for c in stream["comparisons"]:
        print(f"c={c['concurrency']:<3} streamed: added time to first chunk p50 {c['added_ttfc_p50_ms']:+.3f} ms  "
              f"p99 {c['added_ttfc_p99_ms']:+.3f} ms  gateway chunk rate {c['chunk_rate_ratio']:.1%} of the "
              f"upstream's in total, {c['stream_chunk_rate_ratio']:.1%} per stream")
    if not stream["comparisons"]:
        print("(--skip-direct: no comparison with the upstream)")
    print()


def print_scaling_report(data: dict) -> None:
    print(f"load generator: {data['generator']}")
    print(f"scaling: one gateway worker, then two, alone in turn, c={data['concurrency']}, "
          f"{data['duration_s']:g}s per run after {data['warmup_s']:g}s warmup")
    print()
    header = (f"{'workers':>7} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'requests':>9} {'non-2xx':>8} "
              f"{'errors':>7} {'cpu us/req':>10}")
    print(header)
    print("-" * len(header))
    for row in data["scaling"]:
        cpu = row["cpu_us_per_request"]
        print(f"{row['workers']:>7} {row['rps']:>10.0f} {row['p50_ms']:>9.3f} {row['p99_ms']:>9.3f} "
              f"{row['requests']:>9} {row['non_2xx']:>8} {row['errors']:>7} "
              f"{'n/a' if cpu is None else format(cpu, '.0f'):>10}")
    print()
    ratio = data["ratio_2_vs_1"]
    print(f"2 workers / 1 worker: {'n/a' if ratio is None else format(ratio, '.2f')}x req/s "
          f"(cpu us/req counts all the workers' CPU)")
    print_spend(data["spend"])
    print_log_errors(data)


def print_soak_report(data: dict) -> None:
    print(f"load generator: {data['generator']}")
    load = data["load"]
    print(f"soak: c={data['concurrency']} for {data['soak_s']:g}s, {data['workers']} worker(s): "
          f"{load['rps']:.0f} req/s  p50 {load['p50_ms']:.3f} ms  p99 {load['p99_ms']:.3f} ms  "
          f"{load['requests']} requests  non-2xx {load['non_2xx']}  errors {load['errors']}")
    print()
    print("RSS (VmRSS) of each worker process, MiB:")
    for row in data["samples"]:
        rss = "  ".join(f"pid {pid} {'?' if kib is None else format(kib / 1024, '7.1f')}"
                        for pid, kib in row["rss_kib"].items())
        print(f"  t={row['t_s']:7.1f}s  {rss}")
    print()
    flat = data["flat"]
    if flat["ok"] is None:
        print(f"RSS flat after warm-up: n/a ({flat['note']})")
    else:
        for row in flat["workers"]:
            change = row["change"]
            print(f"  pid {row['pid_last']}: {row['reference_kib'] / 1024:.1f} MiB at t={flat['reference_t_s']:.0f}s "
                  f"-> {row['last_kib'] / 1024:.1f} MiB at t={flat['last_t_s']:.0f}s "
                  f"({'n/a' if change is None else format(change, '+.1%')})")
        print(f"RSS flat after warm-up (last sample within {SOAK_FLAT_TOLERANCE:.0%} of the one at "
              f"t={flat['reference_t_s']:.0f}s): {'yes' if flat['ok'] else 'NO'}"
              + (f" ({flat['note']})" if flat["note"] else ""))
    print_spend(data["spend"])
    print_log_errors(data)


def print_spend(spend: dict) -> None:
    streams = (f", {spend['gateway_streams']} of them streamed" if "gateway_streams" in spend else "")
    print(
        f"spend logs: {spend['spend_logs_for_key']} written for {spend['gateway_requests']} gateway requests "
        f"(incl. warmup and the checks{streams}; {spend['gateway_failed']} failed; up to "
        f"{spend['allowed_extra']} extra allowed): {'OK' if spend['ok'] else 'MISMATCH'}"
    )
    if "gateway_streams" in spend:
        print(f"streamed spend logs: {spend['streamed_spend_logs']} for {spend['gateway_streams']} streams, "
              f"{spend['streamed_spend_logs_with_usage']} with the streamed usage "
              f"({STREAM_USAGE['prompt_tokens']} + {STREAM_USAGE['completion_tokens']} tokens, success) for "
              f"{spend['gateway_streams_complete']} complete streams: {'OK' if spend['streamed_ok'] else 'MISMATCH'}")


def print_log_errors(data: dict) -> None:
    if data["gateway_log_errors"]:
        print("gateway log errors:")
        for line in data["gateway_log_errors"]:
            print("  " + line)


def print_report(data: dict) -> None:
    if data["mode"] == "scaling":
        return print_scaling_report(data)
    if data["mode"] == "soak":
        return print_soak_report(data)
    print(f"load generator: {data['generator']}")
    print(f"{data['duration_s']:g}s per measured run, "
          f"{data['warmup_s']:g}s warmup per target (not in the table); "
          f"gateway: {data['workers']} worker{'s' * (data['workers'] > 1)}")
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
    if data.get("stream"):
        print_stream_report(data["stream"])
    for name, ok in data["targets"].items():
        print(f"target {name}: {'n/a' if ok is None else 'met' if ok else 'NOT met'}")
    print_spend(data["spend"])
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
    print_log_errors(data)


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
    parser.add_argument("--workers", type=int, default=1,
                        help="Server processes of each gateway the run starts (manage.py serve --workers N; "
                             "default 1)")
    streamed = parser.add_argument_group("streamed runs (part of the default run)")
    streamed.add_argument("--no-stream-run", dest="stream_run", action="store_false",
                          help="Leave out the streamed runs")
    streamed.add_argument("--stream-duration", type=float, default=3.0,
                          help="Seconds per streamed run (default 3)")
    streamed.add_argument("--stream-concurrency", type=int, default=8,
                          help="Streams at once in the second streamed run (the first has 1; default 8)")
    streamed.add_argument("--stream-interval-ms", type=float, default=1.0,
                          help="The upstream's time between two chunks (default 1; 0: as fast as it can)")
    modes = parser.add_argument_group("other modes (instead of the default run)")
    modes.add_argument("--scaling", action="store_true",
                       help="A gateway with 1 worker, then one with 2, each at --concurrency for --duration: "
                            "req/s of each and the ratio")
    modes.add_argument("--soak", type=float, default=0.0, metavar="S",
                       help="Steady load at --concurrency for S seconds on a gateway of --workers, printing "
                            "each worker's RSS every --soak-interval seconds and whether it stays flat")
    modes.add_argument("--soak-interval", type=float, default=30.0, help="Seconds between RSS samples (default 30)")
    args = parser.parse_args()
    if args.scaling and args.soak:
        parser.error("--scaling and --soak are separate runs: choose one")
    if args.workers < 1 or args.stream_concurrency < 1 or args.soak < 0 or args.soak_interval <= 0:
        parser.error("--workers and --stream-concurrency must be at least 1, --soak and --soak-interval positive")

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
