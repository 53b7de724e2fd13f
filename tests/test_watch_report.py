"""The daily report's "Your watchlist" section, per subscriber, through real workers and the
strict fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from billing.accounts import account_for_identity
from chainlens.deps import Deps
from reports.jobs import defer_broadcast
from reports.watch import watch
from tests.fake_delivery_env import (
    Fakes,
    add_subscriber,
    delivery_deps,
    drain,
    running_fakes,
)
from tests.fake_delivery_sources import ReportSources
from tests.test_reports_delivery import DAY, REF, built


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with running_fakes() as running:
        yield running


@pytest.fixture
def sources() -> ReportSources:
    return ReportSources()


@pytest.fixture
async def ddeps(deps: Deps, fakes: Fakes, sources: ReportSources) -> AsyncIterator[Deps]:
    async with delivery_deps(deps, fakes, sources) as opened:
        yield opened


async def test_subscribers_with_a_watchlist_get_their_section(
    ddeps: Deps, fakes: Fakes, sources: ReportSources
) -> None:
    await built(ddeps)
    await add_subscriber(ddeps, "telegram", "4101")
    await add_subscriber(ddeps, "telegram", "4102")  # no watchlist
    await add_subscriber(ddeps, "discord", "940001", tier="pro")
    await add_subscriber(ddeps, "email", "wl@example.com")
    await add_subscriber(ddeps, "email", "plain@example.com")
    for identity in ("telegram:4101", "discord:940001", "web:wl@example.com"):
        account = await account_for_identity(ddeps, identity)
        await watch(ddeps, account.id, "BTC")
        await watch(ddeps, account.id, "ETH")  # the fake has no quote for it
    asked: list[str] = []

    def capture(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("ids", ""))
        return sources.default("coingecko:markets", request)

    sources.script("coingecko:markets", *[capture] * 5)
    assert await defer_broadcast(DAY)
    await drain(ddeps, REF)
    # one batched quote call for every watched coin, not one per subscriber
    assert [ids for ids in asked if "ethereum" in ids] == ["bitcoin,ethereum"]

    parts = fakes.telegram.to("4101")
    assert [p.method for p in parts] == ["sendPhoto", "sendMessage", "sendMessage"]
    section = parts[-1].text
    assert section.startswith("👀 <b>Your watchlist</b>")
    assert "Bitcoin (BTC) $" in section and "Ethereum (ETH): price unavailable" in section
    assert len(fakes.telegram.to("4102")) == 2
    assert "Your watchlist" not in fakes.telegram.to("4102")[-1].text

    posted = fakes.discord.to("940001")
    assert len(posted) == 1 and posted[0].payload["content"].startswith("**Your watchlist**")

    mail = fakes.sendgrid.to("wl@example.com")[0]
    assert "<h2>Your watchlist</h2>" in mail.html and "Bitcoin (BTC) $" in mail.html
    plain = fakes.sendgrid.to("plain@example.com")[0]
    assert "Your watchlist" not in plain.html and "%watchlist" not in plain.html
