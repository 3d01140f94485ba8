"""The production topology as processes on this machine, driven through faults under load.

Starts two gateway replicas (`manage.py serve --workers 1`) behind nginx (round robin), a Celery
worker and beat on RabbitMQ (a vhost of their own when rabbitmqctl can make one), a fresh
PostgreSQL database reached through a TCP proxy this script can cut, a Redis server of its own, a
fixed-answer upstream (bench/upstream.py) and a fake Lago (tests/fakes/lago.py). Billing is on.

Under a steady, bounded load through nginx it then, in sequence: SIGKILLs one replica and starts
it again; restarts Redis; makes PostgreSQL unreachable for 20 s; SIGKILLs the Celery worker while
a batch of usage events is in flight to Lago, and starts it again. After the load, everything is
flushed (replicas SIGTERMed, the outbox drained, within a bounded wait) and checked:

  - every request answered 200 has exactly one spend log (by its x-request-id);
  - a key's requests-per-minute limit and a key's budget held across both replicas;
  - every billable request reached Lago exactly once;
  - no replica's resident memory grew more than 10% after its warm-up.

    .venv/bin/python deploy/local/topology.py [--duration 140] [--keep]

Exit status: 0 every check passed, 1 a check failed, 2 the topology could not be set up.
deploy/local/README.md explains the summary table.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402

from tests.fakes.lago import FakeLago  # noqa: E402
from tests.fakes.tcp_proxy import CuttableProxy  # noqa: E402

PYTHON = sys.executable
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
MODEL = "topology-model"
MASTER_KEY = "sk-topology-master-" + uuid.uuid4().hex[:12]
# bench/upstream.py answers 11 prompt and 7 completion tokens: at these prices 0.000078 USD a request.
INPUT_PRICE, OUTPUT_PRICE = Decimal("0.000002"), Decimal("0.000008")
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
RPM_LIMIT = 30  # the "rpm" key: sent about 2 a second, so refused most of each minute
BUDGET_USD = Decimal("0.0040")  # the "budget" key: about 50 requests, sent 1 a second
RSS_GROWTH_LIMIT = 0.10
LAGO_SUBSCRIPTION, LAGO_CUSTOMER = "sub_topology", "cust_topology"

SETUP_SNIPPET = """
import json
from decimal import Decimal
from apps.keys.services import virtual_key_create
from apps.providers.models import ModelDeployment
from apps.teams.services import organization_create, team_create

ModelDeployment.objects.create(
    model_name={model!r}, provider="openai", upstream_model={model!r},
    api_base="http://127.0.0.1:{upstream_port}/v1", api_key="sk-topology-upstream",
    input_cost_per_token=Decimal({input_price!r}), output_cost_per_token=Decimal({output_price!r}),
)
org = organization_create(name="Topology", lago_external_customer_id={customer!r},
                          lago_external_subscription_id={subscription!r})
team = team_create(organization=org, alias="topology")
keys = {{}}
for alias, limits in (
    ("steady", dict(rpm_limit=1_000_000, max_budget=Decimal("1000000"))),  # counted, never refused
    ("rpm", dict(rpm_limit={rpm})),
    ("budget", dict(max_budget=Decimal({budget!r}))),
):
    key, raw = virtual_key_create(alias=alias, team=team, **limits)
    keys[alias] = {{"id": key.pk, "raw": raw}}
print("TOPOLOGY_SETUP " + json.dumps({{"organization": str(org.pk), "keys": keys}}))
"""


class SetupError(Exception):
    """The topology could not be brought up (exit status 2)."""


def log(message: str) -> None:
    print(f"[topology {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tcp_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tool(name: str) -> str | None:
    """An executable by name, also where Debian puts daemons (/usr/sbin is not on every PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin", "/usr/bin"):
        if os.access(f"{directory}/{name}", os.X_OK):
            return f"{directory}/{name}"
    return None


def wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2.0).status_code == 200


# --- child processes ----------------------------------------------------------------------------


