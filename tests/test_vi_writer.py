"""The deterministic writer in English and Vietnamese: answers for a fixed result set compared
with committed snapshots (tests/snapshots/writer_*.md), and Vietnamese number formatting.

Regenerate the snapshots after an intended wording change with
`CHAINLENS_UPDATE_SNAPSHOTS=1 pytest tests/test_vi_writer.py` and review the diff."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.assess import assess
from agent.facts import facts_of, risks_of, sources_of
from agent.writer import write_answer, write_no_data_reply, write_no_project_reply
from chainlens.i18n import localizer
from tools.results import (
    Evidence,
    Headline,
    OnchainResult,
    Project,
    RepoStats,
    RiskFlag,
    SentimentResult,
    TeamResult,
    TokenomicsResult,
    ToolResult,
    utcnow,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"
UNI = Project(id="uniswap", symbol="UNI", name="Uniswap", market_cap_rank=20)


def fixed_results() -> dict[str, ToolResult]:
    """Every kind of fact, risk and age the writer words; ages are whole minutes/hours/days."""
    now = utcnow()
    fresh = now - timedelta(minutes=4, seconds=30)
    gecko = Evidence(
        source="CoinGecko",
        url="https://www.coingecko.com/en/coins/uniswap",
        fetched_at=fresh,
        data_as_of=fresh,
    )
    news = Evidence(
        source="CoinDesk RSS",
        url="https://www.coindesk.com/arc/outboundfeeds/rss/",
        fetched_at=now - timedelta(hours=3, minutes=5),
    )
    fng = Evidence(
        source="alternative.me",
        url="https://api.alternative.me/fng/",
        fetched_at=now - timedelta(days=2, hours=1),
    )
    github = Evidence(
        source="GitHub", url="https://github.com/Uniswap", fetched_at=now - timedelta(seconds=20)
    )
    return {
        "onchain": OnchainResult(
            project_id="uniswap",
            as_of=fresh,
            price_usd=7.4231,
            market_cap_usd=1.52e9,
            market_cap_rank=20,
            volume_24h_usd=234_567_890.0,
            change_24h_pct=-3.21,
            change_7d_pct=12.46,
            ath_usd=44.97,
            ath_change_pct=-83.5,
            fdv_usd=7.42e9,
            tvl_usd=3.5e9,
            holder_count=384_512,
            top10_share=0.5812,
            volatility_annual=1.34,
            market_score=71.6,
            evidence=[gecko],
        ),
        "sentiment": SentimentResult(
            project_id="uniswap",
            as_of=now - timedelta(hours=3, minutes=5),
            score=38.2,
            label="Fear",
            trend="bearish",
            volume_24h=4,
            volume_7d=19,
            votes_up_pct=81.0,
            fear_greed=27,
            fear_greed_label="Fear",
            evidence=[news, fng],
            headlines=[
                Headline(
                    title="Uniswap exploit drains a pool",
                    url="https://news.example/1",
                    source="CoinDesk",
                    compound=-0.71,
                )
            ],
        ),
        "tokenomics": TokenomicsResult(
            project_id="uniswap",
            as_of=fresh,
            circulating_supply=600_483_073.71,
            max_supply=1_000_000_000.0,
            circulating_ratio=0.6005,
            fdv_to_mcap=4.88,
            inflation_annual_pct=21.4,
            top10_share=0.42,
            distribution_health="concentrated",
            risk_score=6,
            tokenomics_score=44.0,
            lock_ends=[datetime(2027, 3, 4, tzinfo=UTC)],
            flags=[
                RiskFlag(name="mintable", status="yes", points=40),
                RiskFlag(
                    name="upgradeable proxy", status="yes", points=15, detail="ownership renounced"
                ),
            ],
            evidence=[gecko],
        ),
        "team": TeamResult(
            project_id="uniswap",
            as_of=now - timedelta(seconds=20),
            repos=[
                RepoStats(full_name="Uniswap/v4-core", url="https://github.com/Uniswap/v4-core")
            ],
            commits_90d=412,
            active_contributors_90d=23,
            stars=15_234,
            forks=4_321,
            last_push=datetime(2026, 11, 28, tzinfo=UTC),
            github_activity="high",
            audits_status="audited",
            audit_links=["https://audits.example/a", "https://audits.example/b"],
            backers=["Paradigm", "a16z"],
            credibility_score=8.5,
            team_score=88.0,
            evidence=[github],
        ),
    }


Case = Callable[[str], str]


def full_answer(language: str) -> str:
    results = fixed_results()
    return write_answer(UNI, results, assess(results), sources_of(results), localizer(language))[0]


def aspect_answer(language: str) -> str:
    results = {"tokenomics": fixed_results()["tokenomics"]}
    return write_answer(UNI, results, assess(results), sources_of(results), localizer(language))[0]


def partial_answer(language: str) -> str:
    results = fixed_results()
    results["team"] = TeamResult(project_id="uniswap", missing={"all": "timed out after 12s"})
    results["sentiment"] = results["sentiment"].model_copy(
        update={"stale": True, "age_seconds": 7200}
    )
    return write_answer(UNI, results, assess(results), sources_of(results), localizer(language))[0]


def no_data_reply(language: str) -> str:
    results: dict[str, ToolResult] = {
        "onchain": OnchainResult(
            project_id="uniswap", missing={"price_usd": "CoinGecko could not be fetched: HTTP 503"}
        ),
        "team": TeamResult(project_id="uniswap", missing={"all": "the tool failed unexpectedly"}),
    }
    return write_no_data_reply(UNI, results, localizer(language))


def no_project_replies(language: str) -> str:
    loc = localizer(language)
    return (
        write_no_project_reply("xin chào", [], loc)
        + "\n"
        + write_no_project_reply(
            "cardona", [Project(id="cardano", symbol="ADA", name="Cardano")], loc
        )
    )


CASES: dict[str, Case] = {
    "full": full_answer,
    "aspect": aspect_answer,
    "partial": partial_answer,
    "no_data": no_data_reply,
    "no_project": no_project_replies,
}


@pytest.mark.parametrize("language", ["en", "vi"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_writer_snapshot(case: str, language: str) -> None:
    text = CASES[case](language)
    path = SNAPSHOTS / f"writer_{case}.{language}.md"
    if os.environ.get("CHAINLENS_UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def every_fact(language: str) -> str:
    """All facts and risks of the fixed results (the answer shows only the top three)."""
    loc = localizer(language)
    return "\n".join(
        line for r in fixed_results().values() for line in [*facts_of(r, loc), *risks_of(r, loc)]
    )


def test_vietnamese_answer_has_no_english_template_text() -> None:
    text = full_answer("vi") + aspect_answer("vi") + partial_answer("vi") + every_fact("vi")
    for english in (
        "Executive summary",
        "Top insights",
        "Key risks",
        "Stance:",
        "Risk score",
        "Not financial advice",
        "**Sources**",
        "min old",
        "h old",
        "days old",
        "just now",
        "Market cap",
        "holders",
        "Circulating supply",
        "data is",
        "rule-based writer",
        "timed out after",
        "score",
    ):
        assert english not in text, english
    # Vietnamese figures: 1.234,5 grouping, tỷ/triệu with USD kept
    for figure in (
        "1,52 tỷ USD",
        "234,57 triệu USD",
        "7,42 USD",
        "384.512 người nắm giữ",
        "600.483.074",
        "-3,2%",
        "+12,5%",
        "58,1%",
        "04/03/2027",
        "28/11/2026",
        "15.234 sao GitHub",
        "Mức uy tín 8,5/10",
    ):
        assert figure in text, figure
    for age in ("4 phút trước", "3 giờ trước", "2 ngày trước", "vừa xong"):
        assert age in text, age
    assert "Quan điểm:" in text and "KHÔNG KHUYẾN NGHỊ (NO CALL)" in text


def test_english_answer_keeps_english_formatting() -> None:
    text = full_answer("en") + every_fact("en")
    for figure in (
        "$1.52B",
        "$234.57M",
        "$7.42",
        "384,512 holders",
        "600,483,074",
        "-3.2%",
        "2027-03-04",
        "4 min old",
        "3 h old",
        "2 days old",
    ):
        assert figure in text, figure


@pytest.mark.parametrize(
    ("value", "en", "vi"),
    [
        (1.52e9, "$1.52B", "1,52 tỷ USD"),
        (3.2e6, "$3.20M", "3,20 triệu USD"),
        (2.1e12, "$2.10T", "2,10 nghìn tỷ USD"),
        (12_345.678, "$12,345.68", "12.345,68 USD"),
        (0.000123456, "$0.000123456", "0,000123456 USD"),
    ],
)
def test_money(value: float, en: str, vi: str) -> None:
    assert localizer("en").usd(value) == en
    assert localizer("vi").usd(value) == vi


def test_numbers_and_ages() -> None:
    vi, en = localizer("vi"), localizer("en")
    assert vi.number(1234.5, 1) == "1.234,5" and en.number(1234.5, 1) == "1,234.5"
    assert vi.pct(-3.21) == "-3,2%" and vi.pct(4.0) == "+4,0%" and vi.share(0.423, 1) == "42,3%"
    assert [vi.age(s) for s in (5, 240, 3 * 3600 + 5, 2 * 86400 + 9)] == [
        "vừa xong",
        "4 phút trước",
        "3 giờ trước",
        "2 ngày trước",
    ]
    assert [en.age(s) for s in (5, 240, 3 * 3600 + 5, 2 * 86400 + 9)] == [
        "just now",
        "4 min old",
        "3 h old",
        "2 days old",
    ]
