"""A strict local Telegram Bot API server for python-telegram-bot (its `base_url` points here).

It speaks the real protocol (POST /bot<token>/<method>, form-encoded or multipart parameters,
`{"ok": …, "result"|"description"|"parameters": …}`) and refuses what Telegram refuses, with
Telegram's own error texts:

- HTML (`parse_mode=HTML`) must parse: only Telegram's tags, properly nested, no entity
  inside `<code>`/`<pre>` (except `<pre><code class="language-…">`), no `<blockquote>` in a
  blockquote, only `&lt; &gt; &amp; &quot;` and numeric entities →
  400 "Bad Request: can't parse entities: …";
- text longer than 4,096 UTF-16 units after entity parsing → 400 "message is too long"
  (captions: 1,024); empty text → 400 "message text is empty";
- an edit that changes nothing → 400 "message is not modified: …"; an edit of an unknown
  message → 400 "message to edit not found";
- inline keyboards: callback data 1–64 bytes, URLs must be public http(s)/tg links
  (Telegram refuses `localhost`);
- 429 with `parameters.retry_after` on cue, and (optionally) when a group receives more
  than its per-window allowance, as Telegram does;
- unknown methods → 404.

Every call is recorded (`calls`), every message-producing call is time-stamped per chat
(`max_in_window`), and `getUpdates` serves queued updates with long polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BOT_USER = {
    "id": 4242,
    "is_bot": True,
    "first_name": "ChainLens",
    "username": "chainlens_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply "
    "markup are exactly the same as a current content and reply markup of the message"
)
MESSAGE_METHODS = (
    "sendMessage",
    "editMessageText",
    "sendPhoto",
    "editMessageReplyMarkup",
    "sendInvoice",
)
_ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
_FORMATTING = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler"}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}


class ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --- Telegram HTML -------------------------------------------------------------------------------


class _TelegramHtml(HTMLParser):
    """Parses Telegram's HTML subset into visible text and entities, refusing what Telegram does."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.text: list[str] = []
        self.stack: list[tuple[str, int, dict[str, str | None]]] = []
        self.entities: list[tuple[str, int, int, str]] = []

    def _fail(self, why: str) -> None:
        raise ApiError(400, f"Bad Request: can't parse entities: {why}")

    @property
    def _pos(self) -> int:
        return utf16_len("".join(self.text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS:
            self._fail(f'Unsupported start tag "{tag}" at byte offset {self.getpos()[1]}')
        attributes = dict(attrs)
        open_tags = [t for t, _, _ in self.stack]
        if (
            open_tags
            and open_tags[-1] in ("code", "pre")
            and not (tag == "code" and open_tags[-1] == "pre")
        ):
            self._fail(f'Can\'t nest "{tag}" inside "{open_tags[-1]}"')
        if tag in ("code", "pre") and any(t != "pre" for t in open_tags):
            self._fail(f'Entity "{tag}" can\'t be nested inside "{open_tags[-1]}"')
        if tag == "blockquote" and "blockquote" in open_tags:
            self._fail("Blockquote entities can't be nested")
        if tag == "a":
            if "a" in open_tags:
                self._fail("Text links can't be nested")
            if not attributes.get("href"):
                self._fail('Tag "a" must have attribute "href"')
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            self._fail('Tag "span" must have class "tg-spoiler"')
        if tag == "tg-emoji" and not attributes.get("emoji-id"):
            self._fail('Tag "tg-emoji" must have attribute "emoji-id"')
        if (
            tag == "code"
            and "class" in attributes
            and not (open_tags == ["pre"] and (attributes["class"] or "").startswith("language-"))
        ):
            self._fail('Tag "code" can have class only inside "pre"')
        self.stack.append((tag, self._pos, attributes))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack:
            self._fail(f'Unexpected end tag "{tag}" at byte offset {self.getpos()[1]}')
        top, start, attributes = self.stack.pop()
        if top != tag:
            self._fail(
                f"Unmatched end tag at byte offset {self.getpos()[1]}, expected "
                f'"</{top}>", found "</{tag}>"'
            )
        self.entities.append((tag, start, self._pos, attributes.get("href") or ""))

    def handle_data(self, data: str) -> None:
        if "<" in data:
            self._fail(f"Unsupported start tag at byte offset {self.getpos()[1]}")
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in _NAMED_ENTITIES:
            self._fail(f'Unsupported HTML entity "&{name};"')
        self.text.append(_NAMED_ENTITIES[name])

    def handle_charref(self, name: str) -> None:
        try:
            code = int(name[1:], 16) if name[:1] in "xX" else int(name)
            self.text.append(chr(code))
        except ValueError:
            self._fail(f'Invalid numeric entity "&#{name};"')

    def handle_comment(self, data: str) -> None:
        self._fail('Unsupported start tag "!--"')

    def handle_decl(self, decl: str) -> None:
        self._fail('Unsupported start tag "!"')

    def unknown_decl(self, data: str) -> None:
        self._fail('Unsupported start tag "!"')

    def handle_pi(self, data: str) -> None:
        self._fail('Unsupported start tag "?"')


def parse_telegram_html(source: str) -> tuple[str, list[tuple[str, int, int, str]]]:
    """The visible text and entities of Telegram HTML, or ApiError as Telegram would refuse it."""
    parser = _TelegramHtml()
    parser.feed(source)
    if parser.rawdata:  # what HTMLParser kept back: an unterminated tag or a stray '<'
        parser._fail(f"Unsupported start tag at byte offset {len(source) - len(parser.rawdata)}")
    parser.close()
    if parser.stack:
        parser._fail(f'Can\'t find end tag corresponding to start tag "{parser.stack[-1][0]}"')
    return "".join(parser.text), sorted(parser.entities, key=lambda e: (e[1], e[2], e[0]))


# --- the server ---------------------------------------------------------------------------------


@dataclass
class Cue:
    method: str
    status: int
    description: str
    parameters: dict[str, Any] | None
    chat_id: str | None
    remaining: int


@dataclass
class StoredMessage:
    chat_id: int
    message_id: int
    text: str
    entities: list[tuple[str, int, int, str]]
    markup: Any


@dataclass
class FakeBotApi:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)  # time.monotonic() of each arrival
    # chat ids that are channels (others: negative = supergroup, positive = private)
    channels: set[int] = field(default_factory=set)
    # (chat id, user id) -> "creator" | "administrator" | "member" | "left"
    members: dict[tuple[int, int], str] = field(default_factory=dict)
    # Telegram's own per-group allowance (limit, window s): past it the fake answers 429.
    group_limit: tuple[int, float] | None = None
    messages: dict[tuple[int, int], StoredMessage] = field(default_factory=dict)
    sent_at: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    served_429: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    webhook: dict[str, Any] = field(default_factory=dict)
    # Methods this server does not have (an older Bot API): answered 404 like Telegram does.
    missing_methods: set[str] = field(default_factory=set)
    _cues: list[Cue] = field(default_factory=list)
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)
    _next_message_id: int = 1000
    _invoices: int = 0
    _arrived: float = 0.0

    # --- test controls ---

    def cue(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        description: str | None = None,
        chat_id: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` (to `chat_id`, if given) fail."""
        params = {"retry_after": retry_after} if status == 429 and retry_after else None
        text = description or (
            f"Too Many Requests: retry after {retry_after}"
            if status == 429
            else "Internal Server Error"
        )
        self._cues.append(
            Cue(method, status, text, params, None if chat_id is None else str(chat_id), times)
        )

    def queue_update(self, update: dict[str, Any]) -> None:
        """An update for `getUpdates` to serve."""
        self._updates.append(update)
        self._new_update.set()

    def sent(self, method: str, chat_id: int | None = None) -> list[dict[str, Any]]:
        return [
            p
            for name, p in self.calls
            if name == method and (chat_id is None or str(p.get("chat_id")) == str(chat_id))
        ]

    def texts(self, chat_id: int | None = None) -> list[str]:
        """Visible text of every message sent or edited (to a chat), in order (refused ones too)."""
        out = []
        for name, p in self.calls:
            if name in ("sendMessage", "editMessageText", "sendPhoto") and (
                chat_id is None or str(p.get("chat_id")) == str(chat_id)
            ):
                raw = str(p.get("text") or p.get("caption") or "")
                if str(p.get("parse_mode") or "").upper() == "HTML":
                    with contextlib.suppress(ApiError):  # refused: the raw text was attempted
                        raw = parse_telegram_html(raw)[0]
                out.append(raw)
        return out

    def max_in_window(self, chat_id: int, window_s: float) -> int:
        """The most messages this chat received within any `window_s` seconds."""
        times = sorted(self.sent_at.get(chat_id, []))
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    # --- protocol ---

    def _chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id in self.channels:
            return {"id": chat_id, "type": "channel", "title": "Alpha channel"}
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": "Crypto group"}
        return {"id": chat_id, "type": "private", "first_name": "Ann"}

    def _chat_id(self, params: dict[str, Any]) -> int:
        raw = params.get("chat_id")
        if raw is None or not re.fullmatch(r"-?\d+", str(raw)):
            raise ApiError(400, "Bad Request: chat not found")
        return int(raw)

    def _text(
        self, params: dict[str, Any], key: str = "text", limit: int = MESSAGE_LIMIT
    ) -> tuple[str, list[tuple[str, int, int, str]]]:
        raw = params.get(key)
        if raw is None or str(raw) == "":
            if key == "caption":
                return "", []
            raise ApiError(400, "Bad Request: message text is empty")
        raw = str(raw)
        mode = str(params.get("parse_mode") or "")
        if mode.upper() == "HTML":
            text, entities = parse_telegram_html(raw)
        elif mode:
            raise ApiError(400, f"Bad Request: unsupported parse_mode {mode!r} in this fake")
        else:
            text, entities = raw, []
        if not text.strip() and key == "text":
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > limit:
            raise ApiError(
                400,
                "Bad Request: message is too long"
                if key == "text"
                else "Bad Request: message caption is too long",
            )
        return text, entities

    def _markup(self, params: dict[str, Any]) -> Any:
        raw = params.get("reply_markup")
        if raw is None:
            return None
        markup = json.loads(raw) if isinstance(raw, str) else raw
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if not str(button.get("text", "")).strip():
                    raise ApiError(
                        400, "Bad Request: text buttons are unallowed in the inline keyboard"
                    )
                kinds = [
                    k
                    for k in (
                        "url",
                        "callback_data",
                        "pay",
                        "login_url",
                        "switch_inline_query",
                        "web_app",
                        "copy_text",
                    )
                    if k in button
                ]
                if len(kinds) != 1:
                    raise ApiError(
                        400,
                        "Bad Request: can't parse inline keyboard button: "
                        "exactly one of the optional fields must be used",
                    )
                if (
                    "callback_data" in button
                    and not 1 <= len(str(button["callback_data"]).encode()) <= 64
                ):
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if "url" in button:
                    url = str(button["url"])
                    parts = urlsplit(url)
                    host = parts.hostname or ""
                    if parts.scheme not in ("http", "https", "tg") or (
                        parts.scheme != "tg"
                        and (
                            host in ("localhost", "") or host.startswith("127.") or "." not in host
                        )
                    ):
                        raise ApiError(
                            400,
                            f"Bad Request: inline keyboard button URL '{url}' is "
                            "invalid: Wrong HTTP URL",
                        )
        return markup

    def _store(
        self,
        chat_id: int,
        text: str,
        entities: list[Any],
        markup: Any,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self._next_message_id += 1
        message_id = self._next_message_id
        self.messages[(chat_id, message_id)] = StoredMessage(
            chat_id, message_id, text, entities, markup
        )
        result: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "text": text,
        }
        if chat_id not in self.channels:
            result["from"] = BOT_USER
        if markup:
            result["reply_markup"] = markup
        result.update(extra or {})
        return result

    def _count(self, method: str, chat_id: int) -> None:
        if self.group_limit and chat_id < 0:
            limit, window = self.group_limit
            now = self._arrived
            recent = [t for t in self.sent_at[chat_id] if now - t < window]
            if len(recent) >= limit:
                retry = max(1, int(window - (now - recent[0])) + 1)
                raise ApiError(
                    429, f"Too Many Requests: retry after {retry}", {"retry_after": retry}
                )
        self.sent_at[chat_id].append(self._arrived)

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        for cue in self._cues:
            if (
                cue.method == method
                and cue.remaining > 0
                and (cue.chat_id is None or cue.chat_id == str(params.get("chat_id")))
            ):
                cue.remaining -= 1
                raise ApiError(cue.status, cue.description, cue.parameters)
        if method in self.missing_methods:
            raise ApiError(404, "Not Found")
        if method == "getMe":
            return BOT_USER
        if method in ("deleteWebhook", "close", "logOut"):
            self.webhook = {}
            return True
        if method == "setWebhook":
            secret = params.get("secret_token")
            if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
                raise ApiError(400, "Bad Request: secret token contains unallowed characters")
            if not str(params.get("url", "")).startswith("https://"):
                raise ApiError(
                    400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
                )
            self.webhook = dict(params)
            return True
        if method == "getWebhookInfo":
            return {
                "url": self.webhook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": 0,
            }
        if method == "getUpdates":
            return await self._get_updates(params)
        if method == "setMyCommands":
            commands = json.loads(params.get("commands") or "[]")
            if not 0 < len(commands) <= 100:
                raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
            for command in commands:
                if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                    raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
                if not 1 <= len(str(command.get("description", ""))) <= 256:
                    raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
            return True
        if method == "sendChatAction":
            self._chat_id(params)
            if params.get("action") not in _CHAT_ACTIONS:
                raise ApiError(400, "Bad Request: wrong parameter action in request")
            return True
        if method == "sendMessage":
            chat_id = self._chat_id(params)
            text, entities = self._text(params)
            markup = self._markup(params)
            self._count(method, chat_id)
            return self._store(chat_id, text, entities, markup)
        if method == "sendMessageDraft":
            chat_id = self._chat_id(params)
            if chat_id < 0:
                raise ApiError(400, "Bad Request: TEXTDRAFT_PEER_INVALID")
            if (
                not str(params.get("draft_id", "0")).lstrip("-").isdigit()
                or int(params.get("draft_id", 0)) == 0
            ):
                raise ApiError(400, "Bad Request: draft_id must be non-zero")
            if params.get("text"):
                self._text(params)
            return True
        if method == "editMessageText":
            chat_id = self._chat_id(params)
            key = (chat_id, int(params.get("message_id") or 0))
            stored = self.messages.get(key)
            if stored is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            text, entities = self._text(params)
            markup = self._markup(params)
            if (text, entities, markup) == (stored.text, stored.entities, stored.markup):
                raise ApiError(400, NOT_MODIFIED)
            self._count(method, chat_id)
            stored.text, stored.entities, stored.markup = text, entities, markup
            result = {
                "message_id": key[1],
                "date": int(time.time()),
                "edit_date": int(time.time()),
                "chat": self._chat(chat_id),
                "text": text,
            }
            if markup:
                result["reply_markup"] = markup
            return result
        if method == "sendPhoto":
            chat_id = self._chat_id(params)
            if not params.get("_photo_png"):
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            caption, entities = self._text(params, "caption", CAPTION_LIMIT)
            markup = self._markup(params)
            self._count(method, chat_id)
            extra = {
                "photo": [
                    {
                        "file_id": f"photo{self._next_message_id}",
                        "file_unique_id": "u",
                        "width": 800,
                        "height": 400,
                    }
                ],
                "caption": caption,
            }
            result = self._store(chat_id, caption, entities, markup, extra)
            result.pop("text", None)
            return result
        if method == "answerCallbackQuery":
            if not params.get("callback_query_id"):
                raise ApiError(
                    400,
                    "Bad Request: query is too old and response timeout expired "
                    "or query ID is invalid",
                )
            if len(str(params.get("text") or "")) > 200:
                raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
            return True
        if method == "answerPreCheckoutQuery":
            ok = str(params.get("ok", "")).lower() == "true"
            if not params.get("pre_checkout_query_id"):
                raise ApiError(400, "Bad Request: QUERY_ID_INVALID")
            if not ok and not params.get("error_message"):
                raise ApiError(400, "Bad Request: error_message is required when ok is false")
            return True
        if method == "getChatMember":
            chat_id = self._chat_id(params)
            user_id = int(params.get("user_id") or 0)
            status = self.members.get((chat_id, user_id), "member")
            user = {"id": user_id, "is_bot": False, "first_name": "Member"}
            if status == "administrator":
                rights = dict.fromkeys(
                    (
                        "can_be_edited",
                        "is_anonymous",
                        "can_manage_chat",
                        "can_delete_messages",
                        "can_manage_video_chats",
                        "can_restrict_members",
                        "can_promote_members",
                        "can_change_info",
                        "can_invite_users",
                        "can_post_stories",
                        "can_edit_stories",
                        "can_delete_stories",
                    ),
                    False,
                )
                rights["can_manage_chat"] = True
                return {"status": status, "user": user, **rights}
            if status == "creator":
                return {"status": status, "user": user, "is_anonymous": False}
            if status == "member":
                return {"status": status, "user": user}
            return {"status": "left", "user": user}
        if method == "createInvoiceLink":
            return self._invoice_link(params)
        raise ApiError(404, "Not Found")

    def _invoice_link(self, params: dict[str, Any]) -> str:
        if params.get("currency") != "XTR":
            raise ApiError(400, "Bad Request: CURRENCY_INVALID (digital goods: Telegram Stars)")
        if params.get("provider_token"):
            raise ApiError(400, "Bad Request: PROVIDER_TOKEN must be empty for payments in Stars")
        if not 1 <= len(str(params.get("title", ""))) <= 32:
            raise ApiError(400, "Bad Request: INVOICE_TITLE_INVALID")
        if not 1 <= len(str(params.get("description", ""))) <= 255:
            raise ApiError(400, "Bad Request: INVOICE_DESCRIPTION_INVALID")
        if not 1 <= len(str(params.get("payload", "")).encode()) <= 128:
            raise ApiError(400, "Bad Request: INVOICE_PAYLOAD_INVALID")
        prices = json.loads(params.get("prices") or "[]")
        if len(prices) != 1 or int(prices[0].get("amount", 0)) <= 0:
            raise ApiError(400, "Bad Request: exactly one price is allowed for payments in Stars")
        period = params.get("subscription_period")
        if period is not None:
            if int(period) != 2592000:
                raise ApiError(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
            if int(prices[0]["amount"]) > 10000:
                raise ApiError(400, "Bad Request: SUBSCRIPTION_PRICE_INVALID")
        self._invoices += 1
        return f"https://t.me/$fakeinvoice{self._invoices}"

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + min(timeout, 2.0)
        while True:
            # Confirming an offset forgets everything before it, as Telegram does.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if self._updates or time.monotonic() >= deadline:
                return self._updates[:limit]
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._new_update.wait(), max(0.01, deadline - time.monotonic())
                )

    async def endpoint(self, request: Request) -> JSONResponse:
        self._arrived = time.monotonic()  # rate counters stamp arrival, not parse time
        method = request.path_params["method"]
        params = await _read_params(request)
        self.calls.append((method, params))
        self.call_times.append(self._arrived)
        try:
            result = await self._call(method, params)
        except ApiError as exc:
            if exc.status == 429:
                self.served_429.append((method, params))
            body: dict[str, Any] = {
                "ok": False,
                "error_code": exc.status,
                "description": exc.description,
            }
            if exc.parameters:
                body["parameters"] = exc.parameters
            return JSONResponse(body, status_code=exc.status)
        return JSONResponse({"ok": True, "result": result})


async def _read_params(request: Request) -> dict[str, Any]:
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    if content_type.startswith("application/json"):
        return dict(json.loads(body or b"{}"))
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        params: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename():
                params[f"_{name}_png"] = payload.startswith(b"\x89PNG")
                params[str(name)] = f"attach:{part.get_filename()}"
            else:
                params[str(name)] = payload.decode()
        # PTB sends the file as attach://<name> in the field; resolve it.
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                params[f"_{key}_png"] = params.get(f"_{value[9:]}_png", False)
        return params
    return {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_fake_bot_api(**options: Any) -> AsyncIterator[tuple[FakeBotApi, str]]:
    """Start the fake on a free loopback port; yield it and the base URL for PTB."""
    fake = FakeBotApi(**options)
    app = Starlette(routes=[Route("/bot{token}/{method}", fake.endpoint, methods=["POST", "GET"])])
    port = _free_port()
    # A long keep-alive: python-telegram-bot reuses pooled connections, and a server closing
    # an idle one under load would show up as a spurious ReadError.
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_keep_alive=120,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}/bot"
    finally:
        server.should_exit = True
        await task
