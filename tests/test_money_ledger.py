"""The PostgreSQL quota ledger under concurrent consumes and refunds: no deadlock, exact counts."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from billing import quota_store as store
from billing.accounts import account_for_identity
from billing.quota import consume_request, flush_pending, refund_request
from chainlens.deps import Deps, make_redis
from chainlens.settings import TierLimits
from conftest import make_test_settings

pytestmark = pytest.mark.slow  # thousands of transactions, to make a lock-order race show

LIMITS = {"free": TierLimits(daily=100_000, minute=100_000)}


@pytest.fixture
async def dead_redis(
    deps: Deps, database_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Deps]:
    """Deps whose Redis is at a port nobody listens on, so the ledger decides everything."""
    settings = make_test_settings(
        database_url,
        redis_url,
        tmp_path,
        tier_limits=LIMITS,
        free_ip_daily=100_000,
        free_ip_minute=100_000,
        redis_prefix=deps.keys.prefix,
    )
    client = make_redis("redis://127.0.0.1:1/0", settings)
    yield dataclasses.replace(deps, settings=settings, redis=client)
    await flush_pending(deps)
    await client.aclose()


async def test_ledger_consume_and_refund_race_without_error(dead_redis: Deps) -> None:
    """Two accounts behind one address, consuming and refunding at once from the ledger."""
    accounts = [await account_for_identity(dead_redis, f"telegram:{7000 + n}") for n in range(2)]
    ip = "198.51.100.9"

    async def consume_then_refund(n: int) -> None:
        account = accounts[n % 2]
        decision = await consume_request(dead_redis, account, client_ip=ip)
        assert decision.allowed and decision.backend == "postgres"
        if (n // 2) % 2 == 0:
            await refund_request(dead_redis, account, decision)

    rounds = 1200
    await asyncio.gather(*(consume_then_refund(n) for n in range(rounds)))
    plan = store.Plan.at([store.Bucket(f"web-ip:{ip}", 1, 1)], time.time())
    counts = await store.ledger_counts(dead_redis.db, plan.ledger_rows())
    assert counts[(f"web-ip:{ip}", "day")] == rounds // 2


async def test_ledger_rows_are_locked_in_one_order(deps: Deps) -> None:
    """Consume transactions and refunds on shared rows, hammered: no DeadlockDetectedError."""
    shared = store.Bucket("web-ip:203.0.113.0", 10**6, 10**6)
    plans = [
        store.Plan.at([store.Bucket(f"acct:{n}", 10**6, 10**6), shared], time.time())
        for n in range(2)
    ]

    async def consume(plan: store.Plan) -> None:
        async with deps.db.acquire() as conn, conn.transaction():
            assert await store.ledger_consume(conn, plan) is None

    for plan in plans:
        for _ in range(20):
            await consume(plan)
    jobs = [
        consume(plans[n % 2]) if (n // 2) % 2 else store.ledger_refund(deps.db, plans[n % 2])
        for n in range(3000)
    ]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    counts = await store.ledger_counts(deps.db, plans[0].ledger_rows() + plans[1].ledger_rows())
    assert counts == {
        ("acct:0", "day"): 20,
        ("acct:0", "minute"): 20,
        ("acct:1", "day"): 20,
        ("acct:1", "minute"): 20,
        (shared.name, "day"): 40,
        (shared.name, "minute"): 40,
    }
