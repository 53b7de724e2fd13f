"""The layered analysis cache: Redis (hot, zlib JSON, TTL by volatility), PostgreSQL history
(warm and stale fallback), and single-flight so concurrent asks make one upstream fetch.

Redis is best-effort here (`chainlens.best_effort`): while it is unreachable a hot read is a
miss, writes are skipped and single-flight is per process only; results come from the
snapshots and the live sources."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from chainlens import best_effort
from chainlens.deps import Deps, hash_tag
from chainlens.redis_reply import as_bytes
from tools.results import RESULT_TYPES, ToolName, ToolResult, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

BASE_TTL_S = 300
PARTIAL_TTL_S = 60  # a result missing a source is retried sooner
VOLATILITY_HINT_TTL_S = 24 * 3600
LOCK_MS = 30_000
WAIT_POLL_S = 0.05

# Release the cross-process lock only if we still own it.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def l1_key(deps: Deps, tool: ToolName, project_id: str) -> str:
    """The hot-cache entry of one tool's result for a project. Tagged with the project, so
    every entry of a project (and a script reading several of them) is in one cluster slot."""
    return deps.keys("analysis", tool, hash_tag(project_id), "v1")


def ttl_for(volatility: float | None, *, partial: bool = False, base: int = BASE_TTL_S) -> int:
    """`base` (300 s), halved for very volatile coins (> 0.8 annualised), doubled for calm
    ones (< 0.3); a result missing a source lives a fifth of it (60 s)."""
    if partial:
        return max(1, base * PARTIAL_TTL_S // BASE_TTL_S)
    if volatility is None:
        return base
    if volatility > 0.8:
        return max(1, base // 2)
    if volatility < 0.3:
        return base * 2
    return base


def encode(result: ToolResult) -> bytes:
    return zlib.compress(result.model_dump_json().encode(), 6)


def decode(tool: ToolName, raw: bytes) -> ToolResult:
    return RESULT_TYPES[tool].model_validate_json(zlib.decompress(raw))


def digest(raw: bytes) -> str:
    """The fingerprint of a stored entry: SHA-1 hex, the same as Redis's `redis.sha1hex`, so a
    Lua script can check that an entry is still the one an answer was built from."""
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class HotEntry:
    result: ToolResult
    digest: str  # of the stored bytes


async def read_l1(deps: Deps, tool: ToolName, project_id: str) -> HotEntry | None:
    key = l1_key(deps, tool, project_id)
    raw = await best_effort.attempt(deps.redis, "hot cache read", lambda: deps.redis.get(key), None)
    if raw is None:
        return None
    try:
        data = as_bytes(raw)
        return HotEntry(decode(tool, data), digest(data))
    except (zlib.error, ValueError) as exc:  # an old or corrupt entry is a miss, not an error
        log.warning("dropping unreadable cache entry for %s/%s: %s", tool, project_id, exc)
        return None


async def write_l1(deps: Deps, result: ToolResult, ttl_s: int) -> str | None:
    """Store `result` in the hot cache; the entry's digest, or None when Redis is down."""
    raw, key = encode(result), l1_key(deps, result.tool, result.project_id)
    written = await best_effort.attempt(
        deps.redis, "hot cache write", lambda: deps.redis.set(key, raw, ex=max(1, ttl_s)), None
    )
    return digest(raw) if written else None


async def volatility_hint(deps: Deps, project_id: str) -> float | None:
    """The project's last known annualised volatility (set by the onchain tool)."""
    key = deps.keys("volatility", project_id)
    raw = await best_effort.attempt(
        deps.redis, "volatility read", lambda: deps.redis.get(key), None
    )
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


async def remember_volatility(deps: Deps, project_id: str, volatility: float | None) -> None:
    if volatility is None or not math.isfinite(volatility):
        return
    key = deps.keys("volatility", project_id)
    await best_effort.attempt(
        deps.redis,
        "volatility write",
        lambda: deps.redis.set(key, f"{volatility:.4f}", ex=VOLATILITY_HINT_TTL_S),
        None,
    )


