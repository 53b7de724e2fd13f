"""Telegram updates as the Bot API sends them (JSON dicts), for the bot tests and the bench."""

from __future__ import annotations

import itertools
import time
from typing import Any

BOT_ID = 4242
BOT_USERNAME = "chainlens_bot"
_ids = itertools.count(1)


def next_id() -> int:
    return next(_ids)


def user(user_id: int, language_code: str | None = None) -> dict[str, Any]:
    """A Telegram user; `language_code` is their app's language, as Telegram sends it."""
    body: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
    if language_code is not None:
        body["language_code"] = language_code
    return body


def chat(chat_id: int, kind: str | None = None) -> dict[str, Any]:
    kind = kind or ("private" if chat_id > 0 else "supergroup")
    if kind == "private":
        return {"id": chat_id, "type": "private", "first_name": "Ann"}
    return {"id": chat_id, "type": kind, "title": "Crypto group"}


def message(
    text: str,
    *,
    chat_id: int = 555,
    user_id: int | None = 777,
    kind: str | None = None,
    reply_to: dict[str, Any] | None = None,
    sender_chat: dict[str, Any] | None = None,
    update_id: int | None = None,
    field: str = "message",
    language_code: str | None = None,
) -> dict[str, Any]:
    """An update carrying a text message (commands and mentions get their entities)."""
    update_id = update_id or next_id()
    body: dict[str, Any] = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": chat(chat_id, kind),
        "text": text,
    }
    if user_id is not None:
        body["from"] = user(user_id, language_code)
    if sender_chat is not None:
        body["sender_chat"] = sender_chat
    entities = []
    if text.startswith("/"):
        entities.append({"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
    at = text.find("@" + BOT_USERNAME)
    if at >= 0 and not text.startswith("/"):
        entities.append(
            {
                "type": "mention",
                "offset": len(text[:at].encode("utf-16-le")) // 2,
                "length": len(BOT_USERNAME) + 1,
            }
        )
    if entities:
        body["entities"] = entities
    if reply_to is not None:
        body["reply_to_message"] = reply_to
    if field == "edited_message":
        body["edit_date"] = int(time.time())
    return {"update_id": update_id, field: body}


def bot_message(chat_id: int, message_id: int = 1) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": chat(chat_id),
        "from": {"id": BOT_ID, "is_bot": True, "first_name": "ChainLens", "username": BOT_USERNAME},
        "text": "an earlier answer",
    }


def callback(
    data: str,
    *,
    chat_id: int = 555,
    user_id: int = 777,
    message_id: int = 1,
    language_code: str | None = None,
) -> dict[str, Any]:
    update_id = next_id()
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cbq{update_id}",
            "from": user(user_id, language_code),
            "chat_instance": "ci1",
            "data": data,
            "message": bot_message(chat_id, message_id),
        },
    }


def pre_checkout(
    payload: str, *, amount: int, user_id: int = 777, currency: str = "XTR"
) -> dict[str, Any]:
    update_id = next_id()
    return {
        "update_id": update_id,
        "pre_checkout_query": {
            "id": f"pcq{update_id}",
            "from": user(user_id),
            "currency": currency,
            "total_amount": amount,
            "invoice_payload": payload,
        },
    }


def successful_payment(
    payload: str,
    *,
    amount: int,
    charge_id: str,
    expires: int,
    user_id: int = 777,
    chat_id: int = 555,
) -> dict[str, Any]:
    update_id = next_id()
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": chat(chat_id),
            "from": user(user_id),
            "successful_payment": {
                "currency": "XTR",
                "total_amount": amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge_id,
                "provider_payment_charge_id": "",
                "subscription_expiration_date": expires,
                "is_recurring": True,
                "is_first_recurring": True,
            },
        },
    }
