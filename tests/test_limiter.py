"""The shared send limiter against the run's real Redis: windows hold in every sub-window,
across independent limiter instances (as separate processes would be), and holds apply."""

from __future__ import annotations

import asyncio
import time

from chainlens.deps import Deps
from chainlens.limiter import Rate, SendLimiter, SendQueueTimeout, telegram_chat_class


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def test_group_window_holds_across_instances(deps: Deps) -> None:
    rates = {"telegram": Rate(30, 1.0), "telegram_group": Rate(5, 0.5)}
    limiters = [SendLimiter(deps.redis, deps.keys, rates) for _ in range(3)]
    sent: list[float] = []

    async def send(i: int) -> None:
        await limiters[i % 3].acquire("telegram", chat="-100", chat_class="telegram_group")
        sent.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(send(i) for i in range(15)))
    assert len(sent) == 15
    assert _max_in_window(sent, 0.5) <= 5
    # 15 sends at 5 per 0.5 s need at least two full windows after the first five.
    assert time.monotonic() - started >= 1.0


async def test_private_and_global_buckets_are_separate(deps: Deps) -> None:
    limiter = SendLimiter(deps.redis, deps.keys, {"telegram_private": Rate(1, 10.0)})
    assert await limiter.try_acquire("telegram", chat="1", chat_class="telegram_private") == 0
    # the same private chat must wait; another chat need not
    assert await limiter.try_acquire("telegram", chat="1", chat_class="telegram_private") > 5
    assert await limiter.try_acquire("telegram", chat="2", chat_class="telegram_private") == 0
    assert telegram_chat_class(-1001) == "telegram_group"
    assert telegram_chat_class(42) == "telegram_private"


async def test_a_refused_try_takes_nothing(deps: Deps) -> None:
    limiter = SendLimiter(
        deps.redis, deps.keys, {"telegram": Rate(2, 10.0), "telegram_private": Rate(100, 1.0)}
    )
    assert await limiter.try_acquire("telegram", chat="1", chat_class="telegram_private") == 0
    assert await limiter.try_acquire("telegram", chat="2", chat_class="telegram_private") == 0
    # the global window is full: chat 3 waits, and its refused attempt left no trace in
    # its own window
    assert await limiter.try_acquire("telegram", chat="3", chat_class="telegram_private") > 0
    assert await deps.redis.zcard(deps.keys("send:{telegram}", "chat", "3")) == 0


async def test_hold_blocks_a_chat_until_retry_after(deps: Deps) -> None:
    limiter = SendLimiter(deps.redis, deps.keys)
    await limiter.hold("telegram", chat="-5", seconds=0.3)
    wait = await limiter.try_acquire("telegram", chat="-5", chat_class="telegram_group")
    assert 0.1 < wait <= 0.3
    assert await limiter.try_acquire("telegram", chat="-6", chat_class="telegram_group") == 0
    started = time.monotonic()
    await limiter.acquire("telegram", chat="-5", chat_class="telegram_group")
    assert time.monotonic() - started >= 0.1
    # a platform-wide hold (a global 429) stops every chat
    await limiter.hold("discord", seconds=5)
    try:
        await limiter.acquire("discord", chat="c1", timeout_s=0.2)
    except SendQueueTimeout:
        pass
    else:
        raise AssertionError("a platform-wide hold was ignored")


async def test_rates_come_from_settings(deps: Deps) -> None:
    import dataclasses

    settings = deps.settings.model_copy(update={"send_rates": {"email": (3, 2.0)}})
    limiter = SendLimiter.from_deps(dataclasses.replace(deps, settings=settings))
    assert limiter.rates["email"] == Rate(3, 2.0)
    assert limiter.rates["telegram_group"] == Rate(20, 60.0)
