"""A strict local stand-in for Discord's REST API: `POST /api/v10/channels/{id}/messages`.

Refusals: a wrong bot token (401); content over 2,000, more than 10 embeds, a title over
256, a description over 4,096, more than 25 fields, a field name over 256 or value over
1,024, a footer over 2,048, more than 6,000 characters across the embeds, or an empty
message (400, code 50035); more than 5 messages in 5 s to one channel or 50 requests in a
second overall (429 with `retry_after`, `global` for the latter). Every answer carries the
X-RateLimit-* headers of the channel's bucket. On cue per channel: `missing_access` (403,
code 50001), `unknown_channel` (404, code 10003), `429` (once), `timeout` (recorded, then no
answer in time).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "discord-report-test-token"


def embed_problems(payload: dict[str, Any]) -> list[str]:
    problems = []
    content = payload.get("content") or ""
    embeds = payload.get("embeds") or []
    if len(content) > 2000:
        problems.append("content: Must be 2000 or fewer in length.")
    if len(embeds) > 10:
        problems.append("embeds: Must be 10 or fewer in length.")
    total = 0
    for e in embeds:
        title, desc = e.get("title") or "", e.get("description") or ""
        footer = (e.get("footer") or {}).get("text") or ""
        fields = e.get("fields") or []
        if len(title) > 256:
            problems.append("embeds.title: Must be 256 or fewer in length.")
        if len(desc) > 4096:
            problems.append("embeds.description: Must be 4096 or fewer in length.")
        if len(footer) > 2048:
            problems.append("embeds.footer.text: Must be 2048 or fewer in length.")
        if len(fields) > 25:
            problems.append("embeds.fields: Must be 25 or fewer in length.")
        for f in fields:
            if not f.get("name") or len(f["name"]) > 256:
                problems.append("embeds.fields.name: Must be between 1 and 256 in length.")
            if not f.get("value") or len(f["value"]) > 1024:
                problems.append("embeds.fields.value: Must be between 1 and 1024 in length.")
        total += (
            len(title)
            + len(desc)
            + len(footer)
            + sum(len(f.get("name") or "") + len(f.get("value") or "") for f in fields)
        )
    if total > 6000:
        problems.append("embeds: Embed size exceeds maximum size of 6000")
    if not content and not embeds:
        problems.append("Cannot send an empty message")
    rows = payload.get("components") or []
    if len(rows) > 5:
        problems.append("components: Must be 5 or fewer in length.")
    for row in rows:
        buttons = row.get("components") or []
        if row.get("type") != 1 or not 1 <= len(buttons) <= 5:
            problems.append('components.type: Value of field "type" must be one of (1,).')
            continue
        for b in buttons:
            if b.get("type") != 2 or not 1 <= len(b.get("custom_id") or "") <= 100:
                problems.append(
                    "components.components.custom_id: Must be between 1 and 100 in length."
                )
            if len(b.get("label") or "") > 80:
                problems.append("components.components.label: Must be 80 or fewer in length.")
    return problems


@dataclass
class Posted:
    channel_id: str
    payload: dict[str, Any]
    files: int
    at: float


@dataclass
class FakeDiscord:
    channel_limit: tuple[int, float] = (5, 5.0)
    global_limit: tuple[int, float] = (50, 1.0)
    hang_s: float = 30.0
    posted: list[Posted] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    cues: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _recent: deque[float] = field(default_factory=deque)
    _channel: dict[str, deque[float]] = field(default_factory=dict)

    def cue(self, channel_id: str | int, what: str) -> None:
        self.cues[str(channel_id)] = what

    def to(self, channel_id: str | int) -> list[Posted]:
        return [p for p in self.posted if p.channel_id == str(channel_id)]

    def _refuse(
        self, channel: str, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> JSONResponse:
        self.refused.append((channel, status, str(body.get("message"))))
        return JSONResponse(body, status_code=status, headers=headers)

    def _bucket_headers(self, channel: str, now: float) -> dict[str, str]:
        limit, window = self.channel_limit
        recent = self._channel.setdefault(channel, deque())
        while recent and recent[0] <= now - window:
            recent.popleft()
        remaining = limit - len(recent)
        reset_after = (recent[0] + window - now) if recent else window
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Reset-After": f"{max(0.0, reset_after):.3f}",
            "X-RateLimit-Bucket": f"channel-{channel}",
        }

    async def endpoint(self, request: Request) -> JSONResponse:
        channel = request.path_params["channel_id"]
        if request.headers.get("authorization") != f"Bot {TOKEN}":
            return self._refuse(channel, 401, {"message": "401: Unauthorized", "code": 0})
        files = 0
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            bad_file = False
            async with request.form() as form:
                payload = json.loads(str(form.get("payload_json") or "{}"))
                for key, value in form.multi_items():
                    if key.startswith("files[") and hasattr(value, "read"):
                        data = await value.read()  # type: ignore[union-attr]
                        bad_file = bad_file or not data.startswith(b"\x89PNG")
                        files += 1
            if bad_file:
                return self._refuse(channel, 400, {"message": "Invalid file", "code": 50035})
        else:
            payload = json.loads(await request.body() or b"{}")
        problems = embed_problems(payload)
        if problems:
            return self._refuse(
                channel, 400, {"message": "Invalid Form Body", "code": 50035, "errors": problems}
            )
        for e in payload.get("embeds") or []:
            url = (e.get("image") or {}).get("url", "")
            if (url.startswith("attachment://") and files == 0) or (
                url and not url.startswith(("attachment://", "https://"))
            ):
                return self._refuse(
                    channel,
                    400,
                    {
                        "message": "Invalid Form Body",
                        "code": 50035,
                        "errors": ["embeds.image.url: Not a well formed URL."],
                    },
                )
        cue = self.cues.get(channel)
        if cue == "missing_access":
            return self._refuse(channel, 403, {"message": "Missing Access", "code": 50001})
        if cue == "unknown_channel":
            return self._refuse(channel, 404, {"message": "Unknown Channel", "code": 10003})
        with self.lock:
            now = time.monotonic()
            if cue == "429":
                del self.cues[channel]
                return self._refuse(
                    channel,
                    429,
                    {"message": "You are being rate limited.", "retry_after": 0.5, "global": False},
                    {**self._bucket_headers(channel, now), "Retry-After": "1"},
                )
            limit, window = self.global_limit
            while self._recent and self._recent[0] <= now - window:
                self._recent.popleft()
            if len(self._recent) >= limit:
                wait = self._recent[0] + window - now
                return self._refuse(
                    channel,
                    429,
                    {
                        "message": "You are being rate limited.",
                        "retry_after": round(wait, 3),
                        "global": True,
                    },
                    {"X-RateLimit-Global": "true", "Retry-After": "1"},
                )
            headers = self._bucket_headers(channel, now)
            if headers["X-RateLimit-Remaining"] == "0":
                return self._refuse(
                    channel,
                    429,
                    {
                        "message": "You are being rate limited.",
                        "retry_after": float(headers["X-RateLimit-Reset-After"]),
                        "global": False,
                    },
                    headers,
                )
            self._recent.append(now)
            self._channel[channel].append(now)
            self.posted.append(Posted(channel, payload, files, now))
            headers = self._bucket_headers(channel, now)
            message_id = str(len(self.posted))
        if cue == "timeout":
            del self.cues[channel]
            await asyncio.sleep(self.hang_s)
        attachments = (
            [
                {
                    "id": f"{message_id}0",
                    "filename": "chart.png",
                    "url": f"https://cdn.discordapp.com/attachments/{channel}/{message_id}0/"
                    "chart.png",
                }
            ]
            if files
            else []
        )
        return JSONResponse(
            {
                "id": message_id,
                "channel_id": channel,
                "content": payload.get("content") or "",
                "embeds": payload.get("embeds") or [],
                "attachments": attachments,
            },
            headers=headers,
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v10/channels/{channel_id}/messages", self.endpoint, methods=["POST"])
            ]
        )
