"""Accounts, identities, link codes and merges; durable usage records."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from billing.accounts import (
    account_for_identity,
    create_link_code,
    get_account,
    identities_of,
    redeem_link_code,
    set_base_tier,
)
from billing.errors import InvalidIdentity, LinkCodeInvalid
from billing.quota import consume_request, flush_pending, quota_status
from billing.usage import UsageRecord, project_usage, record_usage
from chainlens.deps import Deps


async def test_first_contact_creates_one_free_account_even_concurrently(deps: Deps) -> None:
    accounts = await asyncio.gather(
        *(account_for_identity(deps, "telegram:123") for _ in range(20))
    )
    assert len({a.id for a in accounts}) == 1 and accounts[0].tier == "free"
    web = await account_for_identity(deps, "web:Alice@Example.com")
    assert web.email == "alice@example.com"
    assert (await account_for_identity(deps, "web:alice@example.com")).id == web.id
    for bad in ("telegram:abc", "slack:1", "web:not-an-email", "web-anon:short"):
        with pytest.raises(InvalidIdentity):
            await account_for_identity(deps, bad)


async def test_linked_telegram_and_web_share_one_quota(deps: Deps) -> None:
    web = await account_for_identity(deps, "web:bob@example.com")
    code = await create_link_code(deps, web)
    linked = await redeem_link_code(deps, "telegram:555", code.lower())
    assert linked.id == web.id
    assert await identities_of(deps, web.id) == ["telegram:555", "web:bob@example.com"]
    tg = await account_for_identity(deps, "telegram:555")
    assert (await consume_request(deps, tg)).allowed
    assert (await quota_status(deps, web)).day_used == 1
    with pytest.raises(LinkCodeInvalid):
        await redeem_link_code(deps, "discord:1", code)  # single use
    await flush_pending(deps)


async def test_merge_keeps_higher_tier_usage_and_records_it(deps: Deps) -> None:
    tg = await account_for_identity(deps, "telegram:42")
    web = await account_for_identity(deps, "web:carol@example.com")
    await set_base_tier(deps, web.id, "pro")
    await record_usage(
        deps,
        UsageRecord(
            request_id=uuid.uuid4(),
            account_id=tg.id,
            identity="telegram:42",
            channel="telegram",
            question="research uniswap",
            tokens_used=10,
        ),
    )
    code = await create_link_code(deps, tg)  # created on Telegram (free) ...
    merged = await redeem_link_code(deps, "web:carol@example.com", code)  # ... entered on the web
    assert merged.id == web.id and merged.tier == "pro"
    assert (await account_for_identity(deps, "telegram:42")).id == web.id
    assert (await get_account(deps, tg.id)).id == web.id  # old ids resolve to the kept account
    assert await deps.db.fetchval("SELECT count(*) FROM usage_logs WHERE user_id = $1", web.id) == 1
    row = await deps.db.fetchrow("SELECT * FROM account_merges")
    assert (row["kept_user_id"], row["merged_user_id"]) == (web.id, tg.id)
    assert row["identities"] == ["telegram:42"] and row["via_identity"] == "web:carol@example.com"


async def test_expired_and_wrong_codes_are_refused(deps: Deps) -> None:
    account = await account_for_identity(deps, "discord:9")
    code = await create_link_code(deps, account)
    await deps.db.execute("UPDATE link_codes SET expires_at = now() - interval '1 second'")
    with pytest.raises(LinkCodeInvalid):
        await redeem_link_code(deps, "telegram:9", code)
    assert await deps.db.fetchval("SELECT code_hash FROM link_codes") != code
    for _ in range(10):
        with pytest.raises(LinkCodeInvalid):
            await redeem_link_code(deps, "telegram:10", "AAAA-AAAA")
    fresh = await create_link_code(deps, account)
    with pytest.raises(LinkCodeInvalid, match="too many"):
        await redeem_link_code(deps, "telegram:10", fresh)


async def test_usage_record_is_idempotent_and_counts_projects(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:1")
    record = UsageRecord(
        request_id=uuid.uuid4(),
        account_id=account.id,
        identity="telegram:1",
        channel="telegram",
        project_id="uniswap",
        project_symbol="UNI",
        project_name="Uniswap",
        tools=["onchain", "team"],
        tokens_used=321,
        cost_usd=0.0042,
        cache_hit=True,
        latency_ms=850,
        question="Research Uniswap",
        conversation_id="c1",
        router="rules",
    )
    await asyncio.gather(*(record_usage(deps, record) for _ in range(5)))
    assert await deps.db.fetchval("SELECT count(*) FROM usage_logs") == 1
    assert await deps.db.fetchval("SELECT count(*) FROM query_logs") == 1
    row = await deps.db.fetchrow("SELECT tokens_used, cost_usd, tools FROM usage_logs")
    assert (row["tokens_used"], float(row["cost_usd"]), row["tools"]) == (
        321,
        0.0042,
        ["onchain", "team"],
    )
    assert (await project_usage(deps, "uniswap"))["requests_today"] == 1
    assert await deps.db.fetchval("SELECT symbol FROM projects WHERE id = 'uniswap'") == "UNI"


async def test_concurrent_usage_records_are_group_committed_without_loss(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:2")
    records = [
        UsageRecord(
            request_id=uuid.uuid4(),
            account_id=account.id,
            channel="telegram",
            project_id=("uniswap", "new-coin")[i % 2],
            project_symbol="X",
            tools=["onchain"],
            question=f"q{i}",
        )
        for i in range(120)
    ]
    # Every record once, some twice at the same time (a retry racing the original).
    await asyncio.gather(*(record_usage(deps, r) for r in records + records[:30]))
    assert await deps.db.fetchval("SELECT count(*) FROM usage_logs") == 120
    assert await deps.db.fetchval("SELECT count(*) FROM query_logs") == 120
    assert (await project_usage(deps, "uniswap"))["requests_today"] == 60
    assert (await project_usage(deps, "new-coin"))["requests_today"] == 60
    await record_usage(deps, records[0])  # a late retry changes nothing
    assert (await project_usage(deps, "uniswap"))["requests_today"] == 60


async def test_one_bad_usage_record_does_not_cost_the_others(deps: Deps) -> None:
    import asyncpg

    account = await account_for_identity(deps, "telegram:3")
    good = [
        UsageRecord(request_id=uuid.uuid4(), account_id=account.id, question="ok")
        for _ in range(10)
    ]
    bad = UsageRecord(request_id=uuid.uuid4(), account_id=account.id + 10_000, question="gone")
    outcomes = await asyncio.gather(
        *(record_usage(deps, r) for r in [*good[:5], bad, *good[5:]]), return_exceptions=True
    )
    assert isinstance(outcomes[5], asyncpg.ForeignKeyViolationError)
    assert [o for i, o in enumerate(outcomes) if i != 5] == [None] * 10
    assert await deps.db.fetchval("SELECT count(*) FROM usage_logs") == 10
