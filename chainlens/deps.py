"""The composition root: open every shared client once, yield a frozen `Deps`, close in reverse.

FastAPI's lifespan, the bots, the CLI and the tests all go through `open_deps`. Nothing here
connects at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from chainlens.embedded import EmbeddedPostgres, EmbeddedRedis, start_postgres, start_redis
from chainlens.migrate import apply_migrations
from chainlens.settings import Settings

if TYPE_CHECKING:
    from litellm.router import Router

log = logging.getLogger(__name__)

USER_AGENT = "ChainLens/0.1 (+https://github.com/chainlens)"


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Every Redis key the project writes goes through here, so a test run owns its keys."""

    prefix: str

    def __call__(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)


# A standalone Redis or a Redis Cluster: every script declares its keys in KEYS and the keys a
# script (or a MULTI) touches together share a hash tag, so the same code runs on both.
RedisClient: TypeAlias = Redis | RedisCluster


def hash_tag(value: object) -> str:
    """`{value}`: the Redis Cluster hash tag that keeps keys built with it in one slot (braces
    inside the value are dropped, so they cannot end the tag early)."""
    return "{" + str(value).replace("{", "").replace("}", "") + "}"


@dataclass(frozen=True, slots=True)
class Deps:
    settings: Settings
    db: asyncpg.Pool
    redis: RedisClient
    http: httpx.AsyncClient
    keys: KeySpace
    llm: Router | None = None
    embedded_postgres: EmbeddedPostgres | None = field(default=None, repr=False)
    embedded_redis: EmbeddedRedis | None = field(default=None, repr=False)


# Headers a request may carry to any host it is redirected to. Every other header (an API
# key under any name: x-cg-demo-api-key, x-cg-pro-api-key, Authorization ...) stays with the
# origin the request was first sent to; httpx itself strips only Authorization.
_PORTABLE_HEADERS = frozenset(
    {
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "connection",
        "content-type",
        "content-length",
        "cookie",
    }
)
_FIRST_ORIGIN = "chainlens.first_origin"


async def _keep_credentials_at_their_origin(request: httpx.Request) -> None:
    # A redirect's request shares the first request's `extensions` dict (httpx passes it on).
    origin = (request.url.scheme, request.url.host, request.url.port)
    if request.extensions.setdefault(_FIRST_ORIGIN, origin) != origin:
        for name in [n for n in request.headers if n.lower() not in _PORTABLE_HEADERS]:
            del request.headers[name]


def make_http_client(settings: Settings, **kwargs: Any) -> httpx.AsyncClient:
    """The one outbound HTTP client: explicit timeouts, pooled connections, a User-Agent,
    and credentials that never follow a redirect to another origin."""
    hooks = dict(kwargs.pop("event_hooks", None) or {})
    hooks["request"] = [_keep_credentials_at_their_origin, *hooks.get("request", [])]
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout_s, connect=5.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        event_hooks=hooks,
        **kwargs,
    )


# Redis answers in milliseconds; a dead or hung one must not hold a request for long: every
# Redis use either falls back (quota -> PostgreSQL) or is best-effort (caches, memory).
REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_COMMAND_TIMEOUT_S = 2.0


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def is_cluster(redis: RedisClient) -> bool:
    """Whether keys of different hash slots may live on different servers."""
    return isinstance(redis, RedisCluster)


