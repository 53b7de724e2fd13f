"""A turn that delivered answer text is charged and recorded, however the client leaves;
a turn that delivered nothing is refunded. Driven over real sockets against uvicorn."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Iterator
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

SLOW_ANSWER = "## Uniswap (UNI)\n" + "Uniswap is a decentralised exchange. " * 40
LIMITS = {"free": TierLimits(daily=5, minute=100), "pro": TierLimits(daily=1000, minute=100),
          "enterprise": TierLimits(daily=100_000, minute=100)}


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
    server = LiveServer(settings, transport=FakeSources().transport(),
                        configure=lambda deps: _with_slow_model(deps, model)).start()
    yield server
    server.stop()


async def _stream_then_reset(live: LiveServer, message: str, *, until: bytes,
                             headers: dict[str, str]) -> bytes:
    """POST to /api/chat/stream over a raw socket, read until `until`, then send a TCP RST."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    body = json.dumps({"message": message}).encode()
    head = ["POST /api/chat/stream HTTP/1.1", f"Host: 127.0.0.1:{live.port}",
            "Content-Type: application/json", f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    seen = b""
    while until not in seen:
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
        deps: Deps, live: LiveServer, model: FakeLLM) -> None:
    model.reset()
    model.script("slow", Reply(tool_calls=["onchain"]),
                 Reply(text=SLOW_ANSWER, chunk_chars=40, chunk_delay_s=0.3))
    cookie = {"Cookie": await _anonymous_cookie(live)}
    seen = await _stream_then_reset(live, "Research Uniswap", until=b"event: text",
                                    headers=cookie)
    assert b"event: final" not in seen
    [row] = await _usage_rows(deps, 1)
    assert row["status"] == "partial" and row["project_id"] == "uniswap"
    assert list(row["tools"]) == ["onchain"]
    assert await _remaining(live, cookie) == 4


async def test_stream_dropped_before_any_text_is_refunded(
        deps: Deps, live: LiveServer, model: FakeLLM) -> None:
    model.reset()
    model.script("slow", Reply(tool_calls=["onchain"]),
                 Reply(text=SLOW_ANSWER, first_token_delay_s=5.0))
    cookie = {"Cookie": await _anonymous_cookie(live)}
    seen = await _stream_then_reset(live, "Research Uniswap", until=b"event: plan",
                                    headers=cookie)
    assert b"event: text" not in seen
    [row] = await _usage_rows(deps, 1)
    assert row["status"] == "failed"
    assert await _remaining(live, cookie) == 5


async def test_pro_answers_through_dropped_streams_are_all_charged(
        deps: Deps, live: LiveServer, model: FakeLLM) -> None:
    model.reset()
    key = await paid_api_key(deps)
    bearer = {"Authorization": f"Bearer {key}"}
    questions = ["Research Uniswap", "Uniswap price?", "UNI market data"]
    for _ in questions:
        model.script("slow", Reply(tool_calls=["onchain"]),
                     Reply(text=SLOW_ANSWER, chunk_chars=40, chunk_delay_s=0.3))
    for question in questions:
        await _stream_then_reset(live, question, until=b"event: text", headers=bearer)
    rows = await _usage_rows(deps, len(questions))
    assert [r["status"] for r in rows] == ["partial"] * len(questions)
    assert await _remaining(live, bearer) == 1000 - len(questions)


async def test_bot_turn_cancelled_after_text_is_charged_before_text_refunded(
        fast_deps: Deps, model: FakeLLM) -> None:
    """The rule lives in chainlens.chat, so a bot adapter's cancelled task gets it too."""
    model.reset()
    bot_deps = _with_slow_model(fast_deps, model)
    account = await account_for_identity(bot_deps, "telegram:4711")

    async def adapter(text_arrived: asyncio.Event, question: str) -> None:
        turn = ChatTurn(identity="telegram:4711", channel="telegram", text=question,
                        conversation_id="telegram:4711")
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

    model.script("slow", Reply(tool_calls=["onchain"]),
                 Reply(text=SLOW_ANSWER, first_token_delay_s=5.0))
    await run("Research Uniswap", cancel_after_text=False)
    model.script("slow", Reply(tool_calls=["onchain"]),
                 Reply(text=SLOW_ANSWER, chunk_chars=40, chunk_delay_s=0.3))
    await run("Uniswap price?", cancel_after_text=True)
    rows = await _usage_rows(bot_deps, 2)
    assert [r["status"] for r in rows] == ["failed", "partial"]
    assert (await quota_status(bot_deps, account)).remaining == 4
