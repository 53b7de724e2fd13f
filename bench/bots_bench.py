"""Bots benchmark: how fast a Telegram user sees something, and the webhook route's intake.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/bots_bench.py [--samples 30]

1. Latency, per question: from the update's arrival (handed to python-telegram-bot, as the
   webhook route does) to the first visible reaction (the first Bot API call for that chat:
   typing/draft/progress) and to the final answer message, for a private chat (drafts) and a
   group mention (progress message edited into the answer); cached (the same question again:
   turn cache) and uncached (Redis and snapshots emptied first, so every tool calls the data
   sources). Beside them, in the same run, the web chat (`POST /api/chat/stream`, Pro API key):
   time to the first SSE event and to `final`. Data sources are the tests' in-memory fakes
   (no network latency), the Bot API is tests/fake_bot_api.py on loopback, no LLM.
2. Intake: webhook updates accepted per second (`POST /api/telegram/webhook`: secret check,
   Redis dedupe, PTB parse, queue — the updates are group messages the bot ignores, so the
   background work is small) beside a trivial FastAPI POST endpoint, both over ASGI in this
   process with 50 concurrent clients.

Everything runs in one process and one event loop (the fake Bot API included), so absolute
figures are pessimistic on a shared 2-core machine; the comparisons are within one run.
A scratch database and Redis prefix are created and removed. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI
from pydantic import AnyHttpUrl, SecretStr
from telegram import Update

from _scratch import REDIS_URL, scratch_space
from billing.accounts import account_for_identity, set_base_tier
from billing.api_keys import create_api_key
from bots.telegram import build_application, webhook_secret
from chainlens.deps import Deps, open_deps
from chainlens.settings import Settings
from tests import telegram_updates as tu
from tests.fake_bot_api import FakeBotApi, _free_port, running_fake_bot_api
from tests.tools_fakes import FakeSources, fast_http
from web.app import create_app

QUESTION = "uniswap sentiment and tokenomics"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def empty_caches(deps: Deps) -> None:
    """Forget every cached result (Redis and snapshot history): the next answer is uncached."""
    keys = [k async for k in deps.redis.scan_iter(match=deps.keys.prefix + "*", count=1000)]
    if keys:
        await deps.redis.delete(*keys)
    await deps.db.execute("TRUNCATE analysis_snapshots")


async def telegram_sample(
    application: Any, fake: FakeBotApi, *, chat_id: int, user_id: int, group: bool
) -> tuple[float, float]:
    text = f"@{tu.BOT_USERNAME} {QUESTION}" if group else QUESTION
    update = tu.message(text, chat_id=chat_id, user_id=user_id)
    start_index = len(fake.calls)
    arrived = time.monotonic()
    await application.process_update(Update.de_json(update, application.bot))
    first = final = None
    for (method, params), at in zip(
        fake.calls[start_index:], fake.call_times[start_index:], strict=True
    ):
        if str(params.get("chat_id")) != str(chat_id):
            continue
        first = first if first is not None else at
        if method in ("sendMessage", "editMessageText") and "Uniswap" in str(params.get("text")):
            final = at if "parse_mode" in params else final
    assert first is not None and final is not None, "no answer seen"
    return first - arrived, final - arrived


async def web_sample(client: httpx.AsyncClient, key: str, conversation: str) -> tuple[float, float]:
    start = time.monotonic()
    first = final = None
    async with client.stream(
        "POST",
        "/api/chat/stream",
        json={"message": QUESTION, "conversation_id": conversation},
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                now = time.monotonic()
                first = first if first is not None else now
                if line.strip() == "event: final":
                    final = now
    assert first is not None and final is not None, "no final event"
    return first - start, final - start


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """The app on a loopback port in this loop (ASGITransport would buffer the SSE stream)."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def latency(deps: Deps, application: Any, fake: FakeBotApi, samples: int) -> None:
    app = create_app(deps.settings, deps=deps)
    rows: list[tuple[str, list[float], list[float]]] = []
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        for cached in (False, True):
            results: dict[str, tuple[list[float], list[float]]] = {
                "telegram private": ([], []),
                "telegram group": ([], []),
                "web SSE": ([], []),
            }
            for i in range(samples):
                for channel in results:
                    if not cached:
                        await empty_caches(deps)
                    user = 10_000 * (2 if cached else 1) + i * 3 + list(results).index(channel)
                    if channel == "web SSE":
                        account = await account_for_identity(deps, f"web:b{user}@example.com")
                        await set_base_tier(deps, account.id, "pro")
                        key, _ = await create_api_key(deps, account, "bench")
                        first, final = await web_sample(client, key, f"c{user}")
                    else:
                        group = channel == "telegram group"
                        first, final = await telegram_sample(
                            application,
                            fake,
                            chat_id=-user if group else user,
                            user_id=user,
                            group=group,
                        )
                    results[channel][0].append(first)
                    results[channel][1].append(final)
            for channel, (firsts, finals) in results.items():
                rows.append((f"{channel} ({'cached' if cached else 'uncached'})", firsts, finals))
    print(f"\nlatency over {samples} questions each ({QUESTION!r}), milliseconds")
    print(f"{'path':32} {'first p50':>10} {'first p99':>10} {'final p50':>10} {'final p99':>10}")
    for name, firsts, finals in rows:
        print(
            f"{name:32} {pct(firsts, 0.5):10.1f} {pct(firsts, 0.99):10.1f} "
            f"{pct(finals, 0.5):10.1f} {pct(finals, 0.99):10.1f}"
        )


