"""A market answer with figures is one charged request; one without any data is not; a
comparison, however many projects and tools it runs, is one request."""

from __future__ import annotations

import dataclasses
from typing import Any

from agent.events import FinalEvent
from billing.accounts import account_for_identity
from billing.quota import quota_status
from chainlens.chat import ChatTurn, chat
from chainlens.deps import Deps
from chainlens.settings import TierLimits
from tests.tools_fakes import FakeSources, fast_http


def _deps(deps: Deps, with_http: Any, sources: FakeSources) -> Deps:
    limits = dict(deps.settings.tier_limits)
    limits["free"] = TierLimits(daily=5, minute=10)
    settings = deps.settings.model_copy(update={"tier_limits": limits})
    return fast_http(with_http(dataclasses.replace(deps, settings=settings), sources.transport()))


async def _ask(deps: Deps, identity: str, text: str) -> FinalEvent:
    turn = ChatTurn(identity=identity, channel="telegram", text=text)
    events = [event async for event in chat(deps, turn)]
    assert isinstance(events[-1], FinalEvent)
    return events[-1]


async def _remaining(deps: Deps, identity: str) -> int:
    return (await quota_status(deps, await account_for_identity(deps, identity))).remaining


async def test_market_answer_is_charged_once(deps: Deps, with_http: Any) -> None:
    fast = _deps(deps, with_http, FakeSources())
    final = await _ask(fast, "telegram:701", "how is the market today?")
    assert final.plan.intent == "market" and final.substantive
    assert await _remaining(fast, "telegram:701") == 4


async def test_market_answer_without_data_is_not_charged(deps: Deps, with_http: Any) -> None:
    fast = _deps(deps, with_http, FakeSources(down={"coingecko", "feargreed"}))
    final = await _ask(fast, "telegram:702", "what's trending?")
    assert not final.substantive and "not charged" in final.answer
    assert await _remaining(fast, "telegram:702") == 5


async def test_a_comparison_costs_one_request(deps: Deps, with_http: Any) -> None:
    fast = _deps(deps, with_http, FakeSources(extra_coins={"solana", "ethereum"}))
    final = await _ask(fast, "telegram:703", "compare uniswap, solana and ethereum")
    assert final.plan.intent == "compare" and len(final.projects) == 3
    assert await _remaining(fast, "telegram:703") == 4
    problem = await _ask(fast, "telegram:703", "compare uniswap, solana, ethereum and bitcoin")
    assert not problem.substantive and "up to 3 projects" in problem.answer
    assert await _remaining(fast, "telegram:703") == 4
