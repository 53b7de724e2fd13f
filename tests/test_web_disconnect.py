"""A web client that disconnects mid-answer cancels the work, including the LLM call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from chainlens.deps import Deps
from chainlens.settings import Settings
from tests.live_server import LiveServer
from tests.test_agent_support import FakeLLM, Reply, with_llm
from tests.tools_fakes import FakeSources, fast_http

pytestmark = pytest.mark.slow
SLOW_ANSWER = "## Uniswap (UNI)\n" + "Uniswap is a decentralised exchange. " * 60


@pytest.fixture(scope="module")
def model() -> Iterator[FakeLLM]:
    server = FakeLLM()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(settings: Settings, model: FakeLLM) -> Iterator[LiveServer]:
    def configure(deps: Deps) -> Deps:
        return with_llm(fast_http(deps), model, "slow", llm_timeout_s=30.0)

    server = LiveServer(settings, transport=FakeSources().transport(), configure=configure).start()
    yield server
    server.stop()


async def test_disconnect_cancels_the_llm_stream_within_a_second(
    live: LiveServer, model: FakeLLM
) -> None:
    model.reset()
    # Planner call (tool-calling), then a composer that streams slowly: ~40 s if left alone.
    model.script(
        "slow",
        Reply(tool_calls=["onchain"]),
        Reply(text=SLOW_ANSWER, chunk_chars=20, chunk_delay_s=0.4),
    )
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream(
            "POST", f"{live.url}/api/chat/stream", json={"message": "UNI price?"}
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line == "event: text":
                    break
        left_at = time.monotonic()
    for _ in range(40):
        if model.stream_ends:
            break
        await asyncio.sleep(0.05)
    assert model.stream_ends, "the model stream was still running after 2 s"
    ended_at, finished = model.stream_ends[0]
    assert not finished
    assert ended_at - left_at < 1.0
