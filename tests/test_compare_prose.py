"""With a model configured, comparison and market answers keep their deterministic figures
(the table and verdicts, the market figures) and the model adds one paragraph around them,
in the turn's language, checked by the guard. Against the local OpenAI-compatible server
that LiteLLM really calls (tests/test_agent_support.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from agent import answer, answer_stream
from agent.events import AgentEvent, ErrorEvent, FinalEvent, TextEvent
from chainlens.deps import Deps
from test_agent_support import (  # noqa: F401  (fixtures)
    Fail,
    FakeLLM,
    Reply,
    llm_server,
    llm_server_session,
    with_llm,
)
from tests.tools_fakes import FakeSources, fast_http

WithHttp = Callable[[Deps, httpx.AsyncBaseTransport], Deps]
COMPARISON = "compare SOL and ETH tokenomics"
PROSE = (
    "Solana and Ethereum look alike on tokenomics, with a score of 95 each. "
    "Ethereum's supply will reach 999,999,999 tokens next year.\n"
    "You should buy SOL now.\n"
    "Read more at https://evil.example/pump for details.\n"
)


@pytest.fixture
def data_deps(deps: Deps, with_http: WithHttp, sources: FakeSources) -> Deps:
    sources.extra_coins |= {"solana", "ethereum"}
    fast: Deps = fast_http(with_http(deps, sources.transport()))
    return fast


async def collect(deps: Deps, question: str) -> list[AgentEvent]:
    return [event async for event in answer_stream(deps, question)]


def prose_requests(server: FakeLLM) -> list[dict[str, object]]:
    return [r for r in server.requests if r.get("stream")]


def streamed(events: list[AgentEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextEvent))


async def test_the_model_writes_a_checked_paragraph_between_table_and_verdicts(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    llm_server.default = Reply(text=PROSE)
    deps = with_llm(data_deps, llm_server, "a")
    events = await collect(deps, COMPARISON)
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.plan.intent == "compare"
    assert final.writer == "llm" and final.usage.tokens_out > 0
    text = final.answer
    assert streamed(events) == text  # the stream is exactly the answer, nothing twice
    table, paragraph, verdicts = (
        text.index("| Metric |"),
        text.index("Solana and Ethereum"),
        text.index("**Aspect by aspect**"),
    )
    assert table < paragraph < verdicts
    assert "| Tokenomics score | 95/100 | 95/100 |" in text  # the figures stay the rules'
    assert "a score of 95 each" in text  # a figure the table shows passes
    assert "999,999,999" not in text and "[n/a]" in text  # an invented one is withheld
    assert "You should buy" not in text  # no call to act
    assert "evil.example" not in text  # no links
    # the model saw the table and verdicts (not the tools' raw data) and the language
    [request] = prose_requests(llm_server)
    messages = request["messages"]
    assert isinstance(messages, list)
    assert "Language: write in English." in messages[0]["content"]
    assert "| Metric | Solana (SOL) | Ethereum (ETH) |" in messages[1]["content"]
    assert "Tokenomics: about even" in messages[1]["content"]
    # the same comparison again: the paragraph comes from the answer cache
    again = await answer(deps, COMPARISON)
    assert len(prose_requests(llm_server)) == 1
    assert again.writer == "llm" and "a score of 95 each" in again.answer


async def test_a_vietnamese_comparison_asks_for_vietnamese(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    llm_server.default = Reply(text="Solana và Ethereum có điểm tokenomics như nhau: 95.\n")
    deps = with_llm(data_deps, llm_server, "a")
    final = await answer(deps, "so sánh tokenomics của SOL và ETH")
    assert final.language == "vi" and final.writer == "llm"
    assert "Solana và Ethereum có điểm tokenomics như nhau: 95." in final.answer
    assert final.answer.index("| Chỉ số |") < final.answer.index("Solana và Ethereum có")
    assert final.answer.index("Solana và Ethereum có") < final.answer.index("**Từng khía cạnh**")
    [request] = prose_requests(llm_server)
    system = request["messages"][0]["content"]  # type: ignore[index]
    assert "tiếng Việt" in system


async def test_without_a_working_model_the_comparison_is_the_rules_answer(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    llm_server.default = Fail(500)
    deps = with_llm(data_deps, llm_server, "a", "b")
    events = await collect(deps, COMPARISON)
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert final.writer == "deterministic" and final.usage.model == "deterministic"
    assert not any(isinstance(e, ErrorEvent) for e in events)
    assert streamed(events) == final.answer
    plain = await answer(data_deps, COMPARISON)  # no model configured at all
    assert final.answer.split("**Sources**")[0] == plain.answer.split("**Sources**")[0]


async def test_a_paragraph_cut_midway_ends_with_one_error_and_the_rules_answer(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    text = "Both projects are covered.\n" + "More words about them that go on. " * 10 + "\n"
    llm_server.default = Reply(text=text, chunk_chars=10, cut_after_chunks=5)
    deps = with_llm(data_deps, llm_server, "a", "b")
    events = await collect(deps, COMPARISON)
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "final"] and kinds.count("error") == 1
    assert "Both projects are covered." in streamed(events)
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.writer == "deterministic"
    assert "Both projects are covered." not in final.answer
    assert "**Aspect by aspect**" in final.answer and "**Sources**" in final.answer


async def test_the_market_answer_gets_a_checked_paragraph_after_its_figures(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    llm_server.default = Reply(
        text="Sentiment leans to greed, with the index at 69/100 and Bitcoin's share at "
        "52.1%. Analysts expect the total to hit $9.99T by Friday.\n"
    )
    deps = with_llm(data_deps, llm_server, "a")
    events = await collect(deps, "how is the market today?")
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.plan.intent == "market"
    assert final.writer == "llm" and final.substantive
    text = final.answer
    assert streamed(events) == text
    assert "**69/100** (Greed)" in text  # the rules' figures are all there
    assert text.index("Fear & Greed index") < text.index("Sentiment leans to greed")
    assert text.index("Sentiment leans to greed") < text.index("**Sources**")
    assert "index at 69/100" in text and "52.1%" in text
    assert "9.99T" not in text and "[n/a]" in text
    [request] = prose_requests(llm_server)
    system = request["messages"][0]["content"]  # type: ignore[index]
    assert "figures about the whole crypto market" in system


async def test_a_market_answer_without_data_never_calls_the_model(
    deps: Deps, with_http: WithHttp, llm_server: FakeLLM
) -> None:
    down = fast_http(with_http(deps, FakeSources(down={"coingecko", "feargreed"}).transport()))
    final = await answer(with_llm(down, llm_server, "a"), "what's trending?")
    assert not final.substantive and "couldn't get market data" in final.answer
    assert prose_requests(llm_server) == []


async def test_the_daily_report_reads_the_chat_answers_market_figures(
    data_deps: Deps, sources: FakeSources
) -> None:
    from reports.build import market_overview

    chat = await answer(data_deps, "what's the fear and greed index today?")
    assert chat.market is not None and "**69/100** (Greed)" in chat.answer
    report = await market_overview(data_deps)
    # the same cached overview: no second upstream call, the same figures
    assert sources.calls["coingecko:global"] == 1 and sources.calls["feargreed"] == 1
    assert report.fear_greed == chat.market.fear_greed == 69
    assert report.fear_greed_label == "Greed"
    assert report.total_market_cap_usd == chat.market.total_market_cap_usd == 2.4e12
    assert report.btc.price_usd == chat.market.btc.price_usd  # type: ignore[union-attr]
