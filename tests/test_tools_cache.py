"""The layered cache: hot/warm/live/stale/none, TTL by volatility, history rows, single-flight."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable

import httpx

from chainlens.deps import Deps
from tests.tools_fakes import UNISWAP, FakeSources, fast_http
from tools.analysis import analyze, run_tool
from tools.cache import l1_key, ttl_for
from tools.results import TOOL_NAMES

MakeDeps = Callable[[Deps, httpx.AsyncBaseTransport], Deps]
ALL_SOURCES = {"coingecko", "defillama", "goplus", "github", "feargreed", "rss"}


async def _snapshots(deps: Deps, module: str) -> int:
    return int(
        await deps.db.fetchval(
            "SELECT count(*) FROM analysis_snapshots WHERE project_id = $1 AND module = $2",
            UNISWAP.id,
            module,
        )
    )


async def test_live_then_hot_then_warm_then_refresh(fast_deps: Deps, sources: FakeSources) -> None:
    first = await run_tool(fast_deps, "onchain", UNISWAP)
    assert first.cache == "live" and "CoinGecko" in first.services_called
    assert await _snapshots(fast_deps, "onchain") == 1

    second = await run_tool(fast_deps, "onchain", UNISWAP)
    assert second.cache == "hot" and second.services_called == []
    assert second.result.price_usd == first.result.price_usd
    assert sources.calls["coingecko:coin"] == 1

    await fast_deps.redis.delete(l1_key(fast_deps, "onchain", UNISWAP.id))
    third = await run_tool(fast_deps, "onchain", UNISWAP)
    assert third.cache == "warm" and sources.calls["coingecko:coin"] == 1

    fourth = await run_tool(fast_deps, "onchain", UNISWAP, refresh=True)
    assert fourth.cache == "live"
    assert await _snapshots(fast_deps, "onchain") == 2


async def test_hot_entry_is_compressed_with_volatility_ttl(fast_deps: Deps) -> None:
    outcome = await run_tool(fast_deps, "onchain", UNISWAP)
    key = l1_key(fast_deps, "onchain", UNISWAP.id)
    assert key.startswith(fast_deps.keys.prefix) and key.endswith(":v1")
    raw = await fast_deps.redis.get(key)
    assert raw is not None and zlib.decompress(raw).startswith(b"{")
    vol = outcome.result.volatility_annual  # type: ignore[attr-defined]
    assert vol is not None and vol > 0.8
    assert 0 < await fast_deps.redis.ttl(key) <= 150  # volatile coin: half the 300 s base
    # other tools of the same project use the remembered volatility
    await run_tool(fast_deps, "team", UNISWAP)
    assert await fast_deps.redis.ttl(l1_key(fast_deps, "team", UNISWAP.id)) <= 150


def test_ttl_rules() -> None:
    assert ttl_for(None) == 300 and ttl_for(0.9) == 150 and ttl_for(0.2) == 600
    assert ttl_for(0.2, partial=True) == 60


async def test_single_flight_200_concurrent_requests(fast_deps: Deps, sources: FakeSources) -> None:
    sources.latency_s = 0.05
    outcomes = await asyncio.gather(*(analyze(fast_deps, UNISWAP, TOOL_NAMES) for _ in range(200)))
    assert all(o["onchain"].result.price_usd == 10.0 for o in outcomes)
    assert sources.calls, "no upstream call at all"
    assert max(sources.calls.values()) == 1, dict(sources.calls)  # one upstream call per source
    assert await _snapshots(fast_deps, "team") == 1


async def test_waits_for_another_process_holding_the_lock(
    fast_deps: Deps, sources: FakeSources, deps: Deps
) -> None:
    key = l1_key(fast_deps, "onchain", UNISWAP.id)
    await fast_deps.redis.set(key + ":lock", "other-process", px=5000)
    ours = asyncio.create_task(run_tool(fast_deps, "onchain", UNISWAP))
    await asyncio.sleep(0.1)
    assert not ours.done() and sources.total("coingecko") == 0
    # the other process finishes: it writes the hot cache and releases its lock
    other = await run_tool(fast_http(deps), "sentiment", UNISWAP)  # any result to copy the shape
    from tools.cache import write_l1
    from tools.results import OnchainResult

    await write_l1(
        fast_deps,
        OnchainResult(project_id=UNISWAP.id, price_usd=42.0, as_of=other.result.as_of),
        300,
    )
    outcome = await asyncio.wait_for(ours, 5)
    assert outcome.cache == "hot" and outcome.result.price_usd == 42.0  # type: ignore[attr-defined]
    assert sources.total("coingecko") == 0


async def test_stale_snapshot_served_when_sources_are_down(
    fast_deps: Deps, deps: Deps, with_http: MakeDeps
) -> None:
    assert (await run_tool(fast_deps, "onchain", UNISWAP)).cache == "live"
    await deps.db.execute("UPDATE analysis_snapshots SET fetched_at = now() - interval '2 hours'")
    await deps.redis.delete(l1_key(deps, "onchain", UNISWAP.id))

    dead = FakeSources(down=ALL_SOURCES)
    outcome = await run_tool(fast_http(with_http(deps, dead.transport())), "onchain", UNISWAP)
    assert outcome.cache == "stale"
    r = outcome.result
    assert r.stale and 7000 < r.age_seconds < 7400
    assert r.price_usd == 10.0  # type: ignore[attr-defined]
    assert "live sources failed" in r.missing["live_data"]
    assert await _snapshots(deps, "onchain") == 1  # a stale answer is not new history


async def test_nothing_reachable_and_no_history_says_why(deps: Deps, with_http: MakeDeps) -> None:
    dead = FakeSources(down=ALL_SOURCES)
    outcomes = await analyze(fast_http(with_http(deps, dead.transport())), UNISWAP, TOOL_NAMES)
    for tool, outcome in outcomes.items():
        assert outcome.cache == "none", tool
        assert outcome.result.missing and all(outcome.result.missing.values()), tool
    by_tool = {t: o.result for t, o in outcomes.items()}
    assert by_tool["onchain"].missing["price_usd"].startswith("CoinGecko could not be fetched")
    assert "connection failed" in by_tool["onchain"].missing["price_usd"]
    assert by_tool["onchain"].price_usd is None  # type: ignore[attr-defined]
    assert by_tool["onchain"].market_score is None  # type: ignore[attr-defined]
    assert by_tool["sentiment"].missing["headlines"].startswith("no news feed could be fetched")
    assert by_tool["sentiment"].score is None  # type: ignore[attr-defined]
    assert by_tool["tokenomics"].missing["flags"].startswith("GoPlus could not be fetched")
    assert by_tool["team"].missing["audits_status"].startswith("DefiLlama could not be fetched")
    assert by_tool["team"].credibility_score is None  # type: ignore[attr-defined]
    assert await deps.db.fetchval("SELECT count(*) FROM analysis_snapshots") == 0


async def test_warm_cache_covers_most_queried_and_trending(
    fast_deps: Deps, sources: FakeSources
) -> None:
    from tools.warm import warm_cache

    await fast_deps.db.execute(
        "INSERT INTO projects (id, symbol, name, platforms)"
        " VALUES ('bitcoin', 'btc', 'Bitcoin', '{}')"
    )
    await fast_deps.db.execute(
        "INSERT INTO query_logs (question, project_id)"
        " SELECT 'btc?', 'bitcoin' FROM generate_series(1, 3)"
    )
    warmed = await warm_cache(fast_deps, limit=5, tools=("onchain",))
    assert warmed == {"bitcoin": {"onchain": "live"}, "uniswap": {"onchain": "live"}}
    again = await warm_cache(fast_deps, limit=5, tools=("onchain",))
    assert again == {"bitcoin": {"onchain": "hot"}, "uniswap": {"onchain": "hot"}}


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    fast_deps: Deps, sources: FakeSources
) -> None:
    """Two answers share one fetch; the first is cancelled (its client left) mid-fetch."""
    sources.latency_s = 0.2
    first = asyncio.create_task(run_tool(fast_deps, "onchain", UNISWAP))
    second = asyncio.create_task(run_tool(fast_deps, "onchain", UNISWAP))
    await asyncio.sleep(0.05)
    first.cancel()
    outcome = await second
    assert first.cancelled()
    assert outcome.cache == "live"
    assert outcome.result.price_usd == 10.0
    assert "price_usd" not in outcome.result.missing
    assert sources.calls["coingecko:coin"] == 1
