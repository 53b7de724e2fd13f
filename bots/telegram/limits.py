"""Every Bot API call python-telegram-bot makes passes the shared send limiter (Redis).

`SharedRateLimiter` is a python-telegram-bot `BaseRateLimiter`, so nothing can bypass it:
a message to a chat takes a slot from Telegram's global window and the chat's own window
(1/s private, 20/min group or channel); other calls (chat actions, callback answers, member
look-ups) take a global slot only. A `RetryAfter` puts a hold on the destination for the time
Telegram asks and the call is made again: a 429 is waited out, never turned into an error.

Best-effort calls (progress drafts and edits) pass `rate_limit_args={"best_effort": True}`:
they take a slot only if one is free now and raise `SendSkipped` otherwise, so progress never
delays an answer or eats a group's budget that the answer needs.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from redis.exceptions import RedisError
from telegram.error import RetryAfter, TelegramError
from telegram.ext import BaseRateLimiter

from chainlens.limiter import SendLimiter, telegram_chat_class

log = logging.getLogger(__name__)

# Calls that put something in a chat and count against Telegram's per-chat limits. Drafts
# (`sendMessageDraft`) are ephemeral previews, not messages: they take a global slot only and
# are throttled by the adapter, so a cached answer is not held back behind its own preview.
CHAT_MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "sendPhoto",
        "sendDocument",
        "sendInvoice",
        "copyMessage",
        "forwardMessage",
        "sendMediaGroup",
    }
)
_MAX_RETRIES = 8
_REDIS_ATTEMPTS = 15  # about a minute of back-off


class SendSkipped(TelegramError):
    """A best-effort call was not made because its chat has no free slot right now."""


def retry_after_seconds(exc: RetryAfter) -> float:
    """`RetryAfter.retry_after` in seconds, whichever type this PTB version returns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class SharedRateLimiter(BaseRateLimiter[dict[str, Any]]):
    def __init__(self, limiter: SendLimiter) -> None:
        self.limiter = limiter

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def _acquire(self, chat: str | None, chat_class: str | None) -> None:
        """Wait for a slot; a busy or briefly unreachable Redis is waited out too (an answer
        that is ready must not be lost to a full connection pool), up to a minute."""
        for attempt in range(_REDIS_ATTEMPTS):
            try:
                await self.limiter.acquire("telegram", chat=chat, chat_class=chat_class)
                return
            except (RedisError, OSError) as exc:
                if attempt == _REDIS_ATTEMPTS - 1:
                    raise
                log.warning("send limiter unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: dict[str, Any] | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat_id = data.get("chat_id")
        per_chat = (
            endpoint in CHAT_MESSAGE_METHODS
            and chat_id is not None
            and str(chat_id).lstrip("-").isdigit()
        )
        chat = str(chat_id) if per_chat else None
        chat_class = telegram_chat_class(int(str(chat_id))) if per_chat else None
        best_effort = bool((rate_limit_args or {}).get("best_effort"))
        for attempt in range(_MAX_RETRIES + 1):
            if best_effort:
                try:
                    wait = await self.limiter.try_acquire(
                        "telegram", chat=chat, chat_class=chat_class
                    )
                except (RedisError, OSError) as exc:
                    raise SendSkipped(f"{endpoint}: limiter unavailable") from exc
                if wait:
                    raise SendSkipped(f"{endpoint}: no free slot for chat {chat}")
            else:
                await self._acquire(chat, chat_class)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                seconds = retry_after_seconds(exc)
                await self.limiter.hold("telegram", chat=chat, seconds=seconds)
                if best_effort or attempt == _MAX_RETRIES:
                    raise
                log.info(
                    "telegram %s to %s: 429, waiting %.1f s (attempt %d)",
                    endpoint,
                    chat or "-",
                    seconds,
                    attempt + 1,
                )
                # acquire() honours the hold; sleeping here too keeps a global 429 honest.
                await asyncio.sleep(seconds)
        raise AssertionError("unreachable")
