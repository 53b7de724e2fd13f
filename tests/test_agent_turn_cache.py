"""Repeated questions replayed from the turn cache: same data -> same answer in one Redis call;
changed data, a conversation-dependent question or a refresh -> the graph runs again."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from agent import answer, answer_stream, turn_cache
from agent.events import FinalEvent, TextEvent, ToolFinishedEvent
from agent.memory import memory_key
from chainlens.chat import QuotaRefused
from chainlens.deps import Deps, WaitingRedisCluster
from tests.tools_fakes import FakeSources
from tools.cache import read_l1, write_l1
from tools.results import OnchainResult


class CountingRedis(Redis):
    """The real client on the same pool, counting the commands it sends."""

    sent: Counter[str]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent[_command(args[0])] += 1
        return await super().execute_command(*args, **options)


def _command(name: object) -> str:
    # A script sent whole (EVAL) because a server had not seen it yet is still one script call.
    return {"EVAL": "EVALSHA"}.get(str(name).upper(), str(name).upper())


class CountingCluster(WaitingRedisCluster):
    """A client of the same Redis Cluster, counting the commands it sends."""

    sent: Counter[str]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent[_command(args[0])] += 1
        return await super().execute_command(*args, **options)


Counting = Callable[[Deps], tuple[Deps, Counter[str]]]


@pytest.fixture
async def counting() -> AsyncIterator[Counting]:
    """Deps whose Redis client counts the commands it sends (closed after the test)."""
    opened: list[CountingCluster] = []

    def factory(deps: Deps) -> tuple[Deps, Counter[str]]:
        client: CountingRedis | CountingCluster
        if isinstance(deps.redis, RedisCluster):
            client = CountingCluster(
                startup_nodes=[ClusterNode(n.host, n.port) for n in deps.redis.get_primaries()]
            )
            opened.append(client)
        else:
            client = CountingRedis(connection_pool=deps.redis.connection_pool)
        client.sent = Counter()
        return dataclasses.replace(deps, redis=client), client.sent

    yield factory
    for client in opened:
        await client.aclose()


def replay_commands(deps: Deps) -> Counter[str]:
    """A replay's commands: one script on a standalone Redis; on a cluster, read the turn,
    check its inputs in the project's slot, remember the project (three slots)."""
    if isinstance(deps.redis, RedisCluster):
        return Counter({"EVALSHA": 2, "SET": 1})
    return Counter({"EVALSHA": 1})


async def test_a_repeated_question_is_replayed_in_one_redis_call(
    fast_deps: Deps, sources: FakeSources, counting: Counting
) -> None:
    first = await answer(fast_deps, "Research Uniswap", conversation_id="a")
    # one replay first, so every server has seen the scripts (a server new to one is sent
    # it whole once: EVALSHA, NOSCRIPT, EVAL)
    assert (await answer(fast_deps, "Research Uniswap", conversation_id="warm")).cache_hit
    deps, sent = counting(fast_deps)
    fetched = sum(sources.calls.values())
    events = [e async for e in answer_stream(deps, "research   UNISWAP", conversation_id="b")]

    # no tool cache reads, no resolution, no memory SET of its own (on a standalone Redis)
    assert sent == replay_commands(fast_deps)
    assert sum(sources.calls.values()) == fetched
    kinds = [e.type for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "final"
    assert sorted(e.tool for e in events if isinstance(e, ToolFinishedEvent)) == sorted(
        first.plan.tools
    )
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


async def test_changed_data_is_answered_afresh(fast_deps: Deps, counting: Counting) -> None:
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
    fast_deps: Deps,
) -> None:
    await answer(fast_deps, "Research Uniswap", conversation_id="one")
    follow = await answer(fast_deps, "what about its team?", conversation_id="one")
    assert follow.project is not None and follow.project.id == "uniswap"
    stranger = await answer(fast_deps, "what about its team?", conversation_id="two")
    assert stranger.project is None and stranger.plan.tools == []


async def test_answers_without_live_data_or_with_refresh_are_not_replayed(
    fast_deps: Deps, sources: FakeSources
) -> None:
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


async def test_the_web_api_still_counts_every_replayed_request(
    paid_client: httpx.AsyncClient, fast_deps: Deps
) -> None:
    answers = []
    for _ in range(3):
        response = await paid_client.post("/api/chat/query", json={"message": "Research Uniswap"})
        assert response.status_code == 200
        answers.append(response.json())
    assert answers[0]["response"] == answers[2]["response"]
    remaining = [a["usage"]["requests_remaining"] for a in answers]
    assert remaining[0] - remaining[2] == 2
    assert await fast_deps.db.fetchval("SELECT count(*) FROM usage_logs") == 3
    assert (
        await fast_deps.db.fetchval(
            "SELECT requests FROM project_usage WHERE project_id = 'uniswap'"
        )
        == 3
    )


