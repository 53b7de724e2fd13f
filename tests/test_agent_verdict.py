"""One verdict per evidence set: the same data gives one stance and risk score or none,
whatever the question's wording or the tools it ran (issue: answers people can trust)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from agent import answer
from agent.assess import assess
from chainlens.deps import Deps
from tests.tools_fakes import FakeSources, fast_http
from tools.results import (
    OnchainResult,
    SentimentResult,
    TeamResult,
    TokenomicsResult,
    ToolResult,
)

WithHttp = Callable[[Deps, httpx.AsyncBaseTransport], Deps]

PHRASINGS = [
    "Research Uniswap",
    "research uniswap please",
    "Full analysis of UNI",
    "Should I buy Uniswap?",
    "should i buy $UNI",
    "Is Uniswap a good investment?",
    "price of uniswap",
    "What's UNI trading at?",
    "uniswap market cap",
    "Uniswap tokenomics?",
    "UNI supply and unlocks",
    "is uniswap's contract safe?",
    "is the Uniswap team legit?",
    "Uniswap github activity",
    "who are the uniswap devs",
    "Uniswap sentiment",
    "what's the news on UNI",
    "is there FUD about uniswap",
    "Uniswap price and tokenomics",
    "uniswap team and sentiment",
    "evaluate uniswap",
    "give me a report on Uniswap",
    "UNI risk",
    "tell me about uniswap",
    # Vietnamese, accented and not: the same data, the same verdict or none
    "Phân tích Uniswap",
    "phan tich uniswap",
    "Có nên mua UNI không?",
    "co nen mua uniswap",
    "Giá Uniswap hôm nay",
    "Tokenomics của Uniswap thế nào?",
    "Đội ngũ Uniswap có uy tín không?",
    "Tâm lý thị trường về UNI",
    "Đánh giá Uniswap",
    "nguon cung luu hanh cua uniswap",
]


@pytest.fixture
def agent_deps(deps: Deps, with_http: WithHttp, sources: FakeSources) -> Deps:
    return fast_http(with_http(deps, sources.transport()))


async def test_many_phrasings_on_fixed_data_give_one_verdict_or_none(agent_deps: Deps) -> None:
    verdicts: dict[tuple[str, int | None], list[str]] = {}
    for question in PHRASINGS:
        final = await answer(agent_deps, question)
        assert final.report is not None, question
        key = (final.report.stance, final.report.risk_score)
        verdicts.setdefault(key, []).append(question)
        if len(final.plan.tools) < 4:
            # an aspect question: findings only, never an investment stance or score
            assert key == ("NO CALL", None), (question, key)
            assert "Stance: BUY" not in final.answer and "Stance: HOLD" not in final.answer
    calls = {k: v for k, v in verdicts.items() if k != ("NO CALL", None)}
    assert len(calls) <= 1, calls
    # the research phrasings ran all four tools on complete data and got the call
    assert calls, verdicts


def _full() -> dict[str, ToolResult]:
    return {
        "onchain": OnchainResult(project_id="x", market_score=82),
        "sentiment": SentimentResult(project_id="x", score=64, trend="neutral"),
        "tokenomics": TokenomicsResult(project_id="x", tokenomics_score=71, risk_score=3),
        "team": TeamResult(project_id="x", team_score=77),
    }


def test_every_tool_subset_gives_the_full_verdict_or_none() -> None:
    from itertools import combinations

    full = assess(_full())
    assert full.complete and full.stance != "NO CALL"
    tools = list(_full())
    for size in range(4):
        for subset in combinations(tools, size):
            data = _full()
            verdict = assess({t: data[t] for t in subset})
            assert verdict.stance == "NO CALL" and verdict.risk_score is None
            assert verdict.aspect_only


def test_a_full_answer_on_partial_data_says_what_is_missing() -> None:
    data = _full()
    data["team"] = TeamResult(project_id="x", missing={"all": "GitHub could not be fetched"})
    verdict = assess(data)
    assert verdict.stance == "NO CALL" and verdict.risk_score is None
    assert verdict.missing_tools == ["team"] and not verdict.aspect_only
    from agent.writer import render_verdict

    line = render_verdict(verdict)
    assert "team" in line and "no overall call" in line
