"""The Discord adapter driven for real: discord.py logs in, syncs its command tree and parses
INTERACTION_CREATE payloads through its own state, against a strict local stand-in for
Discord's REST API (tests/fake_discord_api.py). Real PostgreSQL, Redis and agent; the data
sources are the usual fakes at the HTTP boundary."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from pydantic import SecretStr

from billing.accounts import account_for_identity, create_link_code
from billing.checkout_link import read_checkout_token
from billing.quota import consume_request, quota_status
from bots.discord import ChainLensDiscord, open_channel_sender, send_to_channel
from bots.discord.layout import STANCE_COLOURS
from chainlens.deps import Deps
from chainlens.settings import TierLimits
from reports.subscriptions import get_subscription
from tests.fake_discord_api import (
    CHANNEL_ID,
    DM_CHANNEL_ID,
    EPHEMERAL,
    USER_ID,
    Call,
    FakeDiscord,
    embed_size,
    running_fake_discord,
)
from tests.test_agent_support import llm_server, llm_server_session  # noqa: F401 (fixtures)

IDENTITY = f"discord:{USER_ID}"
# Five a day as usual, but no per-minute limit in the way of several questions in one test.
ROOMY_FREE_TIER = {
    "free": TierLimits(daily=5, minute=100),
    "pro": TierLimits(daily=1000, minute=100),
    "enterprise": TierLimits(daily=100000, minute=100),
}


@dataclass
class Bot:
    fake: FakeDiscord
    client: ChainLensDiscord
    deps: Deps

    async def dispatch(self, payload: dict[str, Any]) -> None:
        """Feed one gateway INTERACTION_CREATE through discord.py's own parser and wait
        until every handler task it started has finished."""
        self.client._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
        await settle()


async def settle() -> None:
    while True:
        pending = [
            t
            for t in asyncio.all_tasks()
            if not t.done() and t.get_name().startswith(("CommandTree-invoker", "discord-ui-"))
        ]
        if not pending:
            return
        await asyncio.wait(pending, timeout=60)


async def start_bot(deps: Deps, **settings: Any) -> AsyncIterator[Bot]:
    original_base = discord.http.Route.BASE
    async with running_fake_discord() as (fake, base):
        bot_settings = deps.settings.model_copy(
            update={
                "discord_bot_token": SecretStr("test-token"),
                "discord_api_base": base,
                "send_rates": {"discord_channel": (100, 1.0)},
                "tier_limits": ROOMY_FREE_TIER,
                **settings,
            }
        )
        bot_deps = dataclasses.replace(deps, settings=bot_settings)
        client = ChainLensDiscord(bot_deps)
        try:
            await client.login("test-token")  # GET /users/@me, application, then tree.sync()
            yield Bot(fake, client, bot_deps)
        finally:
            await client.close()
            discord.http.Route.BASE = original_base


@pytest.fixture
async def bot(fast_deps: Deps) -> AsyncIterator[Bot]:
    async for running in start_bot(fast_deps):
        yield running


def embeds_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for m in messages for e in m["embeds"]]


def buttons_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for row in message["components"] for b in row["components"]]


# --- the command tree ------------------------------------------------------------------------


async def test_command_tree_as_synced_to_discord(bot: Bot) -> None:
    synced = {c["name"]: c for c in bot.fake.commands}
    assert set(synced) == {
        "ask",
        "research",
        "price",
        "sentiment",
        "tokenomics",
        "team",
        "usage",
        "upgrade",
        "link",
        "alpha",
        "help",
        "watch",
        "unwatch",
        "watchlist",
        "alerts",
        "alert",
        "lang",
    }
    translator = bot.client.tree.translator
    assert translator is not None  # descriptions go out with their Vietnamese translations
    assert synced == {
        c.name: await c.get_translated_payload(bot.client.tree, translator)
        | {
            "id": synced[c.name]["id"],
            "application_id": synced[c.name]["application_id"],
            "version": "1",
        }
        for c in bot.client.tree.get_commands()
    }
    for name in ("research", "price", "sentiment", "tokenomics", "team"):
        [option] = synced[name]["options"]
        assert (option["name"], option["type"], option["required"], option["autocomplete"]) == (
            "project",
            3,
            True,
            True,
        )
    assert [o["name"] for o in synced["ask"]["options"]] == ["question"]
    assert synced["link"]["options"][0]["required"] is False
    # installable to servers and users; usable in servers, the bot's DM and group DMs
    for name, command in synced.items():
        assert command["integration_types"] == [0, 1], name
        assert command["contexts"] == ([0, 1] if name == "alpha" else [0, 1, 2]), name
    alpha = synced["alpha"]
    assert alpha["default_member_permissions"] == discord.Permissions(manage_channels=True).value
    assert [(o["name"], o["type"]) for o in alpha["options"]] == [
        ("subscribe", 1),
        ("unsubscribe", 1),
    ]
    assert all(synced[n]["default_member_permissions"] is None for n in synced if n != "alpha")


# --- answering -----------------------------------------------------------------------------


async def test_research_defers_before_any_work_then_answers_with_embeds(bot: Bot) -> None:
    seen_at_defer: list[int] = []

    async def look_at_database(call: Call) -> None:
        seen_at_defer.append(
            await bot.deps.db.fetchval(
                "SELECT count(*) FROM identities WHERE identity = $1", IDENTITY
            )
        )

    bot.fake.on_callback = look_at_database
    payload = bot.fake.slash("research", [{"name": "project", "type": 3, "value": "uniswap"}])
    await bot.dispatch(payload)

    state = bot.fake.state(payload)
    assert state.response_type == 5  # deferred, "thinking"
    assert seen_at_defer == [0]  # nothing touched the database before the deferral
    kinds = [c.kind for c in bot.fake.calls if c.token == payload["token"]]
    assert kinds[0] == "callback" and "edit_original" in kinds
    [message] = bot.fake.messages_of(payload)
    assert message["flags"] & EPHEMERAL == 0
    [embed] = message["embeds"]
    assert embed["title"] == "Uniswap (UNI)"
    assert "Uniswap" in embed["description"]
    field_names = [f["name"] for f in embed["fields"]]
    assert field_names and set(field_names) <= {
        "Market & on-chain",
        "Sentiment",
        "Tokenomics",
        "Team",
    }
    footer = embed["footer"]["text"]
    assert footer.startswith("Sources: ") and "CoinGecko" in footer
    assert embed["color"] in {c.value for c in STANCE_COLOURS.values()}
    assert embed["image"]["url"] == "attachment://chart.png"
    assert [a["filename"] for a in message["attachments"]] == ["chart.png"]
    labels = [b.get("label") for b in buttons_of(message)]
    assert labels[:4] == ["Sentiment", "Tokenomics", "Team", "Chart"]
    assert buttons_of(message)[0]["custom_id"] == "ask:sentiment:uniswap"
    account = await account_for_identity(bot.deps, IDENTITY)
    status = await quota_status(bot.deps, account)
    assert status.remaining == status.limit - 1  # charged once


@pytest.mark.parametrize(
    ("command", "tool_field"),
    [
        ("price", "Market & on-chain"),
        ("sentiment", "Sentiment"),
        ("tokenomics", "Tokenomics"),
        ("team", "Team"),
    ],
)
async def test_each_project_command_answers_its_aspect(
    bot: Bot, command: str, tool_field: str
) -> None:
    payload = bot.fake.slash(command, [{"name": "project", "type": 3, "value": "uniswap"}])
    await bot.dispatch(payload)
    [message] = bot.fake.messages_of(payload)
    [embed] = message["embeds"]
    assert embed["title"] == "Uniswap (UNI)"
    assert tool_field in [f["name"] for f in embed["fields"]]


async def test_ask_works_in_a_dm_of_a_user_install(bot: Bot) -> None:
    payload = bot.fake.slash(
        "ask",
        [{"name": "question", "type": 3, "value": "what's the crowd saying about $UNI"}],
        dm=True,
        user_install=True,
    )
    await bot.dispatch(payload)
    state = bot.fake.state(payload)
    assert state.channel_id == DM_CHANNEL_ID
    [message] = bot.fake.messages_of(payload)
    assert "Sentiment" in [f["name"] for e in message["embeds"] for f in e.get("fields", [])]
    answer_events = [c for c in bot.fake.calls if c.token == payload["token"]]
    assert all(c.status < 400 for c in answer_events)


async def test_help_answers_at_once_and_privately(bot: Bot) -> None:
    payload = bot.fake.slash("help")
    await bot.dispatch(payload)
    [message] = bot.fake.messages_of(payload)
    assert message["flags"] & EPHEMERAL and "Research Uniswap" in message["content"]


# --- ephemeral account commands and Upgrade -----------------------------------------------


async def test_usage_upgrade_and_link_are_ephemeral(bot: Bot) -> None:
    texts = []
    for name in ("usage", "upgrade", "link"):
        payload = bot.fake.slash(name)
        await bot.dispatch(payload)
        assert bot.fake.state(payload).response_type == 5
        [message] = bot.fake.messages_of(payload)
        assert message["flags"] & EPHEMERAL, name
        texts.append(message["content"])
    assert texts[0].startswith("Plan: **free**. 5 of 5 requests left")
    assert "Pro:" in texts[1]
    assert re.search(r"Your link code: `([^`]+)`", texts[2])


async def test_upgrade_button_links_checkout_for_this_discord_account(bot: Bot) -> None:
    payload = bot.fake.slash("upgrade")
    await bot.dispatch(payload)
    [message] = bot.fake.messages_of(payload)
    [button] = buttons_of(message)
    assert button["style"] == 5 and "custom_id" not in button
    assert "/api/payment/checkout-link/" in button["url"]
    token = button["url"].rsplit("/", 1)[1]
    account = await account_for_identity(bot.deps, IDENTITY)
    assert read_checkout_token(bot.deps.settings, token) == (account.id, "pro")


async def test_quota_refusal_is_ephemeral_with_upgrade_and_costs_nothing(bot: Bot) -> None:
    account = await account_for_identity(bot.deps, IDENTITY)
    for _ in range(5):
        assert (await consume_request(bot.deps, account)).allowed
    payload = bot.fake.slash("research", [{"name": "project", "type": 3, "value": "uniswap"}])
    await bot.dispatch(payload)
    state = bot.fake.state(payload)
    assert state.original_deleted  # the public "thinking" message is gone
    [refusal] = bot.fake.messages_of(payload)
    assert refusal["flags"] & EPHEMERAL
    assert "used all 5 requests" in refusal["content"]
    assert "/pricing" not in refusal["content"] and "button below" in refusal["content"]
    [button] = buttons_of(refusal)
    assert button["style"] == 5 and read_checkout_token(
        bot.deps.settings, button["url"].rsplit("/", 1)[1]
    ) == (account.id, "pro")
    status = await quota_status(bot.deps, account)
    assert status.remaining == 0 and status.day_used == 5


# --- autocomplete and buttons ------------------------------------------------------------


async def test_project_autocomplete_from_the_coin_index(bot: Bot) -> None:
    payload = bot.fake.autocomplete("research", "project", "uni")
    await bot.dispatch(payload)
    choices = bot.fake.state(payload).choices
    assert choices is not None and 1 <= len(choices) <= 25
    assert {"name": "Uniswap (UNI)", "value": "uniswap"} in choices
    empty = bot.fake.autocomplete("price", "project", "")
    await bot.dispatch(empty)
    top = bot.fake.state(empty).choices
    assert top is not None and len(top) == 25 and top[0]["value"] == "bitcoin"


async def test_follow_up_button_asks_a_new_charged_question(bot: Bot) -> None:
    research = bot.fake.slash("research", [{"name": "project", "type": 3, "value": "uniswap"}])
    await bot.dispatch(research)
    [answer] = bot.fake.messages_of(research)
    answers_at_defer: list[int] = []

    async def count_answers(call: Call) -> None:
        answers_at_defer.append(await bot.deps.db.fetchval("SELECT count(*) FROM usage_logs"))

    bot.fake.on_callback = count_answers
    press = bot.fake.press("ask:tokenomics:uniswap", answer)
    await bot.dispatch(press)
    assert answers_at_defer == [1]  # acknowledged before the new question was worked on
    assert await bot.deps.db.fetchval("SELECT count(*) FROM usage_logs") == 2
    state = bot.fake.state(press)
    assert state.response_type == 5  # a new "thinking" message, not an edit of the answer
    [follow_up] = bot.fake.messages_of(press)
    assert follow_up["id"] != answer["id"]
    [embed] = follow_up["embeds"]
    assert embed["title"] == "Uniswap (UNI)"
    assert "Tokenomics" in [f["name"] for f in embed["fields"]]
    account = await account_for_identity(bot.deps, IDENTITY)
    status = await quota_status(bot.deps, account)
    assert status.remaining == status.limit - 2


# --- limits, 429s and errors ---------------------------------------------------------------


async def test_error_gets_an_apology_with_the_reference_id_in_the_log(
    fast_deps: Deps, caplog: pytest.LogCaptureFixture
) -> None:
    from chainlens.deps import create_db_pool

    assert fast_deps.settings.database_url is not None
    closed = await create_db_pool(fast_deps.settings.database_url, fast_deps.settings)
    await closed.close()  # the database is gone
    async for bot in start_bot(dataclasses.replace(fast_deps, db=closed)):
        payload = bot.fake.slash("usage")
        with caplog.at_level(logging.ERROR, logger="bots.discord.commands"):
            await bot.dispatch(payload)
        [message] = bot.fake.messages_of(payload)
        found = re.search(r"reference `([0-9a-f]{8})`", message["content"])
        assert found is not None and message["content"].startswith("Sorry")
        [record] = [r for r in caplog.records if found.group(1) in r.getMessage()]
        assert record.exc_info is not None  # the traceback is in the same log line


async def test_long_answer_continues_in_follow_ups_within_limits_through_a_429(
    fast_deps: Deps, request: pytest.FixtureRequest
) -> None:
    from tests.test_agent_llm import PLAN_ALL
    from tests.test_agent_support import Reply, with_llm

    llm = request.getfixturevalue("llm_server")

    paragraphs = [
        f"Paragraph {chr(65 + i % 26)}: " + " ".join(["liquidity depth matters"] * 40)
        for i in range(14)
    ]
    long_text = "\n\n".join(paragraphs)
    assert len(long_text) > 12_000
    llm.script("writer", PLAN_ALL, Reply(text=long_text, chunk_chars=2000))
    deps = with_llm(fast_deps, llm, "writer")
    async for bot in start_bot(deps):
        bot.fake.rate_limit_next("followup", retry_after=0.4)
        payload = bot.fake.slash(
            "ask", [{"name": "question", "type": 3, "value": "Research Uniswap"}]
        )
        await bot.dispatch(payload)
        messages = bot.fake.messages_of(payload)
        assert len(messages) >= 3
        for message in messages:  # the fake refused nothing, and each message is in limits
            assert sum(embed_size(e) for e in message["embeds"]) <= 6000
            assert len(message["embeds"]) <= 10 and len(message["content"]) <= 2000
        assert not [c for c in bot.fake.calls if c.status == 400]
        followups = [c for c in bot.fake.calls if c.kind == "followup"]
        assert followups[0].status == 429 and followups[1].status == 200
        assert followups[1].payload == followups[0].payload  # the same request, once more
        assert bot.fake.early_retries == 0  # discord.py waited the full retry_after
        assert len(bot.fake.delivered("followup")) == len(messages) - 1  # no duplicate
        text = "\n".join(e.get("description", "") for e in embeds_of(messages))
        for paragraph in paragraphs:
            assert paragraph in text
        last = messages[-1]
        assert [b.get("label") for b in buttons_of(last)][:4] == [
            "Sentiment",
            "Tokenomics",
            "Team",
            "Chart",
        ]
        assert all(not m["components"] for m in messages[:-1])


async def test_a_global_429_on_the_final_edit_is_waited_out(bot: Bot) -> None:
    bot.fake.rate_limit_next("edit_original", retry_after=0.3, global_=True)
    payload = bot.fake.slash("price", [{"name": "project", "type": 3, "value": "uniswap"}])
    await bot.dispatch(payload)
    edits = [c for c in bot.fake.calls if c.kind == "edit_original"]
    assert edits[0].status == 429 and edits[-1].status == 200
    assert bot.fake.early_retries == 0
    [message] = bot.fake.messages_of(payload)
    assert message["embeds"][0]["title"] == "Uniswap (UNI)"


# --- /alpha ----------------------------------------------------------------------------------


async def test_alpha_subscribes_and_unsubscribes_this_channel(bot: Bot) -> None:
    def alpha(sub: str, **kwargs: Any) -> dict[str, Any]:
        return bot.fake.slash("alpha", [{"name": sub, "type": 1, "options": []}], **kwargs)

    replies = []
    for sub in ("subscribe", "subscribe", "unsubscribe", "unsubscribe"):
        payload = alpha(sub)
        await bot.dispatch(payload)
        [message] = bot.fake.messages_of(payload)
        assert message["flags"] & EPHEMERAL
        replies.append(message["content"])
        if sub == "subscribe":
            subscription = await get_subscription(
                bot.deps, channel="discord", destination=str(payload["channel_id"])
            )
            assert subscription is not None and subscription.receiving
    assert replies[0].startswith("Subscribed") and "already" in replies[1]
    assert replies[2].startswith("Unsubscribed") and "already" in replies[3]
    subscription = await get_subscription(bot.deps, channel="discord", destination=str(CHANNEL_ID))
    assert subscription is not None and not subscription.active


async def test_alpha_in_a_server_without_the_bot_is_refused(bot: Bot) -> None:
    payload = bot.fake.slash(
        "alpha", [{"name": "subscribe", "type": 1, "options": []}], user_install=True
    )
    await bot.dispatch(payload)
    [message] = bot.fake.messages_of(payload)
    assert "Add me to this server" in message["content"]
    assert (
        await get_subscription(bot.deps, channel="discord", destination=str(payload["channel_id"]))
        is None
    )


async def test_refused_embeds_fall_back_to_plain_text_and_are_charged_once(bot: Bot) -> None:
    bot.fake.refuse_next(
        "edit_original",
        status=400,
        code=50035,
        message="Invalid Form Body",
        when=lambda payload: bool(payload.get("embeds")),
    )
    payload = bot.fake.slash("research", [{"name": "project", "type": 3, "value": "uniswap"}])
    await bot.dispatch(payload)
    messages = bot.fake.messages_of(payload)
    assert messages and all(not m["embeds"] and m["content"] for m in messages)
    assert all(len(m["content"]) <= 2000 for m in messages)
    text = "\n".join(m["content"] for m in messages)
    assert "Uniswap (UNI)" in text and "not financial advice" in text.lower()
    account = await account_for_identity(bot.deps, IDENTITY)
    status = await quota_status(bot.deps, account)
    assert status.remaining == status.limit - 1


async def test_an_answer_nobody_could_see_is_not_charged(bot: Bot) -> None:
    for kind in ("edit_original", "followup"):
        bot.fake.refuse_next(kind, times=100)  # the bot lost access to the channel
    payload = bot.fake.slash("research", [{"name": "project", "type": 3, "value": "uniswap"}])
    await bot.dispatch(payload)
    assert bot.fake.delivered("edit_original") == [] and bot.fake.delivered("followup") == []
    account = await account_for_identity(bot.deps, IDENTITY)
    status = await quota_status(bot.deps, account)
    assert status.remaining == status.limit


async def test_progress_shows_while_the_answer_is_written(bot: Bot) -> None:
    payload = bot.fake.slash("research", [{"name": "project", "type": 3, "value": "uniswap"}])
    await bot.dispatch(payload)
    edits = [c.payload for c in bot.fake.delivered("edit_original")]
    assert len(edits) >= 2
    first = edits[0]
    assert not first.get("embeds") and first["content"].startswith("🎯 Uniswap (UNI)")
    assert "⏳" in first["content"] or "✅" in first["content"]
    assert edits[-1]["embeds"] and edits[-1]["content"] is None


async def test_did_you_mean_buttons_when_the_project_is_unknown(bot: Bot) -> None:
    payload = bot.fake.slash("research", [{"name": "project", "type": 3, "value": "wrapped"}])
    await bot.dispatch(payload)
    [message] = bot.fake.messages_of(payload)
    buttons = {b["custom_id"]: b["label"] for b in buttons_of(message)}
    assert buttons["research:wrapped-bitcoin"] == "Wrapped Bitcoin (WBTC)"
    assert all(custom_id.startswith("research:") for custom_id in buttons)
    account = await account_for_identity(bot.deps, IDENTITY)
    status = await quota_status(bot.deps, account)
    assert status.remaining == status.limit  # no project, no analysis: not charged


# --- the channel sender (reports, alerts) and shared 429 holds ----------------------------


async def held(bot: Bot, *, chat: str, sending: asyncio.Task[Any]) -> bool:
    """Whether the shared limiter holds sends to `chat` while discord.py waits out a 429."""
    while not sending.done():
        if [c for c in bot.fake.calls if c.status == 429] and await bot.client.limiter.try_acquire(
            "discord", chat=chat
        ) > 0:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_send_to_channel_passes_the_limiter_and_shares_a_global_429(bot: Bot) -> None:
    bot.fake.rate_limit_next("channel_message", retry_after=0.6, global_=True)
    embed = discord.Embed(title="Daily alpha", description="x" * 4000)
    sending = asyncio.create_task(
        send_to_channel(bot.client, bot.client.limiter, CHANNEL_ID, embeds=[embed])
    )
    # Every process now waits: the whole platform is on hold, whatever the channel.
    assert await held(bot, chat="123", sending=sending)
    message = await sending
    [delivered] = bot.fake.channel_messages
    assert int(delivered["id"]) == message.id and delivered["embeds"][0]["title"] == "Daily alpha"
    assert bot.fake.early_retries == 0
    assert [c.status for c in bot.fake.calls if c.kind == "channel_message"] == [429, 200]


async def test_a_channel_429_holds_that_channel_only(bot: Bot) -> None:
    bot.fake.rate_limit_next("channel_message", retry_after=0.6)
    sending = asyncio.create_task(
        send_to_channel(bot.client, bot.client.limiter, CHANNEL_ID, content="hello")
    )
    assert await held(bot, chat=str(CHANNEL_ID), sending=sending)
    assert await bot.client.limiter.try_acquire("discord", chat="123") == 0
    await sending
    assert len(bot.fake.channel_messages) == 1


async def test_an_oversized_channel_message_is_refused_like_discord_does(bot: Bot) -> None:
    embeds = [discord.Embed(description="y" * 4000) for _ in range(2)]
    with pytest.raises(discord.HTTPException) as refused:
        await send_to_channel(bot.client, bot.client.limiter, CHANNEL_ID, embeds=embeds)
    assert refused.value.status == 400 and refused.value.code == 50035
    assert "6000" in refused.value.text


async def test_alpha_in_the_bots_dm_subscribes_that_dm(bot: Bot) -> None:
    payload = bot.fake.slash("alpha", [{"name": "subscribe", "type": 1, "options": []}], dm=True)
    await bot.dispatch(payload)
    [message] = bot.fake.messages_of(payload)
    assert message["content"].startswith("Subscribed")
    subscription = await get_subscription(
        bot.deps, channel="discord", destination=str(DM_CHANNEL_ID)
    )
    assert subscription is not None and subscription.receiving
    account = await account_for_identity(bot.deps, IDENTITY)
    assert subscription.account_id == account.id


async def test_link_with_a_code_joins_the_telegram_account(bot: Bot) -> None:
    telegram = await account_for_identity(bot.deps, "telegram:555")
    code = await create_link_code(bot.deps, telegram)
    payload = bot.fake.slash("link", [{"name": "code", "type": 3, "value": code}])
    await bot.dispatch(payload)
    [message] = bot.fake.messages_of(payload)
    assert message["flags"] & EPHEMERAL and message["content"].startswith("Linked.")
    discord_account = await account_for_identity(bot.deps, IDENTITY)
    assert discord_account.id == telegram.id  # one account, one quota
    again = bot.fake.slash("link", [{"name": "code", "type": 3, "value": code}])
    await bot.dispatch(again)
    assert "did not work" in bot.fake.messages_of(again)[0]["content"]


async def test_chart_button_answers_with_the_price_chart(bot: Bot) -> None:
    research = bot.fake.slash("price", [{"name": "project", "type": 3, "value": "uniswap"}])
    await bot.dispatch(research)
    [answer] = bot.fake.messages_of(research)
    press = bot.fake.press("ask:chart:uniswap", answer)
    await bot.dispatch(press)
    [chart] = bot.fake.messages_of(press)
    assert [a["filename"] for a in chart["attachments"]] == ["chart.png"]
    assert chart["embeds"][-1]["image"]["url"] == "attachment://chart.png"
    [upload] = [c for c in bot.fake.delivered() if c.token == press["token"] and c.files]
    assert upload.files[0][0] == "chart.png" and upload.files[0][1] > 1000  # a real PNG


# --- the fake refuses what Discord refuses --------------------------------------------------


async def test_the_fake_discord_is_strict() -> None:
    import aiohttp

    async with running_fake_discord() as (fake, base), aiohttp.ClientSession() as http:
        payload = fake.slash("ask", [{"name": "question", "type": 3, "value": "hi"}])
        token, iid = payload["token"], payload["id"]
        webhook = f"{base}/webhooks/{payload['application_id']}/{token}"

        async def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
            async with http.request(method, url, json=body) as response:
                return response.status, await response.json(content_type=None)

        assert await call("POST", webhook, {"content": "early"}) == (
            404,
            {"code": 10015, "message": "Unknown Webhook"},
        )
        assert (await call("PATCH", f"{webhook}/messages/@original", {"content": "x"}))[1][
            "code"
        ] == 10008
        status, _ = await call("POST", f"{base}/interactions/{iid}/{token}/callback", {"type": 5})
        assert status == 200
        status, body = await call(
            "POST", f"{base}/interactions/{iid}/{token}/callback", {"type": 5}
        )
        assert (status, body["code"]) == (400, 40060)
        fields = [{"name": "n", "value": "v"}] * 26
        status, body = await call(
            "PATCH", f"{webhook}/messages/@original", {"embeds": [{"fields": fields}]}
        )
        assert (status, body["code"], body["message"]) == (400, 50035, "Invalid Form Body")
        assert "fields" in body["errors"]["embeds"]["0"]
        status, body = await call("POST", webhook, {"content": "x" * 2001})
        assert status == 400 and "content" in body["errors"]
        status, body = await call("POST", webhook, {"content": ""})
        assert (status, body["code"]) == (400, 50006)
        late = fake.slash("ask", [{"name": "question", "type": 3, "value": "hi"}])
        fake.state(late).created_at -= 3.5
        status, body = await call(
            "POST", f"{base}/interactions/{late['id']}/{late['token']}/callback", {"type": 5}
        )
        assert (status, body["code"]) == (404, 10062)
        fake.rate_limit_next("followup", retry_after=1.0)
        async with http.post(webhook, json={"content": "a"}) as limited:
            assert limited.status == 429 and limited.headers["Via"]
            assert (await limited.json())["retry_after"] == 1.0
        async with http.post(webhook, json={"content": "a"}) as early:
            assert early.status == 429  # retried before retry_after passed
        assert fake.early_retries == 1


async def test_a_worker_sends_to_a_channel_without_a_gateway(fast_deps: Deps) -> None:
    original_base = discord.http.Route.BASE
    async with running_fake_discord() as (fake, base):
        settings = fast_deps.settings.model_copy(
            update={"discord_bot_token": SecretStr("test-token"), "discord_api_base": base}
        )
        try:
            async with open_channel_sender(
                dataclasses.replace(fast_deps, settings=settings)
            ) as send:
                message = await send(CHANNEL_ID, content="Daily alpha is out")
        finally:
            discord.http.Route.BASE = original_base
    [delivered] = fake.channel_messages
    assert delivered["content"] == "Daily alpha is out" and int(delivered["id"]) == message.id
    assert [c.kind for c in fake.calls][-1] == "channel_message"
