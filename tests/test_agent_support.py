"""A local OpenAI-compatible chat server that LiteLLM really calls, scripted per test.

Other agent tests import `FakeLLM`, `Reply`, `Fail` and the `llm_server` fixture from here;
the bench uses the same server. Speaks POST /v1/chat/completions, plain and SSE streaming,
with tool calls, error statuses, a slow first token and a stream cut midway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent.llm import ModelPrice, build_router
from chainlens.deps import Deps
from chainlens.settings import Settings


@dataclass
class Reply:
    """A successful completion: text (streamed in `chunk_chars` pieces) and/or tool calls."""

    text: str = ""
    tool_calls: list[str] = field(default_factory=list)  # function names, called with {}
    first_token_delay_s: float = 0.0
    cut_after_chunks: int | None = None  # close the connection after this many chunks
    tokens_in: int = 100
    tokens_out: int = 50
    chunk_chars: int = 12
    chunk_delay_s: float = 0.0  # pause between streamed chunks (a slow model)


@dataclass
class Fail:
    status: int
    message: str = "scripted failure"


Behaviour = Reply | Fail


class _Cut(Exception):
    """Raised inside the SSE generator so the server drops the connection mid-body."""


class FakeLLM:
    """Per-model queues of behaviours; a model with an empty queue answers `default`."""

    def __init__(self) -> None:
        self.queues: dict[str, deque[Behaviour]] = defaultdict(deque)
        self.default: Behaviour = Reply(text="## Summary\nAll good.")
        self.requests: list[dict[str, Any]] = []
        # (monotonic time, finished normally) for every streamed reply that ended
        self.stream_ends: list[tuple[float, bool]] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, *behaviours: Behaviour) -> None:
        self.queues[model].extend(behaviours)

    def reset(self) -> None:
        self.queues.clear()
        self.requests.clear()
        self.stream_ends.clear()
        self.default = Reply(text="## Summary\nAll good.")

    def models_called(self) -> list[str]:
        return [str(r["model"]) for r in self.requests]

    # --- HTTP ---------------------------------------------------------------------------

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        model = str(body.get("model"))
        queue = self.queues.get(model)
        behaviour = queue.popleft() if queue else self.default
        if isinstance(behaviour, Fail):
            return JSONResponse(
                {
                    "error": {
                        "message": behaviour.message,
                        "type": "scripted",
                        "code": behaviour.status,
                    }
                },
                status_code=behaviour.status,
            )
        if behaviour.first_token_delay_s:
            await asyncio.sleep(behaviour.first_token_delay_s)
        if body.get("stream"):
            return StreamingResponse(self._sse(model, behaviour), media_type="text/event-stream")
        return JSONResponse(self._full(model, behaviour))

    def _full(self, model: str, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": "{}"},
                }
                for i, name in enumerate(reply.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:8]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": reply.tokens_in,
                "completion_tokens": reply.tokens_out,
                "total_tokens": reply.tokens_in + reply.tokens_out,
            },
        }

    async def _sse(self, model: str, reply: Reply) -> AsyncIterator[bytes]:
        cid = f"chatcmpl-{uuid.uuid4().hex[:8]}"
        base = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        pieces = [
            reply.text[i : i + reply.chunk_chars]
            for i in range(0, len(reply.text), reply.chunk_chars)
        ]
        finished = False
        try:
            for n, piece in enumerate(pieces):
                if reply.cut_after_chunks is not None and n >= reply.cut_after_chunks:
                    raise _Cut("scripted cut")
                delta: dict[str, Any] = {"content": piece}
                if n == 0:
                    delta["role"] = "assistant"
                chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                await asyncio.sleep(reply.chunk_delay_s)
            finished = True
        finally:
            # Runs when the client (LiteLLM) goes away mid-stream, too.
            self.stream_ends.append((time.monotonic(), finished))
        final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(final)}\n\n".encode()
        usage = {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": reply.tokens_in,
                "completion_tokens": reply.tokens_out,
                "total_tokens": reply.tokens_in + reply.tokens_out,
            },
        }
        yield f"data: {json.dumps(usage)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="critical", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def with_llm(
    deps: Deps,
    server: FakeLLM,
    *models: str,
    prices: Mapping[str, ModelPrice] | None = None,
    **overrides: object,
) -> Deps:
    """`deps` whose Router talks to the fake server: models "openai/<name>" in this order."""
    values: dict[str, Any] = {
        **deps.settings.model_dump(),
        "llm_api_base": server.base_url,
        "openai_api_key": "sk-test-0000",
        "llm_timeout_s": 2.0,
    }
    values.update(overrides)
    values["llm_models"] = [f"openai/{m}" for m in models]
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    full_prices = {f"openai/{m}": p for m, p in (prices or {}).items()}
    return dataclasses.replace(
        deps, settings=settings, llm=build_router(settings, prices=full_prices)
    )


@pytest.fixture(scope="session")
def llm_server_session() -> Iterator[FakeLLM]:
    server = FakeLLM()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def llm_server(llm_server_session: FakeLLM) -> Iterator[FakeLLM]:
    """The session's fake model server with an empty script for this test."""
    llm_server_session.reset()
    yield llm_server_session
    llm_server_session.reset()


async def test_fake_server_speaks_openai_chat(llm_server: FakeLLM) -> None:
    llm_server.script("m", Reply(text="hello", tool_calls=["onchain"]))
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{llm_server.base_url}/chat/completions", json={"model": "m", "messages": []}
        )
    body = response.json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "onchain"
