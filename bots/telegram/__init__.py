"""Telegram adapter (python-telegram-bot): commands, questions, buttons, Stars, webhook.

`build_application(deps)` registers every handler; `run_telegram_bot(deps)` runs it (long
polling, or a webhook when TELEGRAM_WEBHOOK_URL is set); `send_markdown(bot, chat_id, text)`
is the one way to put a message in a Telegram chat (limiter, splitting, plain-text fallback);
`telegram_bot(deps)` opens a limiter-bound client for senders outside the bot (reports).
"""

from bots.telegram.app import (
    build_application,
    register_commands,
    run_telegram_bot,
    start_bot,
    stop_bot,
    telegram_bot,
    webhook_secret,
)
from bots.telegram.delivery import send_markdown

__all__ = [
    "build_application",
    "register_commands",
    "run_telegram_bot",
    "send_markdown",
    "start_bot",
    "stop_bot",
    "telegram_bot",
    "webhook_secret",
]
