"""Durable usage: one transaction per answered (or failed) request, idempotent by request id.

`record_usage` writes usage_logs (tokens, cost), project_usage (per project and UTC day) and
query_logs together, so a crash leaves either all of them or none; a retried call with the
same request id changes nothing. Callers record after the answer has been delivered (or use
`record_usage_soon`, which keeps the task referenced and logs its failure), so recording
never slows an answer down.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from chainlens.deps import Deps

log = logging.getLogger(__name__)

_TRANSIENT = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError,
              asyncpg.exceptions.SerializationError, asyncpg.exceptions.DeadlockDetectedError)
_background: set[asyncio.Task[None]] = set()


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


@retry(retry=retry_if_exception_type(_TRANSIENT), stop=stop_after_attempt(4),
       wait=wait_exponential(multiplier=0.1, max=2), reraise=True)
async def record_usage(deps: Deps, record: UsageRecord) -> None:
    """Write the request's usage, project count and query log once, durably."""
    tools = list(record.tools)
    async with deps.db.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            """
            INSERT INTO usage_logs (request_id, user_id, identity, channel, project_id, tools,
                                    tokens_used, cost_usd, cache_hit, latency_ms, status)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (request_id) DO NOTHING RETURNING id
            """,
            record.request_id, record.account_id, record.identity, record.channel,
            record.project_id, tools, record.tokens_used, Decimal(str(record.cost_usd)),
            record.cache_hit, record.latency_ms, record.status)
        if inserted is None:
            return  # already recorded: a retry or a duplicate delivery
        if record.project_id:
            await count_project_request(conn, record.project_id, symbol=record.project_symbol,
                                        name=record.project_name)
        await conn.execute(
            """
            INSERT INTO query_logs (request_id, user_id, conversation_id, question, project_id,
                                    tools, router, status, error)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """,
            record.request_id, record.account_id, record.conversation_id,
            record.question[:4000], record.project_id, tools, record.router, record.status,
            record.error[:2000] if record.error else None)


async def count_project_request(conn: asyncpg.Connection, project_id: str, *,
                                symbol: str | None = None, name: str | None = None) -> None:
    """Add one request to today's project_usage, creating a minimal projects row if needed."""
    await conn.execute(
        "INSERT INTO projects (id, symbol, name) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        project_id, symbol or project_id.upper(), name or project_id)
    await conn.execute(
        """
        INSERT INTO project_usage (project_id, day, requests) VALUES ($1, $2, 1)
        ON CONFLICT (project_id, day) DO UPDATE SET requests = project_usage.requests + 1
        """,
        project_id, datetime.now(UTC).date())


def record_usage_soon(deps: Deps, record: UsageRecord) -> asyncio.Task[None]:
    """Record in the background; the task is kept referenced and its failure logged."""
    task = asyncio.get_running_loop().create_task(record_usage(deps, record))
    _background.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[None]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("usage record failed", exc_info=task.exception())


async def monthly_cost(deps: Deps, account_id: int) -> Decimal:
    """The account's LLM cost this UTC calendar month."""
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    value = await deps.db.fetchval(
        "SELECT COALESCE(sum(cost_usd), 0) FROM usage_logs WHERE user_id = $1 AND created_at >= $2",
        account_id, start)
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
        project_id, today)
    return {"requests_today": int(row["today"]), "requests_7d": int(row["d7"]),
            "requests_30d": int(row["d30"])}
