"""Parsers against the recorded real responses in ../shared/fixtures (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_FIXTURES
from tools.flags import contract_flags
from tools.holders import concentration
from tools.sources import coingecko, defillama, feargreed, news
from tools.sources import github as gh

pytestmark = [
    pytest.mark.contract,
    pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason="../shared/fixtures not present"),
]


def load(name: str) -> Any:
    return json.loads((SHARED_FIXTURES / name).read_text(encoding="utf-8"))


def test_coingecko_coin_bitcoin_2021() -> None:
    coin = load("coingecko/coins_bitcoin_2021-05-15.json")
    facts = coingecko.market_facts(coin)
    assert facts["price_usd"] == 49007 and facts["market_cap_rank"] == 1
    assert facts["tvl_usd"] is None
    assert coingecko.platforms(coin) == {}  # native coin: {"": ""}
    share = coingecko.green_volume_share(coin)
    assert share is not None and 0.5 < share <= 1
    assert coingecko.github_repos(coin)[0] == "https://github.com/bitcoin/bitcoin"
    assert coingecko.votes_up_pct(coin) == 60.15


def test_coingecko_contract_body_has_platforms() -> None:
    coin = load("coingecko/coins_ethereum_contract_usdt_2021-08-13.json")
    assert len(coingecko.platforms(coin)) == 7
    assert (
        coingecko.supply_facts(load("coingecko/coins_ark_trimmed_arkscan.json"))[
            "circulating_supply"
        ]
        is not None
    )


def test_market_chart_inflation_matches_bitcoin_issuance() -> None:
    chart = load("coingecko/market_chart_bitcoin_90d_daily_2021-05-15.json")
    inflation = coingecko.implied_inflation(chart)
    assert inflation is not None and 0.005 < inflation < 0.04  # ≈1.8 %/yr in 2021
    assert len(coingecko.price_history(load("coingecko/market_chart_ark_max_arkscan.json"))) == 200
    vol = coingecko.volatility_annual(chart)
    assert vol is not None and 0.3 < vol < 2


def test_defillama_trimmed_protocol() -> None:
    body = load("defillama/protocol_uniswap_2021-06_trimmed.json")
    status, links = defillama.audits(body)
    assert status == "audited" and len(links) == 3
    assert defillama.current_tvl(body) is None  # trimmed: no currentChainTvls, no tvl[]


def test_goplus_cake_excludes_dead_and_binance() -> None:
    body = load("goplus/token_security_bsc_cake_bsn_trench-scanner.json")
    cake = body["result"]["0x0e09fabb73bd3ade0a17ecc321fd13a19e81ce82"]
    holders = concentration(cake)
    assert holders.top10_share == 0  # dead address (locked) and Binance 8 both excluded
    flags, _points = contract_flags(cake, holders)
    mintable = next(f for f in flags if f.name == "mintable")
    assert mintable.status == "yes" and mintable.points == 20  # halved: trust list / CEX
    bsn = body["result"]["0x6b4acce5878c2850b5d5acfdde009cc4c9e14444"]
    assert concentration(bsn).top10_share is None  # no holders listed


def test_github_bodies() -> None:
    repo = gh.repo_stats(load("github/repos_PyGithub_PyGithub.json"))
    assert repo.stars == 7122 and repo.forks == 1793 and repo.archived is False
    from datetime import UTC, datetime

    then = datetime(2013, 11, 11, tzinfo=UTC)
    assert (
        gh.commits_from_activity(load("github/stats_commit_activity_PyGithub.json"), then) or 0
    ) > 0
    assert (gh.active_contributors(load("github/stats_contributors_PyGithub.json"), then) or 0) >= 1
    assert gh.commit_authors(load("github/commits_PyGithub_page1.json")) >= 1


def test_feargreed_and_rss() -> None:
    assert feargreed.parse(load("feargreed/fng_limit2_quant-dashboard.json")).value == 69
    path: Path = SHARED_FIXTURES / "rss/coindesk_rss_2026-09-25_trimmed.xml"
    items = news.parse_feed(path.read_bytes(), "https://www.coindesk.com/arc/outboundfeeds/rss")
    assert len(items) == 3 and all(i.summary and i.published_at for i in items)
