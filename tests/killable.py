"""Real Redis and PostgreSQL servers owned by one test (or bench), so they can be killed by pid.

`KillableRedis` runs the machine's `redis-server` on a Unix socket in a temporary directory;
`KillablePostgres` runs an embedded PostgreSQL (`pgserver`) there. Both can be killed with
SIGKILL (a crash, not a shutdown) and started again on the same address, which is what a
client sees when the server dies and its supervisor brings it back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


class KillableRedis:
    def __init__(self, directory: Path) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.socket_path = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(self.socket_path))
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start within 10 s")

    def kill(self) -> None:
        """SIGKILL the server and wait until it is gone."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.socket_path.unlink(missing_ok=True)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


class KillablePostgres:
    """An embedded PostgreSQL in `directory`; `url` reaches its `postgres` database."""

    def __init__(self, directory: Path) -> None:
        import pgserver

        self.pgdata = directory / "pgdata"
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.server: Any = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        self.url = str(self.server.get_uri())

    @property
    def pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster, then wait for its backends (they exit when it dies)."""
        import psutil

        pid = self.pid
        assert pid is not None
        parent = psutil.Process(pid)
        children = parent.children(recursive=True)
        parent.kill()
        parent.wait(10)
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            child.kill()
        psutil.wait_procs(alive, timeout=5)

    def restart(self) -> None:
        """Start the server again on the same socket (pgserver removes the stale pid file)."""
        self.server.ensure_postgres_running()
        self.url = str(self.server.get_uri())

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a server already killed has nothing to stop
            self.server.cleanup()
