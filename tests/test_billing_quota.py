"""Quotas against real Redis and PostgreSQL: exact under concurrency, across processes,
with Redis gone and back."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from billing.accounts import account_for_identity, set_base_tier
from billing.errors import QuotaUnavailable
from billing.quota import consume_request, flush_pending, quota_status, refund_request
from chainlens.deps import REDIS_COMMAND_TIMEOUT_S, Deps, is_cluster, make_redis
from chainlens.settings import TierLimits
from conftest import REPO_ROOT, make_test_settings

LIMITS = {
    "free": TierLimits(daily=5, minute=1000),
    "pro": TierLimits(daily=1000, minute=10),
    "enterprise": TierLimits(daily=100_000, minute=100),
}


@pytest.fixture
async def qdeps(
    deps: Deps, database_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Deps]:
    """Deps whose free tier allows 5 a day but many a minute, so day counts are testable."""
    settings = make_test_settings(
        database_url, redis_url, tmp_path, tier_limits=LIMITS, redis_prefix=deps.keys.prefix
    )
    yield dataclasses.replace(deps, settings=settings)
    await flush_pending(deps)


@pytest.fixture
async def dead_redis(deps: Deps) -> AsyncIterator[Deps]:
    """The same Deps but with Redis at a port nobody listens on: Redis 'killed'."""
    client = make_redis("redis://127.0.0.1:1/0", deps.settings)
    yield dataclasses.replace(deps, redis=client)
    await client.aclose()


async def _quota_keys(deps: Deps) -> list[bytes]:
    """The window counters (not the 30-second decision keys kept for resends)."""
    return [
        k
        async for k in deps.redis.scan_iter(match=deps.keys("quota", "*"), count=1000)
        if b":decided:" not in k
    ]


async def test_default_free_tier_is_five_a_day_one_a_minute(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:1001")
    first = await consume_request(deps, account)
    second = await consume_request(deps, account)
    assert first.allowed and first.limit == 5 and first.remaining == 4
    assert not second.allowed and second.window == "minute" and second.limit == 1
    assert second.retry_after_s is not None and 1 <= second.retry_after_s <= 60
    message = second.refusal_message()
    assert "per minute" in message and "/pricing" in message
    await flush_pending(deps)


async def test_day_window_refuses_sixth_with_reset_and_upgrade(qdeps: Deps) -> None:
    account = await account_for_identity(qdeps, "discord:42")
    decisions = [await consume_request(qdeps, account) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    refused = decisions[-1]
    assert refused.window == "day" and refused.reset_at.hour == 0 and refused.reset_at.minute == 0
    assert "00:00 UTC" in refused.refusal_message()
    assert (await quota_status(qdeps, account)).remaining == 0
    for key in await _quota_keys(qdeps):
        assert await qdeps.redis.ttl(key) > 0


async def test_refund_gives_the_request_back(qdeps: Deps) -> None:
    account = await account_for_identity(qdeps, "telegram:77")
    decisions = [await consume_request(qdeps, account) for _ in range(5)]
    await refund_request(qdeps, account, decisions[-1])
    assert (await quota_status(qdeps, account)).remaining == 1
    assert (await consume_request(qdeps, account)).allowed
    assert not (await consume_request(qdeps, account)).allowed


async def test_pro_and_enterprise_limits(qdeps: Deps) -> None:
    account = await account_for_identity(qdeps, "telegram:5")
    pro = await set_base_tier(qdeps, account.id, "pro")
    assert (await consume_request(qdeps, pro)).limit == 1000
    ent = await set_base_tier(qdeps, account.id, "enterprise", daily_limit=3, minute_limit=50)
    assert [(await consume_request(qdeps, ent)).allowed for _ in range(3)] == [True, True, False]


async def test_concurrent_requests_in_one_process_admit_exactly_five(qdeps: Deps) -> None:
    account = await account_for_identity(qdeps, "telegram:9")
    results = await asyncio.gather(*(consume_request(qdeps, account) for _ in range(1000)))
    assert sum(d.allowed for d in results) == 5


async def test_anonymous_ip_bucket_survives_new_cookies(qdeps: Deps) -> None:
    qdeps = dataclasses.replace(
        qdeps, settings=qdeps.settings.model_copy(update={"free_ip_daily": 6})
    )
    decisions = []
    for n in range(8):  # a fresh anonymous identity each time, same address
        visitor = await account_for_identity(qdeps, f"web-anon:visitor-{n:02d}-abcdefghijkl")
        decisions.append(await consume_request(qdeps, visitor, client_ip="203.0.113.7"))
    assert [d.allowed for d in decisions] == [True] * 6 + [False] * 2
    assert decisions[-1].scope == "network" and "Your network" in decisions[-1].refusal_message()


async def test_redis_killed_mid_sequence_then_back(qdeps: Deps, dead_redis: Deps) -> None:
    dead = dataclasses.replace(dead_redis, settings=qdeps.settings)
    account = await account_for_identity(qdeps, "telegram:31337")
    sequence = [qdeps, qdeps, dead, dead, qdeps, dead, qdeps, dead, qdeps]
    allowed = [(await consume_request(d, account)).allowed for d in sequence]
    assert allowed == [True] * 5 + [False] * 4
    # Back on Redis after the outage: Redis was lifted to PostgreSQL's count.
    assert (await quota_status(qdeps, account)).remaining == 0


async def test_postgres_fallback_is_exact_under_concurrency(qdeps: Deps, dead_redis: Deps) -> None:
    dead = dataclasses.replace(dead_redis, settings=qdeps.settings)
    account = await account_for_identity(qdeps, "telegram:4242")
    assert (await consume_request(qdeps, account)).allowed  # one via Redis before the outage
    results = await asyncio.gather(*(consume_request(dead, account) for _ in range(200)))
    assert sum(d.allowed for d in results) == 4
    assert all(d.backend == "postgres" for d in results)
    refunded = next(d for d in results if d.allowed)
    await refund_request(dead, account, refunded)
    assert (await consume_request(dead, account)).allowed
    assert not (await consume_request(dead, account)).allowed


async def test_paid_requests_admitted_when_both_stores_fail(deps: Deps, dead_redis: Deps) -> None:
    account = await account_for_identity(deps, "telegram:8")
    pro = await set_base_tier(deps, account.id, "pro")
    free = await account_for_identity(deps, "telegram:88")
    await deps.db.execute("ALTER TABLE quota_counters RENAME TO quota_counters_away")
    try:
        assert (await consume_request(dead_redis, pro)).allowed
        with pytest.raises(QuotaUnavailable):
            await consume_request(dead_redis, free)
    finally:
        await deps.db.execute("ALTER TABLE quota_counters_away RENAME TO quota_counters")


_WORKER = """
import asyncio, json, sys
from chainlens.deps import open_deps
from chainlens.settings import Settings, TierLimits
from billing.accounts import get_account
from billing.quota import consume_request, flush_pending

