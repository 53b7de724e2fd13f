"""Quota counters: the Redis script, the PostgreSQL ledger, and the write-behind mirror between.

Redis is the fast path: ONE Lua script reads every window of every bucket, refuses if any is
spent, else increments them all — check and consume are one atomic step, so concurrent
callers in any number of processes can never over-admit.

PostgreSQL (`quota_counters`) is the authority while Redis is unreachable. It stays close to
Redis through a write-behind mirror: each admitted request records the window counts the
script returned, and a per-process task upserts them with GREATEST in batches, off the answer's
path. Before the fallback decides anything it drains this process's pending mirror writes, then
consumes with `INSERT … ON CONFLICT DO UPDATE … WHERE count < limit RETURNING` inside one
transaction, which is exact under concurrency. Every writer (consume, refund, mirror) locks
its rows in one order — (bucket, window, start) — so they do not deadlock one another; a
deadlock that can still happen (a row one transaction is inserting while another holds a
later one) is retried.

When Redis answers again, the buckets this process decided from PostgreSQL are re-seeded into
Redis with GREATEST(redis, postgres) before the next consume; a Redis that lost its data (a
missing day key) is seeded from PostgreSQL the same way, inside the consume script.

A read that belongs to the same request can ride in the consume script (`Rider`: the turn
cache's replay of a stored answer), so a cached chat costs one Redis round trip, and a refused
request returns before the rider runs. Every quota key carries the `{quota}` hash tag, so a
decision's keys share a slot on a Redis Cluster too; a rider keyed elsewhere (always, on a
cluster) does not ride and its caller runs it as a second call.

Limits of the scheme, chosen for speed (the script is one round trip): mirror writes not yet
flushed when a process crashes AND Redis is lost at the same time are not in PostgreSQL; and a
network split in which some processes still reach Redis while others fall back lets both sides
admit up to one window's allowance. Neither can hand anyone unlimited use.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

from chainlens.deps import Deps, RedisClient, is_cluster

log = logging.getLogger(__name__)

REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    asyncio.TimeoutError,
)
_BREAKER_S = 2.0  # after a Redis failure, go straight to PostgreSQL this long
_MINUTE_GRACE_S = 60  # keys outlive their window a little so late refunds find them
_DAY_GRACE_S = 3600
_PRUNE_EVERY_S = 600
# Mirror writes are gathered this long into one upsert: one PostgreSQL round trip per batch
# instead of per request keeps the mirror off the hot path's CPU.
MIRROR_BATCH_S = 0.05

# Every quota key carries this one hash tag: a decision checks and consumes several buckets in
# one script (a free web caller's account, e-mail and network), and the network bucket is
# shared with other accounts, so no finer tag keeps every decision's keys in one slot. On a
# Redis Cluster all quota counters therefore live on one master (a few small keys per caller
# and one short script per request); caches, turns and conversations spread over the others.
QUOTA_SLOT = "{quota}"

# KEYS: per bucket i, minute key at 2i-1 and day key at 2i; optionally last, the decision key
# of this request (an odd count): a consume whose reply was lost (a timeout) is sent again with
# the same decision key and gets the first decision back instead of consuming twice.
# ARGV: minute expire-at, day expire-at, mode ('consume'|'peek'), seeded ('1'|'0'), then per
# bucket: minute limit, day limit, minute seed, day seed.
# Returns {allowed, refusing bucket, refusing window (1 minute, 2 day), m1, d1, m2, d2, ...}
# or {-1} when a day key is missing and no seed was given (Redis may have lost its data).
CONSUME_LUA = """
local n = math.floor(#KEYS / 2)
local decided = nil
if #KEYS % 2 == 1 then
  decided = KEYS[#KEYS]
  local before = redis.call('GET', decided)
  if before then return cjson.decode(before) end
end
local seeded = ARGV[4] == '1'
local counts = {}
for i = 1, n do
  local base = 4 + 4 * (i - 1)
  local mk, dk = KEYS[2 * i - 1], KEYS[2 * i]
  if seeded then
    local pairs_ = {{mk, tonumber(ARGV[base + 3]), ARGV[1]},
                    {dk, tonumber(ARGV[base + 4]), ARGV[2]}}
    for _, p in ipairs(pairs_) do
      local cur = tonumber(redis.call('GET', p[1]) or '-1')
      if p[2] > cur then redis.call('SET', p[1], p[2]) end
      redis.call('EXPIREAT', p[1], p[3])
    end
  elseif redis.call('EXISTS', dk) == 0 then
    return {-1}
  end
  counts[2 * i - 1] = tonumber(redis.call('GET', mk) or '0')
  counts[2 * i] = tonumber(redis.call('GET', dk) or '0')
end
local result = nil
for i = 1, n do
  local base = 4 + 4 * (i - 1)
  if counts[2 * i] >= tonumber(ARGV[base + 2]) then
    result = {0, i, 2, unpack(counts)}
  elseif counts[2 * i - 1] >= tonumber(ARGV[base + 1]) then
    result = {0, i, 1, unpack(counts)}
  end
  if result then break end
end
if not result then
  if ARGV[3] == 'consume' then
    for i = 1, n do
      counts[2 * i - 1] = redis.call('INCR', KEYS[2 * i - 1])
      redis.call('EXPIREAT', KEYS[2 * i - 1], ARGV[1])
      counts[2 * i] = redis.call('INCR', KEYS[2 * i])
      redis.call('EXPIREAT', KEYS[2 * i], ARGV[2])
    end
  end
  result = {1, 0, 0, unpack(counts)}
end
if decided then redis.call('SET', decided, cjson.encode(result), 'EX', 30) end
return result
"""

# Give back one request in each window; never below zero, never creating a key without TTL.
REFUND_LUA = """
for _, k in ipairs(KEYS) do
  if tonumber(redis.call('GET', k) or '0') > 0 then redis.call('DECR', k) end
end
return {1}
"""

# Lock conflicts PostgreSQL resolves by aborting one transaction: safe to run again.
LOCK_CONFLICTS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
retry_lock_conflicts = retry(
    retry=retry_if_exception_type(LOCK_CONFLICTS),
    stop=stop_after_attempt(5),
    wait=wait_random(0.005, 0.05),
    reraise=True,
)

# EVALSHA names a script by its SHA-1 (Redis's choice): an identifier, not a security measure
_SHA = {
    src: hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest()
    for src in (CONSUME_LUA, REFUND_LUA)
}


@dataclass(frozen=True, slots=True)
class Rider:
    """A read that rides in the consume script once the request is admitted, so deciding and
    reading are one round trip (the turn cache's replay: `agent.turn_cache`).

    `function` is Lua defining `local function <name>(KEYS, ARGV)` that returns a table; it
    gets `keys` and `args` as its KEYS and ARGV. A refused request returns before it runs.
    It rides only where its keys and the quota keys can share a script: always on a
    standalone Redis, never on a Redis Cluster (the quota keys have their own slot); the
    decision then says it did not run and the caller runs the read itself."""

    function: str
    name: str
    keys: tuple[str, ...]
    args: tuple[EncodableT, ...]


@functools.lru_cache(maxsize=8)
def _with_rider(function: str, name: str) -> tuple[str, str]:
    """The consume script followed by the rider: (source, sha)."""
    source = (
        "local nq, na = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
        "local qk, qa, rk, ra = {}, {}, {}, {}\n"
        "for i = 1, #KEYS do\n"
        "  if i <= nq then qk[#qk + 1] = KEYS[i] else rk[#rk + 1] = KEYS[i] end\n"
        "end\n"
        "for i = 3, #ARGV do\n"
        "  if i - 2 <= na then qa[#qa + 1] = ARGV[i] else ra[#ra + 1] = ARGV[i] end\n"
        "end\n"
        f"local function consume(KEYS, ARGV)\n{CONSUME_LUA}\nend\n"
        f"{function}\n"
        "local decided = consume(qk, qa)\n"
        "if decided[1] ~= 1 then return {decided} end\n"
        f"return {{decided, {name}(rk, ra)}}\n"
    )
    return source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def can_ride(redis: RedisClient, keys: Sequence[str], rider: Rider) -> bool:
    """Whether the rider's keys can share a script with `keys` (one slot, or no cluster)."""
    if not is_cluster(redis):
        return True
    return len({key_slot(k.encode()) for k in (*keys, *rider.keys)}) == 1


async def run_consume_with_rider(
    redis: RedisClient, keys: Sequence[str], args: Sequence[EncodableT], rider: Rider
) -> tuple[list[int], list[Any] | None]:
    """The consume script and then, when admitted, the rider, in one EVALSHA: the decision
    (as `run_script` returns it) and the rider's raw reply (None when it did not run)."""
    source, sha = _with_rider(rider.function, rider.name)
    all_keys = [*keys, *rider.keys]
    all_args: list[EncodableT] = [len(keys), len(args), *args, *rider.args]
    try:
        reply = await redis.evalsha(sha, len(all_keys), *all_keys, *all_args)
    except NoScriptError:
        await redis.script_load(source)
        reply = await redis.evalsha(sha, len(all_keys), *all_keys, *all_args)
    decided = [int(x) for x in reply[0]]
    return decided, (list(reply[1]) if len(reply) > 1 else None)


async def run_script(
    redis: RedisClient, source: str, keys: Sequence[str], args: Sequence[EncodableT]
) -> list[int]:
    """EVALSHA, loading the script once if this Redis has not seen it."""
    try:
        result = await redis.evalsha(_SHA[source], len(keys), *keys, *args)
    except NoScriptError:
        await redis.script_load(source)
        result = await redis.evalsha(_SHA[source], len(keys), *keys, *args)
    return [int(x) for x in result]


@dataclass(frozen=True, slots=True)
class Window:
    kind: str  # 'minute' | 'day'
    start: datetime  # UTC
    end_epoch: int


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str  # 'acct:<id>' or 'web-ip:<address>'
    minute_limit: int
    day_limit: int


_DAY_TAGS: dict[int, str] = {}


@functools.lru_cache(maxsize=4)
def _windows(minute_start: int) -> tuple[Window, Window]:
    """The minute and UTC-day windows containing `minute_start` (cached: hot path)."""
    day_start = minute_start // 86400 * 86400
    day = Window("day", datetime.fromtimestamp(day_start, UTC), day_start + 86400)
    _DAY_TAGS[day.end_epoch] = day.start.strftime("%Y%m%d")
    return Window("minute", datetime.fromtimestamp(minute_start, UTC), minute_start + 60), day


@dataclass(frozen=True, slots=True)
class Plan:
    """What one decision touches: buckets and the current minute and UTC-day windows."""

    buckets: tuple[Bucket, ...]
    minute: Window
    day: Window

    @classmethod
    def at(cls, buckets: Sequence[Bucket], now: float) -> Plan:
        return cls(tuple(buckets), *_windows(int(now // 60) * 60))

    def redis_keys(self, deps: Deps) -> list[str]:
        minute_tag, day_tag = self.minute.end_epoch - 60, _DAY_TAGS[self.day.end_epoch]
        keys: list[str] = []
        for b in self.buckets:
            keys += [
                deps.keys("quota", QUOTA_SLOT, b.name, "m", minute_tag),
                deps.keys("quota", QUOTA_SLOT, b.name, "d", day_tag),
            ]
        return keys

    def decision_key(self, deps: Deps, request_id: str) -> str:
        """Where the consume script keeps this request's decision for a resend (30 s: a resend
        follows its timeout at once)."""
        return deps.keys("quota", QUOTA_SLOT, "decided", request_id)

    def ledger_rows(self) -> list[tuple[str, str, datetime]]:
        """(bucket, window, start) in the one lock order every transaction uses."""
        rows = [(b.name, w.kind, w.start) for b in self.buckets for w in (self.day, self.minute)]
        return sorted(rows, key=lambda r: (r[0], r[1]))


# --- process-local state: breaker, dirty buckets, mirror -------------------------------------

_redis_down_until: dict[int, float] = {}
_dirty: dict[str, set[str]] = {}  # key prefix -> buckets decided from PostgreSQL


def redis_usable(redis: RedisClient) -> bool:
    return time.monotonic() >= _redis_down_until.get(id(redis), 0.0)


def mark_redis_down(redis: RedisClient) -> None:
    _redis_down_until[id(redis)] = time.monotonic() + _BREAKER_S


def mark_redis_up(redis: RedisClient) -> None:
    _redis_down_until.pop(id(redis), None)


def dirty_buckets(deps: Deps) -> set[str]:
    return _dirty.setdefault(deps.keys.prefix, set())


@dataclass
class Mirror:
    """Write-behind of Redis window counts into `quota_counters`, batched, one task per pool."""

    pool: asyncpg.Pool
    highs: dict[tuple[str, str, datetime], int] = field(default_factory=dict)
    refunds: list[tuple[str, str, datetime]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    last_prune: float = 0.0

    def record(self, rows: Sequence[tuple[str, str, datetime]], counts: Sequence[int]) -> None:
        for row, count in zip(rows, counts, strict=True):
            if count > self.highs.get(row, -1):
                self.highs[row] = count
        self._schedule()

    def record_refund(self, rows: Sequence[tuple[str, str, datetime]]) -> None:
        self.refunds.extend(rows)
        self._schedule()

    def _schedule(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._drain(MIRROR_BATCH_S))

    async def flush(self) -> None:
        """Wait until every recorded count is in PostgreSQL (or its write has failed)."""
        while self.task is not None and not self.task.done():
            await asyncio.shield(self.task)
        if self.highs or self.refunds:
            await self._drain(0.0)

    async def _drain(self, gather_s: float) -> None:
        await asyncio.sleep(gather_s)
        while self.highs or self.refunds:
            highs, self.highs = self.highs, {}
            refunds, self.refunds = self.refunds, []
            try:
                await self._write(highs, refunds)
            except (
                asyncpg.PostgresError,
                OSError,
                asyncpg.InterfaceError,
                asyncpg.exceptions.InternalClientError,
            ) as exc:  # the last: server died mid-call
                # Redis still holds these counts; only a simultaneous Redis loss would miss them.
                log.warning(
                    "quota mirror write failed (%s rows): %s", len(highs), type(exc).__name__
                )

    @staticmethod
    @retry_lock_conflicts
    async def _write_rows(
        pool: asyncpg.Pool,
        highs: dict[tuple[str, str, datetime], int],
        refunds: list[tuple[str, str, datetime]],
    ) -> None:
        items = sorted(highs.items())
        given_back: dict[tuple[str, str, datetime], int] = {}
        for row in refunds:
            given_back[row] = given_back.get(row, 0) + 1
        back = sorted(given_back.items())
        async with pool.acquire() as conn, conn.transaction():
            if items and back:
                # Both statements touch rows: take every existing one first, in the one order.
                rows = sorted(set(highs) | set(given_back))
                await _lock_rows(conn, rows)
            if items:
                await conn.execute(
                    """
                    INSERT INTO quota_counters (bucket, window_kind, window_start, count)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[])
                        AS r(bucket, kind, start, count)
                    ORDER BY bucket COLLATE "C", kind COLLATE "C", start
                    ON CONFLICT (bucket, window_kind, window_start)
                    DO UPDATE SET count = GREATEST(quota_counters.count, EXCLUDED.count)
                    """,
                    [k[0] for k, _ in items],
                    [k[1] for k, _ in items],
                    [k[2] for k, _ in items],
                    [v for _, v in items],
                )
            if back:
                await _subtract(conn, [k for k, _ in back], [n for _, n in back])

    async def _write(
        self, highs: dict[tuple[str, str, datetime], int], refunds: list[tuple[str, str, datetime]]
    ) -> None:
        await self._write_rows(self.pool, highs, refunds)
        if time.monotonic() - self.last_prune > _PRUNE_EVERY_S:
            self.last_prune = time.monotonic()
            await self.pool.execute(
                "DELETE FROM quota_counters WHERE window_start < now() - interval '2 days'"
            )


_mirrors: dict[int, Mirror] = {}


def mirror_for(deps: Deps) -> Mirror:
    mirror = _mirrors.get(id(deps.db))
    if mirror is None or mirror.pool is not deps.db:
        mirror = _mirrors[id(deps.db)] = Mirror(deps.db)
    return mirror


# --- PostgreSQL ledger ------------------------------------------------------------------------


async def ledger_counts(
    db: asyncpg.Pool | asyncpg.Connection, rows: Sequence[tuple[str, str, datetime]]
) -> dict[tuple[str, str], int]:
    """Current PostgreSQL counts for (bucket, window) of the given rows (missing = 0)."""
    found = await db.fetch(
        """
        SELECT q.bucket, q.window_kind, q.count FROM quota_counters q
        JOIN unnest($1::text[], $2::text[], $3::timestamptz[]) AS r(bucket, kind, start)
          ON q.bucket = r.bucket AND q.window_kind = r.kind AND q.window_start = r.start
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
    )
    counts = {(r[0], r[1]): 0 for r in rows}
    counts.update({(r["bucket"], r["window_kind"]): int(r["count"]) for r in found})
    return counts


async def ledger_consume(conn: asyncpg.Connection, plan: Plan) -> tuple[str, str] | None:
    """Consume one request in every window inside the caller's transaction.

    Returns None when admitted, else the (bucket, window) that refused; the caller rolls back.
    """
    limits = {b.name: {"minute": b.minute_limit, "day": b.day_limit} for b in plan.buckets}
    for bucket, kind, start in plan.ledger_rows():
        count = await conn.fetchval(
            """
            INSERT INTO quota_counters (bucket, window_kind, window_start, count)
            VALUES ($1, $2, $3, 1)
            ON CONFLICT (bucket, window_kind, window_start)
            DO UPDATE SET count = quota_counters.count + 1 WHERE quota_counters.count < $4
            RETURNING count
            """,
            bucket,
            kind,
            start,
            limits[bucket][kind],
        )
        if count is None:
            return bucket, kind
    return None


async def _lock_rows(conn: asyncpg.Connection, rows: Sequence[tuple[str, str, datetime]]) -> None:
    """Lock the existing rows among `rows` in the one order every writer uses."""
    await conn.execute(
        """
        SELECT 1 FROM quota_counters q
        JOIN unnest($1::text[], $2::text[], $3::timestamptz[]) AS r(bucket, kind, start)
          ON q.bucket = r.bucket AND q.window_kind = r.kind AND q.window_start = r.start
        ORDER BY q.bucket COLLATE "C", q.window_kind COLLATE "C", q.window_start
        FOR UPDATE OF q
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
    )


async def _subtract(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, datetime]], amounts: Sequence[int]
) -> None:
    """Take `amounts` off the rows (never below zero); the caller holds their locks in order."""
    await _lock_rows(conn, rows)
    await conn.execute(
        """
        UPDATE quota_counters q SET count = GREATEST(q.count - r.amount, 0)
        FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[])
             AS r(bucket, kind, start, amount)
        WHERE q.bucket = r.bucket AND q.window_kind = r.kind AND q.window_start = r.start
          AND q.count > 0
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        list(amounts),
    )


@retry_lock_conflicts
async def ledger_consume_committed(conn: asyncpg.Connection, plan: Plan) -> tuple[str, str] | None:
    """`ledger_consume` in its own transaction: committed when admitted, else rolled back."""
    tx = conn.transaction()
    await tx.start()
    try:
        refused_at = await ledger_consume(conn, plan)
    except BaseException:
        await tx.rollback()
        raise
    if refused_at is None:
        await tx.commit()
    else:
        await tx.rollback()
    return refused_at


@retry_lock_conflicts
async def ledger_refund(db: asyncpg.Pool, plan: Plan) -> None:
    """Give back one request in every window of the plan (never below zero)."""
    rows = plan.ledger_rows()
    async with db.acquire() as conn, conn.transaction():
        await _subtract(conn, rows, [1] * len(rows))
