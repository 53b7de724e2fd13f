"""Sending and editing messages so that a finished answer is always delivered.

Telegram HTML that Telegram refuses ("can't parse entities") is sent again as the same
part's plain text, never as the same HTML; an edit that changes nothing ("message is not
modified") counts as done. Rate limits and 429s are handled underneath, by the limiter every
call passes (`bots.telegram.limits`). This is the one send function for a Telegram
destination: answers, reports and alerts all use `send_markdown` / `send_parts`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bots.render import Button, RenderedPart, render_telegram

log = logging.getLogger(__name__)
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def is_parse_error(exc: BadRequest) -> bool:
    return "can't parse entities" in exc.message.lower()


def is_not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


def keyboard(
    rows: Sequence[Sequence[Button]], urls: dict[str, str] | None = None
) -> InlineKeyboardMarkup | None:
    """Our platform-neutral buttons as an inline keyboard; `urls` turns an action into a link."""
    urls = urls or {}
    markup = [
        [
            InlineKeyboardButton(b.label, url=urls[b.action])
            if b.action in urls
            else InlineKeyboardButton(b.label, callback_data=b.data)
            for b in row
        ]
        for row in rows
        if row
    ]
    return InlineKeyboardMarkup(markup) if markup else None


async def send_part(
    bot: Bot,
    chat_id: int,
    part: RenderedPart,
    *,
    markup: InlineKeyboardMarkup | None = None,
    reply_to: int | None = None,
    thread_id: int | None = None,
) -> Message:
    """Send one rendered part as HTML; as its plain text if Telegram refuses the HTML."""
    reply = (
        ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
    )
    try:
        return await bot.send_message(
            chat_id,
            part.html,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            reply_parameters=reply,
            message_thread_id=thread_id,
            link_preview_options=_NO_PREVIEW,
        )
    except BadRequest as exc:
        if not is_parse_error(exc):
            raise
        log.warning("telegram refused our HTML (%s); sending the plain text", exc.message)
        return await bot.send_message(
            chat_id,
            part.plain,
            reply_markup=markup,
            reply_parameters=reply,
            message_thread_id=thread_id,
            link_preview_options=_NO_PREVIEW,
        )


async def edit_part(
    bot: Bot,
    chat_id: int,
    message_id: int,
    part: RenderedPart,
    *,
    markup: InlineKeyboardMarkup | None = None,
    best_effort: bool = False,
    html: bool = True,
) -> None:
    """Replace a message's text; "not modified" is success, refused HTML falls back to plain."""
    limit = {"best_effort": True} if best_effort else None
    try:
        if html:
            await bot.edit_message_text(
                part.html,
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                link_preview_options=_NO_PREVIEW,
                rate_limit_args=limit,
            )  # type: ignore[call-arg]
            return
    except BadRequest as exc:
        if is_not_modified(exc):
            return
        if not is_parse_error(exc):
            raise
        log.warning("telegram refused our HTML edit (%s); using the plain text", exc.message)
    try:
        await bot.edit_message_text(
            part.plain,
            chat_id=chat_id,
            message_id=message_id,
            reply_markup=markup,
            link_preview_options=_NO_PREVIEW,
            rate_limit_args=limit,
        )  # type: ignore[call-arg]
    except BadRequest as exc:
        if not is_not_modified(exc):
            raise


async def send_parts(
    bot: Bot,
    chat_id: int,
    parts: Sequence[RenderedPart],
    *,
    markup: InlineKeyboardMarkup | None = None,
    reply_to: int | None = None,
    thread_id: int | None = None,
) -> list[Message]:
    """Send every part in order; the keyboard goes under the last one."""
    sent = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        sent.append(
            await send_part(
                bot,
                chat_id,
                part,
                markup=markup if last else None,
                reply_to=reply_to if index == 0 else None,
                thread_id=thread_id,
            )
        )
    return sent


async def send_markdown(
    bot: Bot,
    chat_id: int,
    markdown: str,
    *,
    buttons: Sequence[Sequence[Button]] = (),
    urls: dict[str, str] | None = None,
) -> list[Message]:
    """Deliver markdown to a chat (split, formatted, plain-text fallback, limiter)."""
    return await send_parts(bot, chat_id, render_telegram(markdown), markup=keyboard(buttons, urls))