async def main(cfg):
    settings = Settings(_env_file=None, environment="test", database_url=cfg["db"],
                        redis_url=cfg["redis"], redis_prefix=cfg["prefix"], llm_models=[],
                        tier_limits={"free": TierLimits(daily=5, minute=1000)})
    admitted = []
    async with open_deps(settings, migrate=False) as deps:
        for n, account_id in enumerate(cfg["accounts"]):
            account = await get_account(deps, account_id)
            barrier = deps.keys("test-barrier", n)
            await deps.redis.incr(barrier)
            await deps.redis.expire(barrier, 120)
            while int(await deps.redis.get(barrier) or 0) < cfg["workers"]:
                await asyncio.sleep(0.001)
            results = await asyncio.gather(
                *(consume_request(deps, account) for _ in range(cfg["per_worker"])))
            admitted.append(sum(d.allowed for d in results))
        await flush_pending(deps)
    print(json.dumps(admitted))

asyncio.run(main(json.loads(sys.argv[1])))
"""


@pytest.mark.slow
async def test_thousand_concurrent_from_two_processes_admit_exactly_five_twenty_times(
    qdeps: Deps, database_url: str, redis_url: str
) -> None:
    rounds, workers = 20, 2
    accounts = [
        (await account_for_identity(qdeps, f"telegram:{900000 + n}")).id for n in range(rounds)
    ]
    cfg = {
        "db": database_url,
        "redis": redis_url,
        "prefix": qdeps.keys.prefix,
        "accounts": accounts,
        "workers": workers,
        "per_worker": 1000 // workers,
    }
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            json.dumps(cfg),
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in procs))
    per_worker = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
        per_worker.append(json.loads(out))
    totals = [sum(column) for column in zip(*per_worker, strict=True)]
    assert totals == [5] * rounds
    keys = await _quota_keys(qdeps)
    assert len(keys) == 2 * rounds
    assert all([await qdeps.redis.ttl(k) > 0 for k in keys])
    # each request's decision key (for a resend after a lost reply) expires within 30 s
    decided = [k async for k in qdeps.redis.scan_iter(match=qdeps.keys("quota", "*decided*"))]
    assert decided and all([0 < await qdeps.redis.ttl(k) <= 30 for k in decided[:50]])


class _SlowReplyProxy:
    """A TCP proxy in front of the test's Redis that holds back the next reply past the
    client's command timeout (what a busy Redis or a starved event loop looks like): the
    command has run, its reply is lost."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.hold_next = False
        self.held = 0
        self.server: asyncio.Server | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.upstream.startswith("unix://"):
            return await asyncio.open_unix_connection(self.upstream.removeprefix("unix://"))
        host_port = self.upstream.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        host, port = host_port.rsplit(":", 1)
        return await asyncio.open_connection(host, int(port))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, hold: bool) -> None:
        try:
            while data := await src.read(65536):
                if hold and self.hold_next:
                    self.hold_next = False
                    self.held += 1
                    await asyncio.sleep(REDIS_COMMAND_TIMEOUT_S + 1.0)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._connect()
        await asyncio.gather(
            self._pipe(reader, up_writer, hold=False), self._pipe(up_reader, writer, hold=True)
        )

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        database = self.upstream.rsplit("/", 1)[-1] if not self.upstream.startswith("unix") else "0"
        return f"redis://127.0.0.1:{port}/{database if database.isdigit() else 0}"


@pytest.mark.slow
async def test_a_lost_reply_is_asked_again_and_consumes_once(qdeps: Deps, redis_url: str) -> None:
    if is_cluster(qdeps.redis):
        pytest.skip("the proxy speaks to one Redis node")
    proxy = _SlowReplyProxy(redis_url)
    client = make_redis(await proxy.start(), qdeps.settings)
    slow = dataclasses.replace(qdeps, redis=client)
    try:
        account = await account_for_identity(qdeps, "telegram:7070")
        assert (await consume_request(slow, account)).allowed  # seeds the day key
        proxy.hold_next = True
        decision = await consume_request(slow, account)
        assert proxy.held == 1
        # decided in Redis by the resend, which found the first decision: one consumed, not two
        assert decision.allowed and decision.backend == "redis"
        assert decision.remaining == 3
        assert (await quota_status(qdeps, account)).remaining == 3
    finally:
        await client.aclose()
        assert proxy.server is not None
        proxy.server.close()
