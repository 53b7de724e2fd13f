"""The Telegram adapter end to end against a local fake Bot API server (PTB `base_url`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr
from telegram import Update

from billing.accounts import account_for_identity, redeem_link_code
from billing.quota import consume_request, quota_status
from bots.telegram import build_application
from chainlens.deps import Deps
from tests.fake_telegram import FakeTelegram, running_fake_telegram

CHAT_ID = 555
USER_ID = 777


def update_for(text: str, update_id: int = 1) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": update_id, "date": int(time.time()),
        "chat": {"id": CHAT_ID, "type": "private"},
        "from": {"id": USER_ID, "is_bot": False, "first_name": "Ann"}, "text": text,
    }
    if text.startswith("/"):
        command = text.split()[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return {"update_id": update_id, "message": message}


@pytest.fixture
async def telegram(deps: Deps) -> AsyncIterator[tuple[FakeTelegram, Any, Deps]]:
    async with running_fake_telegram() as (fake, base_url):
        settings = deps.settings.model_copy(update={
            "telegram_bot_token": SecretStr("123456:TEST-TOKEN"),
            "telegram_api_base": base_url,
        })
        bot_deps = dataclasses.replace(deps, settings=settings)
        application = build_application(bot_deps)
        async with application:
            yield fake, application, bot_deps


async def send(application: Any, text: str, update_id: int = 1) -> None:
    await application.process_update(Update.de_json(update_for(text, update_id), application.bot))


async def test_start_explains_what_the_bot_does(telegram: Any) -> None:
    fake, application, _ = telegram
    await send(application, "/start")
    [reply] = fake.sent("sendMessage")
    assert reply["chat_id"] == str(CHAT_ID)
    assert "Welcome to ChainLens" in reply["text"]
    assert "/link" in reply["text"] and "Research Uniswap" in reply["text"]


async def test_link_code_joins_telegram_and_web_in_one_quota(telegram: Any) -> None:
    fake, application, deps = telegram
    await send(application, "/link")
    text = fake.sent("sendMessage")[-1]["text"]
    code = text.split("Your link code: ")[1].split()[0]
    web_account = await redeem_link_code(deps, "web:ann@example.com", code)
    telegram_account = await account_for_identity(deps, f"telegram:{USER_ID}")
    assert web_account.id == telegram_account.id
    await consume_request(deps, web_account)
    status = await quota_status(deps, telegram_account)
    assert status.remaining == status.limit - 1


async def test_greeting_gets_a_reply_and_costs_nothing(telegram: Any) -> None:
    fake, application, deps = telegram
    await send(application, "good morning")
    texts = [p.get("text", "") for p in fake.sent("sendMessage") + fake.sent("editMessageText")]
    assert texts and texts[-1].strip()
    account = await account_for_identity(deps, f"telegram:{USER_ID}")
    status = await quota_status(deps, account)
    assert status.remaining == status.limit


async def test_spent_quota_is_refused_in_words_with_upgrade_button(telegram: Any) -> None:
    fake, application, deps = telegram
    account = await account_for_identity(deps, f"telegram:{USER_ID}")
    while (await consume_request(deps, account)).allowed:
        pass
    await send(application, "Research Uniswap")
    reply = fake.sent("sendMessage")[-1]
    assert "the free plan allows 1 request per minute" in reply["text"]
    assert "Try again in" in reply["text"]
    assert "Upgrade" in reply["reply_markup"]
    assert "/pricing" in reply["reply_markup"]


async def test_oversized_message_gets_the_limit(telegram: Any) -> None:
    fake, application, deps = telegram
    await send(application, "x" * 5000)
    reply = fake.sent("sendMessage")[-1]
    assert "the limit is" in reply["text"]
    account = await account_for_identity(deps, f"telegram:{USER_ID}")
    assert (await quota_status(deps, account)).remaining == (await quota_status(deps, account)).limit
