"""Webhook mode over two app instances sharing Redis, and a burst of group mentions.

The two replicas are two `create_app()` instances in this process (each with its own
python-telegram-bot Application, its own Deps — PostgreSQL pool and Redis client — over the
same database and Redis key space), driven over ASGI; OS processes would add start-up time
but not a different code path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import AnyHttpUrl, SecretStr
from telegram import Update

from billing.accounts import account_for_identity
from billing.quota import quota_status
from bots.telegram import build_application, start_bot, stop_bot, webhook_secret
from chainlens.deps import Deps, open_deps
from tests import telegram_updates as tu
from tests.fake_bot_api import FakeBotApi, running_fake_bot_api
from web.app import create_app

WEBHOOK_URL = "https://bot.chainlens.example/api/telegram/webhook"
GROUP = -100777


def webhook_deps(deps: Deps, base_url: str, **rates: tuple[int, float]) -> Deps:
    settings = deps.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr("123456:TEST-TOKEN"),
            "telegram_api_base": base_url,
            "telegram_webhook_url": AnyHttpUrl(WEBHOOK_URL),
            "public_base_url": AnyHttpUrl("https://chainlens.example"),
            "send_rates": {"telegram": (100000, 1.0), "telegram_private": (1000, 1.0), **rates},
        }
    )
    return dataclasses.replace(deps, settings=settings)


@pytest.fixture
async def replicas(deps: Deps) -> AsyncIterator[tuple[FakeBotApi, list[httpx.AsyncClient], Deps]]:
    async with (
        running_fake_bot_api() as (fake, base_url),
        open_deps(deps.settings, migrate=False) as other,
    ):
        clients, applications = [], []
        for base in (deps, other):
            replica = webhook_deps(base, base_url)
            application = build_application(replica)
            await start_bot(application)
            app = create_app(replica.settings, deps=replica)
            app.state.telegram = application
            applications.append(application)
            clients.append(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://testserver"
                )
            )
        try:
            yield fake, clients, webhook_deps(deps, base_url)
        finally:
            for client in clients:
                await client.aclose()
            for application in applications:
                await stop_bot(application)


async def _wait_for(condition: Any, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_1000_concurrent_updates_with_duplicates_are_each_answered_once(
    replicas: tuple[FakeBotApi, list[httpx.AsyncClient], Deps],
) -> None:
    fake, clients, deps = replicas
    assert fake.webhook["url"] == WEBHOOK_URL
    assert fake.webhook["secret_token"] == webhook_secret(deps.settings)
    secret = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret(deps.settings)}
    distinct = [
        tu.message("/help", chat_id=100_000 + i, user_id=100_000 + i, update_id=500_000 + i)
        for i in range(900)
    ]
    posts = distinct + random.Random(7).sample(distinct, 100)  # 10 % redelivered
    random.Random(8).shuffle(posts)
    gate = asyncio.Semaphore(100)

    async def post(index: int, update: dict[str, Any]) -> int:
        # Like Telegram: a non-2xx answer (503 while Redis is too busy to dedupe) is retried.
        for attempt in range(20):
            async with gate:
                response = await clients[(index + attempt) % 2].post(
                    "/api/telegram/webhook", json=update, headers=secret
                )
            if response.status_code < 500:
                return response.status_code
            await asyncio.sleep(0.5)
        return response.status_code

    statuses = await asyncio.gather(*(post(i, u) for i, u in enumerate(posts)))
    assert set(statuses) == {200}
    await _wait_for(lambda: len(fake.sent("sendMessage")) >= 900, 90)
    await asyncio.sleep(0.5)  # a late duplicate would show up now
    per_chat = Counter(int(p["chat_id"]) for p in fake.sent("sendMessage"))
    assert len(per_chat) == 900
    assert set(per_chat.values()) == {1}


async def test_wrong_secret_is_403_and_nothing_is_processed(
    replicas: tuple[FakeBotApi, list[httpx.AsyncClient], Deps],
) -> None:
    fake, clients, deps = replicas
    update = tu.message("/help", chat_id=4321, user_id=4321)
    for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}):
        response = await clients[0].post("/api/telegram/webhook", json=update, headers=headers)
        assert response.status_code == 403
    await asyncio.sleep(0.3)
    assert fake.sent("sendMessage") == []
    # The refused delivery claimed nothing: the real one is answered.
    good = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret(deps.settings)}
    assert (
        await clients[1].post("/api/telegram/webhook", json=update, headers=good)
    ).status_code == 200
    await _wait_for(lambda: bool(fake.sent("sendMessage")), 10)
    assert len(fake.sent("sendMessage", 4321)) == 1


@pytest.mark.slow
async def test_burst_of_60_group_mentions_stays_under_the_group_limit(fast_deps: Deps) -> None:
    """60 mentions in 10 s. Telegram's 20 per 60 s is scaled to 20 per 3 s so the test takes
    seconds: the fake enforces 20 per 3.0 s (429 past it), SEND_RATES gives the limiter
    20 per 3.2 s. The 0.2 s absorbs this process's scheduling delay between the limiter's
    grant and the request's arrival at the fake (all of it shares one busy event loop);
    at Telegram's real 60 s window the limiter's own margin covers network jitter."""
    async with running_fake_bot_api(group_limit=(20, 3.0)) as (fake, base_url):
        bot_deps = webhook_deps(fast_deps, base_url, telegram_group=(20, 3.2))
        bot_deps = dataclasses.replace(
            bot_deps, settings=bot_deps.settings.model_copy(update={"telegram_webhook_url": None})
        )
        application = build_application(bot_deps)
        async with application:
            tasks = []
            for i in range(60):
                update = tu.message(
                    "@chainlens_bot uniswap sentiment", chat_id=GROUP, user_id=9000 + i
                )
                tasks.append(
                    asyncio.create_task(
                        application.process_update(Update.de_json(update, application.bot))
                    )
                )
                await asyncio.sleep(10 / 60)
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
    assert fake.served_429 == []
    assert fake.max_in_window(GROUP, 3.0) <= 20
    answers = [
        m
        for (chat, _), m in fake.messages.items()
        if chat == GROUP and "Uniswap" in m.text and "Sentiment" in m.text
    ]
    assert len(answers) == 60
    for i in range(60):
        account = await account_for_identity(bot_deps, f"telegram:{9000 + i}")
        assert (await quota_status(bot_deps, account)).day_used == 1
