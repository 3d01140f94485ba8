"""Real Redis topologies started on loopback for the tests: a 3-master Redis Cluster (each master
with a replica) and a master with a replica watched by three Sentinels. Nothing is faked: these
are redis-server processes, formed the way an operator forms them (redis-cli --cluster create,
sentinel monitor)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
AVAILABLE = bool(REDIS_SERVER and REDIS_CLI)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, with_bus: bool = False) -> list[int]:
    """Free ports (and, for a cluster node, its bus port + 10000) from a range the kernel does not
    hand out as ephemeral ports by default."""
    ports, candidate = [], 21000 + (int(time.time() * 1000) % 3000) * 2
    while len(ports) < count:
        candidate += 1
        if candidate > 27000:
            candidate = 21000
        if _port_free(candidate) and (not with_bus or _port_free(candidate + 10000)):
            ports.append(candidate)
    return ports


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class _Processes:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="redis-topology-"))
        self.processes: dict[int, subprocess.Popen] = {}

    def start(self, port: int, *args: str) -> None:
        log = open(self.dir / f"{port}.log", "wb")
        self.processes[port] = subprocess.Popen(
            [REDIS_SERVER, *args, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", ""],
            stdout=log, stderr=subprocess.STDOUT,
        )
        _wait(lambda: redis.Redis(port=port, socket_timeout=1).ping(), 10, f"redis-server on {port}")

    def kill(self, port: int) -> None:
        process = self.processes.get(port)
        if process and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """Three masters and three replicas on loopback."""

    def __init__(self) -> None:
        self._processes = _Processes()
        self.ports = free_ports(6, with_bus=True)

    @property
    def nodes(self) -> str:
        """REDIS_CLUSTER_NODES: the masters (the client discovers the rest)."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports[:3])

    def start(self) -> "RedisCluster":
        try:
            return self._start()
        except BaseException:
            self.stop()  # no redis-server outlives a start that failed
            raise

    def _start(self) -> "RedisCluster":
        for port in self.ports:
            self._processes.start(port, "--cluster-enabled", "yes", "--cluster-config-file",
                                  f"nodes-{port}.conf", "--cluster-node-timeout", "2000")
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )

        def formed() -> bool:
            for port in self.ports:
                info = redis.Redis(port=port, socket_timeout=1).cluster("INFO")
                if info.get("cluster_state") != "ok" or str(info.get("cluster_known_nodes")) != "6":
                    return False
            return True

        _wait(formed, 30, "the cluster to form")
        return self

    def client(self):
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0])

    def master_ports(self) -> set[int]:
        return {node.port for node in self.client().get_primaries()}

    def stop(self) -> None:
        self._processes.stop()


class RedisSentinel:
    """A master, its replica, and three Sentinels watching them (quorum 2) that fail over after
    one second without an answer."""

    master_name = "gatewaymaster"

    def __init__(self) -> None:
        self._processes = _Processes()
        self.master_port, self.replica_port, *self.sentinel_ports = free_ports(5)

    @property
    def sentinels(self) -> str:
        """REDIS_SENTINELS."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> "RedisSentinel":
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> "RedisSentinel":
        self._processes.start(self.master_port)
        self._processes.start(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        _wait(lambda: redis.Redis(port=self.replica_port).info("replication").get("master_link_status") == "up",
              20, "the replica to sync")
        for port in self.sentinel_ports:
            config = self._processes.dir / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                f"sentinel failover-timeout {self.master_name} 5000\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
            )
            log = open(self._processes.dir / f"sentinel-{port}.log", "wb")
            self._processes.processes[port] = subprocess.Popen(
                [REDIS_SERVER, str(config), "--sentinel"], stdout=log, stderr=subprocess.STDOUT)
        for port in self.sentinel_ports:
            _wait(lambda port=port: redis.Redis(port=port, socket_timeout=1).execute_command(
                "SENTINEL", "REPLICAS", self.master_name), 20, f"sentinel {port} to see the replica")
        return self

    def current_master_port(self) -> int:
        host, port = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        return int(port)

    def kill_master(self) -> int:
        """SIGKILL the current master; its port."""
        port = self.current_master_port()
        self._processes.kill(port)
        return port

    def wait_failover(self, old_port: int, timeout: float = 30) -> int:
        """The new master's port, once the Sentinels have promoted the replica and it accepts writes."""
        def promoted():
            port = self.current_master_port()
            if port == old_port:
                return None
            role = redis.Redis(port=port, socket_timeout=1).info("replication").get("role")
            return port if role == "master" else None

        return _wait(promoted, timeout, "the Sentinels to promote the replica")

    def stop(self) -> None:
        self._processes.stop()
