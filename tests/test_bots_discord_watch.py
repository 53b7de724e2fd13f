"""Watchlist and alert slash commands in Discord, driven for real (discord.py parses the
INTERACTION_CREATE payloads and syncs its tree) against the strict local Discord API, with the
real service (reports.watch), PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest

from billing.accounts import account_for_identity
from billing.checkout_link import read_checkout_token
from chainlens.deps import Deps
from reports.watch import alerts_of, watchlist
from tests.fake_discord_api import CHANNEL_ID, DM_CHANNEL_ID, EPHEMERAL
from tests.test_bots_discord import IDENTITY, Bot, buttons_of, start_bot


@pytest.fixture
async def bot(fast_deps: Deps) -> AsyncIterator[Bot]:
    async for running in start_bot(fast_deps):
        yield running


def option(name: str, value: Any, type_: int = 3) -> dict[str, Any]:
    return {"name": name, "type": type_, "value": value}


def alert_add(
    bot: Bot, project: str, condition: str, level: float | None = None, **kwargs: Any
) -> dict[str, Any]:
    options = [option("project", project), option("condition", condition)]
    if level is not None:
        options.append(option("level", level, 10))
    return bot.fake.slash("alert", [{"name": "add", "type": 1, "options": options}], **kwargs)


async def reply(bot: Bot, payload: dict[str, Any]) -> dict[str, Any]:
    """The one ephemeral message a deferred command answered with."""
    await bot.dispatch(payload)
    assert bot.fake.state(payload).response_type == 5
    [message] = bot.fake.messages_of(payload)
    assert message["flags"] & EPHEMERAL
    return message


async def account_id(bot: Bot) -> int:
    return (await account_for_identity(bot.deps, IDENTITY)).id


async def test_watch_and_alert_commands_as_synced_to_discord(bot: Bot) -> None:
    synced = {c["name"]: c for c in bot.fake.commands}
    assert {"watch", "unwatch", "watchlist", "alerts", "alert"} <= set(synced)
    for name in ("watch", "unwatch"):
        [project] = synced[name]["options"]
        assert (project["name"], project["type"], project["required"], project["autocomplete"]) == (
            "project",
            3,
            True,
            True,
        )
    assert synced["watchlist"].get("options", []) == []
    assert synced["alerts"].get("options", []) == []
    alert = synced["alert"]
    assert alert["default_member_permissions"] is None  # list/delete are for everyone
    subs = {o["name"]: o for o in alert["options"]}
    assert [(o["name"], o["type"]) for o in alert["options"]] == [
        ("add", 1),
        ("list", 1),
        ("delete", 1),
    ]
    add = {o["name"]: o for o in subs["add"]["options"]}
    assert list(add) == ["project", "condition", "level"]
    assert add["project"]["autocomplete"] is True and add["project"]["required"] is True
    assert [c["value"] for c in add["condition"]["choices"]] == [
        "above",
        "below",
        "move",
        "risk",
        "sentiment",
    ]
    assert add["condition"]["type"] == 3 and add["condition"]["required"] is True
    assert add["level"]["type"] == 10 and add["level"]["required"] is False
    [alert_id] = subs["delete"]["options"]
    assert (alert_id["name"], alert_id["type"], alert_id["autocomplete"]) == ("id", 4, True)


async def test_watch_unwatch_watchlist_ephemeral_and_idempotent(bot: Bot) -> None:
    empty = await reply(bot, bot.fake.slash("watchlist"))
    assert empty["content"].startswith("Your watchlist is empty")
    texts = []
    for command, project in (
        ("watch", "uniswap"),
        ("watch", "$UNI"),
        ("watch", "cardano"),
        ("unwatch", "UNI"),
        ("unwatch", "uniswap"),
    ):
        message = await reply(bot, bot.fake.slash(command, [option("project", project)]))
        texts.append(message["content"])
    assert texts[0].startswith("👀 Added **Uniswap (UNI)** to your watchlist")
    assert texts[1] == "**Uniswap (UNI)** is already on your watchlist."
    assert texts[3] == "Removed **Uniswap (UNI)** from your watchlist."
    assert texts[4] == "**Uniswap (UNI)** is not on your watchlist."
    listing = await reply(bot, bot.fake.slash("watchlist"))
    assert "• Cardano (ADA)" in listing["content"] and "Uniswap" not in listing["content"]
    assert [i.project_id for i in await watchlist(bot.deps, await account_id(bot))] == ["cardano"]


async def test_watch_autocompletes_from_the_index_and_unwatch_from_the_watchlist(bot: Bot) -> None:
    typed = bot.fake.autocomplete("watch", "project", "uni")
    await bot.dispatch(typed)
    assert {"name": "Uniswap (UNI)", "value": "uniswap"} in (bot.fake.state(typed).choices or [])
    for coin in ("uniswap", "cardano"):
        await reply(bot, bot.fake.slash("watch", [option("project", coin)]))
    mine = bot.fake.autocomplete("unwatch", "project", "")
    await bot.dispatch(mine)
    assert bot.fake.state(mine).choices == [
        {"name": "Uniswap (UNI)", "value": "uniswap"},
        {"name": "Cardano (ADA)", "value": "cardano"},
    ]
    narrowed = bot.fake.autocomplete("unwatch", "project", "car")
    await bot.dispatch(narrowed)
    assert bot.fake.state(narrowed).choices == [{"name": "Cardano (ADA)", "value": "cardano"}]


async def test_unknown_project_gets_suggestion_buttons_that_watch_it(bot: Bot) -> None:
    message = await reply(bot, bot.fake.slash("watch", [option("project", "cardona")]))
    assert "Did you mean" in message["content"] and "Cardano (ADA)" in message["content"]
    buttons = {b["custom_id"]: b["label"] for b in buttons_of(message)}
    assert buttons["watch:cardano"] == "Cardano (ADA)"
    assert all(custom_id.startswith("watch:") for custom_id in buttons)
    assert await watchlist(bot.deps, await account_id(bot)) == []
    pressed = await reply(bot, bot.fake.press("watch:cardano", message))
    assert pressed["content"].startswith("👀 Added **Cardano (ADA)**")
    assert [i.project_id for i in await watchlist(bot.deps, await account_id(bot))] == ["cardano"]


async def test_watchlist_limit_has_the_limit_and_an_upgrade_link(bot: Bot) -> None:
    for coin in ("bitcoin", "ethereum", "uniswap", "cardano", "solana"):
        await reply(bot, bot.fake.slash("watch", [option("project", coin)]))
    refusal = await reply(bot, bot.fake.slash("watch", [option("project", "pepe")]))
    assert "free plan allows 5 projects on your watchlist" in refusal["content"]
    [button] = buttons_of(refusal)
    assert button["style"] == 5 and read_checkout_token(
        bot.deps.settings, button["url"].rsplit("/", 1)[1]
    ) == (await account_id(bot), "pro")
    assert len(await watchlist(bot.deps, await account_id(bot))) == 5


async def test_alerts_are_added_listed_and_deleted(bot: Bot) -> None:
    added = await reply(bot, alert_add(bot, "bitcoin", "above", 70000))
    assert added["content"].startswith("🔔 Alert set: #")
    assert "Bitcoin (BTC): price above $70,000" in added["content"]
    assert "posts in this channel" in added["content"]
    await reply(bot, alert_add(bot, "ethereum", "move", 12.5, dm=True))
    await reply(bot, alert_add(bot, "uniswap", "sentiment"))
    alerts = await alerts_of(bot.deps, await account_id(bot))
    assert [(a.project_id, a.kind, a.level, a.channel, a.destination) for a in alerts] == [
        ("bitcoin", "above", 70000.0, "discord", str(CHANNEL_ID)),
        ("ethereum", "move", 12.5, "discord", str(DM_CHANNEL_ID)),
        ("uniswap", "sentiment", 20.0, "discord", str(CHANNEL_ID)),
    ]
    btc, eth, uni = alerts

    for payload in (
        bot.fake.slash("alerts"),
        bot.fake.slash("alert", [{"name": "list", "type": 1, "options": []}]),
    ):
        listing = (await reply(bot, payload))["content"]
        assert listing.startswith("🔔 **Your alerts** (3):")
        assert f"#{btc.id} Bitcoin (BTC): price above $70,000 → this chat" in listing
        assert (
            f"#{eth.id} Ethereum (ETH): a 24 h move of ±12.5% → another Discord channel" in listing
        )

    typed = bot.fake.interaction(
        4,
        {
            "id": "1",
            "name": "alert",
            "type": 1,
            "options": [
                {
                    "name": "delete",
                    "type": 1,
                    "options": [{"name": "id", "type": 4, "value": "eth", "focused": True}],
                }
            ],
        },
    )
    await bot.dispatch(typed)
    assert bot.fake.state(typed).choices == [
        {
            "name": f"#{eth.id} Ethereum (ETH): a 24 h move of ±12.5% → another Discord channel",
            "value": eth.id,
        }
    ]

    def delete(alert_id: int) -> dict[str, Any]:
        return bot.fake.slash(
            "alert", [{"name": "delete", "type": 1, "options": [option("id", alert_id, 4)]}]
        )

    assert (await reply(bot, delete(btc.id)))["content"] == f"Deleted alert #{btc.id}."
    assert (await reply(bot, delete(btc.id)))["content"].startswith(f"You have no alert #{btc.id}.")
    assert [a.id for a in await alerts_of(bot.deps, await account_id(bot))] == [eth.id, uni.id]


async def test_alert_needs_a_level_for_prices_and_moves(bot: Bot) -> None:
    message = await reply(bot, alert_add(bot, "bitcoin", "above"))
    assert message["content"].startswith("Give the level for")
    big = await reply(bot, alert_add(bot, "bitcoin", "move", 5000))
    assert "up to 1000%" in big["content"]
    huge = await reply(bot, alert_add(bot, "bitcoin", "above", 1e7))
    assert "price above $10,000,000" in huge["content"]
    assert len(await alerts_of(bot.deps, await account_id(bot))) == 1


async def test_alert_limit_has_the_limit_and_an_upgrade_link(bot: Bot) -> None:
    for coin in ("bitcoin", "ethereum", "uniswap"):
        await reply(bot, alert_add(bot, coin, "below", 1))
    refusal = await reply(bot, alert_add(bot, "cardano", "below", 1))
    assert "free plan allows 3 active alerts" in refusal["content"]
    [button] = buttons_of(refusal)
    assert button["style"] == 5 and "/api/payment/checkout-link/" in button["url"]
    assert len(await alerts_of(bot.deps, await account_id(bot))) == 3


async def test_alert_with_an_unknown_project_gets_suggestion_buttons(bot: Bot) -> None:
    message = await reply(bot, alert_add(bot, "cardona", "above", 1.5))
    assert "Did you mean" in message["content"] and "Cardano (ADA)" in message["content"]
    custom_ids = [b["custom_id"] for b in buttons_of(message)]
    assert "alert:cardano:above:1.5" in custom_ids
    big = await reply(bot, alert_add(bot, "cardona", "below", 2e6))
    assert "alert:cardano:below:2000000" in [b["custom_id"] for b in buttons_of(big)]
    assert await alerts_of(bot.deps, await account_id(bot)) == []
    # The press is checked like the command: no Manage Channels, no alert in this channel.
    refused = await reply(bot, bot.fake.press("alert:cardano:above:1.5", message, permissions=0))
    assert "Manage Channels" in refused["content"]
    pressed = await reply(bot, bot.fake.press("alert:cardano:above:1.5", message))
    assert pressed["content"].startswith("🔔 Alert set")
    [alert] = await alerts_of(bot.deps, await account_id(bot))
    assert (alert.project_id, alert.kind, alert.level, alert.destination) == (
        "cardano",
        "above",
        1.5,
        str(CHANNEL_ID),
    )


async def test_alerts_post_in_servers_only_for_channel_managers(bot: Bot) -> None:
    member = await reply(bot, alert_add(bot, "bitcoin", "above", 70000, permissions=0))
    assert "Manage Channels" in member["content"] and "DM with me" in member["content"]
    outsider = await reply(bot, alert_add(bot, "bitcoin", "above", 70000, user_install=True))
    assert "server that added ChainLens" in outsider["content"]
    assert await alerts_of(bot.deps, await account_id(bot)) == []
    # The same member in a DM with the bot: delivered there.
    dm = await reply(bot, alert_add(bot, "bitcoin", "above", 70000, dm=True, permissions=0))
    assert "posts in our DM" in dm["content"]
    [alert] = await alerts_of(bot.deps, await account_id(bot))
    assert alert.destination == str(DM_CHANNEL_ID)
    # Watching needs no permission: the watchlist is personal.
    watched = await reply(
        bot, bot.fake.slash("watch", [option("project", "bitcoin")], permissions=0)
    )
    assert watched["content"].startswith("👀 Added")
    assert discord.Permissions(manage_channels=True).value == 1 << 4  # the fake's default
