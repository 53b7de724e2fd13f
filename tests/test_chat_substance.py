"""Charge only answers with substance: a turn where no planned tool returned data is refunded
and says so; a partial answer is charged (issue: answers people can trust)."""

from __future__ import annotations

import dataclasses
from typing import Any

from agent.events import FinalEvent, ToolFinishedEvent
from billing.accounts import account_for_identity
from billing.quota import quota_status
from chainlens.chat import ChatTurn, chat
from chainlens.deps import Deps
from chainlens.settings import TierLimits
from tests.tools_fakes import FakeSources, fast_http

ALL_SOURCES = {"coingecko", "defillama", "goplus", "github", "feargreed", "rss"}


def _deps(deps: Deps, with_http: Any, sources: FakeSources) -> Deps:
    limits = dict(deps.settings.tier_limits)
    limits["free"] = TierLimits(daily=5, minute=10)
    settings = deps.settings.model_copy(update={"tier_limits": limits})
    return fast_http(with_http(dataclasses.replace(deps, settings=settings), sources.transport()))


async def _ask(deps: Deps, identity: str, text: str) -> list[Any]:
    turn = ChatTurn(identity=identity, channel="telegram", text=text)
    return [event async for event in chat(deps, turn)]


async def test_an_answer_without_any_data_is_refunded(deps: Deps, with_http: Any) -> None:
    fast = _deps(deps, with_http, FakeSources(down=ALL_SOURCES))
    events = await _ask(fast, "telegram:501", "Uniswap tokenomics?")
    final = events[-1]
    assert isinstance(final, FinalEvent) and not final.substantive
    assert "couldn't get any data" in final.answer and "not charged" in final.answer
    account = await account_for_identity(fast, "telegram:501")
    assert (await quota_status(fast, account)).remaining == 5


async def test_a_partial_answer_is_charged_and_shows_partial_tools(
    deps: Deps, with_http: Any
) -> None:
    fast = _deps(deps, with_http, FakeSources(down={"github"}))
    events = await _ask(fast, "telegram:502", "Research Uniswap")
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.substantive
    team = [e for e in events if isinstance(e, ToolFinishedEvent) and e.tool == "team"]
    assert team and (team[0].partial or not team[0].ok)
    onchain = [e for e in events if isinstance(e, ToolFinishedEvent) and e.tool == "onchain"]
    assert onchain[0].ok and not onchain[0].partial
    account = await account_for_identity(fast, "telegram:502")
    assert (await quota_status(fast, account)).remaining == 4
