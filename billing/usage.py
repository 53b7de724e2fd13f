"""Durable usage: every answered (or failed) request, written once, idempotent by request id.

`record_usage` returns once the request's usage_logs row (tokens, cost), its project_usage
count (per project and UTC day) and its query_logs row are committed together, so a crash
leaves either all of them or none, and a retried call with the same request id changes
nothing. Records are group-committed: while one transaction is in flight the next ones
queue, and the queue goes out as a single transaction of a few set-based statements. Under
load a record costs a share of one commit instead of six round trips of its own; alone it
is written at once.

While PostgreSQL is unreachable, records are not lost: they wait in this process and a
retry task writes them when it answers again (idempotent by request id), so every answered
request still ends with exactly one usage row. `flush_usage` waits for them on shutdown; a
process that crashes during the outage loses the records it was holding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from chainlens.deps import Deps
from chainlens.outages import postgres_down

log = logging.getLogger(__name__)

_TRANSIENT = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    OSError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)
MAX_BATCH = 500
MAX_DEFERRED = 100_000
DEFERRED_RETRY_S = (0.5, 10.0)  # first and longest wait between attempts


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRecord:
    request_id: uuid.UUID
    account_id: int
    identity: str | None = None
    channel: str | None = None
    project_id: str | None = None
    project_symbol: str | None = None
    project_name: str | None = None
    tools: tuple[str, ...] | list[str] = field(default_factory=tuple)
    tokens_used: int = 0
    cost_usd: float | Decimal = 0
    cache_hit: bool = False
    latency_ms: int | None = None
    status: str = "ok"
    question: str = ""
    conversation_id: str | None = None
    router: str | None = None
    error: str | None = None


async def record_usage(deps: Deps, record: UsageRecord) -> None:
    """Write the request's usage, project count and query log once, durably; returns after
    the commit, or once queued while PostgreSQL is unreachable (raises if it finally failed)."""
    await _writer_for(deps).write(record)


async def flush_usage(deps: Deps, *, timeout_s: float = 5.0) -> int:
    """Wait (up to `timeout_s`) for records queued during an outage; how many are left."""
    return await _writer_for(deps).flush_deferred(timeout_s)


def _unreachable(exc: BaseException) -> bool:
    return postgres_down(exc) or isinstance(exc, OSError | TimeoutError)


@dataclass(eq=False)
class _GroupWriter:
    """One per pool: a queue of records and at most one writing task."""

    pool: asyncpg.Pool
    queue: list[tuple[UsageRecord, asyncio.Future[None]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    deferred: list[UsageRecord] = field(default_factory=list)  # waiting for PostgreSQL
    retry_task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # try now (shutdown)

    async def write(self, record: UsageRecord) -> None:
        if self.deferred:  # an outage is on: join the records waiting for PostgreSQL
            self._defer([record])
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append((record, done))
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._drain())
        # A caller that is cancelled does not take its record out of the batch.
        await asyncio.shield(done)

    async def _drain(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
            try:
                await _write_batch(self.pool, [record for record, _ in batch])
            except Exception as exc:  # noqa: BLE001 - unreachable: deferred; else settled
                if _unreachable(exc):
                    self._defer([record for record, _ in batch])
                    _settle(batch, None)
                    continue
                if len(batch) == 1 or isinstance(exc, _TRANSIENT):
                    _settle(batch, exc)
                    continue
                # One bad record (say, an account deleted meanwhile) must not cost the others.
                for one in batch:
                    try:
                        await _write_batch(self.pool, [one[0]])
                    except Exception as single:  # noqa: BLE001 - one row's own failure settles it
                        _settle([one], single)
                    else:
                        _settle([one], None)
            else:
                _settle(batch, None)

    def _defer(self, records: list[UsageRecord]) -> None:
        if not self.deferred:
            log.warning(
                "usage: PostgreSQL unreachable; keeping usage records in memory and "
                "writing them when it is back"
            )
        self.deferred.extend(records)
        if len(self.deferred) > MAX_DEFERRED:
            lost = self.deferred[: len(self.deferred) - MAX_DEFERRED]
            del self.deferred[: len(lost)]
            log.error(
                "usage: %d records dropped (more than %d waiting for PostgreSQL): %s",
                len(lost),
                MAX_DEFERRED,
                ", ".join(str(r.request_id) for r in lost[:20]),
            )
        if self.retry_task is None or self.retry_task.done():
            self.retry_task = asyncio.get_running_loop().create_task(self._write_deferred())

    async def _write_deferred(self) -> None:
        wait, written = DEFERRED_RETRY_S[0], 0
        while self.deferred:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), wait)
            batch = self.deferred[:MAX_BATCH]
            try:
                await _write_batch(self.pool, batch)
            except Exception as exc:
                if _unreachable(exc):
                    wait = min(wait * 2, DEFERRED_RETRY_S[1])
                    continue
                log.exception(
                    "usage: %d deferred records could not be written; dropped: %s",
                    len(batch),
                    ", ".join(str(r.request_id) for r in batch[:20]),
                )
            else:
                written += len(batch)
                wait = 0.0  # PostgreSQL is back: write the rest at once
            del self.deferred[: len(batch)]
        log.info("usage: PostgreSQL is back; %d deferred usage records written", written)

    async def flush_deferred(self, timeout_s: float) -> int:
        task = self.retry_task
        if task is not None and not task.done():
            self.wake.set()  # no more backing off: keep trying until the time is up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            self.wake.clear()  # still down: back to backing off
        if self.deferred:
            log.error(
                "usage: %d records still waiting for PostgreSQL: %s",
                len(self.deferred),
                ", ".join(str(r.request_id) for r in self.deferred[:20]),
            )
        return len(self.deferred)


def _settle(batch: list[tuple[UsageRecord, asyncio.Future[None]]], exc: Exception | None) -> None:
    for _, done in batch:
        if done.done():
            continue
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)
            done.exception()  # a caller that has gone must not warn "never retrieved"


_writers: dict[int, _GroupWriter] = {}


def _writer_for(deps: Deps) -> _GroupWriter:
    writer = _writers.get(id(deps.db))
    if writer is None or writer.pool is not deps.db:
        writer = _writers[id(deps.db)] = _GroupWriter(deps.db)
    return writer


# One statement, so one round trip and atomic by itself: the usage rows that are new (a retry
# or a duplicate inserts nothing), then for exactly those the project counts and query logs.
# Project ids are taken in sorted order so concurrent batches never deadlock on project_usage.
_WRITE_BATCH = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::int[], $8::numeric[], $9::bool[], $10::int[], $11::text[],
                         $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                         $17::text[])
        AS t(request_id, user_id, identity, channel, project_id, tools, tokens_used, cost_usd,
             cache_hit, latency_ms, status, conversation_id, question, router, error,
             project_symbol, project_name)
), logged AS (
    INSERT INTO usage_logs (request_id, user_id, identity, channel, project_id, tools,
                            tokens_used, cost_usd, cache_hit, latency_ms, status)
    SELECT request_id, user_id, identity, channel, project_id, string_to_array(tools, ','),
           tokens_used, cost_usd, cache_hit, latency_ms, status
    FROM input
    ON CONFLICT (request_id) DO NOTHING
    RETURNING request_id
), fresh AS (
    SELECT input.* FROM input JOIN logged USING (request_id)
), new_projects AS (
    INSERT INTO projects (id, symbol, name)
    SELECT DISTINCT ON (project_id) project_id, coalesce(project_symbol, upper(project_id)),
           coalesce(project_name, project_id)
    FROM fresh WHERE project_id IS NOT NULL ORDER BY project_id
    ON CONFLICT (id) DO NOTHING
), counted AS (
    INSERT INTO project_usage (project_id, day, requests)
    SELECT project_id, $18::date, count(*) FROM fresh WHERE project_id IS NOT NULL
    GROUP BY project_id ORDER BY project_id
    ON CONFLICT (project_id, day)
        DO UPDATE SET requests = project_usage.requests + EXCLUDED.requests
), queried AS (
    INSERT INTO query_logs (request_id, user_id, conversation_id, question, project_id, tools,
                            router, status, error)
    SELECT request_id, user_id, conversation_id, question, project_id,
           string_to_array(tools, ','), router, status, error
    FROM fresh
)
SELECT count(*) FROM fresh
"""


