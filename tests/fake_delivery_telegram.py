"""A strict local Bot API for proactive sends (sendMessage, sendPhoto): it refuses what
Telegram refuses and records what arrived, with arrival times.

Refusals: a wrong token (401); HTML that does not parse or nests badly, unknown tags or
attributes (400 "can't parse entities"); text over 4,096 or a caption over 1,024 characters
after entity parsing (400); a photo that is not a PNG/JPEG upload (400); more than 30
messages in any second overall, or more than 20 in any minute to one group/channel (429 with
`retry_after`). On cue per chat: `blocked` (403 "bot was blocked by the user"),
`not_found` (400 "chat not found"), `migrated:<new id>` (400 with `migrate_to_chat_id`),
`429` (once, with retry_after), `timeout` (the message is recorded as delivered, then the
answer never comes in time), `error500` (once, not recorded).
"""

from __future__ import annotations

import asyncio
import html.parser
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "123456:report-test-token"
ALLOWED_TAGS = {
    "b": set(),
    "strong": set(),
    "i": set(),
    "em": set(),
    "u": set(),
    "ins": set(),
    "s": set(),
    "strike": set(),
    "del": set(),
    "a": {"href"},
    "code": {"class"},
    "pre": set(),
    "tg-spoiler": set(),
    "span": {"class"},
    "blockquote": {"expandable"},
    "tg-emoji": {"emoji-id"},
}


class EntityError(ValueError):
    pass


