"""The Telegram adapter driven for real (python-telegram-bot) against a strict local Bot API.

Updates go through PTB's own parsing (`Update.de_json`, `Application.process_update`); every
outgoing call crosses HTTP to tests/fake_bot_api.py, which refuses what Telegram refuses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import AnyHttpUrl, SecretStr
from telegram import Update

from billing.accounts import account_for_identity, redeem_link_code
from billing.quota import consume_request, quota_status
from bots.render import render_telegram
from bots.telegram import build_application, send_markdown, start_bot, stop_bot
from chainlens.deps import Deps
from reports.subscriptions import get_subscription
from test_agent_support import (  # noqa: F401  (fixtures)
    FakeLLM,
    Reply,
    llm_server,
    llm_server_session,
    with_llm,
)
from tests import telegram_updates as tu
from tests.fake_bot_api import (
    FakeBotApi,
    parse_telegram_html,
    running_fake_bot_api,
    utf16_len,
)

PRIVATE = 555
USER = 777
GROUP = -100123
CHANNEL = -100999
FAST_RATES = {
    "telegram": (1000, 1.0),
    "telegram_private": (1000, 1.0),
    "telegram_group": (1000, 1.0),
}


@dataclass
class Harness:
    fake: FakeBotApi
    application: Any
    deps: Deps

    async def send(self, update: dict[str, Any]) -> None:
        await self.application.process_update(Update.de_json(update, self.application.bot))

    def replies(self, chat_id: int = PRIVATE) -> list[str]:
        return self.fake.texts(chat_id)

    async def remaining(self, user_id: int = USER) -> int:
        account = await account_for_identity(self.deps, f"telegram:{user_id}")
        status = await quota_status(self.deps, account)
        return status.day_limit - status.day_used  # the day's allowance (minute aside)


def bot_settings(deps: Deps, base_url: str, **extra: Any) -> Deps:
    settings = deps.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr("123456:TEST-TOKEN"),
            "telegram_api_base": base_url,
            "public_base_url": AnyHttpUrl("https://chainlens.example"),
            "send_rates": FAST_RATES,
            **extra,
        }
    )
    return dataclasses.replace(deps, settings=settings)


@pytest.fixture
async def tg(fast_deps: Deps) -> AsyncIterator[Harness]:
    async with running_fake_bot_api(channels={CHANNEL}) as (fake, base_url):
        bot_deps = bot_settings(fast_deps, base_url)
        application = build_application(bot_deps)
        async with application:
            fake.calls.clear()  # getMe at start-up
            yield Harness(fake, application, bot_deps)


def last_markup(fake: FakeBotApi, chat_id: int = PRIVATE) -> dict[str, Any]:
    for name, params in reversed(fake.calls):
        if (
            name in ("sendMessage", "editMessageText")
            and params.get("reply_markup")
            and str(params.get("chat_id")) == str(chat_id)
        ):
            return dict(json.loads(params["reply_markup"]))
    raise AssertionError("no keyboard sent")


# --- commands ---------------------------------------------------------------------------------


async def test_polling_registers_the_command_menu_and_answers(fast_deps: Deps) -> None:
    async with running_fake_bot_api() as (fake, base_url):
        application = build_application(bot_settings(fast_deps, base_url))
        fake.queue_update(tu.message("/start"))
        await start_bot(application)
        try:
            for _ in range(200):
                if fake.sent("sendMessage"):
                    break
                await asyncio.sleep(0.02)
        finally:
            await stop_bot(application)
    menu, menu_vi = fake.sent("setMyCommands")
    names = [c["command"] for c in json.loads(menu["commands"])]
    assert names == [
        "start",
        "research",
        "price",
        "sentiment",
        "tokenomics",
        "team",
        "help",
        "usage",
        "upgrade",
        "link",
        "alpha",
        "watch",
        "unwatch",
        "watchlist",
        "alert",
        "alerts",
        "lang",
    ]
    # the same menu for users whose Telegram is in Vietnamese, described in Vietnamese
    assert "language_code" not in menu and menu_vi["language_code"] == "vi"
    vi = {c["command"]: c["description"] for c in json.loads(menu_vi["commands"])}
    assert list(vi) == names
    assert vi["research"] == "Phân tích đầy đủ một dự án"
    assert "Welcome to ChainLens" in fake.texts(PRIVATE)[0]


async def test_help_lists_every_command(tg: Harness) -> None:
    await tg.send(tu.message("/help"))
    [text] = tg.replies()
    for command in (
        "/research",
        "/price",
        "/sentiment",
        "/tokenomics",
        "/team",
        "/usage",
        "/upgrade",
        "/link",
        "/alpha",
    ):
        assert command in text


@pytest.mark.parametrize("command", ["research", "price", "sentiment", "tokenomics", "team"])
async def test_bare_project_command_gets_a_usage_hint_and_costs_nothing(
    tg: Harness, command: str
) -> None:
    before = await tg.remaining()
    await tg.send(tu.message(f"/{command}"))
    [text] = tg.replies()
    assert text.startswith(f"Usage: /{command} <project>, for example /{command} ")
    assert await tg.remaining() == before


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("research Uniswap", ["Market & on-chain", "Sentiment", "Tokenomics", "Team"]),
        ("price uniswap", ["Market & on-chain"]),
        ("sentiment uniswap", ["Sentiment"]),
        ("tokenomics uniswap", ["Tokenomics"]),
        ("team uniswap", ["Team"]),
    ],
)
async def test_project_commands_answer_and_charge_one_request(
    tg: Harness, command: str, expected: list[str]
) -> None:
    before = await tg.remaining()
    await tg.send(tu.message(f"/{command}"))
    finals = tg.fake.sent("sendMessage", PRIVATE)
    assert finals, "no answer was sent"
    answer = finals[0]["text"]
    assert "Uniswap" in answer
    assert finals[0]["parse_mode"] == "HTML"
    parse_telegram_html(answer)  # the fake accepted it; parse again to be explicit
    drafts = tg.fake.sent("sendMessageDraft", PRIVATE)
    assert drafts, "progress was not streamed as a draft"
    assert any(all(label in d.get("text", "") for label in expected) for d in drafts)
    assert await tg.remaining() == before - 1
    photos = tg.fake.sent("sendPhoto", PRIVATE)
    if "Market & on-chain" in expected:  # the price chart follows as an image
        [photo] = photos
        assert photo["_photo_png"] and photo["caption"] == "Uniswap (UNI) price"
    else:
        assert photos == []


async def test_without_drafts_progress_is_an_edited_message(tg: Harness) -> None:
    tg.fake.missing_methods.add("sendMessageDraft")  # an older Bot API server
    await tg.send(tu.message("uniswap sentiment"))
    assert len(tg.fake.sent("sendMessageDraft")) == 1  # tried once, then never again
    progress = tg.fake.sent("sendMessage", PRIVATE)[0]
    assert "parse_mode" not in progress and "Working on it" in progress["text"]
    [message] = [m for m in tg.fake.messages.values() if m.chat_id == PRIVATE]
    assert message.text.startswith("Uniswap (UNI)")  # the progress message became the answer
    await tg.send(tu.message("uniswap team", user_id=USER + 5))
    assert len(tg.fake.sent("sendMessageDraft")) == 1


async def test_greeting_gets_a_reply_and_costs_nothing(tg: Harness) -> None:
    await tg.send(tu.message("good morning"))
    assert "Research Uniswap" in tg.replies()[-1]
    assert await tg.remaining() == 5


async def test_usage_link_and_unconfigured_upgrade(tg: Harness) -> None:
    await tg.send(tu.message("/usage"))
    assert tg.replies()[-1].startswith("Plan: free. 5 of 5 requests left today")
    await tg.send(tu.message("/upgrade"))
    assert "billing is not configured" in tg.replies()[-1]
    await tg.send(tu.message("/link"))
    code = tg.replies()[-1].split("Your link code: ")[1].split()[0]
    web_account = await redeem_link_code(tg.deps, "web:ann@example.com", code)
    telegram_account = await account_for_identity(tg.deps, f"telegram:{USER}")
    assert web_account.id == telegram_account.id
    await consume_request(tg.deps, web_account)
    assert await tg.remaining() == 4


async def test_alpha_toggles_the_private_chat_subscription(tg: Harness) -> None:
    await tg.send(tu.message("/alpha"))
    assert tg.replies()[-1].startswith("Subscribed")
    sub = await get_subscription(tg.deps, channel="telegram", destination=str(PRIVATE))
    assert sub is not None and sub.receiving
    await tg.send(tu.message("/alpha"))
    assert tg.replies()[-1].startswith("Unsubscribed")
    sub = await get_subscription(tg.deps, channel="telegram", destination=str(PRIVATE))
    assert sub is not None and not sub.active


async def test_alpha_in_a_group_is_for_admins_only(tg: Harness) -> None:
    await tg.send(tu.message("/alpha", chat_id=GROUP, user_id=801))
    assert "Only this chat's admins" in tg.replies(GROUP)[-1]
    assert await get_subscription(tg.deps, channel="telegram", destination=str(GROUP)) is None
    [member_check] = tg.fake.sent("getChatMember")
    assert member_check["user_id"] == "801"
    tg.fake.members[(GROUP, 802)] = "administrator"
    await tg.send(tu.message("/alpha", chat_id=GROUP, user_id=802))
    assert tg.replies(GROUP)[-1].startswith("Subscribed")
    # An anonymous admin posts as the group itself: an admin, and no crash.
    anonymous = tu.message(
        "/alpha off", chat_id=GROUP, user_id=1087968824, sender_chat=tu.chat(GROUP)
    )
    await tg.send(anonymous)
    assert tg.replies(GROUP)[-1].startswith("Unsubscribed")


async def test_channel_posts_never_crash_and_alpha_works_there(tg: Harness) -> None:
    await tg.send(
        tu.message(
            "gm everyone",
            chat_id=CHANNEL,
            user_id=None,
            kind="channel",
            sender_chat=tu.chat(CHANNEL, "channel"),
            field="channel_post",
        )
    )
    assert tg.fake.calls == []
    await tg.send(
        tu.message(
            "/alpha",
            chat_id=CHANNEL,
            user_id=None,
            kind="channel",
            sender_chat=tu.chat(CHANNEL, "channel"),
            field="channel_post",
        )
    )
    assert tg.replies(CHANNEL)[-1].startswith("Subscribed")
    sub = await get_subscription(tg.deps, channel="telegram", destination=str(CHANNEL))
    assert sub is not None and sub.receiving


# --- groups -----------------------------------------------------------------------------------


async def test_group_messages_without_mention_are_ignored_and_free(tg: Harness) -> None:
    await tg.send(tu.message("Research Uniswap", chat_id=GROUP, user_id=801))
    assert tg.fake.calls == []
    assert await tg.remaining(801) == 5


async def test_group_mention_is_answered_with_the_mention_stripped(tg: Harness) -> None:
    await tg.send(tu.message("@chainlens_bot uniswap sentiment", chat_id=GROUP, user_id=801))
    texts = tg.replies(GROUP)
    assert texts and "Uniswap" in texts[-1]
    first = tg.fake.sent("sendMessage", GROUP)[0]
    assert json.loads(first["reply_parameters"])["message_id"] > 0  # replies to the asker
    row = await tg.deps.db.fetchrow("SELECT question, conversation_id FROM query_logs")
    assert row["question"] == "uniswap sentiment"
    assert row["conversation_id"] == f"telegram:{GROUP}:801"
    assert await tg.remaining(801) == 4


async def test_group_commands_addressed_to_us_only(tg: Harness) -> None:
    await tg.send(tu.message("/research@other_bot uniswap", chat_id=GROUP, user_id=801))
    assert tg.fake.calls == []
    await tg.send(tu.message("/research@chainlens_bot uniswap", chat_id=GROUP, user_id=801))
    assert any(t.startswith("Uniswap (UNI)") for t in tg.replies(GROUP))


async def test_group_reply_to_the_bot_is_answered(tg: Harness) -> None:
    await tg.send(
        tu.message(
            "and its tokenomics? uniswap",
            chat_id=GROUP,
            user_id=802,
            reply_to=tu.bot_message(GROUP),
        )
    )
    assert any("Uniswap" in t for t in tg.replies(GROUP))
    assert await tg.remaining(802) == 4


async def test_anonymous_admin_question_is_answered_as_the_group(tg: Harness) -> None:
    await tg.send(
        tu.message(
            "@chainlens_bot uniswap team",
            chat_id=GROUP,
            user_id=1087968824,
            sender_chat=tu.chat(GROUP),
        )
    )
    assert any(t.startswith("Uniswap (UNI)") for t in tg.replies(GROUP))
    assert await tg.remaining(GROUP) == 4  # the group's own account was charged


async def test_limiter_bound_bot_for_reports_delivers(tg: Harness) -> None:
    from bots.telegram import telegram_bot

    async with telegram_bot(tg.deps) as bot:
        await send_markdown(bot, PRIVATE, "**Daily alpha**: ETH <up> & BTC flat")
    [sent] = tg.fake.sent("sendMessage")
    assert parse_telegram_html(sent["text"])[0] == "Daily alpha: ETH <up> & BTC flat"


async def test_group_members_have_their_own_conversations(tg: Harness) -> None:
    await tg.send(tu.message("@chainlens_bot research uniswap", chat_id=GROUP, user_id=801))
    await tg.send(tu.message("@chainlens_bot its team?", chat_id=GROUP, user_id=802))
    rows = await tg.deps.db.fetch(
        "SELECT i.identity, q.project_id FROM query_logs q JOIN identities i"
        " ON i.user_id = q.user_id ORDER BY q.id"
    )
    by_user = {r["identity"]: r for r in rows}
    assert by_user["telegram:801"]["project_id"] == "uniswap"
    # 802 never named a project: "its" must not resolve to 801's Uniswap.
    assert by_user.get("telegram:802") is None or by_user["telegram:802"]["project_id"] is None


async def test_edited_messages_are_not_answered_again(tg: Harness) -> None:
    await tg.send(tu.message("Research Uniswap", field="edited_message"))
    await tg.send(
        tu.message(
            "@chainlens_bot research uniswap", chat_id=GROUP, user_id=801, field="edited_message"
        )
    )
    assert tg.fake.calls == []
    assert await tg.remaining() == 5


# --- answers, buttons, delivery ---------------------------------------------------------------


async def test_answer_has_follow_up_buttons_and_a_press_is_a_charged_question(tg: Harness) -> None:
    await tg.send(tu.message("Research Uniswap"))
    keyboard = last_markup(tg.fake)["inline_keyboard"]
    buttons = {b["text"]: b["callback_data"] for row in keyboard for b in row}
    assert buttons["Sentiment"] == "ask:sentiment:uniswap"
    assert buttons["Tokenomics"] == "ask:tokenomics:uniswap"
    assert buttons["Team"] == "ask:team:uniswap"
    assert buttons["Chart"] == "ask:chart:uniswap"
    assert buttons["⭐ Upgrade"] == "upgrade"
    remaining = await tg.remaining()
    # Another member presses it (the asker's own minute allowance is spent).
    press = tu.callback("ask:sentiment:uniswap", user_id=USER + 1)
    await tg.send(press)
    [answered] = tg.fake.sent("answerCallbackQuery")
    assert answered["callback_query_id"] == press["callback_query"]["id"]
    assert await tg.remaining(USER + 1) == 4
    assert remaining == 4


async def test_did_you_mean_suggestions_are_buttons(tg: Harness) -> None:
    await tg.send(tu.message("research cardona"))
    markup = last_markup(tg.fake)
    data = [b.get("callback_data", "") for row in markup["inline_keyboard"] for b in row]
    assert "research:cardano" in data
    assert await tg.remaining() == 5  # a suggestion is not an answer: not charged
    press = tu.callback("research:cardano", user_id=USER)
    await tg.send(press)
    assert (
        tg.fake.sent("answerCallbackQuery")[-1]["callback_query_id"]
        == press["callback_query"]["id"]
    )
    assert "Cardano" in tg.replies()[-1]
    assert await tg.remaining() == 4


async def test_unknown_and_upgrade_buttons_are_acknowledged(tg: Harness) -> None:
    await tg.send(tu.callback("something-old"))
    await tg.send(tu.callback("upgrade"))
    answers = tg.fake.sent("answerCallbackQuery")
    assert len(answers) == 2
    assert "no longer works" in answers[0]["text"]
    assert "billing is not configured" in tg.replies()[-1]


async def test_crossed_markup_is_accepted_by_telegram(tg: Harness) -> None:
    crossed = "**Uniswap `v3** is <big> & _bold_ `code** here`\n\n# Head_line <b> & *x*"
    await send_markdown(tg.application.bot, PRIVATE, crossed)
    [sent] = tg.fake.sent("sendMessage")
    assert sent["parse_mode"] == "HTML"
    text, _ = parse_telegram_html(sent["text"])
    assert "<big> & " in text and "Head_line <b> & x" in text


async def test_refused_html_is_resent_as_plain_text_not_the_same_html(tg: Harness) -> None:
    tg.fake.cue(
        "sendMessage",
        status=400,
        description="Bad Request: can't parse entities: Unsupported start tag",
    )
    await send_markdown(tg.application.bot, PRIVATE, "**Uniswap** is <fine> & `ok`")
    first, second = tg.fake.sent("sendMessage")
    assert first["parse_mode"] == "HTML"
    assert "parse_mode" not in second
    assert second["text"] == "Uniswap is <fine> & ok"


async def test_a_7000_character_answer_is_split_at_paragraphs(tg: Harness) -> None:
    paragraphs = [f"Paragraph {i}: " + "liquidity and volume " * 16 for i in range(21)]
    answer = "\n\n".join(paragraphs)
    assert len(answer) > 7000
    await send_markdown(tg.application.bot, PRIVATE, answer)
    sent = tg.fake.sent("sendMessage")
    assert len(sent) == 2
    texts = [parse_telegram_html(p["text"])[0] for p in sent]
    assert all(utf16_len(t) <= 4096 for t in texts)
    assert all(t.startswith("Paragraph") and t.endswith("volume") for t in texts)
    # Nothing lost, nothing cut inside a paragraph.
    assert "\n\n".join(texts).split("\n\n") == [p.strip() for p in paragraphs]


async def test_a_429_mid_answer_is_waited_out_and_the_answer_delivered(tg: Harness) -> None:
    tg.fake.cue("sendMessage", retry_after=1, chat_id=PRIVATE)
    started = time.monotonic()
    await tg.send(tu.message("Research Uniswap"))
    sent = tg.fake.sent("sendMessage", PRIVATE)
    assert len(sent) == 2 and sent[0]["text"] == sent[1]["text"]  # refused once, then sent
    assert len(tg.fake.served_429) == 1
    assert time.monotonic() - started >= 1.0
    assert "went wrong" not in " ".join(tg.replies())
    assert await tg.remaining() == 4


async def test_429_on_a_group_progress_edit_never_sticks(tg: Harness) -> None:
    tg.fake.cue("editMessageText", retry_after=1, chat_id=GROUP, times=2)
    await tg.send(tu.message("@chainlens_bot research uniswap", chat_id=GROUP, user_id=801))
    assert len(tg.fake.served_429) == 2
    [progress] = [
        m
        for (chat, _), m in tg.fake.messages.items()
        if chat == GROUP and not m.text.endswith(" price")
    ]
    assert progress.text.startswith("Uniswap (UNI)")  # became the answer, not stuck
    assert "went wrong" not in " ".join(tg.replies(GROUP))


async def test_quota_refusal_has_an_upgrade_button(tg: Harness) -> None:
    account = await account_for_identity(tg.deps, f"telegram:{USER}")
    while (await consume_request(tg.deps, account)).allowed:
        pass
    await tg.send(tu.message("Research Uniswap"))
    assert "the free plan allows 1 request per minute" in tg.replies()[-1]
    keyboard = last_markup(tg.fake)["inline_keyboard"]
    assert keyboard == [[{"text": "⭐ Upgrade", "callback_data": "upgrade"}]]


async def test_internal_error_gives_a_reference_id_that_is_in_the_log(
    tg: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    tg.fake.cue("sendMessage", status=500, description="Internal Server Error")
    with caplog.at_level(logging.ERROR, logger="bots.telegram"):
        await tg.send(tu.message("/help"))
    apology = tg.replies()[-1]
    ref = re.search(r"\(ref ([0-9a-f]{8})\)", apology)
    assert ref is not None
    [record] = [r for r in caplog.records if ref.group(1) in r.getMessage()]
    assert record.exc_info is not None  # the traceback is in the same log line


async def test_a_failed_answer_ends_in_an_apology_not_a_stuck_progress_message(
    tg: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # Telegram fails (500) on every edit of the group's progress message: progress edits are
    # cosmetic and skipped; the final edit fails; the error handler says so with a reference.
    tg.fake.cue(
        "editMessageText", status=500, description="Internal Server Error", chat_id=GROUP, times=100
    )
    with caplog.at_level(logging.ERROR, logger="bots.telegram"):
        await tg.send(tu.message("@chainlens_bot uniswap sentiment", chat_id=GROUP, user_id=801))
    delivered = [m.text for (chat, _), m in tg.fake.messages.items() if chat == GROUP]
    apology = delivered[-1]  # sent afresh, since the progress message cannot be edited
    ref = re.search(r"\(ref ([0-9a-f]{8})\)", apology)
    assert ref is not None and any(ref.group(1) in r.getMessage() for r in caplog.records)


async def test_oversized_message_gets_the_limit_and_costs_nothing(tg: Harness) -> None:
    await tg.send(tu.message("x" * 5000))
    assert "the limit is" in tg.replies()[-1]
    assert await tg.remaining() == 5


def test_rendered_parts_always_parse_as_telegram_html() -> None:
    samples = [
        "**a `b** c`",
        "# <T> & _x_ *y*",
        "[l](javascript:x) [m](https://e.x/?a=1&b=2)",
        "> q `c`\n> > nested\n\n```py\nx<1 && y>2\n```",
        "|a|b|\n|-|-|\n|<1>|&|",
        "***bold italic*** ~~gone~~ __u__ <script>alert(1)</script>",
        "- a\n  - b **c `d` e**\n1. x\n2. y",
        "line\\\nbreak &nbsp; &#x1F600; &bogus;",
    ]
    for sample in samples:
        for part in render_telegram(sample):
            text, _ = parse_telegram_html(part.html)
            assert text == part.plain


# --- the fake refuses what Telegram refuses (so the tests above prove something) -------------


async def test_the_fake_bot_api_is_strict(tg: Harness) -> None:
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup
    from telegram.error import BadRequest

    bot = tg.application.bot
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(PRIVATE, "<b>crossed <i>tags</b></i>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(PRIVATE, "1 < 2 & <h1>x</h1>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(PRIVATE, "x" * 4097)
    message = await bot.send_message(PRIVATE, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "<b>" + "x" * 4096 + "</b>",
            chat_id=PRIVATE,
            message_id=message.message_id,
            parse_mode="HTML",
        )
    local = InlineKeyboardMarkup([[InlineKeyboardButton("Pay", url="http://localhost:8000/x")]])
    with pytest.raises(BadRequest, match=r"(?i)wrong http url"):
        await bot.send_message(PRIVATE, "pay", reply_markup=local)
    with pytest.raises(BadRequest, match=r"(?i)textdraft_peer_invalid"):
        await bot.send_message_draft(GROUP, 1, "drafts are for private chats")


def test_webhook_settings_are_validated(settings: Any) -> None:
    from chainlens.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_URL"):
        load_settings(_env_file=None, telegram_webhook_url="http://example.com/hook")
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_SECRET"):
        load_settings(_env_file=None, telegram_webhook_secret="has spaces!")


# --- model-written answers (a local OpenAI-compatible server that LiteLLM really calls) -----

CROSSED = (
    "**Executive summary.** Uniswap `v3** trades at <1.2x> & looks *deep `code** here`\n\n"
    "**Key risks**\n- Volatility_remains **high\n- Fees [docs](https://docs.uniswap.org\n"
)
PLAN_ALL = Reply(
    tool_calls=["onchain", "sentiment", "tokenomics", "team"], tokens_in=40, tokens_out=6
)


@pytest.fixture
async def tg_llm(fast_deps: Deps, llm_server: FakeLLM) -> AsyncIterator[tuple[Harness, FakeLLM]]:
    async with running_fake_bot_api() as (fake, base_url):
        bot_deps = bot_settings(with_llm(fast_deps, llm_server, "c"), base_url)
        application = build_application(bot_deps)
        async with application:
            fake.calls.clear()
            yield Harness(fake, application, bot_deps), llm_server


async def test_a_model_answer_with_crossed_markup_is_delivered_formatted(
    tg_llm: tuple[Harness, FakeLLM],
) -> None:
    tg, llm = tg_llm
    llm.script("c", PLAN_ALL, Reply(text=CROSSED, tokens_in=900, tokens_out=120))
    await tg.send(tu.message("Research Uniswap"))
    answers = [p for p in tg.fake.sent("sendMessage", PRIVATE) if "Executive" in p["text"]]
    assert len(answers) == 1 and answers[0]["parse_mode"] == "HTML"  # accepted the first time
    text, entities = parse_telegram_html(answers[0]["text"])
    # The crossed ** and ` became literal characters or a code span; <, > and & stay text.
    assert "Uniswap v3** trades at <" in text and "x> & looks *deep code** here`" in text
    assert any(kind == "b" for kind, *_ in entities)
    assert await tg.remaining() == 4


async def test_a_7000_character_model_answer_arrives_in_two_messages(
    tg_llm: tuple[Harness, FakeLLM],
) -> None:
    tg, llm = tg_llm
    paragraphs = [
        f"**Point {i}.** " + "Uniswap liquidity stays deep across pools. " * 8 for i in range(20)
    ]
    llm.script("c", PLAN_ALL, Reply(text="\n\n".join(paragraphs), tokens_in=900, tokens_out=1100))
    await tg.send(tu.message("Research Uniswap"))
    parts = [p for p in tg.fake.sent("sendMessage", PRIVATE) if p.get("parse_mode") == "HTML"]
    texts = [parse_telegram_html(p["text"])[0] for p in parts]
    assert sum(len(t) for t in texts) > 7000 and len(parts) >= 2
    assert all(utf16_len(t) <= 4096 for t in texts)
    assert all(not t.startswith("Uniswap liquidity") for t in texts[1:])  # cut between paragraphs
    assert "inline_keyboard" in parts[-1]["reply_markup"]  # the buttons sit under the last part
    assert await tg.remaining() == 4
