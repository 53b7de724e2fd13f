"""A turn that delivered answer text is charged and recorded, however the client leaves;
a turn that delivered nothing is refunded. Driven over real sockets against uvicorn."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import struct
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest

from billing.accounts import account_for_identity
from billing.quota import quota_status
from chainlens.chat import ChatTurn, chat
from chainlens.deps import Deps
from chainlens.settings import Settings, TierLimits
from conftest import paid_api_key
from tests.live_server import LiveServer
from tests.test_agent_support import FakeLLM, Reply, with_llm
from tests.tools_fakes import FakeSources, fast_http
from web.auth import session_cookie_value

SLOW_ANSWER = "## Uniswap (UNI)\n" + "Uniswap is a decentralised exchange. " * 40
LIMITS = {
    "free": TierLimits(daily=5, minute=100),
    "pro": TierLimits(daily=1000, minute=100),
    "enterprise": TierLimits(daily=100_000, minute=100),
}


@pytest.fixture(scope="module")
def model() -> Iterator[FakeLLM]:
    server = FakeLLM()
    server.start()
    yield server
    server.stop()


def _with_slow_model(deps: Deps, model: FakeLLM) -> Deps:
    return with_llm(fast_http(deps), model, "slow", llm_timeout_s=30.0, tier_limits=LIMITS)


@pytest.fixture(scope="module")
def live(settings: Settings, model: FakeLLM) -> Iterator[LiveServer]:
    server = LiveServer(
        settings,
        transport=FakeSources().transport(),
        configure=lambda deps: _with_slow_model(deps, model),
    ).start()
    yield server
    server.stop()


async def _stream_then_reset(
    live: LiveServer, message: str, *, until: bytes | None, headers: dict[str, str]
) -> bytes:
    """POST to /api/chat/stream over a raw socket, read until `until` (None: nothing), then
    send a TCP RST."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    body = json.dumps({"message": message}).encode()
    head = [
        "POST /api/chat/stream HTTP/1.1",
        f"Host: 127.0.0.1:{live.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    seen = b""
    while until is not None and until not in seen:
        chunk = await asyncio.wait_for(reader.read(65536), 20)
        assert chunk, f"the server closed the stream first: {seen[-400:]!r}"
        seen += chunk
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # close with linger 0: the peer gets a reset, not a FIN
    return seen


async def _usage_rows(deps: Deps, expected: int) -> list[Any]:
    """The usage rows, once `expected` of them are written (the settle step runs after)."""
    rows: list[Any] = []
    for _ in range(200):
        rows = list(await deps.db.fetch("SELECT * FROM usage_logs ORDER BY id"))
        if len(rows) >= expected:
            break
        await asyncio.sleep(0.05)
    return rows


async def _anonymous_cookie(live: LiveServer) -> str:
    async with httpx.AsyncClient(base_url=live.url) as client:
        reply = await client.get("/api/chat/quota")
        assert reply.json()["remaining"] == 5
        return f"cl_session={reply.cookies['cl_session']}"


async def _remaining(live: LiveServer, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(base_url=live.url, headers=headers) as client:
        return int((await client.get("/api/chat/quota")).json()["remaining"])


async def test_stream_dropped_after_answer_text_is_charged_and_recorded(
    deps: Deps, live: LiveServer, model: FakeLLM
) -> None:
    model.reset()
    model.script(
        "slow",
        Reply(tool_calls=["onchain"]),
        Reply(text=SLOW_ANSWER, chunk_chars=40, chunk_delay_s=0.3),
    )
    cookie = {"Cookie": await _anonymous_cookie(live)}
    seen = await _stream_then_reset(live, "Research Uniswap", until=b"event: text", headers=cookie)
    assert b"event: final" not in seen
    [row] = await _usage_rows(deps, 1)
    assert row["status"] == "partial" and row["project_id"] == "uniswap"
    assert list(row["tools"]) == ["onchain"]
    assert await _remaining(live, cookie) == 4


async def test_stream_dropped_before_any_text_is_refunded(
    deps: Deps, live: LiveServer, model: FakeLLM
) -> None:
    model.reset()
    model.script(
        "slow", Reply(tool_calls=["onchain"]), Reply(text=SLOW_ANSWER, first_token_delay_s=5.0)
    )
    cookie = {"Cookie": await _anonymous_cookie(live)}
    seen = await _stream_then_reset(live, "Research Uniswap", until=b"event: plan", headers=cookie)
    assert b"event: text" not in seen
    [row] = await _usage_rows(deps, 1)
    assert row["status"] == "failed"
    assert await _remaining(live, cookie) == 5


async def test_stream_dropped_before_its_first_byte_is_refunded(
    deps: Deps, live: LiveServer, model: FakeLLM
) -> None:
    model.reset()
    model.script(
        "slow", Reply(tool_calls=["onchain"]), Reply(text=SLOW_ANSWER, first_token_delay_s=5.0)
    )
    cookie = {"Cookie": await _anonymous_cookie(live)}
    for question in ("Research Uniswap", "Uniswap price?", "UNI market data"):
        await _stream_then_reset(live, question, until=None, headers=cookie)
    rows = await _usage_rows(deps, 3)
    assert [r["status"] for r in rows] == ["failed"] * 3
    assert await _remaining(live, cookie) == 5


async def test_pro_answers_through_dropped_streams_are_all_charged(
    deps: Deps, live: LiveServer, model: FakeLLM
) -> None:
    model.reset()
    key = await paid_api_key(deps)
    bearer = {"Authorization": f"Bearer {key}"}
    questions = ["Research Uniswap", "Uniswap price?", "UNI market data"]
    for _ in questions:
        model.script(
            "slow",
            Reply(tool_calls=["onchain"]),
            Reply(text=SLOW_ANSWER, chunk_chars=40, chunk_delay_s=0.3),
        )
    for question in questions:
        await _stream_then_reset(live, question, until=b"event: text", headers=bearer)
    rows = await _usage_rows(deps, len(questions))
    assert [r["status"] for r in rows] == ["partial"] * len(questions)
    assert await _remaining(live, bearer) == 1000 - len(questions)


async def test_bot_turn_cancelled_after_text_is_charged_before_text_refunded(
    fast_deps: Deps, model: FakeLLM
) -> None:
    """The rule lives in chainlens.chat, so a bot adapter's cancelled task gets it too."""
    model.reset()
    bot_deps = _with_slow_model(fast_deps, model)
    account = await account_for_identity(bot_deps, "telegram:4711")

    async def adapter(text_arrived: asyncio.Event, question: str) -> None:
        turn = ChatTurn(
            identity="telegram:4711",
            channel="telegram",
            text=question,
            conversation_id="telegram:4711",
        )
        async for event in chat(bot_deps, turn):
            if event.type == "text":
                text_arrived.set()  # shown to the user; the loop asks for the next event

    async def run(question: str, *, cancel_after_text: bool) -> None:
        text_arrived = asyncio.Event()
        task = asyncio.create_task(adapter(text_arrived, question))
        if cancel_after_text:
            await asyncio.wait_for(text_arrived.wait(), 20)
        else:
            await asyncio.sleep(0.5)
            assert not text_arrived.is_set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    model.script(
        "slow", Reply(tool_calls=["onchain"]), Reply(text=SLOW_ANSWER, first_token_delay_s=5.0)
    )
    await run("Research Uniswap", cancel_after_text=False)
    model.script(
        "slow",
        Reply(tool_calls=["onchain"]),
        Reply(text=SLOW_ANSWER, chunk_chars=40, chunk_delay_s=0.3),
    )
    await run("Uniswap price?", cancel_after_text=True)
    rows = await _usage_rows(bot_deps, 2)
    assert [r["status"] for r in rows] == ["failed", "partial"]
    assert (await quota_status(bot_deps, account)).remaining == 4


async def test_client_gone_before_the_stream_body_starts_is_refunded(fast_deps: Deps) -> None:
    """Uvicorn's receive() answers `http.disconnect` at once for a client already gone, so
    the response can be cancelled before its body ever runs: the turn is still settled."""
    from web.app import create_app

    deps = dataclasses.replace(
        fast_deps, settings=fast_deps.settings.model_copy(update={"tier_limits": LIMITS})
    )
    app = create_app(deps.settings, deps=deps)
    body = json.dumps({"message": "Research Uniswap"}).encode()
    cookie = f"cl_session={session_cookie_value(deps.settings, 'web:gone@example.com')}"
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/chat/stream",
        "raw_path": b"/api/chat/stream",
        "query_string": b"",
        "root_path": "",
        "server": ("testserver", 80),
        "client": ("203.0.113.9", 5000),
        "headers": [
            (b"content-type", b"application/json"),
            (b"cookie", cookie.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    await app(scope, receive, send)
    out = b"".join(m.get("body", b"") for m in sent)
    assert b"event: text" not in out, out[:300]  # nothing of the answer went out
    account = await account_for_identity(deps, "web:gone@example.com")
    assert (await quota_status(deps, account)).remaining == 5
    [row] = await _usage_rows(deps, 1)
    assert row["status"] == "failed"
