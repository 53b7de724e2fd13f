"""A local stand-in for Discord's REST API (what discord.py's `Route.BASE` points at in tests).

It speaks the real protocol (API v10 paths, JSON or multipart `payload_json` + `files[n]`)
and refuses what Discord refuses, with Discord's error bodies:

- 400 `{"code": 50035, "message": "Invalid Form Body", "errors": {...}}` past any message
  limit: content 2,000; 10 embeds; title 256, description 4,096, 25 fields, field name 256 /
  value 1,024, footer 2,048, author 256; 6,000 characters across all embeds of a message;
  5 action rows of 5 buttons, labels 80, custom ids 100 (unique), link buttons with a URL
  and no custom id; 25 autocomplete choices (name 1-100, value <= 100).
- 400 code 50006 for an empty message; 400 code 40060 for a second interaction response;
  404 code 10062 for a response later than 3 s after the interaction was created; 404 code
  10008 editing an original response that does not exist (not deferred, or deleted); 404
  code 10015 for a follow-up before the interaction was acknowledged.
- 429 on cue (`rate_limit_next`), with Discord's body (`retry_after`, `global`) and headers
  (`Retry-After`, `X-RateLimit-*`, `Via`); a request to that bucket before `retry_after`
  has passed is another 429 and counted in `early_retries`.

Deferred responses behave like Discord's: the first follow-up to a still-loading deferred
response replaces that response (and keeps its ephemeral flag).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fake_telegram import _free_port

APP_ID = 900000000000000001
GUILD_ID = 700000000000000001
CHANNEL_ID = 710000000000000001
DM_CHANNEL_ID = 720000000000000001
USER_ID = 730000000000000001
BOT_USER = {
    "id": str(APP_ID),
    "username": "ChainLens",
    "discriminator": "0000",
    "global_name": "ChainLens",
    "avatar": None,
    "bot": True,
    "flags": 0,
    "verified": True,
    "mfa_enabled": False,
}
EPHEMERAL = 64
INTERACTION_DEADLINE_S = 3.0
_DISCORD_EPOCH_MS = 1420070400000


def user(user_id: int = USER_ID, name: str = "ann") -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
    }


@dataclass
class Call:
    method: str
    path: str
    kind: str  # "callback", "edit_original", "delete_original", "followup", "channel_message", ...
    payload: Any  # a JSON object, or a list for the bulk command upsert
    files: list[tuple[str, int]]  # (filename, size)
    status: int
    at: float
    token: str | None = None


@dataclass
class InteractionState:
    id: int
    token: str
    type: int
    channel_id: int
    created_at: float
    response_type: int | None = None
    original: dict[str, Any] | None = None
    original_loading: bool = False
    original_deleted: bool = False
    followups: list[dict[str, Any]] = field(default_factory=list)
    choices: list[dict[str, Any]] | None = None


@dataclass
class _Refusal:
    kind: str
    status: int
    code: int
    message: str
    times: int
    when: Callable[[dict[str, Any]], bool] | None


@dataclass
class _RateLimit:
    kind: str
    retry_after: float
    global_: bool


class InvalidBody(Exception):
    def __init__(
        self, errors: dict[str, Any], code: int = 50035, message: str = "Invalid Form Body"
    ) -> None:
        super().__init__(message)
        self.errors, self.code, self.message = errors, code, message


def _error(code: str, message: str) -> dict[str, Any]:
    return {"_errors": [{"code": code, "message": message}]}


def _max_len(errors: dict[str, Any], key: str, value: Any, limit: int) -> None:
    if isinstance(value, str) and len(value) > limit:
        errors[key] = _error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def embed_size(embed: Mapping[str, Any]) -> int:
    """The characters Discord counts towards the 6,000 limit of one embed."""
    size = len(embed.get("title") or "") + len(embed.get("description") or "")
    size += sum(
        len(f.get("name") or "") + len(f.get("value") or "") for f in embed.get("fields") or []
    )
    size += len((embed.get("footer") or {}).get("text") or "")
    size += len((embed.get("author") or {}).get("name") or "")
    return size


def validate_embeds(embeds: list[dict[str, Any]]) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    if len(embeds) > 10:
        return {"embeds": _error("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")}
    for index, embed in enumerate(embeds):
        e: dict[str, Any] = {}
        _max_len(e, "title", embed.get("title"), 256)
        _max_len(e, "description", embed.get("description"), 4096)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            e["fields"] = _error("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for n, f in enumerate(fields):
            fe: dict[str, Any] = {}
            for key, limit in (("name", 256), ("value", 1024)):
                if not f.get(key):
                    fe[key] = _error("BASE_TYPE_REQUIRED", "This field is required")
                _max_len(fe, key, f.get(key), limit)
            if fe:
                e.setdefault("fields", {})[str(n)] = fe
        footer: dict[str, Any] = {}
        _max_len(footer, "text", (embed.get("footer") or {}).get("text"), 2048)
        if footer:
            e["footer"] = footer
        author: dict[str, Any] = {}
        _max_len(author, "name", (embed.get("author") or {}).get("name"), 256)
        if author:
            e["author"] = author
        if e:
            errors[str(index)] = e
    if errors:
        return {"embeds": errors}
    if sum(embed_size(e) for e in embeds) > 6000:
        return {
            "embeds": _error("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
        }
    return {}


def validate_components(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if len(rows) > 5:
        return {"components": _error("BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")}
    errors: dict[str, Any] = {}
    seen: set[str] = set()
    for r, row in enumerate(rows):
        buttons = row.get("components") or []
        if row.get("type") != 1 or not 1 <= len(buttons) <= 5:
            errors[str(r)] = _error(
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "An action row must hold 1 to 5 components"
            )
            continue
        for b, button in enumerate(buttons):
            be: dict[str, Any] = {}
            style = button.get("style")
            if button.get("type") != 2 or style not in (1, 2, 3, 4, 5):
                be["style"] = _error("BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3, 4, 5).")
            _max_len(be, "label", button.get("label"), 80)
            if style == 5:
                if not button.get("url") or button.get("custom_id"):
                    be["url"] = _error(
                        "BUTTON_COMPONENT_URL_REQUIRED",
                        "A link button needs a url and no custom_id",
                    )
            else:
                custom_id = button.get("custom_id")
                if not custom_id:
                    be["custom_id"] = _error("BASE_TYPE_REQUIRED", "This field is required")
                else:
                    _max_len(be, "custom_id", custom_id, 100)
                    if custom_id in seen:
                        be["custom_id"] = _error(
                            "COMPONENT_CUSTOM_ID_DUPLICATED",
                            "Component custom id cannot be duplicated",
                        )
                    seen.add(custom_id)
            if be:
                errors.setdefault(str(r), {}).setdefault("components", {})[str(b)] = be
    return {"components": errors} if errors else {}


# Discord's locales (https://discord.com/developers/docs/reference#locales): localization
# dictionaries keyed by anything else are refused.
LOCALES = frozenset(
    {
        "id",
        "da",
        "de",
        "en-GB",
        "en-US",
        "es-ES",
        "es-419",
        "fr",
        "hr",
        "it",
        "lt",
        "hu",
        "nl",
        "no",
        "pl",
        "pt-BR",
        "ro",
        "fi",
        "sv-SE",
        "vi",
        "tr",
        "cs",
        "el",
        "bg",
        "ru",
        "uk",
        "hi",
        "th",
        "zh-CN",
        "ja",
        "zh-TW",
        "ko",
    }
)
_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


def _localizations(errors: dict[str, Any], key: str, value: Any, limit: int) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        errors[key] = _error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return
    for locale, text in value.items():
        if locale not in LOCALES:
            errors.setdefault(key, {})[locale] = _error(
                "LOCALE_INVALID", f"Invalid locale {locale!r}"
            )
        elif not isinstance(text, str) or not 1 <= len(text) <= limit:
            errors.setdefault(key, {})[locale] = _error(
                "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {limit} in length."
            )


def validate_command(command: dict[str, Any], *, chat_input: bool = True) -> dict[str, Any]:
    """A command or option as Discord checks it: names 1-32 lower-case word characters,
    descriptions 1-100, their localizations keyed by Discord locales within the same limits,
    at most 25 options and 25 choices (names 1-100)."""
    errors: dict[str, Any] = {}
    name = command.get("name")
    if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
        errors["name"] = _error("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    _localizations(errors, "name_localizations", command.get("name_localizations"), 32)
    if chat_input:
        description = command.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= 100:
            errors["description"] = _error(
                "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        _localizations(
            errors, "description_localizations", command.get("description_localizations"), 100
        )
    options = command.get("options") or []
    if len(options) > 25:
        errors["options"] = _error("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for i, option in enumerate(options):
        found = validate_command(option)
        for j, choice in enumerate(option.get("choices") or []):
            choice_errors: dict[str, Any] = {}
            if not 1 <= len(str(choice.get("name", ""))) <= 100:
                choice_errors["name"] = _error(
                    "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
            _localizations(
                choice_errors, "name_localizations", choice.get("name_localizations"), 100
            )
            if choice_errors:
                found.setdefault("choices", {})[str(j)] = choice_errors
        if found:
            errors.setdefault("options", {})[str(i)] = found
    return errors


def validate_message(message: dict[str, Any], has_files: bool) -> None:
    """Raise `InvalidBody` as Discord would for this (complete) message."""
    errors: dict[str, Any] = {}
    _max_len(errors, "content", message.get("content"), 2000)
    errors.update(validate_embeds(message.get("embeds") or []))
    errors.update(validate_components(message.get("components") or []))
    if errors:
        raise InvalidBody(errors)
    if not (
        message.get("content")
        or message.get("embeds")
        or has_files
        or message.get("attachments")
        or message.get("components")
    ):
        raise InvalidBody({}, code=50006, message="Cannot send an empty message")


class FakeDiscord:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.commands: list[dict[str, Any]] = []
        self.interactions: dict[str, InteractionState] = {}
        self.channel_messages: list[dict[str, Any]] = []
        self.early_retries = 0
        # Awaited when an interaction response arrives, before it is answered (tests use it
        # to look at the database at that moment).
        self.on_callback: Callable[[Call], Awaitable[None]] | None = None
        self._rate_limits: list[_RateLimit] = []
        self._refusals: list[_Refusal] = []
        self._blocked_until: dict[str, float] = {}
        self._ids = itertools.count(1)

    # --- test helpers -----------------------------------------------------------------------

    def rate_limit_next(
        self, kind: str, retry_after: float = 0.3, *, global_: bool = False
    ) -> None:
        """Answer the next request of `kind` with a 429."""
        self._rate_limits.append(_RateLimit(kind, retry_after, global_))

    def refuse_next(
        self,
        kind: str,
        *,
        status: int = 403,
        code: int = 50001,
        message: str = "Missing Access",
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Refuse the next `times` requests of `kind` (whose payload satisfies `when`) the
        way Discord refuses a bot that lost access to a channel, or a body it rejects."""
        self._refusals.append(_Refusal(kind, status, code, message, times, when))

    def _scripted_refusal(self, call: Call) -> Response | None:
        for refusal in self._refusals:
            if (
                refusal.kind == call.kind
                and refusal.times > 0
                and (refusal.when is None or refusal.when(call.payload))
            ):
                refusal.times -= 1
                return self._refuse(refusal.status, refusal.code, refusal.message)
        return None

    def delivered(self, kind: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.status < 300 and (kind is None or c.kind == kind)]

    def snowflake(self) -> int:
        return ((int(time.time() * 1000) - _DISCORD_EPOCH_MS) << 22) + next(self._ids)

    def interaction(
        self,
        type_: int,
        data: dict[str, Any],
        *,
        dm: bool = False,
        user_id: int = USER_ID,
        permissions: int = 1 << 4,
        user_install: bool = False,
        message: dict[str, Any] | None = None,
        locale: str = "en-US",
        guild_locale: str = "en-US",
    ) -> dict[str, Any]:
        """A gateway INTERACTION_CREATE payload (and the fake starts its 3 s clock)."""
        interaction_id = self.snowflake()
        token = f"itoken-{interaction_id}"
        channel_id = DM_CHANNEL_ID if dm else CHANNEL_ID
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(APP_ID),
            "type": type_,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": str(channel_id),
            "locale": locale,
            "entitlements": [],
            "attachment_size_limit": 8 * 1024 * 1024,
            "app_permissions": str((1 << 11) | (1 << 14) | (1 << 15)),
            "authorizing_integration_owners": (
                {"1": str(user_id)} if user_install or dm else {"0": str(GUILD_ID)}
            ),
        }
        if dm:
            payload["user"] = user(user_id)
            payload["context"] = 1
            payload["channel"] = {"id": str(channel_id), "type": 1, "recipients": [user(user_id)]}
        else:
            payload["guild_id"] = str(GUILD_ID)
            payload["guild_locale"] = guild_locale
            payload["context"] = 0
            payload["member"] = {
                "user": user(user_id),
                "roles": [],
                "nick": None,
                "joined_at": "2024-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": str(permissions),
            }
            payload["channel"] = {
                "id": str(channel_id),
                "type": 0,
                "guild_id": str(GUILD_ID),
                "name": "general",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
            }
        if message is not None:
            payload["message"] = message
        self.interactions[token] = InteractionState(
            id=interaction_id,
            token=token,
            type=type_,
            channel_id=channel_id,
            created_at=time.monotonic(),
        )
        return payload

    def slash(
        self, name: str, options: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        data = {"id": str(self.snowflake()), "name": name, "type": 1, "options": options or []}
        return self.interaction(2, data, **kwargs)

    def autocomplete(self, name: str, option: str, typed: str, **kwargs: Any) -> dict[str, Any]:
        data = {
            "id": str(self.snowflake()),
            "name": name,
            "type": 1,
            "options": [{"name": option, "type": 3, "value": typed, "focused": True}],
        }
        return self.interaction(4, data, **kwargs)

    def press(self, custom_id: str, message: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self.interaction(
            3, {"custom_id": custom_id, "component_type": 2}, message=message, **kwargs
        )

    def state(self, payload: dict[str, Any]) -> InteractionState:
        return self.interactions[payload["token"]]

    def messages_of(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Visible messages of an interaction: its original response, then follow-ups."""
        s = self.state(payload)
        original = [] if s.original is None or s.original_deleted else [s.original]
        return original + s.followups

    # --- HTTP ---------------------------------------------------------------------------------

    def _message(
        self,
        channel_id: int,
        body: dict[str, Any],
        files: list[tuple[str, int]],
        *,
        message_id: int | None = None,
    ) -> dict[str, Any]:
        attachments = [
            {
                "id": str(self.snowflake()),
                "filename": name,
                "size": size,
                "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{name}",
                "proxy_url": f"https://media.discordapp.net/attachments/{channel_id}/{name}",
                "content_type": "image/png" if name.endswith(".png") else None,
            }
            for name, size in files
        ]
        return {
            "id": str(message_id or self.snowflake()),
            "channel_id": str(channel_id),
            "type": 0,
            "content": body.get("content") or "",
            "author": BOT_USER,
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "attachments": attachments,
            "flags": int(body.get("flags") or 0),
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "webhook_id": str(APP_ID),
            "application_id": str(APP_ID),
        }

    async def _parse(self, request: Request) -> tuple[Any, list[tuple[str, int]]]:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            parsed = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body
            )
            payload: dict[str, Any] = {}
            files: list[tuple[str, int]] = []
            for part in parsed.iter_parts():
                name = part.get_param("name", header="content-disposition")
                decoded = part.get_payload(decode=True)
                data = decoded if isinstance(decoded, bytes) else b""
                if name == "payload_json":
                    payload = json.loads(data)
                elif part.get_filename():
                    files.append((str(part.get_filename()), len(data)))
            return payload, files
        return (json.loads(body) if body else {}), []

    def _rate_limited(self, kind: str) -> Response | None:
        now = time.monotonic()
        for key in (kind, "global"):
            until = self._blocked_until.get(key, 0.0)
            if now < until:
                self.early_retries += 1
                return self._429(until - now, key == "global")
        for index, limit in enumerate(self._rate_limits):
            if limit.kind in (kind, "any"):
                del self._rate_limits[index]
                self._blocked_until["global" if limit.global_ else kind] = now + limit.retry_after
                return self._429(limit.retry_after, limit.global_)
        return None

    @staticmethod
    def _429(retry_after: float, global_: bool) -> Response:
        headers = {
            "Retry-After": str(math.ceil(retry_after)),
            "Via": "1.1 google",
            "X-RateLimit-Scope": "global" if global_ else "user",
        }
        if global_:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update(
                {
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Bucket": "fake-bucket-0001",
                }
            )
        return JSONResponse(
            {
                "message": "You are being rate limited.",
                "retry_after": round(retry_after, 3),
                "global": global_,
            },
            status_code=429,
            headers=headers,
        )

    @staticmethod
    def _refuse(
        status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> JSONResponse:
        body: dict[str, Any] = {"code": code, "message": message}
        if errors:
            body["errors"] = errors
        return JSONResponse(body, status_code=status)

    async def endpoint(self, request: Request) -> Response:
        path = request.url.path.removeprefix("/api/v10")
        method = request.method
        payload, files = await self._parse(request)
        kind, token = self._kind(method, path)
        call = Call(method, path, kind, payload, files, 0, time.monotonic(), token)
        self.calls.append(call)
        limited = self._rate_limited(kind)
        if limited is not None:
            call.status = 429
            return limited
        refused = self._scripted_refusal(call)
        if refused is not None:
            call.status = refused.status_code
            return refused
        try:
            response = await self._handle(call, request)
        except InvalidBody as exc:
            response = self._refuse(400, exc.code, exc.message, exc.errors)
        call.status = response.status_code
        return response

    @staticmethod
    def _kind(method: str, path: str) -> tuple[str, str | None]:
        parts = path.strip("/").split("/")
        if parts[0] == "interactions":
            return "callback", parts[2]
        if parts[0] == "webhooks":
            token = parts[2]
            if len(parts) == 3:
                return "followup", token
            if parts[-1] == "@original":
                return {
                    "PATCH": "edit_original",
                    "DELETE": "delete_original",
                    "GET": "get_original",
                }[method], token
            return f"{method.lower()}_followup", token
        if parts[0] == "channels" and parts[-1] == "messages":
            return "channel_message", None
        return f"{method} {path}", None

    async def _handle(self, call: Call, request: Request) -> Response:
        if call.kind == "GET /users/@me":
            return JSONResponse(BOT_USER)
        if call.kind == "GET /oauth2/applications/@me":
            return JSONResponse(
                {
                    "id": str(APP_ID),
                    "name": "ChainLens",
                    "description": "",
                    "icon": None,
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "verify_key": "00",
                    "owner": user(1, "owner"),
                    "flags": 0,
                    "summary": "",
                    "team": None,
                }
            )
        if call.kind == f"PUT /applications/{APP_ID}/commands":
            errors = {
                str(i): e
                for i, c in enumerate(call.payload)
                if (e := validate_command(c, chat_input=c.get("type", 1) == 1))
            }
            if errors:
                raise InvalidBody(errors)
            self.commands = [
                dict(c, id=str(self.snowflake()), application_id=str(APP_ID), version="1")
                for c in call.payload
            ]
            return JSONResponse(self.commands)
        if call.kind == "channel_message":
            validate_message(call.payload, bool(call.files))
            channel_id = int(call.path.split("/")[2])
            message = self._message(channel_id, call.payload, call.files)
            self.channel_messages.append(message)
            return JSONResponse(message)
        state = self.interactions.get(call.token or "")
        if state is None:
            return self._refuse(404, 10015, "Unknown Webhook")
        if call.kind == "callback":
            return await self._callback(state, call)
        if call.kind == "edit_original":
            if state.original is None or state.original_deleted:
                return self._refuse(404, 10008, "Unknown Message")
            merged = {**state.original, **call.payload}
            validate_message(merged, bool(call.files))
            message = self._message(
                state.channel_id, merged, call.files, message_id=int(state.original["id"])
            )
            message["flags"] = state.original["flags"]
            state.original, state.original_loading = message, False
            return JSONResponse(message)
        if call.kind == "delete_original":
            if state.original is None or state.original_deleted:
                return self._refuse(404, 10008, "Unknown Message")
            state.original_deleted = True
            return Response(status_code=204)
        if call.kind == "followup":
            if state.response_type is None:
                return self._refuse(404, 10015, "Unknown Webhook")
            validate_message(call.payload, bool(call.files))
            if state.original_loading and not state.original_deleted:
                assert state.original is not None
                message = self._message(
                    state.channel_id, call.payload, call.files, message_id=int(state.original["id"])
                )
                message["flags"] = state.original["flags"]
                state.original, state.original_loading = message, False
                return JSONResponse(message)
            message = self._message(state.channel_id, call.payload, call.files)
            state.followups.append(message)
            return JSONResponse(message)
        return self._refuse(404, 0, f"404: Not Found ({call.kind})")

    async def _callback(self, state: InteractionState, call: Call) -> Response:
        if time.monotonic() - state.created_at > INTERACTION_DEADLINE_S:
            return self._refuse(404, 10062, "Unknown interaction")
        if state.response_type is not None:
            return self._refuse(400, 40060, "Interaction has already been acknowledged.")
        if self.on_callback is not None:
            await self.on_callback(call)
        response_type = int(call.payload.get("type", 0))
        data = call.payload.get("data") or {}
        allowed = {2: (4, 5), 3: (4, 5, 6, 7), 4: (8,), 5: (4, 5, 6, 7)}[state.type]
        if response_type not in allowed:
            return self._refuse(
                400,
                50035,
                "Invalid Form Body",
                {
                    "type": _error(
                        "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type"
                    )
                },
            )
        if response_type == 8:
            choices = data.get("choices") or []
            errors: dict[str, Any] = {}
            if len(choices) > 25:
                errors["choices"] = _error("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            for n, choice in enumerate(choices):
                ce: dict[str, Any] = {}
                if not 1 <= len(choice.get("name") or "") <= 100:
                    ce["name"] = _error(
                        "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                    )
                _max_len(ce, "value", choice.get("value"), 100)
                if ce:
                    errors.setdefault("choices", {})[str(n)] = ce
            if errors:
                raise InvalidBody({"data": errors})
            state.choices = choices
        elif response_type == 4:
            validate_message(data, bool(call.files))
            state.original = self._message(state.channel_id, data, call.files)
        elif response_type == 5:
            state.original = self._message(state.channel_id, {"flags": data.get("flags", 0)}, [])
            state.original_loading = True
        state.response_type = response_type
        resource: dict[str, Any] = {"type": response_type}
        if response_type == 4 and state.original is not None:
            resource["message"] = state.original
        return JSONResponse(
            {
                "interaction": {
                    "id": str(state.id),
                    "type": state.type,
                    "response_message_id": state.original["id"] if state.original else None,
                    "response_message_loading": response_type == 5,
                    "response_message_ephemeral": bool(int(data.get("flags") or 0) & EPHEMERAL),
                },
                "resource": resource,
            }
        )


@contextlib.asynccontextmanager
async def running_fake_discord() -> AsyncIterator[tuple[FakeDiscord, str]]:
    """Start the fake on a free loopback port; yield it and the API base for `Route.BASE`."""
    fake = FakeDiscord()
    app = Starlette(
        routes=[
            Route(
                "/api/v10/{path:path}",
                fake.endpoint,
                methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            )
        ]
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}/api/v10"
    finally:
        server.should_exit = True
        await task