class WaitingRedisCluster(RedisCluster):
    """A RedisCluster whose callers wait for a free connection under a burst instead of
    failing: redis-py's cluster client raises MaxConnectionsError when a node's pool is full
    (a ConnectionError, which the quota would take for a Redis outage), where the standalone
    client's BlockingConnectionPool waits. At most `max_connections` commands are in flight
    at once, so no node's pool can run out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight = asyncio.Semaphore(int(kwargs.get("max_connections", 100)))

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._in_flight:
            return await super().execute_command(*args, **kwargs)


async def mget(redis: RedisClient, keys: list[str]) -> list[bytes | str | None]:
    """MGET of keys in any slots: one command on a standalone Redis, one per slot on a
    cluster (which refuses a multi-key command across slots)."""
    if isinstance(redis, RedisCluster):
        return list(await redis.mget_nonatomic(keys))
    return list(await redis.mget(keys))


def make_cluster(url: str, settings: Settings) -> RedisCluster:
    """A Redis Cluster client from `redis+cluster://[user:pass@]host:port[,host:port...][/0]`
    (or a plain redis:// URL when `REDIS_CLUSTER=true`); the nodes listed are only where
    discovery starts: the client learns every master and slot from them."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)
    if scheme not in ("redis", "rediss"):
        raise ValueError(
            f"a Redis Cluster is reached over redis:// or rediss://, not {parts.scheme}://"
        )
    auth, _, hosts = parts.netloc.rpartition("@")
    nodes: list[ClusterNode] = []
    for item in hosts.split(","):
        one = urlsplit(f"//{item}")
        nodes.append(ClusterNode(one.hostname or "127.0.0.1", one.port or 6379))
    first = urlunsplit(
        (
            scheme,
            f"{auth}@{hosts.split(',')[0]}" if auth else hosts.split(",")[0],
            parts.path,
            parts.query,
            "",
        )
    )
    # from_url reads credentials, TLS and query options; the startup nodes are all the hosts.
    return WaitingRedisCluster.from_url(
        first,
        startup_nodes=nodes,
        max_connections=settings.redis_pool_max,
        socket_timeout=REDIS_COMMAND_TIMEOUT_S,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        health_check_interval=30,
    )


def make_redis(url: str, settings: Settings) -> RedisClient:
    if settings.redis_cluster or is_cluster_url(url):
        return make_cluster(url, settings)
    # BlockingConnectionPool waits for a free connection instead of raising
    # "Too many connections" under bursts.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_pool_max,
        timeout=5,
        socket_timeout=REDIS_COMMAND_TIMEOUT_S,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)  # the client owns the pool and closes it


async def _setup_connection(conn: asyncpg.Connection) -> None:
    import json

    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# asyncpg ships no types (see the mypy overrides): its Connection is Any to subclass
class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection released without asyncpg's reset query (one round trip saved per
    acquire). asyncpg still rolls back an open transaction on release. That is safe because
    no code keeps session state across a release: no LISTEN, no session-level SET, and the
    one session advisory lock (`chainlens.migrate`) is unlocked by the code that took it."""

    def get_reset_query(self) -> str:
        return ""


async def create_db_pool(url: str, settings: Settings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url,
        connection_class=PooledConnection,
        min_size=1,
        max_size=settings.db_pool_max,
        command_timeout=settings.db_command_timeout_s,
        init=_setup_connection,
        timeout=10,
    )
    assert pool is not None
    return pool


def start_embedded(
    settings: Settings,
    stack: AsyncExitStack,
) -> tuple[EmbeddedPostgres | None, EmbeddedRedis | None]:
    """Start or join the embedded servers the settings leave unset (no DATABASE_URL /
    REDIS_URL); `stack` leaves them on exit, and the last ChainLens process to leave stops them
    (`chainlens.embedded`)."""
    embedded_pg: EmbeddedPostgres | None = None
    embedded_redis: EmbeddedRedis | None = None
    if settings.database_url is None:
        embedded_pg = start_postgres(settings.data_dir)
        stack.callback(embedded_pg.release)
    if settings.redis_url is None:
        embedded_redis = start_redis(settings.data_dir)
        stack.callback(embedded_redis.release)
    return embedded_pg, embedded_redis


@asynccontextmanager
async def open_deps(
    settings: Settings,
    *,
    migrate: bool = True,
    http_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Deps]:
    """Open PostgreSQL, Redis, the HTTP client and the LLM router; close them in reverse."""
    async with AsyncExitStack() as stack:
        embedded_pg, embedded_redis = start_embedded(settings, stack)
        db_url = settings.database_url or (embedded_pg.url if embedded_pg else "")
        redis_url = settings.redis_url or (embedded_redis.url if embedded_redis else "")

        db = await create_db_pool(db_url, settings)
        stack.push_async_callback(db.close)
        if migrate:
            await apply_migrations(db)

        redis = make_redis(redis_url, settings)
        stack.push_async_callback(redis.aclose)

        http = make_http_client(settings, transport=http_transport)
        stack.push_async_callback(http.aclose)

        llm = _build_llm_router(settings)

        deps = Deps(
            settings=settings,
            db=db,
            redis=redis,
            http=http,
            keys=KeySpace(settings.redis_prefix),
            llm=llm,
            embedded_postgres=embedded_pg,
            embedded_redis=embedded_redis,
        )
        try:
            yield deps
        finally:
            # Quota counts this process still holds in memory go to PostgreSQL before closing.
            from billing.quota import flush_pending
            from billing.usage import flush_usage

            await flush_pending(deps)
            await flush_usage(deps)  # usage records kept through a PostgreSQL outage


def _build_llm_router(settings: Settings) -> Router | None:
    if not settings.llm_models:
        return None
    from agent.llm import build_router

    return build_router(settings)
