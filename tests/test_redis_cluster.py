"""ChainLens on a Redis Cluster: the client a `redis+cluster://` URL builds, `chainlens doctor`
saying so, and the key layout that keeps every script's keys in one slot. (The quota, cache,
single-flight and turn-cache tests run whole against a cluster with
CHAINLENS_TEST_REDIS_CLUSTER=1: see .ci/run.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from billing import quota_store
from billing.accounts import account_for_identity
from billing.quota import consume_request
from chainlens.chat import ChatTurn, replay_rider
from chainlens.cli import main
from chainlens.deps import Deps, open_deps
from chainlens.settings import Settings
from tools.cache import l1_key


@pytest.fixture
async def cluster_deps(
    deps: Deps, settings: Settings, redis_cluster_url: str
) -> AsyncIterator[Deps]:
    """The run's (migrated, emptied) database with the loopback Redis Cluster."""
    async with open_deps(
        settings.model_copy(
            update={"redis_url": redis_cluster_url, "redis_prefix": settings.redis_prefix + "rc:"}
        ),
        migrate=False,
    ) as on_cluster:
        yield on_cluster
        keys = [k async for k in on_cluster.redis.scan_iter(match=on_cluster.keys.prefix + "*")]
        if keys:
            await on_cluster.redis.delete(*keys)


async def test_a_cluster_url_builds_a_cluster_client(cluster_deps: Deps) -> None:
    redis = cluster_deps.redis
    assert isinstance(redis, RedisCluster)
    assert await redis.ping()  # discovery happens on first use
    assert len(redis.get_primaries()) == 3
    # Keys of every slot answer, wherever they live.
    keys = [cluster_deps.keys("probe", n) for n in range(30)]
    for key in keys:
        await redis.set(key, key, ex=60)
    nodes = [redis.get_node_from_key(k) for k in keys]
    assert len({n.name for n in nodes if n is not None}) == 3
    assert [await redis.get(k) for k in keys] == [k.encode() for k in keys]


def test_redis_cluster_setting_and_url_schemes() -> None:
    assert Settings(
        _env_file=None, redis_url="redis+cluster://127.0.0.1:7000,127.0.0.1:7001"
    ).redis_url  # type: ignore[call-arg]
    assert Settings(_env_file=None, redis_cluster=True).redis_cluster  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="must not contain"):
        Settings(_env_file=None, redis_prefix="cl:{x}:")  # type: ignore[call-arg]


def test_doctor_shows_cluster_mode(
    settings: Settings, redis_cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("REDIS_URL", redis_cluster_url)
    monkeypatch.setenv("REDIS_PREFIX", settings.redis_prefix)
    for var in (
        "COINGECKO_BASE_URL",
        "DEFILLAMA_BASE_URL",
        "GOPLUS_BASE_URL",
        "GITHUB_API_URL",
        "FEAR_GREED_URL",
    ):
        monkeypatch.setenv(var, "http://127.0.0.1:9/x")
    monkeypatch.setenv("NEWS_FEEDS", "http://127.0.0.1:9/feed.xml")
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    redis_line = next(line for line in result.output.splitlines() if line.startswith("Redis"))
    assert re.search(r"Redis\s+yes\s+yes\s+REDIS_URL, Redis Cluster mode: 3 masters", redis_line), (
        redis_line
    )


async def test_keys_a_script_touches_together_share_a_slot(cluster_deps: Deps) -> None:
    deps = cluster_deps
    plan = quota_store.Plan.at(
        [
            quota_store.Bucket("acct:1", 1, 5),
            quota_store.Bucket("email:a@b.c", 1, 5),
            quota_store.Bucket("web-ip:203.0.113.0", 10, 50),
        ],
        1_700_000_000,
    )
    assert len({key_slot(k.encode()) for k in plan.redis_keys(deps)}) == 1
    entries = [l1_key(deps, tool, "uniswap") for tool in ("onchain", "team", "tokenomics")]
    assert len({key_slot(k.encode()) for k in entries}) == 1
    assert {key_slot(k.encode()) for k in entries} != {
        key_slot(l1_key(deps, "onchain", "bitcoin").encode())
    }


async def test_on_a_cluster_the_replay_does_not_ride_in_the_quota_script(
    cluster_deps: Deps,
) -> None:
    # The quota keys ({quota}) and the turn are in different slots: quota alone, then replay.
    account = await account_for_identity(cluster_deps, "telegram:4242")
    rider = replay_rider(
        cluster_deps,
        ChatTurn(identity="telegram:4242", channel="telegram", text="Research Uniswap"),
    )
    assert rider is not None
    decision = await consume_request(cluster_deps, account, rider=rider)
    assert decision.allowed and decision.backend == "redis" and decision.ridden is None


async def test_web_history_and_multi_key_reads_work_on_a_cluster(cluster_deps: Deps) -> None:
    from chainlens.deps import mget
    from web.history import current_conversation, recent_turns, record_turn

    final: dict[str, Any] = {"response": "Uniswap is a DEX.", "sources": [], "project": None}
    await record_turn(
        cluster_deps,
        identity="web:ann@example.com",
        conversation_id="c1",
        question="Research Uniswap",
        final=final,
    )  # one MULTI over two keys
    turns = await recent_turns(cluster_deps, identity="web:ann@example.com", conversation_id="c1")
    assert [t.answer for t in turns] == ["Uniswap is a DEX."]
    assert await current_conversation(cluster_deps, "web:ann@example.com") == "c1"
    keys = [
        cluster_deps.keys("quote", coin)
        for coin in ("bitcoin", "ethereum", "uniswap", "solana", "cardano")
    ]
    assert len({key_slot(k.encode()) for k in keys}) > 1
    await cluster_deps.redis.set(keys[0], "0")
    assert await mget(cluster_deps.redis, keys) == [b"0", None, None, None, None]
