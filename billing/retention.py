"""Retention: raw usage and query rows do not grow forever.

`usage_logs` and `query_logs` rows older than `RETENTION_DAYS` (default 90) are folded into the
daily aggregates `usage_daily` (per UTC day, account, channel and status: requests, cache hits,
tokens, cost) and `query_daily` (per UTC day, project, router and status: queries) and deleted,
in batches of `RETENTION_BATCH` rows. Each batch is one statement — `DELETE … RETURNING` feeding
an `INSERT … ON CONFLICT DO UPDATE` — so a row is counted in its aggregate exactly when it is
deleted: a crash or a second job at the same time neither loses nor double-counts anything
(`FOR UPDATE SKIP LOCKED` makes two runs share the work). The walks use the `created_at` indexes.

The daily tables (`usage_daily`, `query_daily` and `project_usage`, which is daily already) are
kept for `RETENTION_DAILY_DAYS` (default 730) and then deleted the same way.

Runs as the daily periodic job `billing.apply_retention` (`RETENTION_CRON`) and as
`chainlens retention run`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from chainlens.deps import Deps

log = logging.getLogger(__name__)

_USAGE_BATCH = """
WITH gone AS (
    DELETE FROM usage_logs WHERE id IN (
        SELECT id FROM usage_logs WHERE created_at < $1
        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING user_id, channel, status, cache_hit, tokens_used, cost_usd,
              (created_at AT TIME ZONE 'UTC')::date AS day
), folded AS (
    INSERT INTO usage_daily AS d (day, user_id, channel, status, requests, cache_hits,
                                  tokens_used, cost_usd)
    SELECT day, user_id, COALESCE(channel, ''), status, count(*), count(*) FILTER (WHERE cache_hit),
           sum(tokens_used), sum(cost_usd)
    FROM gone GROUP BY day, user_id, COALESCE(channel, ''), status
    ON CONFLICT (day, user_id, channel, status) DO UPDATE SET
        requests = d.requests + EXCLUDED.requests,
        cache_hits = d.cache_hits + EXCLUDED.cache_hits,
        tokens_used = d.tokens_used + EXCLUDED.tokens_used,
        cost_usd = d.cost_usd + EXCLUDED.cost_usd
)
SELECT count(*) FROM gone
"""

_QUERY_BATCH = """
WITH gone AS (
    DELETE FROM query_logs WHERE id IN (
        SELECT id FROM query_logs WHERE created_at < $1
        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING project_id, router, status, (created_at AT TIME ZONE 'UTC')::date AS day
), folded AS (
    INSERT INTO query_daily AS d (day, project_id, router, status, queries)
    SELECT day, COALESCE(project_id, ''), COALESCE(router, ''), status, count(*)
    FROM gone GROUP BY day, COALESCE(project_id, ''), COALESCE(router, ''), status
    ON CONFLICT (day, project_id, router, status) DO UPDATE SET
        queries = d.queries + EXCLUDED.queries
)
SELECT count(*) FROM gone
"""

# Daily tables past RETENTION_DAILY_DAYS: (table, key columns) deleted by day, oldest first.
_DAILY_TABLES: tuple[tuple[str, str], ...] = (
    ("usage_daily", "day, user_id, channel, status"),
    ("query_daily", "day, project_id, router, status"),
    ("project_usage", "project_id, day"),
)


@dataclass(frozen=True, slots=True)
class RetentionResult:
    raw_cutoff: datetime
    daily_cutoff: date
    usage_rows: int
    query_rows: int
    daily_rows: int
    batches: int

    def summary(self) -> str:
        return (
            f"folded and deleted {self.usage_rows} usage_logs and {self.query_rows} "
            f"query_logs row(s) older than {self.raw_cutoff:%Y-%m-%d %H:%M} UTC; deleted "
            f"{self.daily_rows} daily aggregate row(s) before {self.daily_cutoff} "
            f"({self.batches} batch(es))"
        )


async def _drain(deps: Deps, batch: int, sql: str, *args: object) -> tuple[int, int]:
    """Run one batch statement until a batch comes back short: (rows, batches)."""
    total = batches = 0
    while True:
        count = int(await deps.db.fetchval(sql, *args, batch))
        total += count
        batches += 1
        if count < batch:
            return total, batches


async def apply_retention(
    deps: Deps, *, now: datetime | None = None, batch: int | None = None
) -> RetentionResult:
    """Fold and delete raw rows past the raw retention, then old daily rows; return counts."""
    settings = deps.settings
    batch = batch or settings.retention_batch
    now = now or datetime.now(UTC)
    raw_cutoff = now - timedelta(days=settings.retention_days)
    daily_cutoff = (now - timedelta(days=settings.retention_daily_days)).date()
    usage_rows, b1 = await _drain(deps, batch, _USAGE_BATCH, raw_cutoff)
    query_rows, b2 = await _drain(deps, batch, _QUERY_BATCH, raw_cutoff)
    daily_rows, batches = 0, b1 + b2
    for table, key in _DAILY_TABLES:
        sql = (
            f"WITH gone AS (DELETE FROM {table} WHERE ({key}) IN ("  # noqa: S608 - constants
            f"SELECT {key} FROM {table} WHERE day < $1 ORDER BY day LIMIT $2"
            f" FOR UPDATE SKIP LOCKED) RETURNING 1) SELECT count(*) FROM gone"
        )
        rows, b = await _drain(deps, batch, sql, daily_cutoff)
        daily_rows += rows
        batches += b
    result = RetentionResult(raw_cutoff, daily_cutoff, usage_rows, query_rows, daily_rows, batches)
    if usage_rows or query_rows or daily_rows:
        log.info("retention: %s", result.summary())
    return result
