"""Ages come from the data itself: a source's own timestamp, not the time we fetched it, and a
cached result reports its true age (issue: answers people can trust)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from agent.assess import assess
from agent.facts import sources_of
from agent.writer import write_answer
from chainlens.deps import Deps
from tests.tools_fakes import UNISWAP, FakeSources, coin_body, fast_http, json_response
from tools.analysis import run_tool
from tools.results import utcnow


async def test_an_old_coingecko_payload_is_labelled_with_its_own_age(
    deps: Deps, with_http: object, sources: FakeSources
) -> None:
    old = "2021-05-15T15:58:12.266Z"
    coin = coin_body("uniswap")
    coin["last_updated"] = old
    sources.script("coingecko:coin", json_response(coin))
    fast = fast_http(with_http(deps, sources.transport()))  # type: ignore[operator]

    outcome = await run_tool(fast, "onchain", UNISWAP)
    result = outcome.result
    assert result.as_of == datetime(2021, 5, 15, 15, 58, 12, 266000, tzinfo=UTC)
    assert result.age_seconds > 5 * 365 * 86400
    cg = [s for s in sources_of({"onchain": result}) if s.source == "CoinGecko"]
    assert cg and cg[0].stale and cg[0].age_seconds > 5 * 365 * 86400
    answer, report = write_answer(
        UNISWAP, {"onchain": result}, assess({"onchain": result}), sources_of({"onchain": result})
    )
    assert (
        "data just now" not in answer.split("**Sources**")[1].split("CoinGecko")[1].split("\n")[0]
    )
    assert any("Market & on-chain:" in a and "(stale)" in a for a in report.data_ages)


async def test_a_cached_result_reports_its_true_age(
    deps: Deps, with_http: object, sources: FakeSources
) -> None:
    fresh = (utcnow() - timedelta(minutes=10)).isoformat()
    coin = coin_body("uniswap")
    coin["last_updated"] = fresh
    sources.script("coingecko:coin", json_response(coin))
    fast = fast_http(with_http(deps, sources.transport()))  # type: ignore[operator]
    first = await run_tool(fast, "onchain", UNISWAP)
    assert first.cache == "live" and 590 < first.result.age_seconds < 700
    again = await run_tool(fast, "onchain", UNISWAP)
    assert again.cache == "hot" and again.result.age_seconds >= first.result.age_seconds


def test_fear_and_greed_is_judged_by_its_daily_rhythm() -> None:
    from tools.results import Evidence, SentimentResult

    now = utcnow()
    result = SentimentResult(
        project_id="x",
        evidence=[
            Evidence(
                source="alternative.me",
                url="https://alternative.me/crypto/fear-and-greed-index/",
                fetched_at=now,
                data_as_of=now - timedelta(hours=20),
            ),
            Evidence(
                source="alternative.me",
                url="https://alternative.me/x",
                fetched_at=now,
                data_as_of=now - timedelta(days=84),
            ),
        ],
    )
    ages = {s.url: s for s in sources_of({"sentiment": result}, now=now)}
    assert not ages["https://alternative.me/crypto/fear-and-greed-index/"].stale
    assert ages["https://alternative.me/x"].stale
    assert json.loads(result.model_dump_json())["evidence"][0]["data_as_of"]
