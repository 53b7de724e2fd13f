"""Both bots speak the user's language: /lang (saved on the account, shared by every channel),
the platform's hint (Telegram `language_code`, Discord `locale`) when nothing is saved, and a
message's own language above both. Driven for real against the strict fakes (Telegram Bot API,
Discord REST), with PostgreSQL, Redis and the agent; nothing of ours is patched."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from discord import Locale
from discord.app_commands import (
    TranslationContext,
    TranslationContextLocation,
    locale_str,
)

from billing.accounts import account_for_identity, get_account, set_language
from billing.quota import consume_request
from bots.discord.translator import CatalogueTranslator
from bots.language import UserLanguage, parse_choice, platform_hint
from chainlens.chat import MessageTooLong
from chainlens.deps import Deps
from chainlens.i18n import localizer
from reports.watch import LimitReached, UnknownProject, WatchError, parse_alert
from tests import telegram_updates as tu
from tests.fake_discord_api import EPHEMERAL, USER_ID
from tests.test_bots_discord import Bot, start_bot
from tests.test_bots_telegram import PRIVATE, USER, Harness, last_markup, tg  # noqa: F401

VI_HELP = "Các lệnh:"  # the Vietnamese help text's "Commands:"
EN_HELP = "Commands:"
VI_NOT_ADVICE = "Không phải lời khuyên tài chính"
EN_NOT_ADVICE = "Not financial advice"


def buttons(markup: dict[str, Any]) -> dict[str, str]:
    return {
        b["text"]: b.get("callback_data", b.get("url", ""))
        for row in markup["inline_keyboard"]
        for b in row
    }


# --- the shared rule ------------------------------------------------------------------------


def test_one_rule_for_both_bots() -> None:
    nothing = UserLanguage(saved=None, hint=None)
    assert nothing.of() == "en" and nothing.choice == "auto"
    assert UserLanguage(saved=None, hint="vi").of() == "vi"  # the app's language
    assert UserLanguage(saved="en", hint="vi").of() == "en"  # the saved choice first
    assert UserLanguage(saved="en", hint=None).of("Phân tích Uniswap") == "vi"  # the message
    assert UserLanguage(saved="vi", hint=None).of("is the team legit?") == "en"
    assert UserLanguage(saved="vi", hint=None).of("uniswap") == "vi"  # a name says nothing
    # Discord: the user's client language first, then the server's
    assert UserLanguage(saved=None, hint=platform_hint("fr", "vi")).of() == "vi"
    assert UserLanguage(saved=None, hint=platform_hint("en-US", "vi")).of() == "en"
    assert [parse_choice(x) for x in ("vi", "EN", "Tiếng Việt", "auto", "fr")] == [
        "vi",
        "en",
        "vi",
        "auto",
        None,
    ]


async def test_quota_refusals_in_vietnamese(fast_deps: Deps) -> None:
    account = await account_for_identity(fast_deps, "telegram:4242")
    decision = await consume_request(fast_deps, account)
    while decision.allowed:
        decision = await consume_request(fast_deps, account)
    english = decision.refusal_message()
    vietnamese = decision.refusal_message(localizer("vi"))
    assert "the free plan allows 1 request per minute" in english
    assert "gói free cho phép 1 lượt hỏi mỗi phút" in vietnamese
    # the wait (seconds, or "1 phút" when the minute window has only just begun) and the link
    wait = vietnamese.split("Hãy thử lại sau ", 1)[1]
    assert wait.startswith(("1 phút", *(f"{n} giây" for n in range(1, 61)))), wait
    assert decision.upgrade_url in vietnamese


def test_shared_messages_render_in_the_users_language() -> None:
    vi = localizer("vi")
    with pytest.raises(WatchError) as caught:
        parse_alert("BTC above -5")
    assert caught.value.message.startswith("I didn't understand that alert. Try: /alert BTC")
    assert caught.value.text(vi).startswith("Tôi chưa hiểu cảnh báo này. Thử: /alert BTC")
    limit = LimitReached("alerts", 3, "free")
    assert limit.message == "Your free plan allows 3 active alerts. Upgrade for more."
    assert limit.text(vi) == "Gói free của bạn cho phép 3 cảnh báo đang bật. Nâng cấp để có thêm."
    unknown = UnknownProject("cardona", [])
    assert unknown.text(vi) == "Tôi không tìm thấy dự án nào tên “cardona”."
    too_long = MessageTooLong(5000)
    assert str(too_long).startswith("Your message is 5000 characters; the limit is")
    assert too_long.text(vi).startswith("Tin nhắn của bạn dài 5.000 ký tự; giới hạn là")


# --- Telegram ---------------------------------------------------------------------------------


async def test_telegram_lang_sets_and_persists_the_choice(tg: Harness) -> None:
    await tg.send(tu.message("/lang"))
    assert tg.replies()[-1].startswith("Language: automatic.")
    assert buttons(last_markup(tg.fake)) == {
        "English": "lang:en",
        "Tiếng Việt": "lang:vi",
        "Auto": "lang:auto",
    }
    await tg.send(tu.message("/lang vi"))
    assert tg.replies()[-1].startswith("Đã chọn ngôn ngữ: Tiếng Việt.")
    account = await account_for_identity(tg.deps, f"telegram:{USER}")
    assert account.language == "vi"  # saved on the account: every channel shares it
    # a later command, with nothing of the user's own to go by, follows the choice
    await tg.send(tu.message("/help"))
    assert VI_HELP in tg.replies()[-1] and "/lang" in tg.replies()[-1]
    await tg.send(tu.message("/usage"))
    assert tg.replies()[-1].startswith("Gói: free. Hôm nay còn 5/5 lượt hỏi")
    assert "⭐ Nâng cấp" in buttons(last_markup(tg.fake))
    await tg.send(tu.message("/lang"))
    assert tg.replies()[-1].startswith("Ngôn ngữ: Tiếng Việt.")
    assert "Tự động" in buttons(last_markup(tg.fake))


async def test_telegram_command_answers_follow_the_choice_and_english_messages_stay_english(
    tg: Harness,
) -> None:
    account = await account_for_identity(tg.deps, f"telegram:{USER}")
    await set_language(tg.deps, account.id, "vi")
    await tg.send(tu.message("/research uniswap"))
    drafts = tg.fake.sent("sendMessageDraft", PRIVATE)
    assert drafts[0]["text"] == "🔎 Đang xử lý…"
    answer = tg.replies()[-2]  # the price chart follows the answer
    assert VI_NOT_ADVICE in answer and EN_NOT_ADVICE not in answer
    labels = buttons(last_markup(tg.fake))
    assert labels["Tâm lý"] == "ask:sentiment:uniswap" and labels["Biểu đồ"] == "ask:chart:uniswap"
    [photo] = tg.fake.sent("sendPhoto", PRIVATE)
    assert photo["caption"] == "Giá Uniswap (UNI)"
    # The message's own language wins over the saved choice (another user: their own minute).
    other = await account_for_identity(tg.deps, f"telegram:{USER + 1}")
    await set_language(tg.deps, other.id, "vi")
    await tg.send(tu.message("what is the sentiment on uniswap", user_id=USER + 1))
    english = tg.replies()[-1]
    assert EN_NOT_ADVICE in english and VI_NOT_ADVICE not in english
    assert "Sentiment" in buttons(last_markup(tg.fake))


async def test_telegram_language_buttons_set_and_clear_the_choice(tg: Harness) -> None:
    await tg.send(tu.callback("lang:vi"))
    assert tg.fake.sent("answerCallbackQuery")[-1]["callback_query_id"]
    assert (await account_for_identity(tg.deps, f"telegram:{USER}")).language == "vi"
    assert tg.replies()[-1].startswith("Đã chọn ngôn ngữ: Tiếng Việt.")
    await tg.send(tu.callback("lang:auto"))
    account = await account_for_identity(tg.deps, f"telegram:{USER}")
    assert account.language is None
    assert tg.replies()[-1].startswith("Language set to automatic")
    await tg.send(tu.message("/lang klingon"))
    assert tg.replies()[-1] == "Usage: /lang en, /lang vi or /lang auto"
    assert (await get_account(tg.deps, account.id)).language is None


async def test_telegram_app_language_vi_without_a_saved_choice(tg: Harness) -> None:
    await tg.send(tu.message("/help", language_code="vi"))
    assert VI_HELP in tg.replies()[-1]
    await tg.send(tu.message("/help", language_code="en"))
    assert EN_HELP in tg.replies()[-1]
    await tg.send(tu.message("/research", language_code="vi"))
    assert tg.replies()[-1] == "Cách dùng: /research <dự án>, ví dụ /research Uniswap"
    await tg.send(tu.message("/watch", language_code="vi"))
    assert tg.replies()[-1] == "Cách dùng: /watch <dự án>, ví dụ /watch ETH"
    # the quota refusal, with its Upgrade button, in Vietnamese
    account = await account_for_identity(tg.deps, f"telegram:{USER}")
    while (await consume_request(tg.deps, account)).allowed:
        pass
    await tg.send(tu.message("/research uniswap", language_code="vi"))
    assert "gói free cho phép 1 lượt hỏi mỗi phút" in tg.replies()[-1]
    assert last_markup(tg.fake)["inline_keyboard"] == [
        [{"text": "⭐ Nâng cấp", "callback_data": "upgrade"}]
    ]
    # an English message from the same user is refused in English
    await tg.send(tu.message("Research Uniswap", language_code="vi"))
    assert "the free plan allows 1 request per minute" in tg.replies()[-1]


async def test_telegram_menu_lists_lang_in_both_languages(tg: Harness) -> None:
    from bots.telegram.app import register_commands

    await register_commands(tg.application)
    menu, menu_vi = tg.fake.sent("setMyCommands")
    english = {c["command"]: c["description"] for c in json.loads(menu["commands"])}
    vietnamese = {c["command"]: c["description"] for c in json.loads(menu_vi["commands"])}
    assert english["lang"] == "Reply language: English, Tiếng Việt or automatic"
    assert vietnamese["lang"] == "Ngôn ngữ trả lời: English, Tiếng Việt hoặc tự động"


# --- Discord ----------------------------------------------------------------------------------


@pytest.fixture
async def dc(fast_deps: Deps) -> AsyncIterator[Bot]:
    async for running in start_bot(fast_deps):
        yield running


def content_of(bot: Bot, payload: dict[str, Any]) -> str:
    [message] = bot.fake.messages_of(payload)
    assert message["flags"] & EPHEMERAL
    return str(message["content"])


async def test_discord_translator_gives_vietnamese_descriptions(dc: Bot) -> None:
    translator = CatalogueTranslator()
    context = TranslationContext(TranslationContextLocation.command_description, None)
    text = locale_str("What ChainLens can do")
    assert await translator.translate(text, Locale.vietnamese, context) == "ChainLens làm được gì"
    assert await translator.translate(text, Locale.american_english, context) is None
    assert await translator.translate(text, Locale.french, context) is None
    name = TranslationContext(TranslationContextLocation.command_name, None)
    assert await translator.translate(locale_str("help"), Locale.vietnamese, name) is None
    # What Discord received on sync (the fake refuses bad locales and over-long texts):
    synced = {c["name"]: c for c in dc.fake.commands}
    assert synced["research"]["description_localizations"]["vi"] == (
        "Phân tích đầy đủ một dự án: thị trường, tâm lý, tokenomics, đội ngũ"
    )
    assert synced["lang"]["description_localizations"] == {
        "vi": "Ngôn ngữ trả lời: English, Tiếng Việt hoặc tự động"
    }
    assert all(not c.get("name_localizations") for c in synced.values())

    native = {"English", "Tiếng Việt"}  # language names are shown in their own language

    def described(node: dict[str, Any], path: str) -> None:
        # every description and choice has its Vietnamese text: nothing left in English
        if "description" in node:
            assert node.get("description_localizations", {}).get("vi"), path
        for choice in node.get("choices") or []:
            localized = choice.get("name_localizations", {}).get("vi")
            assert (localized is None) == (choice["name"] in native), f"{path}:{choice['name']}"
        for option in node.get("options") or []:
            described(option, f"{path}/{option['name']}")

    for command in synced.values():
        described(command, command["name"])
    project = synced["research"]["options"][0]
    assert project["description_localizations"]["vi"] == (
        "Tên, mã token hoặc địa chỉ hợp đồng, ví dụ Uniswap, $PEPE"
    )
    [language] = synced["lang"]["options"]
    assert [
        (c["name"], c.get("name_localizations", {}).get("vi")) for c in language["choices"]
    ] == [("English", None), ("Tiếng Việt", None), ("Auto", "Tự động")]


async def test_discord_locale_vi_without_a_saved_choice(dc: Bot) -> None:
    help_vi = dc.fake.slash("help", locale="vi", guild_locale="en-US")
    await dc.dispatch(help_vi)
    assert VI_HELP in content_of(dc, help_vi)
    help_en = dc.fake.slash("help")
    await dc.dispatch(help_en)
    assert EN_HELP in content_of(dc, help_en)
    # the server's language counts when the user's client is in one we do not speak
    usage = dc.fake.slash("usage", locale="fr", guild_locale="vi")
    await dc.dispatch(usage)
    assert content_of(dc, usage).startswith("Gói: **free**. Hôm nay còn 5/5 lượt hỏi")
    [message] = dc.fake.messages_of(usage)
    assert [b.get("label") for row in message["components"] for b in row["components"]] == [
        "Nâng cấp lên Pro"
    ]


async def test_discord_lang_sets_the_choice_and_messages_keep_their_language(dc: Bot) -> None:
    show = dc.fake.slash("lang")
    await dc.dispatch(show)
    assert content_of(dc, show).startswith("Language: automatic.")
    choose = dc.fake.slash("lang", [{"name": "language", "type": 3, "value": "vi"}])
    await dc.dispatch(choose)
    assert content_of(dc, choose).startswith("Đã chọn ngôn ngữ: Tiếng Việt.")
    account = await account_for_identity(dc.deps, f"discord:{USER_ID}")
    assert account.language == "vi"
    # a command from an English client now replies in Vietnamese: the saved choice first
    help_ = dc.fake.slash("help")
    await dc.dispatch(help_)
    assert VI_HELP in content_of(dc, help_)
    research = dc.fake.slash("research", [{"name": "project", "type": 3, "value": "uniswap"}])
    await dc.dispatch(research)
    [answer] = dc.fake.messages_of(research)
    [embed] = answer["embeds"]
    assert embed["footer"]["text"].startswith("Nguồn: ")
    assert {f["name"] for f in embed["fields"]} <= {
        "Thị trường & on-chain",
        "Tâm lý",
        "Tokenomics",
        "Đội ngũ",
    }
    assert [b.get("label") for row in answer["components"] for b in row["components"]][:4] == [
        "Tâm lý",
        "Tokenomics",
        "Đội ngũ",
        "Biểu đồ",
    ]
    # ... but a question written in English is answered in English
    ask = dc.fake.slash(
        "ask", [{"name": "question", "type": 3, "value": "what is the sentiment on uniswap"}]
    )
    await dc.dispatch(ask)
    [english] = dc.fake.messages_of(ask)
    assert english["embeds"][0]["footer"]["text"].startswith("Sources: ")
    auto = dc.fake.slash("lang", [{"name": "language", "type": 3, "value": "auto"}])
    await dc.dispatch(auto)
    assert content_of(dc, auto).startswith("Language set to automatic")
    assert (await get_account(dc.deps, account.id)).language is None


async def test_discord_quota_refusal_in_vietnamese(dc: Bot) -> None:
    account = await account_for_identity(dc.deps, f"discord:{USER_ID}")
    while (await consume_request(dc.deps, account)).allowed:
        pass
    payload = dc.fake.slash(
        "research", [{"name": "project", "type": 3, "value": "uniswap"}], locale="vi"
    )
    await dc.dispatch(payload)
    refusal = dc.fake.messages_of(payload)[-1]
    assert refusal["flags"] & EPHEMERAL
    assert "Bạn đã dùng hết 5 lượt hỏi hôm nay của gói free" in refusal["content"]
    assert "Nâng cấp để có thêm lượt hỏi bằng nút bên dưới." in refusal["content"]
