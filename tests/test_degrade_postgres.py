"""PostgreSQL killed mid-test: requests get 503 with Retry-After and a reason (never a 500),
nobody is charged for a request that was not answered, and an answer already on its way is
charged once with its usage row written when PostgreSQL is back (issue 15, item 15).

The PostgreSQL here is an embedded server (`pgserver`) this test starts in a temporary
directory and kills by pid.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from billing.accounts import account_for_identity, set_base_tier
from billing.api_keys import create_api_key
from billing.quota import quota_status
from billing.usage import flush_usage
from chainlens.deps import Deps, open_deps
from chainlens.settings import TierLimits
from tests.conftest import make_test_settings
from tests.killable import KillablePostgres
from tests.tools_fakes import FakeSources, fast_http
from web.app import create_app

pytestmark = pytest.mark.slow  # starts, kills and restarts a PostgreSQL server (~5 s)


@pytest.fixture
def own_pg() -> Iterator[KillablePostgres]:
    # Not under pytest's tmp_path: pgserver (as root) hands the directory and its parents to
    # its own system user, which pytest's private 0700 directories do not survive.
    directory = Path(tempfile.mkdtemp(prefix="chainlens-pgdown-"))
    server = KillablePostgres(directory)
    yield server
    server.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def pg_deps(
    own_pg: KillablePostgres, redis_url: str, tmp_path: Path, sources: FakeSources
) -> AsyncIterator[Deps]:
    settings = make_test_settings(
        own_pg.url,
        redis_url,
        tmp_path / "data",
        redis_prefix=f"pgdown{uuid.uuid4().hex[:8]}:",
        api_key_cache_s=60,
        tier_limits={
            "free": TierLimits(daily=5, minute=5),
            "pro": TierLimits(daily=100, minute=10),
        },
    )
    async with open_deps(settings, http_transport=sources.transport()) as deps:
        yield fast_http(deps)
        keys = [k async for k in deps.redis.scan_iter(match=deps.keys.prefix + "*")]
        if keys:
            await deps.redis.delete(*keys)


def client_for(deps: Deps, **headers: str) -> httpx.AsyncClient:
    app = create_app(deps.settings, deps=deps)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("192.0.2.9", 4000)),
        base_url="http://test",
        headers=headers,
    )


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert error["details"] == {"dependency": "database", "retry_after_s": 5}
    assert "try again" in error["message"]


async def test_postgres_down_is_503_with_retry_after_and_charges_only_answers(
    pg_deps: Deps, own_pg: KillablePostgres
) -> None:
    deps = pg_deps
    pro = await set_base_tier(
        deps, (await account_for_identity(deps, "web:p@example.com")).id, "pro"
    )
    key, _ = await create_api_key(deps, pro, "tests")
    other = await account_for_identity(deps, "web:q@example.com")
    other_key, _ = await create_api_key(deps, other, "tests")
    async with (
        client_for(deps, authorization=f"Bearer {key}") as api,
        client_for(deps) as visitor,
        client_for(deps, authorization=f"Bearer {other_key}") as uncached,
    ):
        first = await api.post("/api/chat/query", json={"message": "Research Uniswap"})
        assert first.status_code == 200, first.text
        assert (
            await visitor.post("/api/chat/query", json={"message": "Research Uniswap"})
        ).status_code == 200

        own_pg.kill()

        # Nothing can authenticate or count these: 503, the reason, when to retry.
        assert_unavailable(
            await visitor.post("/api/chat/query", json={"message": "Research Uniswap"})
        )
        assert_unavailable(
            await visitor.post("/api/chat/stream", json={"message": "Research Uniswap"})
        )
        assert_unavailable(await visitor.get("/api/chat/quota"))
        assert_unavailable(
            await uncached.post("/api/chat/query", json={"message": "Research Uniswap"})
        )
        fresh = client_for(deps)
        async with fresh:
            assert_unavailable(await fresh.post("/api/chat/query", json={"message": "hi"}))

        # An API key this process authenticated a moment ago still gets its answer (quota in
        # Redis, data from the live sources); it is charged and its usage row is kept.
        answered = await api.post("/api/chat/query", json={"message": "Research Bitcoin"})
        assert answered.status_code == 200, answered.text
        assert "## Bitcoin (BTC)" in answered.json()["response"]
        # from the live sources: no snapshot history to read or write, nothing lost for it
        assert {"CoinGecko", "GitHub"} <= {s["source"] for s in answered.json()["sources"]}
        assert "unavailable" not in answered.json()["response"]

        await asyncio.to_thread(own_pg.restart)
        assert await flush_usage(deps, timeout_s=30) == 0
        again = await visitor.post("/api/chat/query", json={"message": "Uniswap price"})
        assert again.status_code == 200, again.text

    usage = {
        r["identity"]: r["n"]
        for r in await deps.db.fetch(
            "SELECT identity, count(*) AS n FROM usage_logs WHERE status = 'ok' GROUP BY identity"
        )
    }
    api_identity = next(i for i in usage if i.startswith("api-key:"))
    assert usage[api_identity] == 2  # both answers, the one during the outage included
    assert sorted(usage.values()) == [2, 2]  # the visitor: before and after, nothing between
    pro_status = await quota_status(deps, pro)
    assert pro_status.limit - pro_status.remaining == 2  # charged = answered
    other_status = await quota_status(deps, await account_for_identity(deps, "web:q@example.com"))
    assert other_status.remaining == other_status.limit  # refused with 503: not charged


async def test_quota_counts_in_redis_when_postgres_dies_right_after_a_redis_outage(
    own_pg: KillablePostgres, tmp_path: Path
) -> None:
    """The quota's Redis breaker is still open when PostgreSQL dies: the request is counted
    in Redis (back already), not admitted uncounted."""
    from billing.quota import consume_request
    from tests.killable import KillableRedis, redis_server_binary

    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    redis = KillableRedis(tmp_path / "redis")
    redis.start()
    settings = make_test_settings(own_pg.url, redis.url, tmp_path / "data")
    try:
        async with open_deps(settings) as deps:
            account = await set_base_tier(
                deps, (await account_for_identity(deps, "web:r@example.com")).id, "pro"
            )
            assert (await consume_request(deps, account)).backend == "redis"
            redis.kill()
            own_pg.kill()
            # both down: a paid request is admitted uncounted (by design); the breaker opens
            assert (await consume_request(deps, account)).backend == "none"
            redis.start()  # back within the breaker's 2 s
            decision = await consume_request(deps, account)
            assert decision.allowed and decision.backend == "redis"
            await asyncio.to_thread(own_pg.restart)
    finally:
        redis.close()


async def test_only_unreachable_dependencies_become_503(deps: Deps) -> None:
    """A statement timeout is the database being unavailable; a bad argument is our bug."""
    import asyncpg

    from web.errors import unavailable_dependency

    with pytest.raises(TimeoutError) as timeout:
        await deps.db.fetchval("SELECT pg_sleep(2)", timeout=0.05)
    assert unavailable_dependency(timeout.value) == "database"
    with pytest.raises(asyncpg.DataError) as bad_argument:
        await deps.db.fetchval("SELECT $1::int", "not a number")
    assert unavailable_dependency(bad_argument.value) is None
    assert unavailable_dependency(FileNotFoundError("static/x")) is None
    assert unavailable_dependency(ConnectionRefusedError(111, "refused")) is None  # not ours to say