async def save_snapshot(deps: Deps, result: ToolResult) -> None:
    """Append the result to analysis_snapshots (history, warm cache, stale fallback).

    `fetched_at` is when we fetched it (what cache freshness is measured from); the data's
    own age travels inside the result (`as_of`)."""
    fetched_at = max((e.fetched_at for e in result.evidence), default=result.as_of)
    await deps.db.execute(
        "INSERT INTO analysis_snapshots (project_id, module, result, fetched_at) "
        "VALUES ($1, $2, $3::jsonb, $4)",
        result.project_id,
        result.tool,
        result.model_dump(mode="json"),
        fetched_at,
    )


async def latest_snapshot(
    deps: Deps, tool: ToolName, project_id: str
) -> tuple[ToolResult, datetime] | None:
    row = await deps.db.fetchrow(
        "SELECT result, fetched_at FROM analysis_snapshots WHERE project_id = $1 AND module = $2 "
        "ORDER BY fetched_at DESC LIMIT 1",
        project_id,
        tool,
    )
    if row is None:
        return None
    return RESULT_TYPES[tool].model_validate(row["result"]), row["fetched_at"]


def age_seconds(fetched_at: datetime) -> float:
    return max(0.0, (utcnow() - fetched_at).total_seconds())


# --- single-flight ------------------------------------------------------------------------------

_INFLIGHT: dict[str, asyncio.Future[Any]] = {}
_UNREACHABLE = object()


async def single_flight(
    deps: Deps,
    key: str,
    produce: Callable[[], Awaitable[T]],
    poll: Callable[[], Awaitable[T | None]],
    *,
    wait_s: float = LOCK_MS / 1000,
) -> T:
    """One `produce()` per key: in-process callers share a future; other processes wait on a
    Redis lock (SET NX PX) and poll `poll()` (the hot cache) until the owner has written it."""
    # The fetch runs as its own task and every caller awaits it through a shield: a caller
    # that is cancelled (its answer timed out, its client left) does not cancel the fetch the
    # other callers are waiting for.
    task: asyncio.Future[Any] | None = _INFLIGHT.get(key)
    if task is None:
        task = asyncio.ensure_future(_across_processes(deps, key, produce, poll, wait_s))
        _INFLIGHT[key] = task
        task.add_done_callback(functools.partial(_forget_inflight, key))
    # one key, one kind of value: every caller of a key passes the same producer
    result: T = await asyncio.shield(task)
    return result


def _forget_inflight(key: str, task: asyncio.Future[Any]) -> None:
    if _INFLIGHT.get(key) is task:
        del _INFLIGHT[key]
    if not task.cancelled():
        task.exception()  # retrieved here: a fetch nobody waits for any more must not warn


async def _across_processes(
    deps: Deps,
    key: str,
    produce: Callable[[], Awaitable[T]],
    poll: Callable[[], Awaitable[T | None]],
    wait_s: float,
) -> T:
    lock_key, token = key + ":lock", uuid.uuid4().hex
    deadline = asyncio.get_running_loop().time() + wait_s
    redis = deps.redis
    while True:
        acquired = await best_effort.attempt(
            redis,
            "single-flight lock",
            lambda: redis.set(lock_key, token, nx=True, px=LOCK_MS),
            _UNREACHABLE,
        )
        if acquired is _UNREACHABLE:  # no Redis: the in-process single-flight still holds
            return await produce()
        if acquired:
            try:
                return await produce()
            finally:
                # a lock we cannot release expires by itself after LOCK_MS
                await best_effort.attempt(
                    redis,
                    "single-flight unlock",
                    lambda: redis.eval(_RELEASE, 1, lock_key, token),
                    None,
                )
        # another process is fetching: wait for its result in the hot cache
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(WAIT_POLL_S)
            found = await poll()
            if found is not None:
                return found
            # the owner finished without caching (sources down), or Redis went: try ourselves
            if not await best_effort.attempt(
                redis, "single-flight wait", lambda: redis.exists(lock_key), 0
            ):
                break
        else:
            log.warning("gave up waiting for %s after %.0fs; fetching ourselves", key, wait_s)
            return await produce()
