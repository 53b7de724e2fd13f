"""The whole graph without a model: real resolution and tools over faked data sources."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from agent import answer, answer_stream
from agent.events import (
    AgentEvent,
    FinalEvent,
    PlanEvent,
    TextEvent,
    ToolFinishedEvent,
    ToolStartedEvent,
)
from agent.stream import MAX_QUESTION_CHARS, clean_question
from chainlens.deps import Deps
from tests.tools_fakes import FakeSources, fast_http

WithHttp = Callable[[Deps, httpx.AsyncBaseTransport], Deps]


@pytest.fixture
def agent_deps(deps: Deps, with_http: WithHttp, sources: FakeSources) -> Deps:
    return fast_http(with_http(deps, sources.transport()))


async def collect(deps: Deps, question: str, **kwargs: object) -> list[AgentEvent]:
    return [event async for event in answer_stream(deps, question, **kwargs)]  # type: ignore[arg-type]


async def test_research_runs_all_tools_in_parallel_and_writes_every_section(
    agent_deps: Deps,
) -> None:
    events = await collect(agent_deps, "Research Uniswap")
    kinds = [e.type for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "final"
    plan = events[0]
    assert isinstance(plan, PlanEvent) and plan.project is not None
    assert (
        plan.project.id == "uniswap"
        and sorted(plan.plan.tools) == sorted(["onchain", "sentiment", "tokenomics", "team"])
        and plan.plan.router == "rules"
    )
    started = [e.tool for e in events if isinstance(e, ToolStartedEvent)]
    finished = [e for e in events if isinstance(e, ToolFinishedEvent)]
    assert sorted(started) == sorted(plan.plan.tools) and len(finished) == 4
    # fanned out: every tool starts before the first one finishes
    assert max(
        kinds.index("tool_started"), *[i for i, k in enumerate(kinds) if k == "tool_started"]
    ) < kinds.index("tool_finished")
    final = events[-1]
    assert isinstance(final, FinalEvent)
    text = "".join(e.text for e in events if isinstance(e, TextEvent))
    assert text == final.answer
    for section in (
        "## Uniswap (UNI)",
        "Executive summary",
        "Risk score:",
        "Top insights",
        "Stance:",
        "Key risks",
        "Not financial advice",
        "**Sources**",
    ):
        assert section in final.answer, section
    assert final.usage.model == "deterministic" and final.usage.cost_usd == 0
    assert final.writer == "deterministic" and "rule-based writer" in final.answer
    assert set(final.results) == set(plan.plan.tools)
    assert final.sources and all(s.age_seconds >= 0 for s in final.sources)
    assert any(s.source == "CoinGecko" for s in final.sources)
    assert "CoinGecko" in final.answer and "just now" in final.answer
    assert len(final.price_history) > 10
    assert final.report is not None and len(final.report.insights) == 3
    assert 1 <= (final.report.risk_score or 0) <= 10


async def test_second_answer_comes_from_the_tools_cache(
    agent_deps: Deps, sources: FakeSources
) -> None:
    await answer(agent_deps, "Research Uniswap")
    calls = sum(sources.calls.values())
    final = await answer(agent_deps, "analyze uniswap")
    assert sum(sources.calls.values()) == calls  # nothing fetched again
    assert final.cache_hit is True


async def test_follow_up_uses_the_conversation_project(agent_deps: Deps) -> None:
    conversation = uuid.uuid4().hex
    first = await answer(agent_deps, "Research Uniswap", conversation_id=conversation)
    assert first.project is not None and first.project.id == "uniswap"
    follow = await answer(agent_deps, "what about its team?", conversation_id=conversation)
    assert follow.project is not None and follow.project.id == "uniswap"
    assert follow.plan.tools == ["team"]
    stranger = await answer(agent_deps, "what about its team?", conversation_id=uuid.uuid4().hex)
    assert stranger.project is None and stranger.plan.tools == []
    key = agent_deps.keys("agent", "conv", conversation)
    assert 0 < await agent_deps.redis.ttl(key) <= 3600


async def test_greeting_gets_a_short_reply_without_tools(
    agent_deps: Deps, sources: FakeSources
) -> None:
    events = await collect(agent_deps, "good morning")
    assert [e.type for e in events] == ["plan", "text", "final"]
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.plan.tools == [] and final.project is None
    assert "Research Uniswap" in final.answer and len(final.answer) < 600
    assert set(sources.calls) <= {"coingecko:search"}  # resolution may search; no tool ran


async def test_one_tool_failing_leaves_the_others_intact(
    agent_deps: Deps, sources: FakeSources
) -> None:
    sources.down.add("github")
    final = await answer(agent_deps, "Research Uniswap")
    assert final.results["team"].missing  # GitHub is down: team says what is unknown
    assert final.results["onchain"].price_usd is not None  # type: ignore[union-attr]
    assert final.results["sentiment"].headlines  # type: ignore[union-attr]
    assert "Top insights" in final.answer


async def test_a_slow_tool_times_out_without_holding_the_answer(
    agent_deps: Deps, sources: FakeSources
) -> None:
    sources.latency_s = 1.0
    events = await collect(agent_deps, "Research Uniswap", tool_timeout_s=0.2)
    finished = [e for e in events if isinstance(e, ToolFinishedEvent)]
    assert len(finished) == 4 and not any(e.ok for e in finished)
    assert all("timed out" in " ".join(e.missing.values()) for e in finished)
    final = events[-1]
    # no tool returned anything: the answer says so plainly, and is not an answer with substance
    assert isinstance(final, FinalEvent) and not final.substantive
    assert "couldn't get any data" in final.answer and "timed out" in final.answer
    assert "not charged" in final.answer


async def test_unknown_project_gets_suggestions_not_a_guess(
    agent_deps: Deps, sources: FakeSources
) -> None:
    sources.script("coingecko:coin", httpx.Response(404))
    final = await answer(agent_deps, "Research Zzyzxcoin")
    assert final.project is None and final.plan.tools == []
    assert final.answer.strip()


def test_question_is_capped_and_cleaned() -> None:
    assert len(clean_question("a" * 5000)) == MAX_QUESTION_CHARS
    assert clean_question("hi\x00 there\x1b") == "hi  there"
