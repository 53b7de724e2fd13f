"""A local stand-in for SendGrid's v3 API (what the sendgrid client's `host` points at)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fake_telegram import _free_port


@dataclass
class FakeSendGrid:
    messages: list[dict[str, Any]] = field(default_factory=list)
    api_key: str = "SG.test-key-0123456789"

    async def send(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"errors": [{"message": "unauthorized"}]}, status_code=401)
        self.messages.append(json.loads(await request.body()))
        return Response(status_code=202)


@contextlib.asynccontextmanager
async def running_fake_sendgrid() -> AsyncIterator[tuple[FakeSendGrid, str]]:
    fake = FakeSendGrid()
    app = Starlette(routes=[Route("/v3/mail/send", fake.send, methods=["POST"])])
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
