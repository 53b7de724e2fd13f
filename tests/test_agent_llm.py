"""The answer through LiteLLM against a local OpenAI-compatible server: fallback order,
timeouts, the deterministic fallback, a stream cut midway, cost, caps and the answer cache."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from agent import answer, answer_stream
from agent.events import AgentEvent, ErrorEvent, FinalEvent, TextEvent
from agent.llm import ModelPrice, build_router
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
PLAN_ALL = Reply(
    tool_calls=["onchain", "sentiment", "tokenomics", "team"], tokens_in=40, tokens_out=6
)
ANSWER = (
    "**Executive summary.** Uniswap looks healthy on every measure we track.\n\n"
    "**Top insights**\n1. The market is deep.\n2. Developers are active.\n3. The mood is calm.\n\n"
    "**Key risks**\n- Volatility remains high.\n"
)
PRICE = ModelPrice(input_per_token=1e-6, output_per_token=2e-6)


@pytest.fixture
def data_deps(deps: Deps, with_http: WithHttp, sources: FakeSources) -> Deps:
    return fast_http(with_http(deps, sources.transport()))


async def collect(deps: Deps, question: str) -> list[AgentEvent]:
    return [event async for event in answer_stream(deps, question)]


def writer_calls(server: FakeLLM) -> list[str]:
    return [str(r["model"]) for r in server.requests if r.get("stream")]


def test_router_follows_settings(deps: Deps, llm_server: FakeLLM) -> None:
    routed = with_llm(deps, llm_server, "a", "b", "c", llm_timeout_s=7.0)
    router = routed.llm
    assert router is not None
    assert [d["model_name"] for d in router.model_list] == ["openai/a", "openai/b", "openai/c"]
    assert router.fallbacks == [{"openai/a": ["openai/b", "openai/c"]}, {"openai/b": ["openai/c"]}]
    assert router.context_window_fallbacks == router.fallbacks
    assert router.timeout == 7.0 and router.num_retries == 0
    assert all(d["litellm_params"]["api_base"] == llm_server.base_url for d in router.model_list)
    with pytest.raises(ValueError, match="LLM_MODELS is empty"):
        build_router(routed.settings.model_copy(update={"llm_models": []}))


async def test_fallback_order_and_cost(data_deps: Deps, llm_server: FakeLLM) -> None:
    llm_server.script("a", Fail(429), Fail(429))
    llm_server.script("b", Fail(500), Fail(503))
    llm_server.script("c", PLAN_ALL, Reply(text=ANSWER, tokens_in=900, tokens_out=120))
    deps = with_llm(data_deps, llm_server, "a", "b", "c", prices={"c": PRICE})
    events = await collect(deps, "Research Uniswap")
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert llm_server.models_called() == ["a", "b", "c", "a", "b", "c"]
    assert final.plan.router == "llm" and len(final.plan.tools) == 4
    assert final.writer == "llm" and final.usage.model == "openai/c"
    assert (final.usage.tokens_in, final.usage.tokens_out) == (940, 126)
    assert final.usage.cost_usd == pytest.approx(940 * 1e-6 + 126 * 2e-6)
    text = "".join(e.text for e in events if isinstance(e, TextEvent))
    assert text == final.answer
    assert final.answer.startswith("## Uniswap (UNI)\n**Executive summary.**")
    assert f"Stance: {final.report.stance}" in final.answer  # type: ignore[union-attr]
    assert "Not financial advice" in final.answer and "**Sources**" in final.answer
    writer_request = [r for r in llm_server.requests if r.get("stream")][-1]
    assert writer_request["max_tokens"] <= deps.settings.llm_max_tokens
    assert not any(isinstance(e, ErrorEvent) for e in events)


async def test_slow_first_token_times_out_to_the_next_model(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    llm_server.script("slow", PLAN_ALL, Reply(text=ANSWER, first_token_delay_s=4.0))
    llm_server.script("quick", Reply(text=ANSWER))
    deps = with_llm(data_deps, llm_server, "slow", "quick", llm_timeout_s=1.0)
    started = time.monotonic()
    final = await answer(deps, "Research Uniswap")
    assert time.monotonic() - started < 3.5
    assert writer_calls(llm_server) == ["slow", "quick"]
    assert final.writer == "llm" and final.usage.model == "openai/quick"


async def test_every_model_failing_gives_the_deterministic_answer(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    llm_server.default = Fail(500)
    deps = with_llm(data_deps, llm_server, "a", "b")
    events = await collect(deps, "Research Uniswap")
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert final.plan.router == "rules" and len(final.plan.tools) == 4
    assert final.writer == "deterministic" and final.usage.model == "deterministic"
    assert "rule-based writer" in final.answer and "Top insights" in final.answer
    assert not any(isinstance(e, ErrorEvent) for e in events)
    assert "".join(e.text for e in events if isinstance(e, TextEvent)) == final.answer


async def test_stream_cut_midway_ends_with_one_error_and_the_deterministic_answer(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    llm_server.script("a", PLAN_ALL, Reply(text=ANSWER, chunk_chars=10, cut_after_chunks=8))
    deps = with_llm(data_deps, llm_server, "a", "b")
    events = await collect(deps, "Research Uniswap")
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "final"] and kinds.count("error") == 1
    streamed = "".join(e.text for e in events if isinstance(e, TextEvent))
    assert streamed.startswith("## Uniswap (UNI)\n**Executive summary.**")
    assert "rule-based writer" not in streamed  # the fallback answer is not streamed on top
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.writer == "deterministic"
    assert "rule-based writer" in final.answer and "**Sources**" in final.answer
    assert writer_calls(llm_server) == ["a"]  # text had started: no second model restarts it


async def test_answers_are_cached_for_the_same_intent_and_data(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    llm_server.default = Reply(text=ANSWER)
    deps = with_llm(data_deps, llm_server, "a", prices={"a": PRICE})
    first = await answer(deps, "Research Uniswap")
    second = await answer(deps, "analyse uniswap")
    assert len(writer_calls(llm_server)) == 1
    assert second.cache_hit and not first.cache_hit
    assert second.answer == first.answer and second.writer == "llm"
    assert second.usage.cost_usd < first.usage.cost_usd  # only the planner was paid for
    other = await answer(deps, "Uniswap price")
    assert len(writer_calls(llm_server)) == 2 and not other.cache_hit


async def test_cost_cap_leaves_the_answer_to_the_writer(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    llm_server.default = Reply(text=ANSWER)
    deps = with_llm(data_deps, llm_server, "a", prices={"a": PRICE}, llm_max_cost_usd=0.0005)
    final = await answer(deps, "Research Uniswap")
    assert writer_calls(llm_server) == []
    assert final.writer == "deterministic" and final.usage.cost_usd <= 0.0005


async def test_token_cap_is_sent_to_the_model(data_deps: Deps, llm_server: FakeLLM) -> None:
    llm_server.default = Reply(text=ANSWER)
    deps = with_llm(data_deps, llm_server, "a", llm_max_tokens=321)
    await answer(deps, "Research Uniswap")
    assert [r["max_tokens"] for r in llm_server.requests if r.get("stream")] == [321]