async def intake(deps: Deps, application: Any, updates: int) -> None:
    app = create_app(deps.settings, deps=deps)
    app.state.telegram = application
    trivial = FastAPI()

    @trivial.post("/noop")
    async def noop(body: dict[str, Any]) -> dict[str, bool]:
        return {"ok": True}

    secret = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret(deps.settings)}
    gate = asyncio.Semaphore(50)

    async def run(target: FastAPI, path: str, headers: dict[str, str], status: int = 200) -> float:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=target), base_url="http://bench"
        ) as client:

            async def one(i: int) -> None:
                async with gate:
                    body = tu.message(
                        "just chatting",
                        chat_id=-42,
                        user_id=i,
                        update_id=900_000_000 + i + int(time.time() * 1000) % 10**6 * 1000,
                    )
                    response = await client.post(path, json=body, headers=headers)
                    assert response.status_code == status, response.text

            start = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(updates)))
            return updates / (time.monotonic() - start)

    trivial_rate = await run(trivial, "/noop", {})
    # Our app's own stack (middleware, router) with no work: a POST to an unmatched path.
    floor_rate = await run(app, "/api/telegram/nothing-here", {}, status=404)
    webhook_rate = await run(app, "/api/telegram/webhook", secret)
    await asyncio.sleep(0.5)  # let the queued updates drain before the run ends
    print(f"\nintake over {updates} POSTs, 50 concurrent, updates accepted per second")
    print(f"{'trivial FastAPI POST':32} {trivial_rate:10.0f}")
    print(f"{'our app, unmatched path (404)':32} {floor_rate:10.0f}")
    print(f"{'POST /api/telegram/webhook':32} {webhook_rate:10.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--updates", type=int, default=2000)
    args = parser.parse_args()
    async with scratch_space() as (db_url, prefix), running_fake_bot_api() as (fake, base_url):
        settings = Settings(
            _env_file=None,
            environment="test",
            database_url=db_url,
            redis_url=REDIS_URL,  # type: ignore[call-arg]
            redis_prefix=prefix,
            llm_models=[],
            telegram_bot_token=SecretStr("1:BENCH"),
            telegram_api_base=base_url,
            public_base_url=AnyHttpUrl("https://chainlens.example"),
            telegram_webhook_url=AnyHttpUrl("https://bot.chainlens.example/api/telegram/webhook"),
            send_rates=json.loads(
                '{"telegram": [100000, 1], "telegram_private": [1000, 1],'
                ' "telegram_group": [1000, 1]}'
            ),
        )
        sources = FakeSources()
        async with open_deps(settings, http_transport=sources.transport()) as opened:
            deps = fast_http(opened)
            application = build_application(deps)
            async with application:
                await application.start()
                await latency(deps, application, fake, args.samples)
                await intake(deps, application, args.updates)
                await application.stop()


if __name__ == "__main__":
    asyncio.run(main())
