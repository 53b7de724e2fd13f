"""Best-effort Redis: the parts of an answer that only save work keep working without Redis.

Redis holds only what can be rebuilt (hot cache, turn and answer caches, conversation
memory, single-flight locks). When it cannot be reached, a read through `attempt` is a miss
and a write is skipped; the answer goes on from PostgreSQL snapshots and the live sources.

One WARNING per outage, not one per call, and one INFO when Redis answers again. After a
failure every call is skipped until a background PING (one at a time, at most every
`BREAKER_S`) gets an answer, so a dead or hung Redis costs only the request that found it
gone a connection attempt (or a timeout). Quotas do not use this: they fall back to
PostgreSQL exactly (`billing.quota`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from chainlens.deps import RedisClient as Redis

log = logging.getLogger(__name__)
T = TypeVar("T")

# What a Redis that is gone, restarting, hung or refusing looks like to redis-py.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)
BREAKER_S = 2.0


@dataclass
class _Health:
    down_since: float | None = None  # monotonic time of the first failure of this outage
    skip_until: float = 0.0  # no probe before this
    skipped: int = 0  # calls not made during this outage
    probe: asyncio.Task[None] | None = None


_health: weakref.WeakKeyDictionary[Redis, _Health] = weakref.WeakKeyDictionary()


def _of(redis: Redis) -> _Health:
    health = _health.get(redis)
    if health is None:
        health = _health[redis] = _Health()
    return health


def usable(redis: Redis) -> bool:
    """False during an outage (and starts the background probe that will end it)."""
    health = _health.get(redis)
    if health is None or health.down_since is None:
        return True
    if time.monotonic() >= health.skip_until and (health.probe is None or health.probe.done()):
        health.probe = asyncio.get_running_loop().create_task(_probe(redis, health))
    return False


async def _probe(redis: Redis, health: _Health) -> None:
    try:
        await redis.ping()
    except REDIS_ERRORS:
        health.skip_until = time.monotonic() + BREAKER_S
        return
    mark_ok(redis)


def mark_failed(redis: Redis, what: str, exc: BaseException) -> None:
    """Note a failed call: the first one of an outage is logged, the breaker opens."""
    health = _of(redis)
    now = time.monotonic()
    if health.down_since is None:
        health.down_since = now
        health.skipped = 0
        log.warning(
            "Redis unavailable (%s during %s); caches and conversation memory are "
            "skipped until it is back",
            type(exc).__name__,
            what,
        )
    health.skip_until = now + BREAKER_S


def mark_ok(redis: Redis) -> None:
    """Note a call that worked: ends an outage (logged once)."""
    health = _health.get(redis)
    if health is None or health.down_since is None:
        return
    log.info(
        "Redis is back after %.1fs (%d cache calls skipped meanwhile)",
        time.monotonic() - health.down_since,
        health.skipped,
    )
    health.down_since = None
    health.skip_until = 0.0


def in_outage(redis: Redis) -> bool:
    health = _health.get(redis)
    return health is not None and health.down_since is not None


async def attempt(redis: Redis, what: str, call: Callable[[], Awaitable[T]], default: T) -> T:
    """`await call()`, or `default` when Redis is unreachable (or known to be, for a moment)."""
    if not usable(redis):
        _of(redis).skipped += 1
        return default
    try:
        result = await call()
    except REDIS_ERRORS as exc:
        mark_failed(redis, what, exc)
        return default
    mark_ok(redis)
    return result
