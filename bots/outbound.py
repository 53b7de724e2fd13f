"""Proactive messages to a destination (daily reports, later alerts): one send function per
platform, each through the shared send limiter, each saying what happened to the message.

Outcomes (`SendOutcome.status`):
- `sent`: the platform accepted it.
- `retry`: it surely did not arrive — connection refused, a 429 (the limiter is put on hold
  for `retry_after`), a 5xx answer — so sending again cannot duplicate it.
- `permanent`: it will never arrive; `deactivate` says the destination itself is gone (bot
  blocked or removed, chat or channel deleted) rather than this one message being refused.
- `skipped`: the caller's `on_slot` declined once the slot was granted; nothing was sent.
- `unknown`: the request left and no answer came back (read timeout, connection dropped):
  it may have arrived, and Telegram and Discord have no idempotency key, so it is never
  resent.

Telegram goes to the Bot API over the shared httpx client (TELEGRAM_API_BASE for a local
server), Discord to its REST API (`POST /channels/{id}/messages`, DISCORD_API_BASE), e-mail
through `chainlens.mailer` (SendGrid, up to 1,000 personalizations per request).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from chainlens.deps import Deps
from chainlens.limiter import SendLimiter, telegram_chat_class

log = logging.getLogger(__name__)

Status = Literal["sent", "retry", "permanent", "unknown", "skipped"]
# Called once the limiter granted a slot, right before the request leaves: the ledger claims
# the delivery there (pending -> sending), so a message waiting for a slot is never "sending".
# False means someone else has it: nothing is sent ("skipped").
OnSlot = Callable[[], Awaitable[bool]]
TELEGRAM_API = "https://api.telegram.org/bot"
DISCORD_API = "https://discord.com/api/v10"


@dataclass(frozen=True, slots=True)
class SendOutcome:
    status: Status
    reason: str = ""
    retry_after_s: float = 0.0
    deactivate: bool = False
    rate_limited: bool = False  # a 429: the platform said when; waiting it out is free
    message_id: str | None = None
    moved_to: str | None = None  # Telegram: the group became a supergroup with this chat id
    # What the platform now hosts for us (a Telegram photo file_id, a Discord attachment URL):
    # later sends of the same image pass this instead of uploading it again.
    media_ref: str | None = None


@dataclass(frozen=True, slots=True)
class TelegramPart:
    """One Bot API call: a photo (the message's image, `html` its caption) or an HTML text."""

    kind: Literal["photo", "text"]
    html: str
    # an inline keyboard under the message (alerts' Research / Chart buttons)
    reply_markup: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DiscordMessage:
    embeds: list[dict[str, Any]]
    content: str = ""
    with_chart: bool = False
    components: list[dict[str, Any]] = field(default_factory=list)  # buttons (action rows)


@dataclass(frozen=True, slots=True)
class EmailMessage:
    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class EmailRecipient:
    address: str
    substitutions: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def _transport_outcome(exc: httpx.HTTPError) -> SendOutcome:
    """Connect failures never reached the platform; anything after the request left may have."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return SendOutcome("retry", f"not sent: {type(exc).__name__}", retry_after_s=2.0)
    return SendOutcome("unknown", f"no answer after sending: {type(exc).__name__}")


# --- Telegram ---------------------------------------------------------------------------------

_TELEGRAM_GONE = (
    "bot was blocked",
    "bot was kicked",
    "user is deactivated",
    "chat not found",
    "bot is not a member",
    "have no rights to send",
    "group chat was deactivated",
    "chat_write_forbidden",
    "need administrator rights",
    "peer_id_invalid",
)


def _telegram_base(deps: Deps) -> str:
    return (deps.settings.telegram_api_base or TELEGRAM_API).rstrip("/")


async def send_telegram(
    deps: Deps,
    chat_id: str | int,
    part: TelegramPart,
    *,
    photo: bytes | str | None = None,
    limiter: SendLimiter | None = None,
    on_slot: OnSlot | None = None,
) -> SendOutcome:
    """Send one part to a Telegram chat through the limiter; never raises for platform errors.

    `photo` is the PNG to upload or the `file_id` of one already uploaded (`media_ref` of an
    earlier outcome)."""
    token = deps.settings.telegram_bot_token
    if token is None:
        return SendOutcome("permanent", "telegram is not configured (TELEGRAM_BOT_TOKEN)")
    limiter = limiter or SendLimiter.from_deps(deps)
    chat = str(chat_id)
    await limiter.acquire("telegram", chat=chat, chat_class=telegram_chat_class(chat))
    if on_slot is not None and not await on_slot():
        return SendOutcome("skipped", "claimed elsewhere")
    url = f"{_telegram_base(deps)}{token.get_secret_value()}/"
    timeout = deps.settings.send_timeout_s
    try:
        if part.kind == "photo":
            if photo is None:
                return SendOutcome("permanent", "photo part without an image")
            if isinstance(photo, str):
                response = await deps.http.post(
                    url + "sendPhoto",
                    timeout=timeout,
                    json={
                        "chat_id": chat,
                        "photo": photo,
                        "caption": part.html,
                        "parse_mode": "HTML",
                        **_markup(part),
                    },
                )
            else:
                response = await deps.http.post(
                    url + "sendPhoto",
                    timeout=timeout,
                    data={
                        "chat_id": chat,
                        "caption": part.html,
                        "parse_mode": "HTML",
                        **{k: json.dumps(v) for k, v in _markup(part).items()},
                    },
                    files={"photo": ("chart.png", photo, "image/png")},
                )
        else:
            response = await deps.http.post(
                url + "sendMessage",
                timeout=timeout,
                json={
                    "chat_id": chat,
                    "text": part.html,
                    "parse_mode": "HTML",
                    "link_preview_options": {"is_disabled": True},
                    **_markup(part),
                },
            )
    except httpx.HTTPError as exc:
        return _transport_outcome(exc)
    return await _telegram_outcome(limiter, chat, response)


def _markup(part: TelegramPart) -> dict[str, Any]:
    return {"reply_markup": part.reply_markup} if part.reply_markup else {}


async def _telegram_outcome(
    limiter: SendLimiter, chat: str, response: httpx.Response
) -> SendOutcome:
    try:
        body = response.json()
    except ValueError:
        body = {}
    description = str(body.get("description") or f"HTTP {response.status_code}")
    if response.status_code == 200 and body.get("ok"):
        result = body.get("result") or {}
        sizes = result.get("photo") or []
        file_id = sizes[-1].get("file_id") if sizes and isinstance(sizes[-1], dict) else None
        return SendOutcome("sent", message_id=str(result.get("message_id")), media_ref=file_id)
    if response.status_code == 429:
        retry_after = float((body.get("parameters") or {}).get("retry_after") or 1)
        await limiter.hold("telegram", chat=chat, seconds=retry_after)
        return SendOutcome("retry", description, retry_after_s=retry_after, rate_limited=True)
    if response.status_code >= 500:
        return SendOutcome("retry", description, retry_after_s=5.0)
    moved = (body.get("parameters") or {}).get("migrate_to_chat_id")
    if moved:
        return SendOutcome(
            "permanent",
            f"group upgraded to a supergroup ({moved})",
            deactivate=True,
            moved_to=str(moved),
        )
    gone = response.status_code == 403 or any(s in description.lower() for s in _TELEGRAM_GONE)
    return SendOutcome("permanent", description[:300], deactivate=gone)


# --- Discord ----------------------------------------------------------------------------------


def _discord_base(deps: Deps) -> str:
    return (deps.settings.discord_api_base or DISCORD_API).rstrip("/")


# Discord JSON error codes meaning the channel can no longer receive our messages.
_DISCORD_GONE_CODES = {10003, 50001, 50013, 10004, 50007}


async def send_discord(
    deps: Deps,
    channel_id: str | int,
    message: DiscordMessage,
    *,
    chart: bytes | str | None = None,
    limiter: SendLimiter | None = None,
    on_slot: OnSlot | None = None,
) -> SendOutcome:
    """Post a message to a Discord channel through the limiter and Discord's own headers.

    `chart` is the PNG to attach or the URL of one attached before (`media_ref`)."""
    token = deps.settings.discord_bot_token
    if token is None:
        return SendOutcome("permanent", "discord is not configured (DISCORD_BOT_TOKEN)")
    limiter = limiter or SendLimiter.from_deps(deps)
    channel = str(channel_id)
    await limiter.acquire("discord", chat=channel, chat_class="discord_channel")
    if on_slot is not None and not await on_slot():
        return SendOutcome("skipped", "claimed elsewhere")
    url = f"{_discord_base(deps)}/channels/{channel}/messages"
    embeds = [dict(embed) for embed in message.embeds]
    payload: dict[str, Any] = {
        "content": message.content,
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    }
    if message.components:
        payload["components"] = message.components
    headers = {"Authorization": f"Bot {token.get_secret_value()}"}
    try:
        if message.with_chart and isinstance(chart, bytes):
            payload["attachments"] = [{"id": 0, "filename": "chart.png"}]
            response = await deps.http.post(
                url,
                headers=headers,
                timeout=deps.settings.send_timeout_s,
                data={"payload_json": json.dumps(payload)},
                files={"files[0]": ("chart.png", chart, "image/png")},
            )
        else:
            for embed in payload["embeds"]:
                if message.with_chart and isinstance(chart, str):
                    embed["image"] = {"url": chart}
                else:
                    embed.pop("image", None)
            response = await deps.http.post(
                url, headers=headers, json=payload, timeout=deps.settings.send_timeout_s
            )
    except httpx.HTTPError as exc:
        return _transport_outcome(exc)
    return await _discord_outcome(limiter, channel, response)


async def _discord_outcome(
    limiter: SendLimiter, channel: str, response: httpx.Response
) -> SendOutcome:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    # Discord says when a bucket is empty; wait it out before anyone sends there again.
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset_after = float(response.headers.get("x-ratelimit-reset-after") or 1)
        await limiter.hold("discord", chat=channel, seconds=reset_after)
    if response.status_code in (200, 201):
        attachments = body.get("attachments") or []
        media = (
            attachments[0].get("url") if attachments and isinstance(attachments[0], dict) else None
        )
        return SendOutcome("sent", message_id=str(body.get("id")), media_ref=media)
    reason = str(body.get("message") or f"HTTP {response.status_code}")
    if response.status_code == 429:
        retry_after = float(body.get("retry_after") or response.headers.get("retry-after") or 1)
        is_global = bool(body.get("global")) or response.headers.get("x-ratelimit-global") == "true"
        await limiter.hold("discord", chat=None if is_global else channel, seconds=retry_after)
        return SendOutcome("retry", reason, retry_after_s=retry_after, rate_limited=True)
    if response.status_code >= 500:
        return SendOutcome("retry", reason, retry_after_s=5.0)
    gone = response.status_code in (403, 404) or body.get("code") in _DISCORD_GONE_CODES
    return SendOutcome("permanent", reason[:300], deactivate=gone)


# --- e-mail -----------------------------------------------------------------------------------


async def send_email_batch(
    deps: Deps,
    message: EmailMessage,
    recipients: list[EmailRecipient],
    *,
    limiter: SendLimiter | None = None,
    on_slot: OnSlot | None = None,
) -> SendOutcome:
    """One SendGrid request for up to 1,000 recipients (one personalization each).

    `on_slot` may remove recipients from the list (those claimed elsewhere)."""
    from chainlens.mailer import MAX_PERSONALIZATIONS
    from chainlens.mailer import send_email_batch as mail_batch

    if not 0 < len(recipients) <= MAX_PERSONALIZATIONS:
        raise ValueError(f"a batch carries 1..{MAX_PERSONALIZATIONS} recipients")
    if deps.settings.sendgrid_api_key is None:
        return SendOutcome("permanent", "email is not configured (SENDGRID_API_KEY)")
    limiter = limiter or SendLimiter.from_deps(deps)
    await limiter.acquire("email")
    if on_slot is not None and not await on_slot():
        return SendOutcome("skipped", "claimed elsewhere")
    if not recipients:
        return SendOutcome("skipped", "no recipient left")
    result = await mail_batch(deps.settings, message, recipients)
    if result.status == "retry" and result.retry_after_s:
        await limiter.hold("email", seconds=result.retry_after_s)
    return result
