"""Alert evaluation, firing and delivery: crossing semantics against the real PostgreSQL, and
every firing delivered once through real procrastinate workers and the strict fakes."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from billing.accounts import account_for_identity
from chainlens.deps import Deps
from reports.alerts import (
    IDS_PER_CALL,
    apply_quotes,
    evaluate_prices,
    evaluate_slow,
    fetch_prices,
)
from reports.watch import Alert, AlertSpec, create_alert, delete_alert
from tests.alerts_fakes import PriceSources
from tests.fake_delivery_env import Fakes, delivery_deps, running_fakes
from tools import cache
from tools.results import Evidence, RiskFlag, SentimentResult, TokenomicsResult, utcnow


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with running_fakes() as running:
        yield running


@pytest.fixture
def prices() -> PriceSources:
    return PriceSources()


@pytest.fixture
async def adeps(deps: Deps, fakes: Fakes, prices: PriceSources) -> AsyncIterator[Deps]:
    async with delivery_deps(deps, fakes, prices) as opened:
        yield opened


async def alert(
    deps: Deps,
    query: str,
    kind: str,
    level: float | None,
    *,
    chat: str = "7001",
    channel: str = "telegram",
) -> Alert:
    account = await account_for_identity(
        deps,
        f"telegram:{chat}"
        if channel == "telegram"
        else f"{channel}:{chat}"
        if channel == "discord"
        else f"web:{chat}",
    )
    return await create_alert(
        deps,
        account.id,
        query,
        AlertSpec(kind, level),  # type: ignore[arg-type]
        channel=channel,
        destination=chat,
    )


async def events(deps: Deps, alert_id: int) -> list[float]:
    rows = await deps.db.fetch(
        "SELECT value FROM alert_events WHERE alert_id = $1 ORDER BY crossing", alert_id
    )
    return [r["value"] for r in rows]


async def open_work(deps: Deps) -> int:
    rows = await deps.db.fetchval(
        "SELECT count(*) FROM deliveries WHERE kind = 'alert' AND state IN ('pending', 'sending')"
    )
    jobs = await deps.db.fetchval(
        "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
    )
    return int(rows) + int(jobs)


async def drain(deps: Deps, timeout_s: float = 30.0) -> None:
    from reports.queue import run_worker

    async with asyncio.timeout(timeout_s):
        while True:
            await run_worker(deps, wait=False, install_signal_handlers=False, concurrency=4)
            if await open_work(deps) == 0:
                return
            await asyncio.sleep(0.1)


# --- crossing semantics ----------------------------------------------------------------------


async def test_above_fires_once_per_crossing_and_rearms_after_the_margin(
    adeps: Deps, prices: PriceSources
) -> None:
    a = await alert(adeps, "BTC", "above", 70000.0)
    # margin 1 %: re-arms below 69,300
    for price, fired in [
        (69000, 0),
        (70000, 1),
        (71000, 0),
        (69900, 0),
        (70500, 0),
        (69400, 0),
        (69200, 0),
        (70100, 1),
        (75000, 0),
    ]:
        prices.set("bitcoin", price)
        summary = await evaluate_prices(adeps)
        assert summary.fired == fired, price
    assert await events(adeps, a.id) == [70000.0, 70100.0]


async def test_below_and_a_gap_over_the_level(adeps: Deps, prices: PriceSources) -> None:
    below = await alert(adeps, "ETH", "below", 3000.0)
    gap = await alert(adeps, "UNI", "above", 10.0)
    prices.set("ethereum", 3200)
    prices.set("uniswap", 8.0)
    assert (await evaluate_prices(adeps)).fired == 0
    prices.set("ethereum", 2500)  # from well above to well below between two runs
    prices.set("uniswap", 14.0)  # a jump over the level: no run ever saw 10
    assert (await evaluate_prices(adeps)).fired == 2
    prices.set("ethereum", 3010)  # within 1 % above the level: still disarmed
    assert (await evaluate_prices(adeps)).fired == 0
    prices.set("ethereum", 3040)  # cleared by the margin: re-armed
    await evaluate_prices(adeps)
    prices.set("ethereum", 2999)
    assert (await evaluate_prices(adeps)).fired == 1
    assert await events(adeps, below.id) == [2500.0, 2999.0]
    assert await events(adeps, gap.id) == [14.0]


async def test_move_alerts_fire_on_either_direction(adeps: Deps, prices: PriceSources) -> None:
    a = await alert(adeps, "SOL", "move", 10.0)
    for change, fired in [(4.0, 0), (12.5, 1), (-11.0, 0), (9.95, 0), (5.0, 0), (-10.5, 1)]:
        prices.set("solana", 150.0, change)
        assert (await evaluate_prices(adeps)).fired == fired, change
    assert await events(adeps, a.id) == [12.5, -10.5]


async def test_a_coin_that_stops_reporting_or_goes_stale_is_left_alone(
    adeps: Deps, prices: PriceSources
) -> None:
    btc = await alert(adeps, "BTC", "above", 70000.0)
    eth = await alert(adeps, "ETH", "above", 3000.0)
    prices.set("ethereum", 3100)  # bitcoin never reported
    summary = await evaluate_prices(adeps)
    assert (summary.coins, summary.quotes, summary.fired) == (2, 1, 1)
    prices.set("bitcoin", 80000, at=time.time() - 3600)  # an hour-old price: not evaluated
    assert (await evaluate_prices(adeps)).fired == 0
    del prices.prices["ethereum"]
    prices.set("bitcoin", 80000)
    assert (await evaluate_prices(adeps)).fired == 1
    assert await events(adeps, btc.id) == [80000.0]
    assert await events(adeps, eth.id) == [3100.0]
    armed = await adeps.db.fetchval("SELECT armed FROM alerts WHERE id = $1", eth.id)
    assert armed is False  # untouched while its coin is silent


async def test_a_deleted_alert_stops(adeps: Deps, prices: PriceSources) -> None:
    a = await alert(adeps, "BTC", "below", 50000.0)
    account = await account_for_identity(adeps, "telegram:7001")
    assert await delete_alert(adeps, account.id, a.id)
    prices.set("bitcoin", 40000)
    summary = await evaluate_prices(adeps)
    assert summary.coins == 0 and summary.fired == 0 and prices.price_calls == []


async def test_one_upstream_call_per_ids_chunk(adeps: Deps, prices: PriceSources) -> None:
    coins = [f"coin-{i}" for i in range(2 * IDS_PER_CALL + 10)]
    for c in coins:
        prices.set(c, 1.0)
    quotes, calls = await fetch_prices(adeps, coins)
    assert calls == math.ceil(len(coins) / IDS_PER_CALL) == len(prices.price_calls)
    assert len(quotes) == len(coins)
    assert max(len(ids) for ids in prices.price_calls) == IDS_PER_CALL


# --- delivered once --------------------------------------------------------------------------


async def test_two_evaluations_at_the_same_minute_deliver_each_crossing_once(
    adeps: Deps, prices: PriceSources, fakes: Fakes
) -> None:
    chats = [str(7100 + i) for i in range(5)]
    for chat in chats:
        await alert(adeps, "BTC", "above", 70000.0, chat=chat)
    await alert(adeps, "ETH", "above", 3000.0, chat="910001", channel="discord")
    prices.set("bitcoin", 70250.5)
    prices.set("ethereum", 3100.0)
    first, second = await asyncio.gather(evaluate_prices(adeps), evaluate_prices(adeps))
    assert first.fired + second.fired == 6
    await drain(adeps)
    for chat in chats:
        arrived = fakes.telegram.to(chat)
        assert len(arrived) == 1, chat
        text = arrived[0].text
        assert "Bitcoin (BTC) is above $70,000: $70,250.50" in text
        assert "Source: CoinGecko" in text and "UTC" in text
        assert arrived[0].markup == {
            "inline_keyboard": [
                [
                    {"text": "🔎 Research", "callback_data": "research:bitcoin"},
                    {"text": "📈 Chart", "callback_data": "ask:chart:bitcoin"},
                ]
            ]
        }
    posted = fakes.discord.to("910001")
    assert len(posted) == 1
    assert [b["custom_id"] for b in posted[0].payload["components"][0]["components"]] == [
        "research:ethereum",
        "ask:chart:ethereum",
    ]
    assert "Ethereum (ETH) is above $3,000: $3,100" in posted[0].payload["embeds"][0]["title"]
    # a later evaluation of the same prices sends nothing more
    await evaluate_prices(adeps)
    await drain(adeps)
    assert sum(len(fakes.telegram.to(c)) for c in chats) == 5


async def test_killed_between_firing_and_delivery_is_delivered_once_after_restart(
    adeps: Deps, prices: PriceSources, fakes: Fakes
) -> None:
    await alert(adeps, "BTC", "above", 70000.0, chat="7201")
    prices.set("bitcoin", 71000)
    quotes, _ = await fetch_prices(adeps, ["bitcoin"])
    # the firing committed, then the process died before deferring the send
    fired, _, refs = await apply_quotes(adeps, quotes)
    assert fired == 1 and len(refs) == 1
    from reports.queue import run_worker

    await run_worker(adeps, wait=False, install_signal_handlers=False, concurrency=4)
    assert fakes.telegram.to("7201") == []  # nothing queued it
    # the next cycle (another worker, after a restart) finds the pending row and sends it
    summary = await evaluate_prices(adeps)
    assert summary.fired == 0 and summary.deferred == 1
    await drain(adeps)
    assert len(fakes.telegram.to("7201")) == 1
    await evaluate_prices(adeps)
    await drain(adeps)
    assert len(fakes.telegram.to("7201")) == 1


async def test_email_alert_and_a_blocked_chat(
    adeps: Deps, prices: PriceSources, fakes: Fakes
) -> None:
    await alert(adeps, "ETH", "below", 3000.0, chat="ann@example.com", channel="email")
    blocked = await alert(adeps, "ETH", "below", 3000.0, chat="7301")
    fakes.telegram.cue("7301", "blocked")
    prices.set("ethereum", 2900.0)
    await evaluate_prices(adeps)
    await drain(adeps)
    mails = fakes.sendgrid.to("ann@example.com")
    assert len(mails) == 1
    assert "Ethereum (ETH) is below $3,000: $2,900" in mails[0].html
    assert "/api/chart/ethereum.png" in mails[0].html
    assert "List-Unsubscribe" not in mails[0].headers  # not the daily report's unsubscribe
    active = await adeps.db.fetchval("SELECT active FROM alerts WHERE id = $1", blocked.id)
    assert active is False  # the bot was blocked there: its alerts stop


# --- risk flags and sentiment ----------------------------------------------------------------


def _tokenomics(flags: dict[str, str], minutes_ago: int) -> TokenomicsResult:
    at = utcnow().replace(microsecond=0)
    from datetime import timedelta

    at -= timedelta(minutes=minutes_ago)
    return TokenomicsResult(
        project_id="uniswap",
        as_of=at,
        evidence=[Evidence(source="GoPlus", url="https://api.gopluslabs.io", fetched_at=at)],
        flags=[RiskFlag(name=n, status=s) for n, s in flags.items()],
    )  # type: ignore[arg-type]


async def test_risk_alert_fires_on_a_new_flag_only(adeps: Deps, fakes: Fakes) -> None:
    a = await alert(adeps, "UNI", "risk", None, chat="7401")
    await cache.write_l1(
        adeps, _tokenomics({"mintable": "yes", "honeypot (cannot sell)": "no"}, 30), 600
    )
    assert await evaluate_slow(adeps) == 0  # the first reading is the baseline
    assert await evaluate_slow(adeps) == 0  # the same reading again: nothing new
    await cache.write_l1(
        adeps, _tokenomics({"mintable": "yes", "honeypot (cannot sell)": "yes"}, 5), 600
    )
    assert await evaluate_slow(adeps) == 1
    await drain(adeps)
    arrived = fakes.telegram.to("7401")
    assert len(arrived) == 1 and "honeypot (cannot sell)" in arrived[0].text
    assert "mintable" not in arrived[0].text.split("—", 1)[1].split("\n")[0]
    assert await events(adeps, a.id) == [1.0]


async def test_sentiment_alert_fires_on_a_swing(adeps: Deps, fakes: Fakes) -> None:
    from datetime import timedelta

    await alert(adeps, "UNI", "sentiment", 20.0, chat="7501")
    now = utcnow().replace(microsecond=0)
    for minutes_ago, score, fired in [(60, 50.0, 0), (40, 62.0, 0), (20, 72.0, 1), (1, 60.0, 0)]:
        at = now - timedelta(minutes=minutes_ago)
        await cache.write_l1(
            adeps,
            SentimentResult(
                project_id="uniswap",
                as_of=at,
                score=score,
                evidence=[Evidence(source="CoinDesk RSS", url="https://x", fetched_at=at)],
            ),
            600,
        )
        assert await evaluate_slow(adeps) == fired, score
    await drain(adeps)
    arrived = fakes.telegram.to("7501")
    assert len(arrived) == 1 and "50 → 72" in arrived[0].text