def chat_commands(deps: Deps) -> Counter[str]:
    """A cached chat request's Redis commands: quota and replay in one script on a standalone
    Redis; on a cluster the quota ({quota} slot) is one script and the replay its own."""
    if isinstance(deps.redis, RedisCluster):
        return Counter({"EVALSHA": 3, "SET": 1})
    return Counter({"EVALSHA": 1})


async def test_a_cached_chat_request_is_one_redis_round_trip(
    fast_deps: Deps, counting: Counting
) -> None:
    from conftest import paid_api_key
    from web.app import create_app

    key = await paid_api_key(fast_deps)
    counted, sent = counting(fast_deps)
    app = create_app(fast_deps.settings, deps=counted)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        headers={"Authorization": f"Bearer {key}"},
        base_url="http://testserver",
    ) as http:
        first = await http.post("/api/chat/query", json={"message": "Research Uniswap"})
        assert first.status_code == 200
        await asyncio.sleep(0.1)  # the first answer's write-behind (quota mirror) settles
        sent.clear()
        again = await http.post("/api/chat/query", json={"message": "Research Uniswap"})
    assert again.status_code == 200
    assert again.json()["response"] == first.json()["response"]
    assert sent == chat_commands(fast_deps)  # quota + replay (+ memory): nothing else
    remaining = [r.json()["usage"]["requests_remaining"] for r in (first, again)]
    assert remaining[0] - remaining[1] == 1  # the replayed answer was charged once
    assert await fast_deps.db.fetchval("SELECT count(*) FROM usage_logs") == 2


async def test_a_refused_request_never_reads_the_stored_answer(
    fast_deps: Deps, counting: Counting
) -> None:
    from billing.accounts import account_for_identity
    from chainlens.chat import ChatTurn, chat, replay_rider

    await answer(fast_deps, "Research Uniswap", conversation_id="first")
    rider = replay_rider(
        fast_deps, ChatTurn(identity="telegram:1", channel="telegram", text="Research Uniswap")
    )
    assert rider is not None
    turn_key = rider.keys[0]
    stored = await fast_deps.redis.hgetall(turn_key)
    assert stored  # the answer is stored
    turn = ChatTurn(
        identity="telegram:77",
        channel="telegram",
        text="Research Uniswap",
        conversation_id="telegram:77:refused",
    )
    account = await account_for_identity(fast_deps, turn.identity)
    spent = await fast_deps.db.fetchval("SELECT count(*) FROM quota_counters") or 0  # nothing yet
    assert spent == 0
    limits = fast_deps.settings.limits_for(account.tier)
    granted = []
    for n in range(limits.minute + 1):
        events = [
            e
            async for e in chat(
                fast_deps, dataclasses.replace(turn, conversation_id=f"telegram:77:c{n}")
            )
        ]
        granted.append(events[0].type)
    assert granted[-1] == "refused" and set(granted[:-1]) == {"quota"}

    counted, sent = counting(fast_deps)
    events = [e async for e in chat(counted, turn)]
    assert [e.type for e in events] == ["refused"]
    assert isinstance(events[0], QuotaRefused) and events[0].decision.ridden is None
    assert sent == Counter({"EVALSHA": 1})  # the quota script, which returned at the refusal
    # The turn is untouched and the refused conversation remembers nothing.
    assert await fast_deps.redis.hgetall(turn_key) == stored
    assert not await fast_deps.redis.exists(memory_key(fast_deps, "telegram:77:refused"))


async def test_a_process_new_to_a_turn_declares_its_inputs_then_replays(
    fast_deps: Deps, counting: Counting
) -> None:
    first = await answer(fast_deps, "Research Uniswap", conversation_id="a")
    turn_cache._parsed.clear()  # what a process that did not store the turn knows of it
    deps, sent = counting(fast_deps)
    again = await answer(deps, "Research Uniswap", conversation_id="b")
    assert again.cache_hit and again.answer == first.answer
    # standalone: the first call returns the inputs to declare, the second checks them
    cold = (
        Counter({"EVALSHA": 2})
        if not isinstance(deps.redis, RedisCluster)
        else replay_commands(deps)
    )
    assert sent == cold
    sent.clear()
    third = await answer(deps, "Research Uniswap", conversation_id="c")
    assert third.cache_hit and sent == replay_commands(deps)
    assert await fast_deps.redis.exists(memory_key(fast_deps, "c"))
