"""The Telegram application: every handler registered in `build_application()`, the one error
handler, and the runner (long polling by default, a webhook when TELEGRAM_WEBHOOK_URL is set)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    JobQueue,
    MessageHandler,
    PreCheckoutQueryHandler,
    filters,
)

from bots.render import PROJECT_COMMANDS, RenderedPart, command_menu
from bots.telegram import commands, stars, watch
from bots.telegram.answer import AnswerFailed, DraftSupport
from bots.telegram.chats import language_hint
from bots.telegram.delivery import edit_part, send_part
from bots.telegram.limits import SharedRateLimiter
from chainlens.deps import Deps
from chainlens.i18n import Localizer, as_language, localizer
from chainlens.limiter import SendLimiter
from chainlens.settings import Settings

log = logging.getLogger("bots.telegram")
# What `build_application` builds: the shared rate limiter's bot, PTB's default context types.
TelegramApplication: TypeAlias = Application[
    ExtBot[dict[str, Any]],
    ContextTypes.DEFAULT_TYPE,
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    JobQueue[ContextTypes.DEFAULT_TYPE],
]


def webhook_secret(settings: Settings) -> str:
    """TELEGRAM_WEBHOOK_SECRET, or a secret derived from SECRET_KEY (Telegram's charset)."""
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, b"telegram-webhook", hashlib.sha256).hexdigest()


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The one error handler: log the trace with a reference id, give the user that id."""
    reference = secrets.token_hex(4)
    log.error("telegram update failed [ref %s]", reference, exc_info=context.error)
    error = context.error
    chat_id: int | None = None
    status_message: int | None = None
    if isinstance(error, AnswerFailed):
        chat_id, status_message = error.asker.chat_id, error.status_message_id
    elif isinstance(update, Update) and update.effective_chat is not None:
        chat_id = update.effective_chat.id
    if chat_id is None:
        return
    loc = await _apology_localizer(update, context)
    text = loc._(
        "Sorry, something went wrong on our side and I could not answer. Please try "
        "again in a minute. (ref {reference})"
    ).format(reference=reference)
    part = RenderedPart(text, text)
    if status_message is not None:  # the progress message must not stay "working on it"
        try:
            await edit_part(context.bot, chat_id, status_message, part, html=False)
            return
        except TelegramError:
            log.info("could not edit the progress message for ref %s; sending", reference)
    try:
        await send_part(context.bot, chat_id, part)
    except TelegramError:
        log.warning("could not tell chat %s about error ref %s", chat_id, reference)


async def _apology_localizer(update: object, context: ContextTypes.DEFAULT_TYPE) -> Localizer:
    """The user's language for the apology; English if even that cannot be looked up (the
    database may be what failed)."""
    if not isinstance(update, Update):
        return localizer("en")
    try:
        return await commands.loc_of(update, context)
    except Exception:  # the apology must go out whatever failed
        log.warning("no language for the apology; English", exc_info=True)
        return localizer(as_language(language_hint(update)))


def build_application(deps: Deps) -> TelegramApplication:
    """The Telegram application with every handler registered."""
    settings = deps.settings
    token = settings.telegram_bot_token
    assert token is not None, "TELEGRAM_BOT_TOKEN is not set"
    builder = (
        ApplicationBuilder()
        .token(token.get_secret_value())
        .rate_limiter(SharedRateLimiter(SendLimiter.from_deps(deps)))
        # Answers for different users run concurrently; one long answer blocks nobody.
        .concurrent_updates(256)
    )
    if settings.telegram_api_base:
        builder = builder.base_url(settings.telegram_api_base)
    if settings.telegram_webhook_url is not None:
        builder = builder.updater(None)  # updates arrive through the web app's route
    application = builder.build()
    application.bot_data["deps"] = deps
    application.bot_data["drafts"] = DraftSupport()
    # Only new messages: an edited message is not answered (or charged) again.
    new = filters.UpdateType.MESSAGE
    anywhere = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
    application.add_handler(CommandHandler("start", commands.start, filters=anywhere))
    application.add_handler(CommandHandler("help", commands.help_command, filters=anywhere))
    for spec in PROJECT_COMMANDS:
        application.add_handler(CommandHandler(spec.name, commands.project_command, filters=new))
    application.add_handler(CommandHandler("usage", commands.usage, filters=new))
    application.add_handler(CommandHandler("link", commands.link, filters=new))
    application.add_handler(CommandHandler("upgrade", commands.upgrade_offer, filters=new))
    application.add_handler(CommandHandler("alpha", commands.alpha, filters=anywhere))
    application.add_handler(CommandHandler("watch", watch.watch_command, filters=anywhere))
    application.add_handler(CommandHandler("unwatch", watch.unwatch_command, filters=anywhere))
    application.add_handler(CommandHandler("watchlist", watch.watchlist_command, filters=anywhere))
    application.add_handler(CommandHandler("alert", watch.alert_command, filters=anywhere))
    application.add_handler(CommandHandler("alerts", watch.alerts_command, filters=anywhere))
    application.add_handler(CommandHandler("lang", commands.lang, filters=new))
    application.add_handler(
        CallbackQueryHandler(watch.button_pressed, pattern=watch.CALLBACK_PATTERN)
    )
    application.add_handler(
        CallbackQueryHandler(commands.language_pressed, pattern=commands.LANGUAGE_CALLBACK_PATTERN)
    )
    application.add_handler(CallbackQueryHandler(commands.button_pressed))
    application.add_handler(PreCheckoutQueryHandler(stars.pre_checkout))
    application.add_handler(
        MessageHandler(new & filters.SUCCESSFUL_PAYMENT, stars.payment_received)
    )
    application.add_handler(
        MessageHandler(new & filters.TEXT & ~filters.COMMAND, commands.question)
    )
    application.add_error_handler(on_error)
    return application


@asynccontextmanager
async def telegram_bot(deps: Deps) -> AsyncIterator[ExtBot[dict[str, Any]]]:
    """A Bot API client for senders outside the application (reports, alerts): the same
    shared limiter, so `send_markdown(bot, chat_id, text)` obeys every limit."""
    token = deps.settings.telegram_bot_token
    assert token is not None, "TELEGRAM_BOT_TOKEN is not set"
    base_url = deps.settings.telegram_api_base or "https://api.telegram.org/bot"
    bot: ExtBot[dict[str, Any]] = ExtBot(
        token.get_secret_value(),
        base_url=base_url,
        rate_limiter=SharedRateLimiter(SendLimiter.from_deps(deps)),
    )
    async with bot:
        yield bot


# Languages with a translated command menu (chainlens/locale).
MENU_LANGUAGES = ("vi",)


async def register_commands(application: TelegramApplication) -> None:
    """The command menu users see when they type '/': English by default, and one per
    translated language for users whose Telegram is set to it (Bot API `language_code`)."""
    await application.bot.set_my_commands(
        [BotCommand(c.name, c.description) for c in command_menu()]
    )
    for language in MENU_LANGUAGES:
        loc = localizer(language)
        await application.bot.set_my_commands(
            [BotCommand(c.name, loc._(c.description)) for c in command_menu()],
            language_code=language,
        )


async def start_bot(application: TelegramApplication, *, register: bool = True) -> None:
    """Initialise, register the menu, and start receiving (webhook or polling).

    `register=False` (webhook mode only): answer the updates this process's webhook route
    receives without calling `setMyCommands`/`setWebhook` again (one process of a `serve
    --workers N` registers for all of them)."""
    deps: Deps = application.bot_data["deps"]
    settings = deps.settings
    if not register and settings.telegram_webhook_url is None:
        raise ValueError("only webhook mode can run without registering (polling is one process)")
    await application.initialize()
    if register:
        await register_commands(application)
    await application.start()
    if settings.telegram_webhook_url is not None:
        if register:
            await application.bot.set_webhook(
                str(settings.telegram_webhook_url),
                secret_token=webhook_secret(settings),
                allowed_updates=Update.ALL_TYPES,
                max_connections=100,
            )
        log.info("telegram bot receiving updates by webhook")
    else:
        assert application.updater is not None
        await application.updater.start_polling(allowed_updates=Update.ALL_TYPES)
        log.info("telegram bot polling")


async def stop_bot(application: TelegramApplication) -> None:
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()


async def run_telegram_bot(
    deps: Deps, application: TelegramApplication | None = None, *, register: bool = True
) -> None:
    """Run the bot until cancelled (`register`: see `start_bot`). (Stars subscriptions whose
    period ran out are ended by the job queue's `billing.expire_stars` periodic job.)"""
    application = application or build_application(deps)
    await start_bot(application, register=register)
    try:
        await asyncio.Event().wait()
    finally:
        await stop_bot(application)
