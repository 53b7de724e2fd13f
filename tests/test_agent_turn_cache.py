"""Repeated questions replayed from the turn cache: same data -> same answer in one Redis call;
changed data, a conversation-dependent question or a refresh -> the graph runs again."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from typing import Any

import httpx
from redis.asyncio import Redis

from agent import answer, answer_stream
from agent.events import FinalEvent, TextEvent, ToolFinishedEvent
from chainlens.deps import Deps
from tests.tools_fakes import FakeSources
from tools.cache import read_l1, write_l1
from tools.results import OnchainResult


class CountingRedis(Redis):
    """The real client on the same pool, counting the commands it sends."""

    sent: Counter[str]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent[str(args[0]).upper()] += 1
        return await super().execute_command(*args, **options)


def counting(deps: Deps) -> tuple[Deps, Counter[str]]:
    client = CountingRedis(connection_pool=deps.redis.connection_pool)
    client.sent = Counter()
    return dataclasses.replace(deps, redis=client), client.sent


async def test_a_repeated_question_is_replayed_in_one_redis_call(fast_deps: Deps,
                                                                 sources: FakeSources) -> None:
    first = await answer(fast_deps, "Research Uniswap", conversation_id="a")
    deps, sent = counting(fast_deps)
    fetched = sum(sources.calls.values())
    events = [e async for e in answer_stream(deps, "research   UNISWAP", conversation_id="b")]

    assert sent == Counter({"EVALSHA": 1})  # no tool cache reads, no resolution, no memory SET
    assert sum(sources.calls.values()) == fetched
    kinds = [e.type for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "final"
    assert sorted(e.tool for e in events if isinstance(e, ToolFinishedEvent)) == sorted(
        first.plan.tools)
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.cache_hit
    assert "".join(e.text for e in events if isinstance(e, TextEvent)) == final.answer
    assert final.answer == first.answer  # same data, same words (ages still "just now")
    assert final.conversation_id == "b" and final.usage.tokens_in == 0
    assert final.results.keys() == first.results.keys() and final.report == first.report


async def test_a_replay_remembers_the_project_for_follow_ups(fast_deps: Deps) -> None:
    await answer(fast_deps, "Research Uniswap", conversation_id="first")
    conversation = uuid.uuid4().hex
    replayed = await answer(fast_deps, "Research Uniswap", conversation_id=conversation)
    assert replayed.cache_hit
    follow = await answer(fast_deps, "what about its team?", conversation_id=conversation)
    assert follow.project is not None and follow.project.id == "uniswap"
    assert follow.plan.tools == ["team"]


async def test_changed_data_is_answered_afresh(fast_deps: Deps) -> None:
    first = await answer(fast_deps, "Research Uniswap")
    hot = await read_l1(fast_deps, "onchain", "uniswap")
    assert hot is not None and isinstance(hot.result, OnchainResult)
    await write_l1(fast_deps, hot.result.model_copy(update={"price_usd": 123456.0}), 300)

    deps, sent = counting(fast_deps)
    second = await answer(deps, "Research Uniswap")
    assert sent["GET"] >= 4  # the graph read the tool caches again
    assert "$123,456" in second.answer and "$123,456" not in first.answer
    third = await answer(deps, "Research Uniswap")
    assert third.answer == second.answer  # and the new answer is the one replayed now


async def test_a_follow_up_resolved_from_the_conversation_is_not_replayed_elsewhere(
        fast_deps: Deps) -> None:
    await answer(fast_deps, "Research Uniswap", conversation_id="one")
    follow = await answer(fast_deps, "what about its team?", conversation_id="one")
    assert follow.project is not None and follow.project.id == "uniswap"
    stranger = await answer(fast_deps, "what about its team?", conversation_id="two")
    assert stranger.project is None and stranger.plan.tools == []


async def test_answers_without_live_data_or_with_refresh_are_not_replayed(
        fast_deps: Deps, sources: FakeSources) -> None:
    sources.down.update({"coingecko", "defillama", "goplus"})  # every on-chain source
    degraded = await answer(fast_deps, "What's the Uniswap price?")
    assert degraded.plan.tools == ["onchain"] and "onchain" in degraded.results
    assert degraded.results["onchain"].price_usd is None
    sources.down.clear()
    fetched = sources.calls["coingecko:coin"]
    recovered = await answer(fast_deps, "What's the Uniswap price?")
    assert sources.calls["coingecko:coin"] > fetched and recovered.answer != degraded.answer
    refreshed = await answer(fast_deps, "What's the Uniswap price?", refresh=True)
    assert not refreshed.cache_hit  # a replay is always a cache hit


async def test_the_web_api_still_counts_every_replayed_request(paid_client: httpx.AsyncClient,
                                                              fast_deps: Deps) -> None:
    answers = []
    for _ in range(3):
        response = await paid_client.post("/api/chat/query", json={"message": "Research Uniswap"})
        assert response.status_code == 200
        answers.append(response.json())
    assert answers[0]["response"] == answers[2]["response"]
    remaining = [a["usage"]["requests_remaining"] for a in answers]
    assert remaining[0] - remaining[2] == 2
    assert await fast_deps.db.fetchval("SELECT count(*) FROM usage_logs") == 3
    assert await fast_deps.db.fetchval(
        "SELECT requests FROM project_usage WHERE project_id = 'uniswap'") == 3