class Processes:
    """Every child process, each in a session (process group) of its own: a Ctrl-C reaches only
    this script, and a SIGKILL fault kills a child with its own children (Celery's pool)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "ab") as log_file:  # a restart appends
            log_file.write(f"\n===== start {time.strftime('%H:%M:%S')}: {' '.join(args)}\n".encode())
            log_file.flush()
            process = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.running[name] = process
        return process

    def pid(self, name: str) -> int:
        return self.running[name].pid

    def alive(self, name: str) -> bool:
        return name in self.running and self.running[name].poll() is None

    def kill(self, name: str) -> None:
        """SIGKILL, the process and its group: no cleanup of any kind."""
        process = self.running[name]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """`sig` to the process, SIGKILL to its group after `timeout`; its exit status."""
        process = self.running.get(name)
        if process is None:
            return None
        if process.poll() is None:
            try:
                process.send_signal(sig)
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{name} did not exit within {timeout:.0f} s of signal {sig}: SIGKILL")
            except ProcessLookupError:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # what is left of its group (pool children)
        except (ProcessLookupError, PermissionError):
            pass
        if process.poll() is None:
            process.wait(10)
        return process.returncode

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name, timeout=15)

    def log_text(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


# --- the load -----------------------------------------------------------------------------------


@dataclass
class Result:
    key: str
    sent: float  # unix time the request left
    answered: float  # unix time its answer (or error) came back
    status: int | str  # the HTTP status, or the transport error's name
    request_id: str = ""  # x-request-id
    response_id: str = ""  # the answer's "id"
    upstream: str = ""  # the replica nginx sent it to ($upstream_addr)
    cost: str = ""  # x-litellm-response-cost
    error: str = ""  # the error's code (or type) for non-200 answers


class Load:
    """Paced senders through nginx: each key's threads send at a fixed rate until stopped
    (a sender that falls behind does not burst to catch up)."""

    def __init__(self, url: str, keys: dict[str, str], rates: dict[str, list[float]]) -> None:
        self.url = url
        self.keys = keys
        self.rates = rates
        self.results: list[Result] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for key, rates in self.rates.items():
            for index, rate in enumerate(rates):
                thread = threading.Thread(target=self._send, args=(key, rate), name=f"load-{key}-{index}",
                                          daemon=True)
                thread.start()
                self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def count(self) -> int:
        with self.lock:
            return len(self.results)

    def _send(self, key: str, rate: float) -> None:
        interval = 1.0 / rate
        next_at = time.monotonic()
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        timeout = httpx.Timeout(30.0, connect=5.0)
        with httpx.Client(base_url=self.url, headers=headers, timeout=timeout) as client:
            while not self.stopping.is_set():
                sent = time.time()
                result = Result(key=key, sent=sent, answered=sent, status="")
                try:
                    response = client.post("/v1/chat/completions", json=BODY)
                    result.status = response.status_code
                    result.request_id = response.headers.get("x-request-id", "")
                    result.upstream = response.headers.get("x-topology-upstream", "")
                    result.cost = response.headers.get("x-litellm-response-cost", "")
                    try:
                        body = response.json()
                    except ValueError:
                        body = {}
                    if response.status_code == 200:
                        result.response_id = str(body.get("id", ""))
                    else:
                        error = body.get("error") if isinstance(body, dict) else None
                        if isinstance(error, dict):
                            result.error = str(error.get("code") or error.get("type") or "")
                except httpx.HTTPError as exc:
                    result.status = type(exc).__name__
                result.answered = time.time()
                with self.lock:
                    self.results.append(result)
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self.stopping.wait(delay)
                else:
                    next_at = time.monotonic()


class RssSampler:
    """VmRSS of each replica's current process every few seconds: (unix time, pid, kB)."""

    def __init__(self, pids, interval: float = 3.0) -> None:
        self.pids = pids  # a callable: {replica name: pid}
        self.interval = interval
        self.samples: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)

    def sample(self) -> None:
        for name, pid in self.pids().items():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    self.samples[name].append((time.time(), pid, int(line.split()[1])))

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.sample()
            self.stopping.wait(self.interval)


# --- the topology -------------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    started: float
    ended: float = 0.0
    detail: str = ""
    exercised: bool = True


