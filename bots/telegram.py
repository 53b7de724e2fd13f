"""Telegram adapter (python-telegram-bot): parse the update, call the chat service, render.

All handler registration lives in `build_application()`. Progress is shown by editing one
message (throttled: Telegram rate-limits edits), the answer is sent as HTML, and the price
chart as a photo.
"""

from __future__ import annotations

import asyncio
import logging
import time

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from billing.accounts import LinkCodeInvalid, account_for_identity, create_link_code, redeem_link_code
from billing.quota import quota_status
from bots.render import HELP_TEXT, Progress, markdown_to_telegram_html, split_message
from chainlens.chat import ChatTurn, MessageTooLong, chat
from chainlens.deps import Deps

log = logging.getLogger(__name__)
MESSAGE_LIMIT = 4096
_EDIT_INTERVAL_S = 1.2


def _deps(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    deps: Deps = context.application.bot_data["deps"]
    return deps


def _identity(update: Update) -> str:
    assert update.effective_user is not None
    return f"telegram:{update.effective_user.id}"


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text("👋 Welcome to ChainLens.\n\n" + HELP_TEXT)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(HELP_TEXT)


async def usage(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    deps = _deps(context)
    account = await account_for_identity(deps, _identity(update))
    status = await quota_status(deps, account)
    await update.effective_message.reply_text(
        f"Plan: {account.tier}. {status.remaining} of {status.limit} requests left today "
        f"(resets {status.reset_at:%H:%M} UTC)."
    )


async def link(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    deps = _deps(context)
    args = context.args or []
    if args:
        try:
            account = await redeem_link_code(deps, _identity(update), args[0])
        except LinkCodeInvalid:
            await update.effective_message.reply_text(
                "That code is not valid (codes are single use and expire after 10 minutes). "
                "Send /link in the other channel to get a new one.")
            return
        await update.effective_message.reply_text(
            f"Linked. This chat now shares the {account.tier} account and its quota.")
        return
    account = await account_for_identity(deps, _identity(update))
    code = await create_link_code(deps, account)
    await update.effective_message.reply_text(
        f"Your link code: {code}\nSend /link {code} in Discord, or enter it on the web account "
        "page, within 10 minutes. It works once.")


async def upgrade(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    base = str(_deps(context).settings.public_base_url).rstrip("/")
    await update.effective_message.reply_text(
        "Pro gives 1,000 requests a day on every channel. Upgrade on the web:",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Upgrade", url=f"{base}/pricing")]]),
    )


async def question(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a plain-text question, editing one message as the answer is built."""
    message = update.effective_message
    if message is None or not message.text:
        return
    deps = _deps(context)
    chat_id = message.chat_id
    turn = ChatTurn(identity=_identity(update), channel="telegram", text=message.text,
                    conversation_id=f"telegram:{chat_id}")
    progress = Progress()
    status: Message | None = None
    last_edit = 0.0

    async def show(force: bool = False) -> None:
        nonlocal status, last_edit
        now = time.monotonic()
        if not force and now - last_edit < _EDIT_INTERVAL_S:
            return
        last_edit = now
        text = progress.render()[-MESSAGE_LIMIT:]
        try:
            if status is None:
                status = await message.reply_text(text)
            else:
                await status.edit_text(text)
        except BadRequest as exc:  # "message is not modified" and friends: harmless
            log.debug("telegram edit skipped: %s", exc)

    try:
        await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
        async for event in chat(deps, turn):
            if event.type == "refused":
                base = str(deps.settings.public_base_url).rstrip("/")
                await message.reply_text(
                    event.message,
                    reply_markup=InlineKeyboardMarkup(
                        [[InlineKeyboardButton("Upgrade", url=f"{base}/pricing")]]),
                )
                return
            plan_arrived = progress.apply(event)
            if progress.final is None:
                await show(force=plan_arrived)
    except MessageTooLong as exc:
        await message.reply_text(str(exc))
        return

    final = progress.final
    parts = split_message(progress.answer, MESSAGE_LIMIT - 200)
    for index, part in enumerate(parts):
        html_text = markdown_to_telegram_html(part)
        if index == 0 and status is not None:
            await _edit_or_send(status, message, html_text)
        else:
            await message.reply_text(html_text, parse_mode=ParseMode.HTML,
                                     disable_web_page_preview=True)
    history = getattr(final, "price_history", None)
    project = getattr(final, "project", None)
    if history and project and len(history) >= 2:
        from chainlens.charts import render_price_chart

        png = await asyncio.to_thread(render_price_chart, project.display, history)
        await message.reply_photo(png, caption=f"{project.display} price")


async def _edit_or_send(status: Message, message: Message, html_text: str) -> None:
    try:
        await status.edit_text(html_text, parse_mode=ParseMode.HTML,
                               disable_web_page_preview=True)
    except BadRequest:
        await message.reply_text(html_text, parse_mode=ParseMode.HTML,
                                 disable_web_page_preview=True)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The one error handler: log with the trace, tell the user in words."""
    log.error("telegram handler failed", exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await update.effective_message.reply_text(
                "Something went wrong on our side. Please try again in a minute.")
        except TelegramError:
            log.warning("could not tell the user about the error")


def build_application(deps: Deps) -> Application:  # type: ignore[type-arg]
    """The Telegram application with every handler registered."""
    token = deps.settings.telegram_bot_token
    assert token is not None, "TELEGRAM_BOT_TOKEN is not set"
    builder = ApplicationBuilder().token(token.get_secret_value())
    if deps.settings.telegram_api_base:
        builder = builder.base_url(deps.settings.telegram_api_base)
    # Answers for different users run concurrently; one user's long answer blocks nobody.
    application = builder.concurrent_updates(True).build()
    application.bot_data["deps"] = deps
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("help", help_command))
    application.add_handler(CommandHandler("usage", usage))
    application.add_handler(CommandHandler("link", link))
    application.add_handler(CommandHandler("upgrade", upgrade))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, question))
    application.add_error_handler(on_error)
    return application


async def run_telegram_bot(deps: Deps) -> None:
    """Long-poll Telegram until cancelled (webhook mode is for multi-replica deployments)."""
    application = build_application(deps)
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(drop_pending_updates=False)
        log.info("telegram bot polling")
        try:
            await asyncio.Event().wait()
        finally:
            await application.updater.stop()
            await application.stop()
