"""Error paths at the network boundary: every failure costs only its own fields, never raises."""

from __future__ import annotations

import httpx
import pytest

from chainlens.deps import Deps
from tests.tools_fakes import UNISWAP, FakeSources, coin_body, json_response
from tools.http import NotFound, SourceUnavailable, get_json
from tools.onchain import run_onchain
from tools.results import Project
from tools.sentiment import run_sentiment
from tools.team import run_team
from tools.tokenomics import run_tokenomics


async def test_429_then_success_is_retried(fast_deps: Deps, sources: FakeSources) -> None:
    sources.script(
        "coingecko:coin",
        json_response(
            {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit"}},
            429,
            {"Retry-After": "0"},
        ),
    )
    run = await run_onchain(fast_deps, UNISWAP)
    assert run.result.price_usd == 10.0
    assert sources.calls["coingecko:coin"] == 2
    assert "price_usd" not in run.result.missing


async def test_timeout_costs_only_coingecko_fields(fast_deps: Deps, sources: FakeSources) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    sources.script("coingecko:coin", timeout, timeout, timeout)
    run = await run_onchain(fast_deps, UNISWAP)
    r = run.result
    assert r.price_usd is None and "timed out" in r.missing["price_usd"]
    assert r.tvl_usd == 3_500_000_000 and r.holder_count == 380_000  # other sources still count
    assert r.market_score is not None
    assert sources.calls["coingecko:coin"] == 3


async def test_unknown_coin_404_is_a_reason_not_an_exception(fast_deps: Deps) -> None:
    ghost = Project(id="no-such-coin", symbol="NSC", name="No Such Coin")
    run = await run_onchain(fast_deps, ghost)
    assert (
        "coin not found" in run.result.missing["price_usd"]
        or "not found" in run.result.missing["price_usd"]
    )
    with pytest.raises(NotFound):
        await get_json(
            fast_deps, "https://api.coingecko.com/api/v3/coins/no-such-coin", source="CoinGecko"
        )


async def test_5xx_exhausts_retries_into_source_unavailable(
    fast_deps: Deps, sources: FakeSources
) -> None:
    sources.script("feargreed", *[json_response({}, 503)] * 3)
    with pytest.raises(SourceUnavailable, match="HTTP 503 after 3 attempts"):
        await get_json(fast_deps, "https://api.alternative.me/fng/", source="alternative.me")


async def test_400_is_not_retried(fast_deps: Deps, sources: FakeSources) -> None:
    sources.script("feargreed", json_response({}, 400))
    run = await run_sentiment(fast_deps, UNISWAP)
    assert sources.calls["feargreed"] == 1
    assert "HTTP 400" in run.result.missing["fear_greed"]


async def test_github_202_is_retried_then_read(fast_deps: Deps, sources: FakeSources) -> None:
    sources.script("github:stats_commit_activity", json_response({}, 202), json_response({}, 202))
    run = await run_team(fast_deps, UNISWAP)
    # 10 commits a week; 13 or 14 weekly buckets overlap a 90-day window, by the weekday
    assert run.result.commits_90d in (130, 140)
    assert sources.calls["github:stats_commit_activity"] == 3
    assert sources.calls["github:commits"] == 0


async def test_github_stuck_at_202_falls_back_to_commits(
    fast_deps: Deps, sources: FakeSources
) -> None:
    sources.script("github:stats_commit_activity", *[json_response({}, 202)] * 3)
    sources.script("github:stats_contributors", *[json_response({}, 202)] * 3)
    run = await run_team(fast_deps, UNISWAP)
    assert run.result.commits_90d == 12 and run.result.active_contributors_90d == 3
    assert sources.calls["github:commits"] == 1


async def test_goplus_error_code_leaves_flags_unknown(
    fast_deps: Deps, sources: FakeSources
) -> None:
    sources.script(
        "goplus",
        json_response({"code": 2004, "message": "contract address format error", "result": {}}),
    )
    run = await run_tokenomics(fast_deps, UNISWAP)
    r = run.result
    assert r.flags == [] and r.risk_score is None
    assert "GoPlus error code 2004" in r.missing["flags"]
    assert r.circulating_supply == 600_000_000  # CoinGecko part unaffected
    assert r.tokenomics_score is not None


async def test_malformed_json_is_a_bad_response(fast_deps: Deps, sources: FakeSources) -> None:
    sources.script(
        "defillama:protocol",
        httpx.Response(200, content=b"{not json", headers={"content-type": "application/json"}),
    )
    run = await run_onchain(fast_deps, UNISWAP)
    assert run.result.tvl_usd is None
    assert "not valid JSON" in run.result.missing["tvl_usd"]


async def test_missing_field_is_unknown_not_zero(fast_deps: Deps, sources: FakeSources) -> None:
    body = coin_body()
    del body["market_data"]["total_volume"]
    body["market_data"]["fully_diluted_valuation"] = {}
    sources.script("coingecko:coin", json_response(body))
    run = await run_onchain(fast_deps, UNISWAP)
    r = run.result
    assert r.volume_24h_usd is None and r.fdv_usd is None
    assert r.missing["volume_24h_usd"] == "CoinGecko did not report it"
    assert r.price_usd == 10.0


async def test_feeds_down_give_insufficient_data(fast_deps: Deps, sources: FakeSources) -> None:
    sources.down.update({"www.coindesk.com", "cointelegraph.com", "decrypt.co"})
    run = await run_sentiment(fast_deps, UNISWAP)
    r = run.result
    assert r.score is None and r.trend == "insufficient data"
    assert "no news feed could be fetched" in r.missing["headlines"]
    assert r.fear_greed == 69 and r.votes_up_pct == 70.0


async def test_native_coin_flags_are_not_applicable(fast_deps: Deps, sources: FakeSources) -> None:
    run = await run_tokenomics(fast_deps, Project(id="bitcoin", symbol="BTC", name="Bitcoin"))
    r = run.result
    assert not r.contract_applicable
    assert {f.status for f in r.flags} == {"not applicable"}
    assert sources.calls["goplus"] == 0 and r.risk_score == 1
