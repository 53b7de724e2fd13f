"""Parsers and scoring over small synthetic bodies in the real response shapes."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from tests.tools_fakes import (
    BITCOIN,
    UNISWAP,
    chart_body,
    coin_body,
    commit_activity_body,
    contributors_body,
    goplus_body,
    protocol_body,
    protocols_body,
    rss_body,
)
from tools import scoring
from tools.flags import contract_flags
from tools.holders import concentration
from tools.http import BadResponse
from tools.results import Project
from tools.sentiment import compound
from tools.sources import coingecko, defillama, feargreed, news
from tools.sources import github as gh


def test_market_facts_read_usd_values_and_keep_unknowns_none() -> None:
    facts = coingecko.market_facts(coin_body())
    assert facts["price_usd"] == 10.0
    assert facts["market_cap_rank"] == 20
    assert facts["fdv_usd"] == 10_000_000_000
    assert facts["tvl_usd"] is None and facts["mcap_to_tvl"] is None  # null in the body
    body = coin_body()
    del body["market_data"]["total_volume"]
    body["market_data"]["market_cap"] = {"usd": 0}  # CoinGecko's "unknown"
    facts = coingecko.market_facts(body)
    assert facts["volume_24h_usd"] is None and facts["market_cap_usd"] is None


def test_old_schema_tvl_object_is_read() -> None:
    body = coin_body()
    body["market_data"]["total_value_locked"] = {"btc": 10, "usd": 123.0}
    assert coingecko.market_facts(body)["tvl_usd"] == 123.0


def test_green_volume_share_ignores_anomalous_tickers() -> None:
    assert coingecko.green_volume_share(coin_body()) == pytest.approx(260 / 300)
    assert coingecko.green_volume_share({"tickers": []}) is None


def test_native_coin_platforms_are_empty_and_links_skip_blanks() -> None:
    assert coingecko.platforms(coin_body("bitcoin")) == {}
    assert coingecko.platforms(coin_body()) == {"ethereum": UNISWAP.platforms["ethereum"]}
    links = coingecko.links(coin_body())
    assert links["homepage"] == "https://uniswap.org/"
    assert links["twitter"] == "https://twitter.com/Uniswap"
    assert "telegram" not in links


def test_price_history_is_downsampled_to_200_points_keeping_ends() -> None:
    chart = chart_body(365)
    points = coingecko.price_history(chart)
    assert len(points) == 200
    assert points[0] == tuple(chart["prices"][0]) and points[-1] == tuple(chart["prices"][-1])


def test_volatility_and_implied_inflation() -> None:
    chart = chart_body(365, supply_growth=0.05)
    vol = coingecko.volatility_annual(chart)
    assert vol is not None and 1.0 < vol < 1.3  # ±3 % daily swings
    inflation = coingecko.implied_inflation(chart)
    assert inflation == pytest.approx(0.05, abs=0.002)
    assert coingecko.volatility_annual(chart_body(5)) is None
    assert coingecko.implied_inflation(chart_body(10)) is None


def test_defillama_tvl_follows_default_rules() -> None:
    assert defillama.current_tvl(protocol_body()) == 3_500_000_000
    trimmed = {"tvl": [{"date": 1, "totalLiquidityUSD": 5.0}]}
    assert defillama.current_tvl(trimmed) == 5.0
    assert defillama.current_tvl({"chainTvls": {}}) is None


def test_defillama_slug_audits_and_backers() -> None:
    assert defillama.slug_map(protocols_body()) == {"uniswap": "uniswap"}
    assert defillama.audits(protocol_body()) == ("audited", protocol_body()["audit_links"])
    assert defillama.audits({"audits": "3"})[0] == "audited fork"
    assert defillama.audits({})[0] == "unknown"
    assert defillama.backers(protocol_body()) == [
        "Andreessen Horowitz",
        "Paradigm",
        "Union Square Ventures",
        "Polychain Capital",
    ]


def test_concentration_excludes_burn_locked_and_exchange_wallets() -> None:
    token = goplus_body()["result"][UNISWAP.platforms["ethereum"]]
    result = concentration(token)
    assert result.top10_share == pytest.approx(0.08)
    assert result.largest_share == pytest.approx(0.05)
    assert len(result.excluded) == 2
    assert [d.year for d in result.lock_ends] == [2027]
    assert concentration({}).top10_share is None


def test_flags_mitigations_and_points() -> None:
    address = UNISWAP.platforms["ethereum"]
    token = goplus_body()["result"][address]
    flags, points = contract_flags(token, concentration(token))
    by_name = {f.name: f for f in flags}
    assert (
        by_name["mintable"].status == "yes" and by_name["mintable"].points == 20
    )  # trusted: halved
    assert points == 20
    scam = goplus_body(
        is_honeypot="1",
        trust_list="0",
        is_in_cex={"listed": "0"},
        sell_tax="0.3",
        owner_address="",
        hidden_owner="",
    )["result"][address]
    flags, points = contract_flags(scam, concentration(scam))
    by_name = {f.name: f for f in flags}
    assert by_name["honeypot (cannot sell)"].points == 40
    assert by_name["sell tax"].points == 30
    assert by_name["mintable"].points == 0 and by_name["mintable"].detail == "ownership renounced"
    assert by_name["hidden owner"].status == "unknown"  # "" is unknown, not "no"
    assert points == 70


def test_news_matching_uses_word_boundaries_and_dollar_for_short_symbols() -> None:
    items = news.parse_feed(
        rss_body(
            [
                ("Uniswap grows", "", 1),
                ("Uniswapper is a different thing", "", 1),
                ("OP rallies", "", 1),
                ("$OP rallies", "", 1),
                ("Optimism news", "", 1),
            ]
        ),
        "https://www.coindesk.com/arc/outboundfeeds/rss",
    )
    assert [i.title for i in news.matching(items, UNISWAP)] == ["Uniswap grows"]
    op = Project(id="optimism", symbol="OP", name="Optimism")
    assert sorted(i.title for i in news.matching(items, op)) == ["$OP rallies", "Optimism news"]
    assert items[0].source == "CoinDesk RSS" and items[0].published_at is not None


def test_feed_summary_survives_empty_dc_description() -> None:
    items = news.parse_feed(rss_body([("Uniswap grows", "Real summary", 1)]), "https://x.test/rss")
    assert items[0].summary == "Real summary"
    with pytest.raises(BadResponse):
        news.parse_feed(b"<html>not a feed", "https://x.test/rss")


def test_fear_greed_parse_and_error_envelope() -> None:
    fng = feargreed.parse(
        {
            "data": [{"value": "26", "value_classification": "Fear", "timestamp": "1783728000"}],
            "metadata": {"error": None},
        }
    )
    assert (fng.value, fng.label) == (26, "Fear")
    with pytest.raises(BadResponse):
        feargreed.parse({"data": [], "metadata": {"error": "rate limited"}})


def test_github_windows_count_recent_work_only() -> None:
    # three days into the fixture's newest week: its 14 newest weeks overlap the last 90 days
    body = commit_activity_body()
    now = datetime.fromtimestamp(body[-1]["week"] + 3 * 86400, UTC)
    assert gh.commits_from_activity(body, now) == 140  # 14 weeks overlap 90 d
    assert gh.active_contributors(contributors_body(), now) == 4
    assert gh.commits_from_activity({}, now) is None
    assert gh.parse_ref("https://github.com/Uniswap/v3-core") == ("Uniswap", "v3-core")
    assert gh.parse_ref("Uniswap") == ("Uniswap", None)
    assert gh.parse_ref("https://gitlab.com/x/y") is None


def test_vader_knows_crypto_words() -> None:
    assert compound("Traders are bullish") > 0.3
    assert compound("Protocol hit by exploit, funds drained") < -0.3


def test_scores_renormalise_and_refuse_to_guess() -> None:
    assert scoring.market_score({"size": 1.0}) == 100.0
    assert scoring.market_score({}) is None
    assert scoring.sentiment_score(None, None, None) is None
    assert scoring.news_score([(0.5, 1.0), (-0.5, 1.0)]) == pytest.approx(50)
    assert scoring.news_score([(1.0, 24 * 8)]) is None  # older than a week
    assert scoring.band(50) == "Neutral" and scoring.band(80) == "Extreme Greed"
    assert (
        scoring.trend(60, 70, 60) == "bullish" and scoring.trend(None, 1, 1) == "insufficient data"
    )
    assert scoring.risk_score_1_10(0) == 1 and scoring.risk_score_1_10(100) == 10
    assert scoring.fundamentals_component(3) == pytest.approx(0.75)
    assert scoring.size_component(1e6) == 0 and math.isclose(scoring.size_component(1e11) or 0, 1)
    assert BITCOIN.platforms == {}
