"""Questions about the whole market (no project): routing in both languages, the answers'
figures and sources, the cache, no fallback to the conversation's project, and the report
reading the same overview."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from agent import answer
from agent.cli import plan_one
from agent.rules import market_intent, movers_window, plan_by_rules
from chainlens.deps import Deps
from tests.tools_fakes import FNG_BODY, GLOBAL_BODY, FakeSources, fast_http
from tools.market import market_data

WithHttp = Callable[[Deps, httpx.AsyncBaseTransport], Deps]


@pytest.fixture
def mdeps(deps: Deps, with_http: WithHttp, sources: FakeSources) -> Deps:
    return fast_http(with_http(deps, sources.transport()))


@pytest.mark.parametrize(
    ("text", "kind", "window"),
    [
        ("What's the Fear and Greed index today?", "overview", "24h"),
        ("fear & greed?", "overview", "24h"),
        ("how is the market today?", "overview", "24h"),
        ("How's the crypto market looking", "overview", "24h"),
        ("BTC dominance now", "overview", "24h"),
        ("total market cap", "overview", "24h"),
        ("what's trending?", "trending", "24h"),
        ("which coins are hot right now? what's hot", "trending", "24h"),
        ("top gainers this week", "movers", "7d"),
        ("biggest losers today", "movers", "24h"),
        ("what's pumping", "movers", "24h"),
        ("chỉ số sợ hãi và tham lam hôm nay", "overview", "24h"),
        ("chi so so hai va tham lam", "overview", "24h"),
        ("thị trường hôm nay thế nào", "overview", "24h"),
        ("thi truong hom nay ra sao", "overview", "24h"),
        ("tỷ lệ thống trị của BTC", "overview", "24h"),
        ("coin nào đang hot", "trending", "24h"),
        ("coin nao dang hot", "trending", "24h"),
        ("đồng nào đang thịnh hành", "trending", "24h"),
        ("top tăng giá tuần này", "movers", "7d"),
        ("top giam gia hom nay", "movers", "24h"),
        ("coin nào tăng mạnh nhất 7 ngày qua", "movers", "7d"),
    ],
)
def test_market_phrasings_route_to_the_market(text: str, kind: str, window: str) -> None:
    assert market_intent(text) == kind
    assert movers_window(text) == window
    plan = plan_by_rules(text, has_project=False)
    assert (plan.intent, plan.market, plan.tools) == ("market", kind, ())


@pytest.mark.parametrize(
    "text",
    [
        "research uniswap",
        "and its team?",
        "what about its market cap?",
        "ETH tokenomics?",
        "tâm lý thị trường của SOL",
        "còn đội ngũ thì sao?",
        "hello",
    ],
)
def test_project_questions_are_not_market_questions(text: str) -> None:
    assert market_intent(text) is None


async def test_plan_reports_the_market_intent(mdeps: Deps, sources: FakeSources) -> None:
    assert await plan_one(mdeps, "top gainers this week") == {
        "project_id": None,
        "tools": [],
        "router": "rules",
        "market": "movers",
        "window": "7d",
    }
    assert (await plan_one(mdeps, "coin nào đang hot"))["market"] == "trending"
    assert (await plan_one(mdeps, "what's the fear and greed index today?"))["market"] == "overview"
    assert sources.total("coingecko:search") == 0  # market words are never searched as coins
    assert (await plan_one(mdeps, "research uniswap"))["project_id"] == "uniswap"


async def test_fear_and_greed_answer_has_the_value_label_and_date(mdeps: Deps) -> None:
    final = await answer(mdeps, "What's the Fear and Greed index today?")
    assert final.project is None and final.plan.intent == "market"
    assert final.plan.market == "overview" and final.substantive
    text = final.answer
    assert "Fear & Greed index: **69/100** (Greed), 2026-09-0" in text
    assert "Total market cap: $2.40T (-1.2% in 24 h); 24 h volume: $98.00B" in text
    assert "dominance 52.1%" in text and "dominance 17.3%" in text
    assert "Bitcoin (BTC): $10.00" in text  # the fake's /coins/markets quote
    assert {s.source for s in final.sources} == {"CoinGecko", "alternative.me"}
    assert "Not financial advice" in text and "**Sources**" in text
    assert final.market is not None and final.market.fear_greed == 69


async def test_vietnamese_market_answer(mdeps: Deps) -> None:
    final = await answer(mdeps, "thị trường hôm nay thế nào")
    assert final.language == "vi" and final.plan.market == "overview"
    text = final.answer
    assert "Tổng quan thị trường tiền mã hoá" in text
    assert "2,40 nghìn tỷ USD" in text and "52,1%" in text
    assert "Chỉ số Sợ hãi & Tham lam: **69/100** (Tham lam)" in text
    assert "Nguồn" in text


async def test_trending_and_movers(mdeps: Deps) -> None:
    trending = await answer(mdeps, "what's trending?")
    assert "## Trending on CoinGecko now" in trending.answer
    assert "1. Uniswap (UNI)" in trending.answer and "rank #20" in trending.answer
    weekly = await answer(mdeps, "top gainers this week")
    assert "top 100 coins by market cap (7 days)" in weekly.answer
    gainers = weekly.answer.split("**Gainers**")[1].split("**Losers**")[0]
    assert gainers.index("Chainlink (LINK)") < gainers.index("Solana (SOL)")  # +25.7% > +18.2%
    assert "+25.7% in 7 days" in gainers
    losers = weekly.answer.split("**Losers**")[1]
    assert losers.index("Uniswap (UNI)") < losers.index("XRP (XRP)")  # -12.0% before -7.5%
    daily = await answer(mdeps, "top tăng giá hôm nay")
    assert daily.language == "vi" and "Dogecoin (DOGE)" in daily.answer
    assert "+9,8%" in daily.answer


async def test_market_data_is_cached_and_single_flight(mdeps: Deps, sources: FakeSources) -> None:
    import asyncio

    first = await asyncio.gather(*(market_data(mdeps, "overview") for _ in range(5)))
    assert sources.calls["coingecko:global"] == 1 and sources.calls["feargreed"] == 1
    assert all(d.total_market_cap_usd == 2.4e12 for d in first)
    again = await answer(mdeps, "how is the market today?")
    assert again.cache_hit and again.market is not None and again.market.cache == "hot"
    assert sources.calls["coingecko:global"] == 1


async def test_a_failed_part_is_named_and_the_rest_still_answers(
    mdeps: Deps, sources: FakeSources
) -> None:
    sources.down.add("feargreed")
    final = await answer(mdeps, "how is the market today?")
    assert final.substantive and "Total market cap" in final.answer
    assert "Fear & Greed" not in final.answer.split("Not available")[0]
    assert "Not available right now: Fear & Greed index." in final.answer


async def test_everything_down_serves_the_last_good_copy_marked_stale(
    mdeps: Deps, sources: FakeSources
) -> None:
    await market_data(mdeps, "overview")
    await mdeps.redis.delete(mdeps.keys("market", "overview"))  # the hot entry expired
    mdeps = fast_http(mdeps)  # a fresh HTTP state: the short per-URL memo is gone too
    sources.down.update({"coingecko", "feargreed"})
    stale = await market_data(mdeps, "overview")
    assert stale.stale and stale.cache == "stale" and stale.fear_greed == 69
    final = await answer(mdeps, "how is the market today?")
    assert "last figures we could get" in final.answer and ", stale)" in final.answer


async def test_nothing_at_all_is_not_charged(mdeps: Deps, sources: FakeSources) -> None:
    sources.down.update({"coingecko", "feargreed"})
    final = await answer(mdeps, "what's trending?")
    assert not final.substantive and "couldn't get market data" in final.answer


async def test_market_question_never_falls_back_to_the_conversation(mdeps: Deps) -> None:
    conversation = uuid.uuid4().hex
    first = await answer(mdeps, "Research Uniswap", conversation_id=conversation)
    assert first.project is not None and first.project.id == "uniswap"
    for question in (
        "what's trending?",
        "How is the market today?",
        "what's the fear and greed index?",
        "thị trường hôm nay thế nào",
    ):
        market = await answer(mdeps, question, conversation_id=conversation)
        assert market.project is None and market.plan.intent == "market", question
    # the conversation still remembers its project: a true follow-up uses it
    follow = await answer(mdeps, "and its team?", conversation_id=conversation)
    assert follow.project is not None and follow.project.id == "uniswap"
    assert follow.plan.tools == ["team"]
    pointing = await answer(mdeps, "is it trending?", conversation_id=conversation)
    assert pointing.project is not None and pointing.project.id == "uniswap"


def test_fake_global_has_the_documented_shape() -> None:
    data = GLOBAL_BODY["data"]
    assert {"total_market_cap", "total_volume", "market_cap_percentage", "updated_at"} <= set(data)
    assert FNG_BODY["data"][0]["value_classification"] == "Greed"