class _Checker(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise EntityError(f'unsupported start tag "{tag}"')
        for name, _ in attrs:
            if name not in ALLOWED_TAGS[tag]:
                raise EntityError(f'unsupported attribute "{name}" of tag "{tag}"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise EntityError(f'unexpected end tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> str:
    """The visible text of Telegram HTML, or EntityError."""
    checker = _Checker()
    # A bare '&' or '<' that is not a tag or entity is refused by Telegram.
    i = 0
    while (i := text.find("&", i)) != -1:
        end = text.find(";", i)
        if end == -1 or not (text[i + 1 : end].isalnum() or text[i + 1 : end].startswith("#")):
            raise EntityError("can't find end of the entity")
        i = end
    checker.feed(text)
    checker.close()
    if checker.stack:
        raise EntityError(f'can\'t find end tag corresponding to start tag "{checker.stack[-1]}"')
    return "".join(checker.text)


@dataclass
class Arrival:
    chat_id: str
    method: str
    text: str
    at: float
    markup: dict[str, Any] | None = None  # reply_markup, as Telegram parsed it


@dataclass
class FakeTelegramDelivery:
    global_limit: tuple[int, float] = (30, 1.0)
    group_limit: tuple[int, float] = (20, 60.0)
    answer_delay_s: float = 0.0  # added to every answer (a slow Bot API)
    hang_s: float = 30.0  # how long a `timeout` cue keeps the client waiting
    arrived: list[Arrival] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    cues: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _recent: deque[float] = field(default_factory=deque)
    _group_recent: dict[str, deque[float]] = field(default_factory=dict)
    next_id: int = 1
    uploads: int = 0
    file_ids: set[str] = field(default_factory=set)

    def cue(self, chat_id: str | int, what: str) -> None:
        self.cues[str(chat_id)] = what

    def to(self, chat_id: str | int) -> list[Arrival]:
        return [a for a in self.arrived if a.chat_id == str(chat_id)]

    def max_in_window(self, window_s: float, chat_id: str | None = None) -> int:
        times = sorted(a.at for a in self.arrived if chat_id is None or a.chat_id == chat_id)
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - window_s:
                j += 1
            best = max(best, i - j + 1)
        return best

    def _refuse(self, chat: str, code: int, description: str, **extra: Any) -> JSONResponse:
        self.refused.append((chat, code, description))
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        body.update(extra)
        return JSONResponse(body, status_code=code)

    def _over_limit(self, chat: str, now: float) -> float:
        limit, window = self.global_limit
        while self._recent and self._recent[0] <= now - window:
            self._recent.popleft()
        if len(self._recent) >= limit:
            return self._recent[0] + window - now
        if int(chat) < 0:
            limit, window = self.group_limit
            recent = self._group_recent.setdefault(chat, deque())
            while recent and recent[0] <= now - window:
                recent.popleft()
            if len(recent) >= limit:
                return recent[0] + window - now
        return 0.0

    async def endpoint(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != TOKEN:
            return self._refuse("", 401, "Unauthorized")
        method = request.path_params["method"]
        params, photo = await _params(request)
        chat = str(params.get("chat_id", ""))
        if method not in ("sendMessage", "sendPhoto"):
            return self._refuse(chat, 404, "Not Found: method not found")
        if not chat:
            return self._refuse(chat, 400, "Bad Request: chat_id is empty")
        text = str(params.get("text" if method == "sendMessage" else "caption") or "")
        if method == "sendMessage" and not text:
            return self._refuse(chat, 400, "Bad Request: message text is empty")
        if method == "sendPhoto":
            reused = params.get("photo")
            if photo is None and not (isinstance(reused, str) and reused in self.file_ids):
                return self._refuse(
                    chat, 400, "Bad Request: wrong file identifier/HTTP URL specified"
                )
            if photo is not None and photo[:4] not in (b"\x89PNG", b"\xff\xd8\xff\xe0"):
                return self._refuse(chat, 400, "Bad Request: IMAGE_PROCESS_FAILED")
        if params.get("parse_mode") == "HTML":
            try:
                visible = parse_html(text)
            except EntityError as exc:
                return self._refuse(chat, 400, f"Bad Request: can't parse entities: {exc}")
        else:
            visible = text
        limit = 4096 if method == "sendMessage" else 1024
        if len(visible) > limit:
            return self._refuse(
                chat,
                400,
                "Bad Request: message is too long"
                if method == "sendMessage"
                else "Bad Request: message caption is too long",
            )
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            try:
                markup = json.loads(markup)
            except ValueError:
                return self._refuse(
                    chat, 400, "Bad Request: can't parse reply keyboard markup JSON object"
                )
        if markup is not None and (problem := _markup_problem(markup)):
            return self._refuse(chat, 400, f"Bad Request: {problem}")
        cue = self.cues.get(chat)
        if cue == "blocked":
            return self._refuse(chat, 403, "Forbidden: bot was blocked by the user")
        if cue == "not_found":
            return self._refuse(chat, 400, "Bad Request: chat not found")
        if cue and cue.startswith("migrated:"):
            return self._refuse(
                chat,
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                parameters={"migrate_to_chat_id": int(cue.split(":", 1)[1])},
            )
        if cue == "429":
            del self.cues[chat]
            return self._refuse(
                chat, 429, "Too Many Requests: retry after 1", parameters={"retry_after": 1}
            )
        if cue == "error500":
            del self.cues[chat]
            return self._refuse(chat, 500, "Internal Server Error")
        with self.lock:
            now = time.monotonic()
            wait = self._over_limit(chat, now)
            if wait > 0:
                retry_after = max(1, int(wait + 0.999))
                return self._refuse(
                    chat,
                    429,
                    f"Too Many Requests: retry after {retry_after}",
                    parameters={"retry_after": retry_after},
                )
            self._recent.append(now)
            if int(chat) < 0:
                self._group_recent.setdefault(chat, deque()).append(now)
            self.arrived.append(Arrival(chat, method, text, now, markup))
            self.next_id += 1
            message_id = self.next_id
            file_id = str(params.get("photo")) if method == "sendPhoto" and photo is None else None
            if method == "sendPhoto" and photo is not None:
                self.uploads += 1
                file_id = f"AgACAgIAAxkBAAI{message_id:08d}"
                self.file_ids.add(file_id)
        if cue == "timeout":
            del self.cues[chat]
            await asyncio.sleep(self.hang_s)
        if self.answer_delay_s:
            await asyncio.sleep(self.answer_delay_s)
        result: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": int(chat), "type": "group" if int(chat) < 0 else "private"},
        }
        if method == "sendPhoto":
            result["caption"] = visible
            result["photo"] = [
                {
                    "file_id": file_id,
                    "file_unique_id": f"u{file_id}",
                    "width": 640,
                    "height": 360,
                    "file_size": 20000,
                }
            ]
        else:
            result["text"] = visible
        return JSONResponse({"ok": True, "result": result})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bot{token}/{method}", self.endpoint, methods=["POST"])])


def _markup_problem(markup: Any) -> str | None:
    """What the Bot API says about a bad inline keyboard (None when it is valid)."""
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        return 'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                return (
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                return "BUTTON_DATA_INVALID"
            if data is None and not button.get("url"):
                return (
                    "can't parse inline keyboard button: InlineKeyboardButton must have "
                    "exactly one optional field"
                )
    return None


async def _params(request: Request) -> tuple[dict[str, Any], bytes | None]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        params: dict[str, Any] = {}
        photo = None
        async with request.form() as form:
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    photo = await value.read()  # type: ignore[union-attr]
                else:
                    params[key] = value
        return params, photo
    body = await request.body()
    if content_type.startswith("application/json"):
        return json.loads(body or b"{}"), None
    return {k: v[0] for k, v in parse_qs(body.decode()).items()}, None