@retry(
    retry=retry_if_exception_type(_TRANSIENT),
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=0.1, max=2),
    reraise=True,
)
async def _write_batch(pool: asyncpg.Pool, records: list[UsageRecord]) -> None:
    unique = list({r.request_id: r for r in records}.values())
    await pool.execute(
        _WRITE_BATCH,
        [r.request_id for r in unique],
        [r.account_id for r in unique],
        [r.identity for r in unique],
        [r.channel for r in unique],
        [r.project_id for r in unique],
        [",".join(r.tools) for r in unique],
        [r.tokens_used for r in unique],
        [Decimal(str(r.cost_usd)) for r in unique],
        [r.cache_hit for r in unique],
        [r.latency_ms for r in unique],
        [r.status for r in unique],
        [r.conversation_id for r in unique],
        [r.question[:4000] for r in unique],
        [r.router for r in unique],
        [r.error[:2000] if r.error else None for r in unique],
        [r.project_symbol for r in unique],
        [r.project_name for r in unique],
        datetime.now(UTC).date(),
    )


async def count_project_request(
    conn: asyncpg.Connection, project_id: str, *, symbol: str | None = None, name: str | None = None
) -> None:
    """Add one request to today's project_usage, creating a minimal projects row if needed."""
    await conn.execute(
        "INSERT INTO projects (id, symbol, name) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        project_id,
        symbol or project_id.upper(),
        name or project_id,
    )
    await conn.execute(
        """
        INSERT INTO project_usage (project_id, day, requests) VALUES ($1, $2, 1)
        ON CONFLICT (project_id, day) DO UPDATE SET requests = project_usage.requests + 1
        """,
        project_id,
        datetime.now(UTC).date(),
    )


async def monthly_cost(deps: Deps, account_id: int) -> Decimal:
    """The account's LLM cost this UTC calendar month."""
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    value = await deps.db.fetchval(
        "SELECT COALESCE(sum(cost_usd), 0) FROM usage_logs WHERE user_id = $1 AND created_at >= $2",
        account_id,
        start,
    )
    return Decimal(value)


async def project_usage(deps: Deps, project_id: str) -> dict[str, int]:
    """Requests about a project today, over 7 days and over 30 days (UTC days)."""
    today = datetime.now(UTC).date()
    row = await deps.db.fetchrow(
        """
        SELECT COALESCE(sum(requests) FILTER (WHERE day = $2), 0) AS today,
               COALESCE(sum(requests) FILTER (WHERE day > $2 - 7), 0) AS d7,
               COALESCE(sum(requests) FILTER (WHERE day > $2 - 30), 0) AS d30
        FROM project_usage WHERE project_id = $1 AND day > $2 - 30
        """,
        project_id,
        today,
    )
    return {
        "requests_today": int(row["today"]),
        "requests_7d": int(row["d7"]),
        "requests_30d": int(row["d30"]),
    }