@dataclass
class Topology:
    args: argparse.Namespace
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    work_dir: Path = None
    procs: Processes = None
    database: str = ""
    database_created: bool = False
    vhost: str = ""
    broker_url: str = ""
    redis_port: int = 0
    upstream_port: int = 0
    nginx_port: int = 0
    replica_ports: dict = field(default_factory=dict)
    replica_started: dict = field(default_factory=dict)  # name -> unix time its current process was ready
    lago: FakeLago = None
    proxy: CuttableProxy = None
    env: dict = field(default_factory=dict)
    setup: dict = field(default_factory=dict)
    load: Load = None
    sampler: RssSampler = None
    load_started: float = 0.0
    keep: bool = False

    # -- addresses ---------------------------------------------------------------------------

    @property
    def pg(self):
        return urlsplit(self.args.postgres)

    def database_url(self, *, proxied: bool) -> str:
        pg = self.pg
        host = "127.0.0.1" if proxied else (pg.hostname or "127.0.0.1")
        port = self.proxy.port if proxied else (pg.port or 5432)
        credentials = pg.username or "postgres"
        if pg.password:
            credentials += ":" + quote(pg.password, safe="")
        return f"postgresql://{credentials}@{host}:{port}/{self.database}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def nginx_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    # -- bring up ----------------------------------------------------------------------------

    def preflight(self) -> None:
        missing = [name for name in ("nginx", "redis-server") if not tool(name)]
        if missing:
            raise SetupError(f"not installed: {', '.join(missing)} (apt-get install -y nginx redis-server)")
        try:
            psycopg.connect(self.args.postgres, connect_timeout=5).close()
        except psycopg.Error as exc:
            raise SetupError(f"PostgreSQL is not reachable at {self.args.postgres}: {exc}") from exc
        broker = urlsplit(self.args.broker)
        if not tcp_open(broker.hostname or "127.0.0.1", broker.port or 5672):
            raise SetupError(f"RabbitMQ is not reachable at {broker.hostname}:{broker.port or 5672}")

    def create_database(self) -> None:
        self.database = f"gw_topology_{self.run_id}"
        with psycopg.connect(self.args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.database_created = True
        log(f"database {self.database} created")

    def drop_database(self) -> None:
        if not self.database_created:
            return
        try:
            with psycopg.connect(self.args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            log(f"database {self.database} dropped")
        except psycopg.Error as exc:
            log(f"could not drop database {self.database}: {exc}")

    def rabbitmqctl(self, *args: str) -> bool:
        try:
            done = subprocess.run([tool("rabbitmqctl"), *args], capture_output=True, text=True, timeout=60,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    def create_vhost(self) -> None:
        """A vhost of this run's own, so that its queues meet no other run's; the broker URL as
        given when rabbitmqctl cannot make one (not installed, or the broker is elsewhere)."""
        broker = urlsplit(self.args.broker)
        self.broker_url = self.args.broker
        if broker.hostname not in ("127.0.0.1", "localhost", "::1") or not tool("rabbitmqctl"):
            return
        vhost = f"gw_topology_{self.run_id}"
        if not self.rabbitmqctl("add_vhost", vhost):
            log("rabbitmqctl add_vhost failed: using the broker URL's own vhost")
            return
        self.vhost = vhost
        if not self.rabbitmqctl("set_permissions", "-p", vhost, broker.username or "guest", ".*", ".*", ".*"):
            log("rabbitmqctl set_permissions failed: using the broker URL's own vhost")
            self.delete_vhost()
            return
        self.broker_url = urlunsplit((broker.scheme, broker.netloc, "/" + quote(vhost, safe=""), "", ""))
        log(f"RabbitMQ vhost {vhost} created")

    def delete_vhost(self) -> None:
        if self.vhost:
            self.rabbitmqctl("delete_vhost", self.vhost)
            log(f"RabbitMQ vhost {self.vhost} deleted")
            self.vhost = ""

    def redis_start(self) -> None:
        redis_dir = self.work_dir / "redis"
        redis_dir.mkdir(exist_ok=True)
        # As docker-compose.yml runs it: an append-only file, nothing evicted.
        self.procs.start("redis", [
            tool("redis-server"), "--bind", "127.0.0.1", "--port", str(self.redis_port),
            "--dir", str(redis_dir), "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
        ])
        client = redis.Redis(port=self.redis_port, socket_timeout=2)
        if not wait_until(client.ping, 20):
            raise SetupError("redis-server did not come up:\n" + self.procs.log_text("redis")[-2000:])

    def gateway_env(self) -> dict:
        """A production environment: DEBUG off, every secret set, nothing from the caller's own
        settings (only the basics pass through) or from a development .env."""
        env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")
               if name in os.environ}
        var_dir = self.work_dir / "var"
        var_dir.mkdir(exist_ok=True)
        env.update(
            GATEWAY_ENV_FILE=os.devnull,
            DEBUG="0",
            SECRET_KEY="topology-secret-" + self.run_id,
            GATEWAY_ENCRYPTION_KEY="topology-encryption-" + self.run_id,
            GATEWAY_MASTER_KEY=MASTER_KEY,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            GATEWAY_VAR_DIR=str(var_dir),
            DATABASE_URL=self.database_url(proxied=True),
            REDIS_URL=self.redis_url,
            GATEWAY_REDIS_PREFIX=f"gwtopo-{self.run_id}:",
            CELERY_BROKER_URL=self.broker_url,
            GATEWAY_SPEND_FLUSH_INTERVAL=str(self.args.spend_flush_interval),
            # A killed replica's journaled records are written by beat's recovery after this long.
            GATEWAY_SPEND_JOURNAL_RECOVER_AFTER="10",
            GATEWAY_SHUTDOWN_DRAIN_SECONDS="10",
            # Lago (names as tests/billing/conftest.py and test_workers.py set them).
            LAGO_API_BASE=self.lago.url,
            LAGO_API_KEY=self.lago.api_key,
            LAGO_API_EVENT_CODE="llm_usage",
            LAGO_WEBHOOK_SECRET=self.lago.hmac_key,
            LAGO_TIMEOUT="5",
            BILLING_ENTITY="organization",
            BILLING_FAIL_OPEN="1",
            # A killed sender's claim comes back within the run; retries stay within the drain wait.
            BILLING_CLAIM_LEASE="10",
            BILLING_OUTBOX_INTERVAL="2",
            BILLING_RETRY_BASE_DELAY="1",
            BILLING_RETRY_MAX_DELAY="10",
            BILLING_WALLET_REFRESH_INTERVAL="15",
            LOG_LEVEL="INFO",
        )
        return env

    def manage(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise SetupError(f"manage.py {args[0]} failed ({done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def celery_args(self, *args: str) -> list[str]:
        return [PYTHON, "-m", "celery", "-A", "gateway_project", *args]

    def worker_start(self) -> None:
        self.procs.start("worker", self.celery_args(
            "worker", "--loglevel", "info", "--concurrency", "1", "--prefetch-multiplier", "1",
            "--hostname", f"topology-{self.run_id}@%h"), self.env)

    def beat_start(self) -> None:
        self.procs.start("beat", self.celery_args(
            "beat", "--loglevel", "info", "--schedule", str(self.work_dir / "celerybeat-schedule")), self.env)

    def replica_start(self, name: str) -> None:
        port = self.replica_ports[name]
        self.procs.start(name, [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--workers", "1"], self.env)
        url = f"http://127.0.0.1:{port}/health/readiness"
        if not wait_until(lambda: self.procs.alive(name) and http_ok(url), 60):
            raise SetupError(f"{name} did not become ready:\n" + self.procs.log_text(name)[-3000:])
        self.replica_started[name] = time.time()

    def nginx_start(self) -> None:
        nginx_dir = self.work_dir / "nginx"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
            (nginx_dir / sub).mkdir(parents=True, exist_ok=True)
        user = ""
        if os.geteuid() == 0:  # else nginx's workers would drop to nobody; run them as the caller
            user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;"
                            for port in self.replica_ports.values())
        conf = f"""
daemon off;
worker_processes 1;
{user}
pid {nginx_dir}/nginx.pid;
error_log {nginx_dir}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {nginx_dir}/logs/access.log;
    client_body_temp_path {nginx_dir}/client_body;
    proxy_temp_path {nginx_dir}/proxy;
    fastcgi_temp_path {nginx_dir}/fastcgi;
    uwsgi_temp_path {nginx_dir}/uwsgi;
    scgi_temp_path {nginx_dir}/scgi;
    upstream gateway {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.nginx_port};
        location / {{
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_read_timeout 60s;
            add_header X-Topology-Upstream $upstream_addr always;
        }}
    }}
}}
"""
        conf_path = nginx_dir / "nginx.conf"
        conf_path.write_text(conf)
        self.procs.start("nginx", [tool("nginx"), "-c", str(conf_path), "-p", str(nginx_dir), "-e",
                                   str(nginx_dir / "logs" / "error.log")])
        health = self.nginx_url + "/health/liveliness"
        if not wait_until(lambda: self.procs.alive("nginx") and http_ok(health), 20):
            raise SetupError("nginx did not come up:\n" + self.procs.log_text("nginx")[-2000:]
                             + (nginx_dir / "logs" / "error.log").read_text(errors="replace")[-2000:])

    def up(self) -> None:
        self.preflight()
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"gw-topology-{self.run_id}-"))
        (self.work_dir / "logs").mkdir()
        self.procs = Processes(self.work_dir / "logs")
        log(f"run {self.run_id}; logs in {self.work_dir / 'logs'}")
        self.redis_port, self.upstream_port, self.nginx_port = free_port(), free_port(), free_port()
        self.replica_ports = {"replica-1": free_port(), "replica-2": free_port()}
        self.create_database()
        self.create_vhost()
        self.redis_start()
        self.procs.start("upstream", [PYTHON, str(ROOT / "bench" / "upstream.py"),
                                      "--port", str(self.upstream_port)])
        if not wait_until(lambda: http_ok(f"http://127.0.0.1:{self.upstream_port}/health"), 20):
            raise SetupError("the upstream did not come up:\n" + self.procs.log_text("upstream")[-2000:])
        self.lago = FakeLago().start()
        self.lago.wallet_create(LAGO_CUSTOMER, credits="1000000")
        self.proxy = CuttableProxy(self.pg.hostname or "127.0.0.1", self.pg.port or 5432).start()
        self.env = self.gateway_env()
        log("migrating ...")
        started = time.monotonic()
        self.manage("migrate", "--noinput")
        log(f"migrated in {time.monotonic() - started:.1f} s")
        output = self.manage("shell", "-c", SETUP_SNIPPET.format(
            model=MODEL, upstream_port=self.upstream_port, input_price=str(INPUT_PRICE),
            output_price=str(OUTPUT_PRICE), customer=LAGO_CUSTOMER, subscription=LAGO_SUBSCRIPTION,
            rpm=RPM_LIMIT, budget=str(BUDGET_USD)))
        line = next((ln for ln in output.splitlines() if ln.startswith("TOPOLOGY_SETUP ")), None)
        if line is None:
            raise SetupError("the setup snippet printed no TOPOLOGY_SETUP line:\n" + output[-2000:])
        self.setup = json.loads(line.split(" ", 1)[1])
        self.worker_start()
        self.beat_start()
        for name in self.replica_ports:
            self.replica_start(name)
        self.nginx_start()
        probe = httpx.post(self.nginx_url + "/v1/chat/completions", json=BODY, timeout=30,
                           headers={"Authorization": f"Bearer {self.setup['keys']['steady']['raw']}"})
        if probe.status_code != 200:
            raise SetupError(f"a first request through nginx answered {probe.status_code}: "
                             f"{probe.text[:500]}")
        log(f"up: nginx on {self.nginx_port}, replicas on {list(self.replica_ports.values())}, "
            f"redis on {self.redis_port}, PostgreSQL through the proxy on {self.proxy.port}")

    def down(self) -> None:
        for part in (self.sampler, self.load):  # an interrupted run's senders stop first
            if part is not None:
                part.stop()
        if self.procs is not None:
            self.procs.stop_all()
        if self.proxy is not None:
            try:
                self.proxy.stop()
            except Exception:  # noqa: BLE001 - already cut, or never listening
                pass
        if self.lago is not None:
            self.lago.stop()
        self.drop_database()
        self.delete_vhost()

    # -- faults ------------------------------------------------------------------------------

    def fault_replica_kill(self, name: str) -> Fault:
        fault = Fault(f"SIGKILL {name}", time.time(), detail=f"pid {self.procs.pid(name)}")
        self.procs.kill(name)
        self.replica_start(name)
        fault.ended = self.replica_started[name]
        fault.detail += f", restarted as pid {self.procs.pid(name)}"
        return fault

    def fault_redis_restart(self) -> Fault:
        fault = Fault("restart Redis", time.time(), detail=f"SIGTERM, {self.args.redis_down:.0f} s down")
        self.procs.stop("redis", signal.SIGTERM, timeout=20)
        time.sleep(self.args.redis_down)
        self.redis_start()
        fault.ended = time.time()
        return fault

    def fault_database_outage(self) -> Fault:
        fault = Fault("PostgreSQL unreachable", time.time(),
                      detail=f"{self.args.db_outage:.0f} s: the proxy refuses and resets connections")
        self.proxy.cut()
        time.sleep(self.args.db_outage)
        self.proxy.restore()
        fault.ended = time.time()
        return fault

    def fault_worker_kill(self) -> Fault:
        """SIGKILL the worker while its batch post is at Lago: the fake stores the batch and holds
        the answer back until released, after the kill (the sender never learns it was stored)."""
        fault = Fault("SIGKILL Celery worker mid-batch", time.time())
        self.lago.hang_on_post(1, store_first=True)
        hung = self.lago.hung.wait(30)
        self.procs.kill("worker")
        self.lago.release()
        fault.exercised = hung
        fault.detail = ("killed while its batch was at Lago (stored, unanswered)" if hung
                        else "no batch was sent within 30 s: killed idle")
        self.worker_start()
        fault.ended = time.time()
        return fault

    # -- after the load ----------------------------------------------------------------------

    def spill_length(self) -> int:
        client = redis.Redis(port=self.redis_port, socket_timeout=2)
        return client.llen(f"gwtopo-{self.run_id}:spend:spill")

    def journal_length(self) -> int:
        client = redis.Redis(port=self.redis_port, socket_timeout=5)
        return client.hlen(f"gwtopo-{self.run_id}:spend:{{journal}}:records")

    def pending_events(self) -> int:
        with psycopg.connect(self.database_url(proxied=False)) as conn:
            query = "SELECT count(*) FROM billing_billingevent WHERE status = 'pending'"
            return conn.execute(query).fetchone()[0]

    def flush(self) -> dict:
        """Everything written and delivered: the spill replayed, the replicas' buffers written
        (SIGTERM), the outbox sent. Bounded; what is still waiting is reported."""
        state = {}
        started = time.monotonic()
        wait_until(lambda: self.spill_length() == 0, self.args.drain_timeout / 2, interval=0.5)
        for name in self.replica_ports:
            state[f"{name} SIGTERM exit status"] = self.procs.stop(name, signal.SIGTERM, timeout=40)
        # What a SIGKILLed replica had journaled but not written: beat's recovery writes it.
        wait_until(lambda: self.journal_length() == 0, self.args.drain_timeout, interval=1.0)
        state["journaled records left"] = self.journal_length()
        wait_until(lambda: self.pending_events() == 0, self.args.drain_timeout, interval=1.0)
        state["outbox rows pending"] = self.pending_events()
        state["spilled records left"] = self.spill_length()
        state["flushed in"] = f"{time.monotonic() - started:.0f} s"
        for name in ("beat", "worker", "nginx"):
            self.procs.stop(name, signal.SIGTERM if name != "nginx" else signal.SIGQUIT, timeout=20)
        return state


# --- checks -------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    evidence: list = field(default_factory=list)


def clock(moment: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(moment)) + f".{int(moment % 1 * 1000):03d}"


def replica_of(result: Result, ports: dict[str, int]) -> str:
    last = result.upstream.split(",")[-1].strip()  # nginx lists every replica it tried
    for name, port in ports.items():
        if last.endswith(f":{port}"):
            return name
    return last or "?"


def spend_check(results: list[Result], logged: set[str], duplicated: list[str], ports: dict,
                kills: dict[str, float]) -> tuple[Check, set[str]]:
    """Every 200 has exactly one spend log, matched by its x-request-id (SpendLog.request_id)."""
    ok = [r for r in results if r.status == 200]
    no_id = [r for r in ok if not r.request_id]
    missing = [r for r in ok if r.request_id and r.request_id not in logged]
    answered_twice = [rid for rid, n in Counter(r.request_id for r in ok if r.request_id).items() if n > 1]
    passed = not (no_id or missing or duplicated or answered_twice)
    detail = (f"{len(ok)} answered 200: {len(ok) - len(missing) - len(no_id)} with exactly one, "
              f"{len(missing)} with none, {len(duplicated)} with several, {len(no_id)} without x-request-id")
    evidence = []
    if missing:
        where = Counter()
        for r in missing:
            replica = replica_of(r, ports)
            killed_at = kills.get(replica)
            if killed_at is not None and killed_at - 5 <= r.answered <= killed_at:
                where[f"answered by {replica} in the 5 s before its SIGKILL at {clock(killed_at)}"] += 1
            else:
                where[f"answered by {replica}, not just before a SIGKILL"] += 1
        evidence += [f"no spend log: {n} {text}" for text, n in where.most_common()]
        evidence += [f"e.g. {r.request_id} ({r.key} key) answered 200 at {clock(r.answered)} by "
                     f"{replica_of(r, ports)}" for r in missing[:5]]
    evidence += [f"several spend logs: {rid}" for rid in duplicated[:5]]
    evidence += [f"one x-request-id answered twice: {rid}" for rid in answered_twice[:5]]
    return Check("one spend log per 200", passed, detail, evidence), {r.request_id for r in missing}


def lago_check(results: list[Result], lago: FakeLago, billable: set[str], outbox: Counter,
               no_spend_log: set[str]) -> Check:
    """Every billable request is stored at Lago exactly once under its transaction_id (the request
    id), and Lago holds nothing else. Billable: the spend logs of the billed organization with
    tokens or a cost, and every 200 the client got (each used the upstream)."""
    with lago.lock:
        stored = Counter(transaction_id for _, transaction_id in lago.events)
        posted = sum(lago.received.values())
        refused_as_stored = sum(lago.duplicates_refused.values())
    twice = sorted(tid for tid, n in stored.items() if n > 1)
    at_lago = set(stored)
    ok = {r.request_id for r in results if r.status == 200 and r.request_id}
    expected = billable | ok
    missing, extra = expected - at_lago, at_lago - expected
    passed = not (twice or missing or extra)
    detail = (f"{len(expected)} billable ({len(billable)} spend logs, {len(ok)} 200s): "
              f"{len(at_lago)} at Lago, "
              f"{len(missing)} missing, {len(extra)} unexpected, {len(twice)} stored more than once")
    evidence = [f"outbox rows by status {dict(outbox)}; {posted} event posts in all, {refused_as_stored} "
                "refused by Lago as already stored (redeliveries after the worker's SIGKILL)"]
    if missing:
        same = missing <= no_spend_log
        evidence.append(f"missing: {len(missing)}, " + (
            "all of them 200s that have no spend log (and so no outbox row: it is written with the spend log)"
            if same else f"{len(missing - no_spend_log)} of them with a spend log"))
        evidence += [f"missing at Lago: {tid}" for tid in sorted(missing)[:5]]
    evidence += [f"stored more than once: {tid}" for tid in twice[:5]]
    evidence += [f"unexpected at Lago: {tid}" for tid in sorted(extra)[:5]]
    return Check("each billable request at Lago once", passed, detail, evidence)


def rpm_check(results: list[Result], limit: int) -> Check:
    """Exact, and sound whatever the latencies: the limiter admits a request at second s only if
    fewer than `limit` were admitted in seconds s-59..s (whole seconds of one clock, the
    machine's, shared by both replicas). Requests sent at or after t and answered by t + 59 s
    were all admitted within 59 real seconds, so within 60 whole seconds: at most `limit`. That is
    counted for every admitted request's send time as t."""
    admitted = sorted((r for r in results if r.key == "rpm" and r.status == 200), key=lambda r: r.sent)
    refused = sum(1 for r in results
                  if r.key == "rpm" and r.status == 429 and r.error == "rate_limit_exceeded")
    worst, worst_at = 0, None
    for i, first in enumerate(admitted):
        inside = sum(1 for r in admitted[i:] if r.answered <= first.sent + 59.0)
        if inside > worst:
            worst, worst_at = inside, first.sent
    detail = (f"rpm {limit}: {len(admitted)} admitted, {refused} refused (rate_limit_exceeded); the most "
              f"admitted within any 59 s: {worst}")
    if not refused:
        detail += "; never refused: the limit was not exercised"
    evidence = [f"that window starts {clock(worst_at)}"] if worst_at else []
    return Check("rate limit across replicas", worst <= limit and refused > 0, detail, evidence)


def budget_check(results: list[Result], logged_costs: list[Decimal]) -> Check:
    """What the budget key was charged (the answers' x-litellm-response-cost, and its spend logs)
    never passes its budget, and the budget was reached (requests were refused for it)."""
    mine = [r for r in results if r.key == "budget"]
    admitted = [r for r in mine if r.status == 200]
    refused = sum(1 for r in mine if r.status == 429 and r.error == "insufficient_quota")
    answered_cost = sum((Decimal(r.cost) for r in admitted if r.cost), Decimal(0))
    logged_cost = sum(logged_costs, Decimal(0))
    detail = (f"budget {BUDGET_USD} USD: {len(admitted)} admitted, "
              f"charged {answered_cost.normalize()} (answers) "
              f"and {logged_cost.normalize()} (spend logs); {refused} refused (insufficient_quota)")
    if not refused:
        detail += "; never refused: the budget was not exercised"
    passed = answered_cost <= BUDGET_USD and logged_cost <= BUDGET_USD and refused > 0
    return Check("budget across replicas", passed, detail)


def rss_checks(sampler: RssSampler, ready_at: dict[int, float], load_started: float, load_stopped: float,
               warmup: float, names) -> list[Check]:
    """Each replica's current process: its VmRSS at the end against its first sample after the
    warm-up (from the start of the load, or from its restart for the replica killed)."""
    checks = []
    for name in names:
        samples = [s for s in sampler.samples.get(name, []) if s[0] <= load_stopped]
        if not samples:
            checks.append(Check(f"RSS {name}", False, "no samples"))
            continue
        pid = samples[-1][1]
        since = max(load_started, ready_at.get(pid, load_started)) + warmup
        measured = [s for s in samples if s[1] == pid and s[0] >= since]
        if len(measured) < 2:
            checks.append(Check(f"RSS {name}", False, f"pid {pid}: too few samples after its warm-up"))
            continue
        base, last = measured[0][2], measured[-1][2]
        growth = (last - base) / base
        peak = max(s[2] for s in measured)
        checks.append(Check(
            f"RSS {name}", growth <= RSS_GROWTH_LIMIT,
            f"pid {pid}: {base / 1024:.1f} MiB after warm-up, {last / 1024:.1f} MiB at the end "
            f"({growth:+.1%}; peak {peak / 1024:.1f} MiB; {len(measured)} samples over "
            f"{measured[-1][0] - measured[0][0]:.0f} s; "
            f"limit +{RSS_GROWTH_LIMIT:.0%})"))
    return checks


# --- the summary --------------------------------------------------------------------------------


def summary(topology: Topology, results: list[Result], faults: list[Fault], checks: list[Check],
            flushed: dict, load_seconds: float, logs_note: str) -> str:
    out = ["", f"=== TOPOLOGY SUMMARY (run {topology.run_id}: {load_seconds:.0f} s of load through nginx "
               "to 2 "
               "replicas; Celery worker + beat on RabbitMQ; PostgreSQL via a cuttable proxy; own Redis; "
               "fake Lago) ===", "", "requests:"]
    rows = [("key", "sent", "200", "non-200 by status and error code")]
    for key in ("steady", "rpm", "budget", None):
        mine = [r for r in results if key is None or r.key == key]
        other = Counter(f"{r.status}" + (f" {r.error}" if r.error and key else "")
                        for r in mine if r.status != 200)
        rows.append((key or "total", str(len(mine)), str(sum(1 for r in mine if r.status == 200)),
                     ", ".join(f"{label}: {n}" for label, n in sorted(other.items())) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out += [f"  {a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows]
    served = Counter(replica_of(r, topology.replica_ports) for r in results if r.status == 200)
    out.append("  200s by replica: " + ", ".join(f"{name} {n}" for name, n in sorted(served.items())))
    out += ["", "faults (from the start of the load; answers: to the requests sent during it and 2 s after):"]
    for fault in faults:
        took = f"{fault.ended - fault.started:5.1f} s" if fault.ended else "    -  "
        mark = "  [NOT EXERCISED]" if not fault.exercised else ""
        at = fault.started - topology.load_started
        out.append(f"  +{at:6.1f} s  {fault.name:<32} {took}  {fault.detail}{mark}")
        window = [r for r in results if fault.started <= r.sent <= (fault.ended or fault.started) + 2]
        statuses = Counter(str(r.status) for r in window)
        out.append(f"{'':13}answers: " + (", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())) or "-"))
    out += ["", "after the load: " + "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in flushed.items()),
            "", "checks:"]
    for check in checks:
        out.append(f"  [{'PASS' if check.passed else 'FAIL'}] {check.name}: {check.detail}")
        out += [f"         {line}" for line in check.evidence]
    out += ["", logs_note, f"RESULT: {'PASS' if all(c.passed for c in checks) else 'FAIL'}"]
    return "\n".join(out)


# --- the run ------------------------------------------------------------------------------------


def run(topology: Topology) -> int:
    args = topology.args
    topology.up()
    keys = {name: value["raw"] for name, value in topology.setup["keys"].items()}
    load = topology.load = Load(topology.nginx_url, keys,
                                {"steady": [args.rate / 3] * 3, "rpm": [2.0], "budget": [1.0]})
    procs = topology.procs
    sampler = topology.sampler = RssSampler(
        lambda: {name: procs.pid(name) for name in topology.replica_ports if procs.alive(name)})
    ready_at = {topology.procs.pid(name): topology.replica_started[name] for name in topology.replica_ports}
    topology.load_started = time.time()
    load.start()
    sampler.start()
    log(f"load: {args.rate + 3:.0f} req/s for {args.duration:.0f} s")
    schedule = [
        (0.18, "replica", lambda: topology.fault_replica_kill("replica-1")),
        (0.36, "redis", topology.fault_redis_restart),
        (0.50, "database", topology.fault_database_outage),
        (0.75, "worker", topology.fault_worker_kill),
    ]
    faults, kills = [], {}
    for at, what, action in schedule:
        time.sleep(max(topology.load_started + at * args.duration - time.time(), 0))
        log(f"fault: {what} ({load.count()} requests so far)")
        fault = action()
        faults.append(fault)
        if what == "replica":
            kills["replica-1"] = fault.started
            ready_at[topology.procs.pid("replica-1")] = fault.ended
        log(f"  {fault.name}: {fault.detail} ({fault.ended - fault.started:.1f} s)")
    time.sleep(max(topology.load_started + args.duration - time.time(), 0))
    sampler.sample()
    sampler.stop()
    load.stop()
    load_stopped = time.time()
    log(f"load stopped after {len(load.results)} requests; flushing ...")
    flushed = topology.flush()

    with psycopg.connect(topology.database_url(proxied=False)) as conn:
        spend_rows = conn.execute(
            "SELECT request_id, key_id, organization_id, cost, prompt_tokens + completion_tokens, cache_hit "
            "FROM spend_spendlog").fetchall()
        duplicated = [row[0] for row in conn.execute(
            "SELECT request_id FROM spend_spendlog GROUP BY request_id HAVING count(*) > 1")]
        outbox = Counter(row[0] for row in conn.execute("SELECT status FROM billing_billingevent"))
    organization = topology.setup["organization"]
    budget_key = topology.setup["keys"]["budget"]["id"]
    billable = {rid for rid, _, org, cost, tokens, hit in spend_rows
                if str(org or "") == organization and not hit and ((cost or 0) > 0 or tokens > 0)}
    spend, no_spend_log = spend_check(load.results, {row[0] for row in spend_rows}, duplicated,
                                      topology.replica_ports, kills)
    checks = [
        spend,
        lago_check(load.results, topology.lago, billable, outbox, no_spend_log),
        rpm_check(load.results, RPM_LIMIT),
        budget_check(load.results, [row[3] or Decimal(0) for row in spend_rows if row[1] == budget_key]),
        *rss_checks(sampler, ready_at, topology.load_started, load_stopped, args.warmup,
                    topology.replica_ports),
    ]
    not_exercised = [fault.name for fault in faults if not fault.exercised]
    if not_exercised:
        checks.append(Check("every fault exercised", False, ", ".join(not_exercised)))
    if flushed["outbox rows pending"] or flushed["spilled records left"] or flushed["journaled records left"]:
        checks.append(Check("flushed within the bounded wait", False,
                            f"{flushed['outbox rows pending']} outbox rows still pending, "
                            f"{flushed['spilled records left']} spilled spend records left, "
                            f"{flushed['journaled records left']} journaled records left"))
    failed = not all(check.passed for check in checks)
    topology.keep = failed or args.keep
    note = f"logs: {topology.work_dir / 'logs'}" if topology.keep else "logs: removed (--keep keeps them)"
    seconds = load_stopped - topology.load_started
    print(summary(topology, load.results, faults, checks, flushed, seconds, note), flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=140.0,
                        help="seconds of load, the faults spread over it (at least 120; default 140)")
    parser.add_argument("--rate", type=float, default=24.0,
                        help="requests a second on the steady key, from 3 threads (default 24); the rpm and "
                             "budget keys add 2 and 1")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before a replica's RSS baseline")
    parser.add_argument("--db-outage", type=float, default=20.0, help="seconds PostgreSQL is unreachable")
    parser.add_argument("--redis-down", type=float, default=2.0,
                        help="seconds Redis stays down on its restart")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="at most this long for the spill and the Lago outbox to empty after the load")
    parser.add_argument("--spend-flush-interval", type=float, default=1.0,
                        help="the replicas' GATEWAY_SPEND_FLUSH_INTERVAL (default 1.0: the gateway's own)")
    parser.add_argument("--postgres", default=os.environ.get("TOPOLOGY_POSTGRES_URL", DEFAULT_POSTGRES),
                        help="PostgreSQL as a user that may CREATE DATABASE (default: "
                             f"TOPOLOGY_POSTGRES_URL, else {DEFAULT_POSTGRES})")
    broker = os.environ.get("CELERY_BROKER_URL", "")
    parser.add_argument("--broker", default=broker if broker.startswith("amqp") else DEFAULT_BROKER,
                        help=f"RabbitMQ (default: CELERY_BROKER_URL when amqp://, else {DEFAULT_BROKER})")
    parser.add_argument("--keep", action="store_true", help="keep the logs even when every check passed")
    args = parser.parse_args(argv)
    if args.duration < 120:
        parser.error("--duration must be at least 120 s (four faults, each with time to recover)")

    def terminated(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    topology = Topology(args)
    status = 2
    try:
        status = run(topology)
    except SetupError as exc:
        log(f"setup failed: {exc}")
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}): stopping everything")
        status = 130
    except Exception:  # noqa: BLE001 - reported; everything is still stopped below
        traceback.print_exc()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cleanup itself is not interrupted
        topology.down()
        if topology.work_dir is not None:
            if topology.keep or status != 0:
                log(f"logs kept in {topology.work_dir / 'logs'}")
            else:
                shutil.rmtree(topology.work_dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
