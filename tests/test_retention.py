"""Retention: raw usage/query rows past RETENTION_DAYS are folded into daily aggregates and
deleted in batches; nothing is lost or counted twice, even with two runs at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.accounts import account_for_identity, create_link_code, redeem_link_code
from billing.retention import apply_retention
from chainlens.deps import Deps
from reports.queue import app as queue_app
from reports.queue import register_periodic

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def _seed(deps: Deps, user_id: int, *, old: int, recent: int) -> None:
    """`old` rows spread over 3 UTC days 100-102 days ago, `recent` rows from today."""
    await deps.db.execute(
        """
        INSERT INTO usage_logs (request_id, user_id, channel, status, cache_hit, tokens_used,
                                cost_usd, created_at)
        SELECT gen_random_uuid(), $1, CASE WHEN n % 2 = 0 THEN 'web' ELSE 'telegram' END,
               CASE WHEN n % 10 = 0 THEN 'error' ELSE 'ok' END, n % 3 = 0, 10, 0.001,
               $2::timestamptz - make_interval(days => 100 + n % 3, secs => n)
        FROM generate_series(1, $3) AS n
        """,
        user_id,
        NOW,
        old,
    )
    await deps.db.execute(
        """
        INSERT INTO query_logs (request_id, user_id, question, project_id, router, status,
                                created_at)
        SELECT gen_random_uuid(), $1, 'q', CASE WHEN n % 2 = 0 THEN 'uniswap' END, 'rules',
               'ok', $2::timestamptz - make_interval(days => 100 + n % 3, secs => n)
        FROM generate_series(1, $3) AS n
        """,
        user_id,
        NOW,
        old,
    )
    for table in ("usage_logs", "query_logs"):
        extra = "channel, cost_usd" if table == "usage_logs" else "question"
        values = "'web', 0.5" if table == "usage_logs" else "'recent'"
        await deps.db.execute(
            f"INSERT INTO {table} (request_id"  # noqa: S608 - the test's own constants
            f", user_id, {extra}, created_at)"
            f" SELECT gen_random_uuid(), $1, {values}, $2::timestamptz - make_interval(secs => n)"
            " FROM generate_series(1, $3) AS n",
            user_id,
            NOW,
            recent,
        )


async def _count(deps: Deps, sql: str) -> int:
    return int(await deps.db.fetchval(sql))


async def test_old_rows_are_folded_into_daily_aggregates_and_deleted(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:1001")
    await _seed(deps, account.id, old=2_500, recent=40)
    before = await deps.db.fetchrow(
        "SELECT count(*) AS n, sum(tokens_used) AS tokens, sum(cost_usd) AS cost,"
        " count(*) FILTER (WHERE cache_hit) AS hits FROM usage_logs WHERE created_at < $1",
        NOW - timedelta(days=90),
    )

    result = await apply_retention(deps, now=NOW, batch=1_000)

    assert (result.usage_rows, result.query_rows) == (2_500, 2_500)
    assert result.batches >= 6  # 3 batches per raw table at 1,000 rows each
    # every recent row is still there, no old one is
    assert await _count(deps, "SELECT count(*) FROM usage_logs") == 40
    assert await _count(deps, "SELECT count(*) FROM query_logs") == 40
    daily = await deps.db.fetchrow(
        "SELECT sum(requests) AS n, sum(tokens_used) AS tokens, sum(cost_usd) AS cost,"
        " sum(cache_hits) AS hits, count(DISTINCT day) AS days FROM usage_daily"
    )
    assert daily["n"] == before["n"] == 2_500
    assert (daily["tokens"], daily["cost"], daily["hits"]) == (
        before["tokens"],
        before["cost"],
        before["hits"],
    )
    assert daily["days"] == 3
    per_status = dict(
        await deps.db.fetch("SELECT status, sum(requests)::int FROM usage_daily GROUP BY status")
    )
    assert per_status == {"ok": 2_250, "error": 250}
    per_project = dict(
        await deps.db.fetch(
            "SELECT project_id, sum(queries)::int FROM query_daily GROUP BY project_id"
        )
    )
    assert per_project == {"uniswap": 1_250, "": 1_250}

    # a second run finds nothing more to do and changes no aggregate
    again = await apply_retention(deps, now=NOW, batch=1_000)
    assert (again.usage_rows, again.query_rows, again.daily_rows) == (0, 0, 0)
    assert await _count(deps, "SELECT sum(requests) FROM usage_daily") == 2_500


async def test_two_runs_at_once_neither_lose_nor_double_count(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:1002")
    await _seed(deps, account.id, old=6_000, recent=0)
    first, second = await asyncio.gather(
        apply_retention(deps, now=NOW, batch=500), apply_retention(deps, now=NOW, batch=500)
    )
    assert first.usage_rows + second.usage_rows == 6_000
    assert first.query_rows + second.query_rows == 6_000
    assert await _count(deps, "SELECT count(*) FROM usage_logs") == 0
    assert await _count(deps, "SELECT sum(requests) FROM usage_daily") == 6_000
    assert await _count(deps, "SELECT sum(queries) FROM query_daily") == 6_000


async def test_daily_rows_go_after_the_daily_retention(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:1003")
    await deps.db.execute(
        "INSERT INTO projects (id, symbol, name) VALUES ('uniswap', 'uni', 'Uniswap')"
    )
    await deps.db.execute(
        "INSERT INTO project_usage (project_id, day, requests)"
        " SELECT 'uniswap', $1::date - n, 1 FROM generate_series(0, 799) AS n",
        NOW.date(),
    )
    await deps.db.execute(
        "INSERT INTO usage_daily (day, user_id, channel, status, requests, cache_hits,"
        " tokens_used, cost_usd) SELECT $1::date - n, $2, 'web', 'ok', 1, 0, 0, 0"
        " FROM generate_series(0, 799) AS n",
        NOW.date(),
        account.id,
    )
    result = await apply_retention(deps, now=NOW, batch=64)
    # 730 days kept: days 0..730 before today survive (the cutoff day itself included)
    assert await _count(deps, "SELECT count(*) FROM project_usage") == 731
    assert await _count(deps, "SELECT count(*) FROM usage_daily") == 731
    assert result.daily_rows == 2 * (800 - 731)


async def test_the_batched_walk_can_use_the_created_at_index(deps: Deps) -> None:
    async with deps.db.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN SELECT id FROM usage_logs WHERE created_at < now()"
                " ORDER BY created_at LIMIT 100"
            )
        )
    assert "usage_logs_created_idx" in plan, plan


async def test_merging_accounts_adds_their_daily_aggregates(deps: Deps) -> None:
    owner = await account_for_identity(deps, "telegram:2001")
    other = await account_for_identity(deps, "discord:2002")
    for user_id, requests in ((owner.id, 3), (other.id, 4)):
        await deps.db.execute(
            "INSERT INTO usage_daily (day, user_id, channel, status, requests, cache_hits,"
            " tokens_used, cost_usd) VALUES ($1, $2, 'web', 'ok', $3, 1, 10, 0.25)",
            NOW.date(),
            user_id,
            requests,
        )
    code = await create_link_code(deps, owner)
    kept = await redeem_link_code(deps, "discord:2002", code)
    rows = await deps.db.fetch("SELECT user_id, requests, cost_usd FROM usage_daily")
    assert [(r["user_id"], r["requests"], r["cost_usd"]) for r in rows] == [
        (kept.id, 7, Decimal("0.500000"))
    ]


async def test_retention_is_a_periodic_job(deps: Deps) -> None:
    register_periodic(deps)
    ids = {periodic_id for (_, periodic_id) in queue_app.periodic_registry.periodic_tasks}
    assert "retention" in ids
