"""A local stand-in for the Telegram Bot API (what python-telegram-bot's `base_url` points at).

It speaks the real protocol: POST /bot<token>/<method> with form-encoded or multipart
parameters, answering {"ok": true, "result": …}. Every call is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "ChainLens", "username": "chainlens_bot",
            "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False}


@dataclass
class FakeTelegram:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    next_message_id: int = 1000

    def sent(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    def _message(self, params: dict[str, Any]) -> dict[str, Any]:
        self.next_message_id += 1
        return {"message_id": int(params.get("message_id") or self.next_message_id),
                "date": int(time.time()),
                "chat": {"id": int(params.get("chat_id", 1)), "type": "private"},
                "from": BOT_USER, "text": params.get("text") or params.get("caption") or ""}

    async def endpoint(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        params: dict[str, Any] = {}
        if content_type.startswith("application/x-www-form-urlencoded"):
            params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        elif content_type.startswith("application/json"):
            params = json.loads(body or b"{}")
        elif content_type.startswith("multipart/form-data"):
            params = {"_multipart_bytes": len(body), "_has_png": b"\x89PNG" in body}
            for key in ("chat_id", "caption"):
                marker = f'name="{key}"'.encode()
                if marker in body:
                    value = body.split(marker, 1)[1].split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[0]
                    params[key] = value.decode()
        self.calls.append((method, params))
        if method == "getMe":
            return JSONResponse({"ok": True, "result": BOT_USER})
        if method in ("sendMessage", "editMessageText", "sendPhoto"):
            return JSONResponse({"ok": True, "result": self._message(params)})
        return JSONResponse({"ok": True, "result": True})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_fake_telegram() -> AsyncIterator[tuple[FakeTelegram, str]]:
    """Start the fake on a free loopback port; yield it and the base URL for PTB."""
    fake = FakeTelegram()
    app = Starlette(routes=[Route("/bot{token}/{method}", fake.endpoint, methods=["POST"])])
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}/bot"
    finally:
        server.should_exit = True
        await task
