"""Live within the sources' budgets: one request budget per source shared by every process
(Redis); a spent budget serves the newest snapshot with its age, in plain words."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agent.assess import assess
from agent.facts import sources_of
from agent.writer import write_answer
from chainlens.deps import Deps
from tests.tools_fakes import UNISWAP, FakeSources
from tools.analysis import run_tool
from tools.cache import l1_key
from tools.http import HttpOptions, RetryPolicy, SourceBusy, configure_http, get_json


def _process(deps: Deps, with_http: Any, sources: FakeSources, rate: int) -> Deps:
    """A Deps with its own HTTP client, as another process would have, sharing Redis."""
    settings = deps.settings.model_copy(update={"coingecko_rate_per_min": rate})
    own = with_http(dataclasses.replace(deps, settings=settings), sources.transport())
    configure_http(
        own,
        HttpOptions(
            retry=RetryPolicy(
                attempts=1, base_wait_s=0.001, max_wait_s=0.01, limiter_wait_cap_s=0.2
            ),
            github_stats_attempts=1,
            github_stats_wait_s=0.0,
        ),
    )
    return own  # type: ignore[no-any-return]


async def test_two_processes_share_one_budget(deps: Deps, with_http: Any) -> None:
    sources = FakeSources()
    a = _process(deps, with_http, sources, rate=5)  # questions may use 4 of 5
    b = _process(deps, with_http, sources, rate=5)
    base = str(deps.settings.coingecko_base_url)
    served, busy = 0, 0
    for i in range(10):
        try:
            await get_json(a if i % 2 else b, f"{base}/coins/uniswap?i={i}", source="CoinGecko")
            served += 1
        except SourceBusy as exc:
            busy += 1
            assert "limit" in exc.reason and "budget" not in exc.reason  # noqa: PT017
    assert served == 4 and busy == 6
    assert sources.calls["coingecko:coin"] == 4


async def test_a_spent_budget_serves_the_snapshot_with_its_age(deps: Deps, with_http: Any) -> None:
    sources = FakeSources()
    roomy = _process(deps, with_http, sources, rate=1000)
    first = await run_tool(roomy, "onchain", UNISWAP)
    assert first.cache == "live" and first.result.price_usd is not None  # type: ignore[attr-defined]
    await deps.db.execute(
        "UPDATE analysis_snapshots SET fetched_at = now() - interval '30 minutes'"
    )
    await deps.redis.delete(l1_key(deps, "onchain", UNISWAP.id))

    # another process whose budget is 1 call a minute: the calls above already spent it
    tight = _process(deps, with_http, sources, rate=1)
    outcome = await run_tool(tight, "onchain", UNISWAP)
    result = outcome.result
    assert outcome.cache == "stale" and result.stale
    assert result.price_usd == first.result.price_usd  # type: ignore[attr-defined]
    assert 1700 < result.age_seconds < 2000
    answer, _ = write_answer(
        UNISWAP, {"onchain": result}, assess({"onchain": result}), sources_of({"onchain": result})
    )
    assert "budget" not in answer and "local rate" not in answer
    assert "30 min old" in answer


async def test_one_batched_call_keeps_many_quotes_fresh(deps: Deps, with_http: Any) -> None:
    from datetime import timedelta

    from tests.tools_fakes import json_response, markets_row
    from tools.quotes import refresh_quotes
    from tools.results import utcnow

    sources = FakeSources()
    fast = _process(deps, with_http, sources, rate=1000)
    first = await run_tool(fast, "onchain", UNISWAP)
    assert first.cache == "live"
    # newer quotes (the coin payload was a minute old) arrive in one call for both coins
    now = utcnow() - timedelta(seconds=1)
    sources.script(
        "coingecko:markets",
        json_response(
            [
                markets_row("uniswap", price=12.34, last_updated=now),
                markets_row("bitcoin", price=99_000.0, last_updated=now),
            ]
        ),
    )
    assert await refresh_quotes(fast, ["uniswap", "bitcoin"] * 3) == 2
    assert sources.calls["coingecko:markets"] == 1

    served = await run_tool(fast, "onchain", UNISWAP)
    assert served.cache == "hot" and served.l1_digest is None  # overlaid: not replayable
    result = served.result
    assert result.price_usd == 12.34  # type: ignore[attr-defined]
    assert result.as_of == now
    assert sources.calls["coingecko:coin"] == 1  # no per-coin refresh was needed


async def test_markets_calls_are_chunked_by_250(deps: Deps, with_http: Any) -> None:
    from tools.sources import coingecko

    sources = FakeSources()
    fast = _process(deps, with_http, sources, rate=1000)
    rows = await coingecko.fetch_markets(fast, [f"coin-{i}" for i in range(600)] + ["uniswap"])
    assert sources.calls["coingecko:markets"] == 3 and [r["id"] for r in rows] == ["uniswap"]


@pytest.mark.slow
async def test_a_simulated_hour_stays_within_budgets_and_fresh(deps: Deps) -> None:
    """An hour of 300 questions about the top 100 coins, compressed 120x (30 s), with the real
    keyless budgets (CoinGecko 10/min, GitHub 60/h): no budget exceeded in any window, and the
    market figures of at least 95 % of answers under 15 minutes old."""
    from tests.freshness_sim import simulate

    sim = await simulate(deps, scale=120, questions=300)
    assert sim.questions == 300 and sim.market_answers > 150
    for source, (limit, _window) in sim.limits.items():
        assert sim.max_in_window(source) <= limit, (source, sim.max_in_window(source))
    assert sim.fresh_share >= 0.95, (sim.fresh, sim.market_answers, sim.from_snapshot)
