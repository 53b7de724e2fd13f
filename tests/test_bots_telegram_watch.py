"""Watchlist and alert commands in Telegram, driven for real (python-telegram-bot) against the
strict local Bot API, with the real service (reports.watch), PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from billing.accounts import account_for_identity
from bots.render import HELP_TEXT, command_menu
from bots.telegram import build_application
from chainlens.deps import Deps
from reports.watch import alerts_of, watchlist
from tests import telegram_updates as tu
from tests.fake_bot_api import running_fake_bot_api
from tests.test_bots_telegram import (
    CHANNEL,
    GROUP,
    PRIVATE,
    USER,
    Harness,
    bot_settings,
    last_markup,
)


@pytest.fixture
async def tg(fast_deps: Deps) -> AsyncIterator[Harness]:
    async with running_fake_bot_api(channels={CHANNEL}) as (fake, base_url):
        bot_deps = bot_settings(fast_deps, base_url)
        application = build_application(bot_deps)
        async with application:
            fake.calls.clear()
            yield Harness(fake, application, bot_deps)


def callback_data(tg: Harness, chat_id: int = PRIVATE) -> list[str]:
    markup = last_markup(tg.fake, chat_id)
    return [b.get("callback_data", "") for row in markup["inline_keyboard"] for b in row]


async def account_id(tg: Harness, user_id: int = USER) -> int:
    return (await account_for_identity(tg.deps, f"telegram:{user_id}")).id


def test_the_menu_and_help_list_the_new_commands() -> None:
    names = [c.name for c in command_menu()]
    assert names[-6:] == ["watch", "unwatch", "watchlist", "alert", "alerts", "lang"]
    for command in ("/watch", "/unwatch", "/watchlist", "/alert", "/alerts", "/alert delete"):
        assert command in HELP_TEXT


async def test_bare_commands_get_usage_hints(tg: Harness) -> None:
    for command in ("/watch", "/unwatch", "/alert", "/alert delete", "/alert delete x"):
        await tg.send(tu.message(command))
    hints = tg.replies()
    assert hints[0] == "Usage: /watch <project>, for example /watch ETH"
    assert hints[1] == "Usage: /unwatch <project>, for example /unwatch ETH"
    assert hints[2].startswith(
        "Usage: /alert <project> <condition>, for example /alert BTC above 70000"
    )
    assert "move 10%" in hints[2] and "/alert delete <id>" in hints[2]
    assert hints[3].startswith("Usage: /alert delete <id>") and hints[4] == hints[3]
    assert tg.fake.sent("sendMessage", PRIVATE)[0]["parse_mode"] == "HTML"
    assert await watchlist(tg.deps, await account_id(tg)) == []


async def test_watch_unwatch_and_watchlist_are_idempotent(tg: Harness) -> None:
    await tg.send(tu.message("/watchlist"))
    assert tg.replies()[-1].startswith("Your watchlist is empty")
    await tg.send(tu.message("/watch uniswap"))
    assert tg.replies()[-1].startswith("👀 Added Uniswap (UNI) to your watchlist")
    await tg.send(tu.message("/watch $UNI"))
    assert tg.replies()[-1] == "Uniswap (UNI) is already on your watchlist."
    await tg.send(tu.message("/watch cardano"))
    await tg.send(tu.message("/watchlist"))
    listing = tg.replies()[-1]
    assert listing.startswith("👀 Your watchlist (2):\n• Uniswap (UNI)\n• Cardano (ADA)")
    items = await watchlist(tg.deps, await account_id(tg))
    assert [i.project_id for i in items] == ["uniswap", "cardano"]
    await tg.send(tu.message("/unwatch UNI"))
    assert tg.replies()[-1] == "Removed Uniswap (UNI) from your watchlist."
    await tg.send(tu.message("/unwatch uniswap"))
    assert tg.replies()[-1] == "Uniswap (UNI) is not on your watchlist."
    assert [i.project_id for i in await watchlist(tg.deps, await account_id(tg))] == ["cardano"]


async def test_unknown_project_gets_suggestion_buttons_that_watch_it(tg: Harness) -> None:
    await tg.send(tu.message("/watch cardona"))
    assert "Did you mean" in tg.replies()[-1]
    data = callback_data(tg)
    assert "watch:cardano" in data and all(d.startswith("watch:") for d in data)
    assert await watchlist(tg.deps, await account_id(tg)) == []
    press = tu.callback("watch:cardano")
    await tg.send(press)
    assert (
        tg.fake.sent("answerCallbackQuery")[-1]["callback_query_id"]
        == press["callback_query"]["id"]
    )
    assert tg.replies()[-1].startswith("👀 Added Cardano (ADA)")
    assert [i.project_id for i in await watchlist(tg.deps, await account_id(tg))] == ["cardano"]


async def test_watchlist_limit_shows_the_limit_and_an_upgrade_button(tg: Harness) -> None:
    for coin in ("bitcoin", "ethereum", "uniswap", "cardano", "solana"):
        await tg.send(tu.message(f"/watch {coin}"))
        assert tg.replies()[-1].startswith("👀 Added"), tg.replies()[-1]
    await tg.send(tu.message("/watch pepe"))
    refusal = tg.replies()[-1]
    assert "free plan allows 5 projects on your watchlist" in refusal
    assert callback_data(tg) == ["upgrade"]
    assert len(await watchlist(tg.deps, await account_id(tg))) == 5
    await tg.send(tu.callback("upgrade"))  # the same Upgrade flow as /upgrade
    assert "billing is not configured" in tg.replies()[-1]


async def test_alerts_are_set_listed_and_deleted(tg: Harness) -> None:
    await tg.send(tu.message("/alert BTC above 70000"))
    confirmation = tg.replies()[-1]
    assert confirmation.startswith("🔔 Alert set: #")
    assert "Bitcoin (BTC): price above $70,000" in confirmation
    await tg.send(tu.message("/alert eth move 10%"))
    await tg.send(tu.message("/alert BTC sideways"))
    assert "didn't understand" in tg.replies()[-1]
    alerts = await alerts_of(tg.deps, await account_id(tg))
    assert [(a.project_id, a.kind, a.level, a.channel, a.destination) for a in alerts] == [
        ("bitcoin", "above", 70000.0, "telegram", str(PRIVATE)),
        ("ethereum", "move", 10.0, "telegram", str(PRIVATE)),
    ]
    first, second = alerts

    await tg.send(tu.message("/alerts"))
    listing = tg.replies()[-1]
    assert listing.startswith("🔔 Your alerts (2):")
    assert f"#{first.id} Bitcoin (BTC): price above $70,000 → this chat" in listing
    assert f"#{second.id} Ethereum (ETH): a 24 h move of ±10%" in listing
    assert callback_data(tg) == [f"alertdel:{first.id}", f"alertdel:{second.id}"]

    await tg.send(tu.message(f"/alert delete {first.id}"))
    assert tg.replies()[-1] == f"Deleted alert {first.id}."
    await tg.send(tu.message(f"/alert delete #{first.id}"))
    assert tg.replies()[-1].startswith(f"You have no alert {first.id}.")
    await tg.send(tu.callback(f"alertdel:{second.id}"))
    assert tg.replies()[-1] == f"Deleted alert {second.id}."
    assert await alerts_of(tg.deps, await account_id(tg)) == []
    await tg.send(tu.message("/alerts"))
    assert tg.replies()[-1].startswith("You have no alerts.")


async def test_someone_elses_alert_cannot_be_deleted(tg: Harness) -> None:
    await tg.send(tu.message("/alert BTC below 3000", user_id=USER + 1, chat_id=USER + 1))
    [theirs] = await alerts_of(tg.deps, await account_id(tg, USER + 1))
    await tg.send(tu.message(f"/alert delete {theirs.id}"))
    assert tg.replies()[-1].startswith(f"You have no alert {theirs.id}.")
    await tg.send(tu.callback(f"alertdel:{theirs.id}"))
    assert tg.replies()[-1].startswith(f"You have no alert {theirs.id}.")
    assert await alerts_of(tg.deps, await account_id(tg, USER + 1)) == [theirs]


async def test_alert_limit_shows_the_limit_and_an_upgrade_button(tg: Harness) -> None:
    for text in ("BTC above 70000", "ETH below 3000", "uniswap move 10%"):
        await tg.send(tu.message(f"/alert {text}"))
        assert tg.replies()[-1].startswith("🔔 Alert set"), tg.replies()[-1]
    await tg.send(tu.message("/alert cardano sentiment"))
    assert "free plan allows 3 active alerts" in tg.replies()[-1]
    assert callback_data(tg) == ["upgrade"]
    assert len(await alerts_of(tg.deps, await account_id(tg))) == 3


async def test_unknown_project_in_an_alert_suggests_buttons_that_set_it(tg: Harness) -> None:
    await tg.send(tu.message("/alert cardona above 1.5"))
    assert "Did you mean" in tg.replies()[-1]
    assert "alert:cardano:above:1.5" in callback_data(tg)
    assert await alerts_of(tg.deps, await account_id(tg)) == []
    await tg.send(tu.callback("alert:cardano:above:1.5"))
    assert tg.replies()[-1].startswith("🔔 Alert set")
    [alert] = await alerts_of(tg.deps, await account_id(tg))
    assert (alert.project_id, alert.kind, alert.level) == ("cardano", "above", 1.5)
    await tg.send(tu.message("/alert cardona below 2m"))  # levels ride as plain digits
    assert "alert:cardano:below:2000000" in callback_data(tg)
    await tg.send(tu.callback("alert:cardano:nonsense"))
    assert "no longer works" in tg.fake.sent("answerCallbackQuery")[-1]["text"]


async def test_in_a_group_only_admins_set_alerts_but_anyone_watches(tg: Harness) -> None:
    await tg.send(tu.message("/alert BTC above 70000", chat_id=GROUP, user_id=801))
    assert "Only this chat's admins" in tg.replies(GROUP)[-1]
    assert await alerts_of(tg.deps, await account_id(tg, 801)) == []
    await tg.send(tu.message("/watch BTC", chat_id=GROUP, user_id=801))
    assert tg.replies(GROUP)[-1].startswith("👀 Added Bitcoin (BTC)")

    tg.fake.members[(GROUP, 802)] = "administrator"
    await tg.send(tu.message("/alert BTC above 70000", chat_id=GROUP, user_id=802))
    assert tg.replies(GROUP)[-1].startswith("🔔 Alert set")
    [alert] = await alerts_of(tg.deps, await account_id(tg, 802))
    assert (alert.channel, alert.destination) == ("telegram", str(GROUP))
    # The admin's /alerts in private says where that alert posts.
    await tg.send(tu.message("/alerts", chat_id=802, user_id=802))
    assert "Bitcoin (BTC): price above $70,000 → another Telegram chat" in tg.replies(802)[-1]

    # A suggestion button in a group is checked against whoever presses it.
    await tg.send(tu.message("/alert cardona risk", chat_id=GROUP, user_id=802))
    data = callback_data(tg, GROUP)
    assert data, tg.replies(GROUP)[-1]
    await tg.send(tu.callback(data[0], chat_id=GROUP, user_id=801))
    assert "Only this chat's admins" in tg.replies(GROUP)[-1]


async def test_native_coins_have_no_risk_alerts(tg: Harness) -> None:
    await tg.send(tu.message("/alert BTC risk"))
    assert "native coin" in tg.replies()[-1]
    assert await alerts_of(tg.deps, await account_id(tg)) == []
